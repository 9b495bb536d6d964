# Two-stage recipe (ReActNet), stage 1: binary activations, real weights (W32A1). Stage 2 starts from this
# checkpoint: rebnn_faster_rcnn_stage2_w1a1.py (alpha is then initialised from the loaded weights).
_base_ = './rebnn_faster_rcnn.py'

model = dict(backbone=dict(weight_binarizer='none'),
             neck=dict(binary_cfg=dict(weight_binarizer='none')))
custom_hooks = []  # no binary weights yet: nothing for ReBNNHook to do
