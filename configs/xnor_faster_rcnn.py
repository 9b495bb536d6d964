# XNOR-style binary baseline: w_hat = mean|w| * sign(w) recomputed every forward (XNOR-Net/Bi-Real/ReActNet),
# no learnable scale, no reconstruction term; ReBNNHook(gamma=0) only logs the weight oscillation for comparison.
_base_ = './rebnn_faster_rcnn.py'

model = dict(backbone=dict(weight_binarizer='xnor'),
             neck=dict(binary_cfg=dict(weight_binarizer='xnor')))
custom_hooks = [dict(type='ReBNNHook', gamma=0)]
