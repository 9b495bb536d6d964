# ReBNN Cascade R-CNN on COCO: 1-bit ReBNNResNet-18 + 1-bit FPN in mmdet's stock detector; heads stay real
# (rebnn_cascade_rcnn_binary_rpn.py makes the RPN conv binary). Schedule: _base_/schedules/binary_2x.py.
_base_ = [
    'mmdet::_base_/models/cascade-rcnn_r50_fpn.py', 'mmdet::_base_/datasets/coco_detection.py',
    './_base_/schedules/binary_2x.py', 'mmdet::_base_/default_runtime.py'
]
custom_imports = dict(imports=['rebnn_det.plugin'], allow_failed_imports=False)

model = dict(
    backbone=dict(_delete_=True, type='ReBNNResNet', depth=18, norm_eval=False, init_cfg=None),
    neck=dict(type='BinaryFPN', in_channels=[64, 128, 256, 512]))
custom_hooks = [dict(type='ReBNNHook', gamma='adaptive')]
