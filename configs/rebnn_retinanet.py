# ReBNN retinanet on COCO: 1-bit ReBNNResNet-18 + 1-bit FPN in mmdet's stock detector; heads stay real.
_base_ = 'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py'
custom_imports = dict(imports=['rebnn_det'], allow_failed_imports=False)

model = dict(
    backbone=dict(_delete_=True, type='ReBNNResNet', depth=18, norm_eval=False, init_cfg=None),
    neck=dict(type='BinaryFPN', in_channels=[64, 128, 256, 512]))
custom_hooks = [dict(type='ReBNNHook', gamma='adaptive')]
# Binary schedule of rebnn_faster_rcnn.py (AdamW; see the reasoning there), 2x.
optim_wrapper = dict(_delete_=True, type='OptimWrapper', clip_grad=dict(max_norm=35, norm_type=2),
                     optimizer=dict(type='AdamW', lr=2e-4, weight_decay=1e-4), paramwise_cfg=dict(norm_decay_mult=0.0))
train_cfg = dict(max_epochs=24)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(type='MultiStepLR', begin=0, end=24, by_epoch=True, milestones=[16, 22], gamma=0.1)
]
