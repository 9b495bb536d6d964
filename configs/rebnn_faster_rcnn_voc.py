# ReBNN Faster R-CNN on PASCAL VOC: train VOC2007+2012 trainval, test VOC2007 test (mmdet's VOCMetric, mAP@0.5).
# Data: data/VOCdevkit/VOC2007, data/VOCdevkit/VOC2012 (mmdet layout).
_base_ = 'mmdet::pascal_voc/faster-rcnn_r50_fpn_1x_voc0712.py'
custom_imports = dict(imports=['rebnn_det'], allow_failed_imports=False)

model = dict(
    backbone=dict(_delete_=True, type='ReBNNResNet', depth=18, norm_eval=False, init_cfg=None),
    neck=dict(type='BinaryFPN', in_channels=[64, 128, 256, 512]))
custom_hooks = [dict(type='ReBNNHook', gamma='adaptive')]

# Same optimizer reasoning as rebnn_faster_rcnn.py (AdamW for BNNs). The VOC base repeats the data 3x per epoch;
# 8 such epochs (~2x mmdet's VOC schedule) with x0.1 at epoch 6.
optim_wrapper = dict(
    _delete_=True, type='OptimWrapper', clip_grad=dict(max_norm=35, norm_type=2),
    optimizer=dict(type='AdamW', lr=2e-4, weight_decay=1e-4),
    paramwise_cfg=dict(norm_decay_mult=0.0, custom_keys={k: dict(decay_mult=0.0) for k in
                                                         ('alpha', 'threshold', 'shift_in', 'shift_out', 'slope')}))
train_cfg = dict(max_epochs=8)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(type='MultiStepLR', begin=0, end=8, by_epoch=True, milestones=[6], gamma=0.1)
]
