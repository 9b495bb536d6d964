# The harder embedded setting (rebnn_faster_rcnn_shapes_hard.py) with the binary backbone pretrained as a
# classifier on the crops set first (the paper's two stages: classification, then detection). Pretrain with
#   python tools/train.py configs/classification/rebnn_resnet18_shapes_hard_crops.py
# (work dir work_dirs/rebnn_resnet18_shapes_hard_crops/). Every backbone tensor (weights, alpha, RSign
# thresholds, RPReLU, BN) is loaded and checked: a checkpoint that does not fit names its missing/unexpected keys.
_base_ = './rebnn_faster_rcnn_shapes_hard.py'

pretrained_backbone = 'work_dirs/rebnn_resnet18_shapes_hard_crops/epoch_12.pth'
model = dict(backbone=dict(init_cfg=dict(_delete_=True, type='Pretrained', prefix='backbone.',
                                         checkpoint=pretrained_backbone)))
