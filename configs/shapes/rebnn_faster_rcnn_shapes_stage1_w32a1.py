# Two-stage recipe on the embedded shapes set, stage 1: binary activations, real weights (W32A1), 4 epochs.
_base_ = './rebnn_faster_rcnn_shapes.py'

model = dict(backbone=dict(weight_binarizer='none'),
             neck=dict(binary_cfg=dict(weight_binarizer='none')))
custom_hooks = []  # no binary weights yet
max_epochs = 4
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
param_scheduler = [dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=100)]
default_hooks = dict(checkpoint=dict(interval=max_epochs))
