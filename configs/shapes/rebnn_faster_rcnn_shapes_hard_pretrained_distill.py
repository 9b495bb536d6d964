# Both ways of closing the binary-real gap on the harder embedded set: the backbone pretrained on the crops set
# (rebnn_faster_rcnn_shapes_hard_pretrained.py) and distillation from the real Faster R-CNN
# (rebnn_faster_rcnn_shapes_hard_distill.py; train both prerequisites first, as those configs say).
_base_ = './rebnn_faster_rcnn_shapes_hard_distill.py'

pretrained_backbone = 'work_dirs/rebnn_resnet18_shapes_hard_crops/epoch_12.pth'
model = dict(backbone=dict(init_cfg=dict(_delete_=True, type='Pretrained', prefix='backbone.',
                                         checkpoint=pretrained_backbone)))
