# ReBNN Faster R-CNN on COCO 2017: 1-bit ReBNNResNet-18 backbone + 1-bit FPN, trained with the ReBNN rule.
# Real-valued: the stem, the downsample shortcuts, the RPN and RoI heads (rebnn_faster_rcnn_binary_rpn.py makes
# the RPN conv binary too). Data: data/coco/ (mmdet layout). Schedule: _base_/schedules/binary_2x.py.
_base_ = [
    'mmdet::_base_/models/faster-rcnn_r50_fpn.py', 'mmdet::_base_/datasets/coco_detection.py',
    './_base_/schedules/binary_2x.py', 'mmdet::_base_/default_runtime.py'
]
custom_imports = dict(imports=['rebnn_det.plugin'], allow_failed_imports=False)

model = dict(
    # init_cfg: start from a real ResNet-18 with tools/convert_real_resnet.py (see README); None = from scratch.
    backbone=dict(_delete_=True, type='ReBNNResNet', depth=18, out_indices=(0, 1, 2, 3), norm_eval=False,
                  weight_binarizer='rebnn', act_binarizer='rsign', init_cfg=None),
    neck=dict(type='BinaryFPN', in_channels=[64, 128, 256, 512], binary_parts=('lateral', 'fpn', 'extra')))
custom_hooks = [dict(type='ReBNNHook', gamma='adaptive')]
