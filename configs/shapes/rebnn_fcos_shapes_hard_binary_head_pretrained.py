# rebnn_fcos_shapes_hard_binary_head.py with the backbone pretrained on the crops set (as
# rebnn_faster_rcnn_shapes_hard_pretrained.py; pretrain with
# configs/classification/rebnn_resnet18_shapes_hard_crops.py).
_base_ = './rebnn_fcos_shapes_hard_binary_head.py'

pretrained_backbone = 'work_dirs/rebnn_resnet18_shapes_hard_crops/epoch_12.pth'
model = dict(backbone=dict(init_cfg=dict(_delete_=True, type='Pretrained', prefix='backbone.',
                                         checkpoint=pretrained_backbone)))
