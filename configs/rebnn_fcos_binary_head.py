# rebnn_fcos.py with 1-bit cls/reg conv towers (BinaryFCOSHead: 4 + 4 blocks ReLU(BN(ReBNNConv(x)) + x), BN in
# place of the head's GroupNorm since BN folds into the binary conv's scale at inference); the prediction convs
# (cls, reg, centerness) stay real. ReBNNHook picks the head's convs up with no extra setting.
_base_ = './rebnn_fcos.py'

model = dict(bbox_head=dict(type='BinaryFCOSHead'))
