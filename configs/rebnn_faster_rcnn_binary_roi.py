# rebnn_faster_rcnn_binary_rpn.py with the RoI head's two shared FC layers 1-bit too (BinaryShared2FCBBoxHead:
# BN1d(ReBNNLinear(x)) (+ x on fc7), then ReLU; fc_cls / fc_reg stay real): every layer that is not a first or last
# layer is binary. ReBNNHook trains the FC layers with the convs (gamma per output row), no extra setting.
_base_ = './rebnn_faster_rcnn_binary_rpn.py'

model = dict(roi_head=dict(bbox_head=dict(type='BinaryShared2FCBBoxHead')))
