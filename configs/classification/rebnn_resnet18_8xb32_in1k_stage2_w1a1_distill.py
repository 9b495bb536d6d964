# Step 2 with ReActNet's distributional loss: the binary ResNet-18 learns the class distribution of the real
# ResNet-34 (real_resnet34_8xb32_in1k.py, loaded from checkpoints/real_resnet34_in1k.pth: see that config), with the
# cross-entropy to the labels switched off as ReActNet does.
_base_ = './rebnn_resnet18_8xb32_in1k_stage2_w1a1.py'

model = dict(
    type='DistilledBackboneClassifier', loss_weight=0.0,
    distill=dict(teacher_config='configs/classification/real_resnet34_8xb32_in1k.py',
                 teacher_checkpoint='checkpoints/real_resnet34_in1k.pth', weight=1.0, temperature=1.0))
