# Pretraining of the binary backbone as an image classifier (the paper's ImageNet stage, scaled to a 2-core CPU):
# the ReBNNResNet-18 of configs/shapes/rebnn_faster_rcnn_shapes_hard.py (32 wide, 1-bit 3x3 convs, ReBNNHook with
# the adaptive gamma) + global average pooling + a real linear classifier (BackboneClassifier), trained by
# mmengine's runner on object crops of the harder shapes set (12 classes, 32x32 px; cut on first use into
# data/shapes_hard_crops/ from 1500 images of another seed than the detection set's, so no detection val image is
# seen). A detector's backbone then starts from it with one line (shapes/rebnn_faster_rcnn_shapes_hard_pretrained.py):
#   backbone=dict(init_cfg=dict(type='Pretrained', checkpoint='.../epoch_12.pth', prefix='backbone.'))
_base_ = ['mmdet::_base_/default_runtime.py']
custom_imports = dict(imports=['rebnn_det.plugin'], allow_failed_imports=False)

model = dict(
    type='BackboneClassifier', num_classes=12, in_channels=256,
    data_preprocessor=dict(type='ImgDataPreprocessor', mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
                           bgr_to_rgb=True),
    backbone=dict(type='ReBNNResNet', depth=18, base_channels=32, stem_channels=32, out_indices=(3, )))

crops = dict(type='ShapesCropsDataset', data_root='data/shapes_hard_crops/', seed=100, img_size=128, crop_size=32,
             classes=['circle', 'square', 'triangle', 'cross', 'ring', 'diamond',
                      'hexagon', 'rectangle', 'trapezoid', 'star', 'thick_ring', 'kite'],
             max_objects=8, size_probs=[0.5, 0.4, 0.1], clutter_lines=[8, 20], distractors=4)
train_dataloader = dict(batch_size=128, num_workers=1, persistent_workers=True, sampler=dict(
    type='DefaultSampler', shuffle=True), dataset=dict(split='train', num_images=1500, **crops, pipeline=[
        dict(type='RandomFlip', prob=0.5, direction='horizontal'), dict(type='PackClassificationInputs')]))
val_dataloader = dict(batch_size=256, num_workers=1, persistent_workers=True, sampler=dict(
    type='DefaultSampler', shuffle=False), dataset=dict(split='val', num_images=300, **crops, pipeline=[
        dict(type='PackClassificationInputs')]))
val_evaluator = dict(type='ClassificationAccuracy', topk=(1, ))
test_dataloader, test_evaluator = val_dataloader, val_evaluator

max_epochs = 12
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=max_epochs)
val_cfg, test_cfg = dict(type='ValLoop'), dict(type='TestLoop')
optim_wrapper = dict(
    type='OptimWrapper', optimizer=dict(type='AdamW', lr=2e-3, weight_decay=0.0),
    paramwise_cfg=dict(norm_decay_mult=0.0, custom_keys={  # as _base_/schedules/binary_2x.py
        k: dict(decay_mult=0.0) for k in ('alpha', 'threshold', 'shift_in', 'shift_out', 'slope')}))
param_scheduler = [dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=50),
                   dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=max_epochs, eta_min=1e-5)]
custom_hooks = [dict(type='ReBNNHook', gamma='adaptive')]
default_hooks = dict(logger=dict(interval=25), checkpoint=dict(interval=max_epochs, max_keep_ckpts=1))
randomness = dict(seed=0)
