# The one schedule for 1-bit detectors (every COCO/VOC config of this project composes it). It takes the place of
# mmdet's schedule_1x.py base, with the same keys.
# AdamW rather than SGD: sign() makes the loss flat in the latent weights' magnitude, and SGD momentum with L2
# decay shrinks latent weights towards 0 where they flip most (the oscillation ReBNN fights); Adam-type optimizers
# are the BNN standard (ReActNet, Real-to-Binary). No weight decay on the binary scales (alpha), the RSign
# thresholds, the RPReLU shifts and slopes, nor any norm layer: decay would pull them to 0, which is not a prior
# for them (an alpha or a BN scale of 0 switches a channel off). lr 2e-4 for a total batch of 16; 24 epochs (2x)
# because binary detectors converge slower than real ones; x0.1 at epochs 16 and 22; linear warm-up over 500
# iterations. Gradient clipping guards the early binary steps (the ReBNN reconstruction gradient is added after
# clipping). tests/configs/test_schedule.py checks the no-decay groups for every shipped config.
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=24, val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(type='MultiStepLR', begin=0, end=24, by_epoch=True, milestones=[16, 22], gamma=0.1)
]
optim_wrapper = dict(
    type='OptimWrapper', clip_grad=dict(max_norm=35, norm_type=2),
    optimizer=dict(type='AdamW', lr=2e-4, weight_decay=1e-4),
    paramwise_cfg=dict(norm_decay_mult=0.0, custom_keys={
        k: dict(decay_mult=0.0) for k in ('alpha', 'threshold', 'shift_in', 'shift_out', 'slope')}))
auto_scale_lr = dict(enable=False, base_batch_size=16)
