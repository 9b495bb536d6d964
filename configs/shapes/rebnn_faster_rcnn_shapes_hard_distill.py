# The harder embedded setting (rebnn_faster_rcnn_shapes_hard.py) with distillation from the real Faster R-CNN
# trained on the same set (real_faster_rcnn_shapes_hard.py: the same FPN widths and levels). Train the teacher
# first:  python tools/train.py configs/shapes/real_faster_rcnn_shapes_hard.py
#             --work-dir work_dirs/real_faster_rcnn_shapes_hard
# The teacher is loaded on the first training step and is never saved with the student (docs/method.md).
_base_ = './rebnn_faster_rcnn_shapes_hard.py'

model = dict(
    type='DistilledFasterRCNN',
    distill=dict(teacher_config='configs/shapes/real_faster_rcnn_shapes_hard.py',
                 teacher_checkpoint='work_dirs/real_faster_rcnn_shapes_hard/epoch_8.pth',
                 feature_weight=1.0,  # PKD imitation of the 5 FPN outputs
                 logit_weight=1.0,  # soft BCE on the RPN's objectness maps
                 temperature=1.0))
