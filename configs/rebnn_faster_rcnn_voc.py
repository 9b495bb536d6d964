# ReBNN Faster R-CNN on PASCAL VOC: train VOC2007+2012 trainval, test VOC2007 test (mmdet's VOCMetric, mAP@0.5).
# Data: data/VOCdevkit/VOC2007, data/VOCdevkit/VOC2012 (mmdet layout).
_base_ = [
    'mmdet::_base_/models/faster-rcnn_r50_fpn.py', 'mmdet::_base_/datasets/voc0712.py',
    './_base_/schedules/binary_2x.py', 'mmdet::_base_/default_runtime.py'
]
custom_imports = dict(imports=['rebnn_det.plugin'], allow_failed_imports=False)

model = dict(
    backbone=dict(_delete_=True, type='ReBNNResNet', depth=18, norm_eval=False, init_cfg=None),
    neck=dict(type='BinaryFPN', in_channels=[64, 128, 256, 512]),
    roi_head=dict(bbox_head=dict(num_classes=20)))
custom_hooks = [dict(type='ReBNNHook', gamma='adaptive')]

# The binary schedule's optimizer; its 2x length in VOC terms: the VOC base repeats the data 3x per epoch, so
# 8 such epochs (~2x mmdet's VOC schedule) with x0.1 at epoch 6.
train_cfg = dict(max_epochs=8)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(type='MultiStepLR', begin=0, end=8, by_epoch=True, milestones=[6], gamma=0.1)
]
