# The harder embedded setting with a 1-bit RPN conv and 1-bit RoI FC layers (BinaryShared2FCBBoxHead).
_base_ = './rebnn_faster_rcnn_shapes_hard_binary_rpn.py'

model = dict(roi_head=dict(bbox_head=dict(type='BinaryShared2FCBBoxHead')))
