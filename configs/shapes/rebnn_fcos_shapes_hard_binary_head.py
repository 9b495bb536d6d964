# FCOS on the harder embedded set: the demo's 32-wide 1-bit ReBNNResNet-18 and 64-wide 1-bit FPN (P3-P7 as
# mmdet's FCOS), the binary cls/reg towers of rebnn_fcos_binary_head.py (BinaryFCOSHead), the data and schedule of
# rebnn_faster_rcnn_shapes_hard.py. Real teacher: real_fcos_shapes_hard.py.
_base_ = './rebnn_faster_rcnn_shapes_hard.py'

model = dict(
    _delete_=True, type='FCOS',
    data_preprocessor=dict(type='DetDataPreprocessor', mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
                           bgr_to_rgb=True, pad_size_divisor=32),
    backbone=dict(type='ReBNNResNet', depth=18, base_channels=32, stem_channels=32, norm_eval=False, init_cfg=None),
    neck=dict(type='BinaryFPN', in_channels=[32, 64, 128, 256], out_channels=64, start_level=1,
              add_extra_convs='on_output', num_outs=5, relu_before_extra_convs=True),
    bbox_head=dict(
        type='BinaryFCOSHead', num_classes=12, in_channels=64, stacked_convs=4, feat_channels=64,
        strides=[8, 16, 32, 64, 128],
        loss_cls=dict(type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=1.0),
        loss_bbox=dict(type='IoULoss', loss_weight=1.0),
        loss_centerness=dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0)),
    test_cfg=dict(nms_pre=300, min_bbox_size=0, score_thr=0.05, nms=dict(type='nms', iou_threshold=0.5),
                  max_per_img=20))
