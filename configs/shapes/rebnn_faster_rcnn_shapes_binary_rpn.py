# The demo (rebnn_faster_rcnn_shapes.py: 1-bit backbone + FPN) with a 1-bit RPN conv too (BinaryRPNHead), same data,
# schedule and seed: the "+RPN binary" row of BENCHMARKS.md's binary-head table.
_base_ = './rebnn_faster_rcnn_shapes.py'

model = dict(rpn_head=dict(type='BinaryRPNHead'))
