# rebnn_cascade_rcnn_binary_rpn.py with the three cascade stages' shared FC layers 1-bit too
# (BinaryShared2FCBBoxHead: BN1d(ReBNNLinear(x)) (+ x on fc7), then ReLU; fc_cls / fc_reg stay real). Every stage's
# head is the base's with its type changed (mmengine merges dicts, not list items).
_base_ = './rebnn_cascade_rcnn_binary_rpn.py'

model = dict(roi_head=dict(bbox_head=[dict(head, type='BinaryShared2FCBBoxHead')
                                      for head in _base_.model.roi_head.bbox_head]))
