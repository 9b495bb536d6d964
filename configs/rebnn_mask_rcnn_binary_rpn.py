# rebnn_mask_rcnn.py with a 1-bit RPN conv (BinaryRPNHead). The RoI bbox head (FC layers) and the mask head's
# 14x14 conv tower stay real: per-pixel mask logits are the prediction layers binary networks keep real.
_base_ = './rebnn_mask_rcnn.py'

model = dict(rpn_head=dict(type='BinaryRPNHead'))
