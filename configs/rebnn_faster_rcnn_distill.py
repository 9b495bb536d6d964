# rebnn_faster_rcnn.py (COCO) with distillation from the real ResNet-18 Faster R-CNN (real_faster_rcnn.py: the
# same FPN widths and levels), trained first:
#     python tools/train.py configs/real_faster_rcnn.py --work-dir work_dirs/real_faster_rcnn
# The teacher is loaded on the first training step and is never saved with the student (docs/method.md).
_base_ = './rebnn_faster_rcnn.py'

model = dict(
    type='DistilledFasterRCNN',
    distill=dict(teacher_config='configs/real_faster_rcnn.py',
                 teacher_checkpoint='work_dirs/real_faster_rcnn/epoch_24.pth',
                 feature_weight=1.0,  # PKD imitation of the 5 FPN outputs
                 logit_weight=1.0,  # soft BCE on the RPN's objectness maps
                 temperature=1.0))
