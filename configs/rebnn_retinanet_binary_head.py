# rebnn_retinanet.py with 1-bit cls/reg conv towers (BinaryRetinaHead: 4 + 4 blocks ReLU(BN(ReBNNConv(x)) + x));
# the two 3x3 prediction convs stay real. ReBNNHook picks the head's convs up with no extra setting.
_base_ = './rebnn_retinanet.py'

model = dict(bbox_head=dict(type='BinaryRetinaHead'))
