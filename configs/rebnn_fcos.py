# ReBNN FCOS on COCO: 1-bit ReBNNResNet-18 + 1-bit FPN; the head stays real (rebnn_fcos_binary_head.py makes its
# conv towers binary). Schedule: _base_/schedules/binary_2x.py.
_base_ = [
    './_base_/models/rebnn_fcos_r18_fpn.py', 'mmdet::_base_/datasets/coco_detection.py',
    './_base_/schedules/binary_2x.py', 'mmdet::_base_/default_runtime.py'
]
custom_imports = dict(imports=['rebnn_det.plugin'], allow_failed_imports=False)

custom_hooks = [dict(type='ReBNNHook', gamma='adaptive')]
