# rebnn_faster_rcnn.py with a 1-bit RPN conv (BinaryRPNHead: BN(ReBNNConv(x)) + x, then ReLU; its 1x1 objectness
# and box convs stay real). ReBNNHook trains the RPN conv with the backbone and neck, no extra setting.
_base_ = './rebnn_faster_rcnn.py'

model = dict(rpn_head=dict(type='BinaryRPNHead'))
