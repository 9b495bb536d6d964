# ReBNN Faster R-CNN on COCO 2017: 1-bit ReBNNResNet-18 backbone + 1-bit FPN, trained with the ReBNN rule.
# Real-valued: the stem, the downsample shortcuts, the RPN and RoI heads. Data: data/coco/ (mmdet layout).
_base_ = 'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py'
custom_imports = dict(imports=['rebnn_det'], allow_failed_imports=False)

model = dict(
    # init_cfg: start from a real ResNet-18 with tools/convert_real_resnet.py (see README); None = from scratch.
    backbone=dict(_delete_=True, type='ReBNNResNet', depth=18, out_indices=(0, 1, 2, 3), norm_eval=False,
                  weight_binarizer='rebnn', act_binarizer='rsign', init_cfg=None),
    neck=dict(type='BinaryFPN', in_channels=[64, 128, 256, 512], binary_parts=('lateral', 'fpn', 'extra')))
custom_hooks = [dict(type='ReBNNHook', gamma='adaptive')]

# Schedule for 1-bit training. AdamW rather than SGD: sign() makes the loss flat in the latent weights'
# magnitude, and SGD momentum with L2 decay shrinks latent weights towards 0 where they flip most (the oscillation
# ReBNN fights); Adam-type optimizers are the BNN standard (ReActNet, Real-to-Binary). No decay on the scales,
# thresholds and norms. lr 2e-4 for a total batch of 16; 24 epochs (2x) because binary detectors converge
# slower than real ones; x0.1 at epochs 16 and 22; linear warm-up over 500 iterations. Gradient clipping guards
# the early binary steps (the ReBNN reconstruction gradient is added after clipping).
optim_wrapper = dict(
    _delete_=True, type='OptimWrapper', clip_grad=dict(max_norm=35, norm_type=2),
    optimizer=dict(type='AdamW', lr=2e-4, weight_decay=1e-4),
    paramwise_cfg=dict(norm_decay_mult=0.0, custom_keys={k: dict(decay_mult=0.0) for k in
                                                         ('alpha', 'threshold', 'shift_in', 'shift_out', 'slope')}))
train_cfg = dict(max_epochs=24)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(type='MultiStepLR', begin=0, end=24, by_epoch=True, milestones=[16, 22], gamma=0.1)
]
auto_scale_lr = dict(enable=False, base_batch_size=16)
