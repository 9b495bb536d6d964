# ImageNet-1k pretraining of the binary backbone, step 1 of the two-step recipe ReBNN trains on (ReActNet's):
# binary activations, real weights (W32A1), Adam 5e-4, batch 256 (8 GPUs x 32), 256 epochs, lr decayed linearly
# to 0, weight decay 5e-6. Data in mmpretrain's ImageNet layout: data/imagenet/{train,val}/ + meta/{train,val}.txt.
#   bash tools/dist_train.sh configs/classification/rebnn_resnet18_8xb32_in1k_stage1_w32a1.py 8
# Step 2: rebnn_resnet18_8xb32_in1k_stage2_w1a1{,_distill}.py. Not run here (no ImageNet, no GPU on this machine).
_base_ = ['mmdet::_base_/default_runtime.py']
custom_imports = dict(imports=['rebnn_det.plugin'], allow_failed_imports=False)

model = dict(
    type='BackboneClassifier', num_classes=1000, in_channels=512,
    data_preprocessor=dict(type='ImgDataPreprocessor', mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
                           bgr_to_rgb=True),
    backbone=dict(type='ReBNNResNet', depth=18, out_indices=(3, ), weight_binarizer='none'))

imagenet = dict(type='ImageListDataset', data_root='data/imagenet/', num_classes=1000)
train_dataloader = dict(batch_size=32, num_workers=8, persistent_workers=True, sampler=dict(
    type='DefaultSampler', shuffle=True), dataset=dict(
        ann_file='meta/train.txt', data_prefix=dict(img_path='train'), **imagenet, pipeline=[
            dict(type='LoadImageFromFile'), dict(type='RandomResizedCrop', scale=224),
            dict(type='RandomFlip', prob=0.5, direction='horizontal'), dict(type='PackClassificationInputs')]))
val_dataloader = dict(batch_size=64, num_workers=8, persistent_workers=True, sampler=dict(
    type='DefaultSampler', shuffle=False), dataset=dict(
        ann_file='meta/val.txt', data_prefix=dict(img_path='val'), **imagenet, pipeline=[
            dict(type='LoadImageFromFile'), dict(type='Resize', scale=(100000, 256), keep_ratio=True),
            dict(type='CenterCrop', crop_size=224), dict(type='PackClassificationInputs')]))
val_evaluator = dict(type='ClassificationAccuracy', topk=(1, 5))
test_dataloader, test_evaluator = val_dataloader, val_evaluator

max_epochs = 256
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=1)
val_cfg, test_cfg = dict(type='ValLoop'), dict(type='TestLoop')
optim_wrapper = dict(
    type='OptimWrapper', optimizer=dict(type='Adam', lr=5e-4, weight_decay=5e-6),
    paramwise_cfg=dict(norm_decay_mult=0.0, custom_keys={  # as _base_/schedules/binary_2x.py
        k: dict(decay_mult=0.0) for k in ('alpha', 'threshold', 'shift_in', 'shift_out', 'slope')}))
param_scheduler = [dict(type='LinearLR', start_factor=1.0, end_factor=0.0, by_epoch=True, begin=0, end=max_epochs,
                        convert_to_iter_based=True)]
auto_scale_lr = dict(enable=False, base_batch_size=256)
custom_hooks = []  # no binary weights in step 1
default_hooks = dict(checkpoint=dict(interval=1, max_keep_ckpts=3, save_best='accuracy/top1'))
