# The binary FCOS of rebnn_fcos_shapes_hard_binary_head.py distilled from the real FCOS trained on the same set
# (real_fcos_shapes_hard.py: same FPN widths and levels). Train the teacher first:
#   python tools/train.py configs/shapes/real_fcos_shapes_hard.py --work-dir work_dirs/real_fcos_shapes_hard
_base_ = './rebnn_fcos_shapes_hard_binary_head.py'

model = dict(
    type='DistilledFCOS',
    distill=dict(teacher_config='configs/shapes/real_fcos_shapes_hard.py',
                 teacher_checkpoint='work_dirs/real_fcos_shapes_hard/epoch_8.pth',
                 feature_weight=1.0,  # PKD imitation of the 5 FPN outputs
                 logit_weight=1.0,  # soft BCE on the class-score maps
                 temperature=1.0))
