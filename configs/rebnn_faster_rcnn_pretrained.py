# rebnn_faster_rcnn.py (COCO) with the binary ReBNNResNet-18 pretrained on ImageNet-1k first (the paper's two
# stages; configs/classification/rebnn_resnet18_8xb32_in1k_stage{1_w32a1,2_w1a1}.py): every backbone tensor --
# 1-bit weights, alpha, RSign thresholds, RPReLU, BN -- is loaded from the classifier and checked.
_base_ = './rebnn_faster_rcnn.py'

pretrained_backbone = 'work_dirs/rebnn_resnet18_8xb32_in1k_stage2_w1a1/epoch_256.pth'
model = dict(backbone=dict(init_cfg=dict(_delete_=True, type='Pretrained', prefix='backbone.',
                                         checkpoint=pretrained_backbone)))
