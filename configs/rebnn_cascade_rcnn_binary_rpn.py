# rebnn_cascade_rcnn.py with a 1-bit RPN conv (BinaryRPNHead). The three cascade stages' bbox heads have no convs
# (two shared FC layers each, on 7x7 RoI features), which stay real like every RoI head here.
_base_ = './rebnn_cascade_rcnn.py'

model = dict(rpn_head=dict(type='BinaryRPNHead'))
