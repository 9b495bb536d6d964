# Demo: ReBNN Faster R-CNN (1-bit ReBNNResNet-18 + 1-bit FPN, ReBNNHook) on the embedded shapes set, which is
# generated on first use into data/shapes/ and read by mmdet's CocoDataset/CocoMetric. Built to learn fast on a
# 2-core CPU: 128 px images, 6 classes, a 64-wide FPN, 64 RoIs per image, a 256-wide box head, AdamW 1e-3.
_base_ = '../rebnn_faster_rcnn.py'

data_root = 'data/shapes/'
img_size = 128
model = dict(
    backbone=dict(base_channels=32, stem_channels=32),
    neck=dict(in_channels=[32, 64, 128, 256], out_channels=64),
    rpn_head=dict(in_channels=64, feat_channels=64, anchor_generator=dict(scales=[4])),
    roi_head=dict(bbox_roi_extractor=dict(out_channels=64),
                  bbox_head=dict(in_channels=64, fc_out_channels=256, num_classes=6)),
    train_cfg=dict(rpn=dict(sampler=dict(num=128)), rpn_proposal=dict(nms_pre=600, max_per_img=300),
                   rcnn=dict(sampler=dict(num=64))),
    test_cfg=dict(rpn=dict(nms_pre=300, max_per_img=100), rcnn=dict(max_per_img=20)))

train_pipeline = [
    dict(type='LoadImageFromFile'), dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=(img_size, img_size), keep_ratio=True), dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'), dict(type='Resize', scale=(img_size, img_size), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))
]
dataset = dict(type='ShapesDataset', data_root=data_root, img_size=img_size, seed=0)
train_dataloader = dict(batch_size=8, num_workers=1, persistent_workers=True, dataset=dict(
    _delete_=True, split='train', num_images=600, pipeline=train_pipeline, filter_cfg=dict(filter_empty_gt=True),
    **dataset))
val_dataloader = dict(batch_size=8, num_workers=1, persistent_workers=True, dataset=dict(
    _delete_=True, split='val', num_images=100, pipeline=test_pipeline, test_mode=True, **dataset))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json')
test_evaluator = val_evaluator

max_epochs = 8
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
optim_wrapper = dict(optimizer=dict(lr=1e-3))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=100),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[6], gamma=0.1)
]
custom_hooks = [dict(type='ReBNNHook', gamma='adaptive')]
randomness = dict(seed=0)  # the same initialisation and data order on every run
default_hooks = dict(logger=dict(interval=25), checkpoint=dict(interval=max_epochs, max_keep_ckpts=1))
