# The whole recipe on COCO: the ImageNet-pretrained binary backbone (rebnn_faster_rcnn_pretrained.py) and
# distillation from the real ResNet-18 Faster R-CNN (rebnn_faster_rcnn_distill.py; train that teacher first).
_base_ = './rebnn_faster_rcnn_distill.py'

pretrained_backbone = 'work_dirs/rebnn_resnet18_8xb32_in1k_stage2_w1a1/epoch_256.pth'
model = dict(backbone=dict(init_cfg=dict(_delete_=True, type='Pretrained', prefix='backbone.',
                                         checkpoint=pretrained_backbone)))
