# The demo with a 1-bit RPN conv (rebnn_faster_rcnn_shapes_binary_rpn.py) and 1-bit RoI FC layers
# (BinaryShared2FCBBoxHead), same data, schedule and seed: the "+RoI FCs binary" row of BENCHMARKS.md.
_base_ = './rebnn_faster_rcnn_shapes_binary_rpn.py'

model = dict(roi_head=dict(bbox_head=dict(type='BinaryShared2FCBBoxHead')))
