# The binary FCOS with both: the pretrained backbone and distillation from the real FCOS.
_base_ = './rebnn_fcos_shapes_hard_binary_head_distill.py'

pretrained_backbone = 'work_dirs/rebnn_resnet18_shapes_hard_crops/epoch_12.pth'
model = dict(backbone=dict(init_cfg=dict(_delete_=True, type='Pretrained', prefix='backbone.',
                                         checkpoint=pretrained_backbone)))
