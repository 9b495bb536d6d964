# Real-valued reference on the harder embedded set (rebnn_faster_rcnn_shapes_hard.py): mmdet's real ResNet-18
# (same widths) and FPN, as real_faster_rcnn_shapes.py does for the default set.
_base_ = './rebnn_faster_rcnn_shapes_hard.py'

model = dict(
    backbone=dict(_delete_=True, type='ResNet', depth=18, base_channels=32, stem_channels=32, out_indices=(0, 1, 2, 3),
                  frozen_stages=-1, norm_cfg=dict(type='BN', requires_grad=True), norm_eval=False, init_cfg=None),
    neck=dict(_delete_=True, type='FPN', in_channels=[32, 64, 128, 256], out_channels=64, num_outs=5))
custom_hooks = []
