# XNOR-style binary baseline on the embedded shapes set (mean|w| scale, no learnable alpha, no reconstruction);
# ReBNNHook(gamma=0) only records the weight oscillation.
_base_ = './rebnn_faster_rcnn_shapes.py'

model = dict(backbone=dict(weight_binarizer='xnor'),
             neck=dict(binary_cfg=dict(weight_binarizer='xnor')))
custom_hooks = [dict(type='ReBNNHook', gamma=0)]
