# Real-valued FCOS on the harder embedded set (rebnn_fcos_shapes_hard_binary_head.py with mmdet's ResNet-18, FPN
# and FCOSHead, same widths and levels): the reference and the distillation teacher of the binary FCOS.
_base_ = './rebnn_fcos_shapes_hard_binary_head.py'

model = dict(
    backbone=dict(_delete_=True, type='ResNet', depth=18, base_channels=32, stem_channels=32, out_indices=(0, 1, 2, 3),
                  frozen_stages=-1, norm_cfg=dict(type='BN', requires_grad=True), norm_eval=False, init_cfg=None),
    neck=dict(type='FPN'),
    bbox_head=dict(type='FCOSHead'))
custom_hooks = []
