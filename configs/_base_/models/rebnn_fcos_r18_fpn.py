# FCOS with a 1-bit ReBNNResNet-18 + 1-bit FPN (extra levels from the P5 output, as mmdet's FCOS), as a model
# component base: mmdet ships FCOS only as a full config (with its own schedule), which cannot be combined with
# _base_/schedules/binary_2x.py (mmengine forbids two bases defining the same key).
model = dict(
    type='FCOS',
    # trained from scratch: PyTorch-style normalisation instead of mmdet FCOS's Caffe-pretrained one
    data_preprocessor=dict(type='DetDataPreprocessor', mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
                           bgr_to_rgb=True, pad_size_divisor=32),
    backbone=dict(type='ReBNNResNet', depth=18, norm_eval=False, init_cfg=None),
    neck=dict(type='BinaryFPN', in_channels=[64, 128, 256, 512], out_channels=256, start_level=1,
              add_extra_convs='on_output', num_outs=5, relu_before_extra_convs=True),
    bbox_head=dict(
        type='FCOSHead', num_classes=80, in_channels=256, stacked_convs=4, feat_channels=256,
        strides=[8, 16, 32, 64, 128],
        loss_cls=dict(type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=1.0),
        loss_bbox=dict(type='IoULoss', loss_weight=1.0),
        loss_centerness=dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0)),
    test_cfg=dict(nms_pre=1000, min_bbox_size=0, score_thr=0.05, nms=dict(type='nms', iou_threshold=0.5),
                  max_per_img=100))
