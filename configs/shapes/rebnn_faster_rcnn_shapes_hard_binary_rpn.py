# The harder embedded setting (rebnn_faster_rcnn_shapes_hard.py) with a 1-bit RPN conv (BinaryRPNHead).
_base_ = './rebnn_faster_rcnn_shapes_hard.py'

model = dict(rpn_head=dict(type='BinaryRPNHead'))
