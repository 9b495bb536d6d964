# Real-valued reference for rebnn_faster_rcnn.py: mmdet's ResNet-18 + FPN, the same detector and schedule.
_base_ = './rebnn_faster_rcnn.py'

model = dict(
    backbone=dict(_delete_=True, type='ResNet', depth=18, num_stages=4, out_indices=(0, 1, 2, 3), frozen_stages=-1,
                  norm_cfg=dict(type='BN', requires_grad=True), norm_eval=False, style='pytorch', init_cfg=None),
    neck=dict(_delete_=True, type='FPN', in_channels=[64, 128, 256, 512], out_channels=256, num_outs=5))
custom_hooks = []
