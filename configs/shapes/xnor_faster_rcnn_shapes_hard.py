# XNOR-style binary baseline on the harder embedded set (rebnn_faster_rcnn_shapes_hard.py), as
# xnor_faster_rcnn_shapes.py for the default set: mean|w| scale, no learnable alpha, no reconstruction;
# ReBNNHook(gamma=0) only records the weight oscillation.
_base_ = './rebnn_faster_rcnn_shapes_hard.py'

model = dict(backbone=dict(weight_binarizer='xnor'),
             neck=dict(binary_cfg=dict(weight_binarizer='xnor')))
custom_hooks = [dict(type='ReBNNHook', gamma=0)]
