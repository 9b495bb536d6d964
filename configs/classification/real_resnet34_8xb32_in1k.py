# The real-valued ResNet-34 ImageNet classifier that teaches the binary ResNet-18 in step 2
# (rebnn_resnet18_8xb32_in1k_stage2_w1a1_distill.py): mmdet's ResNet-34 + the same pooling and linear classifier.
# Its weights from torchvision's ResNet-34 (73.3 % top-1), converted to this classifier's keys:
#   python tools/convert_real_resnet.py resnet34-b627a593.pth checkpoints/real_resnet34_in1k.pth --classifier
_base_ = './rebnn_resnet18_8xb32_in1k_stage1_w32a1.py'

model = dict(backbone=dict(_delete_=True, type='ResNet', depth=34, out_indices=(3, ), norm_eval=False))
