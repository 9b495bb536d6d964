# Two-stage recipe, stage 2: 1-bit weights and activations (W1A1) trained with ReBNN, initialised from stage 1.
# Train stage 1 first:  python tools/train.py configs/rebnn_faster_rcnn_stage1_w32a1.py
_base_ = './rebnn_faster_rcnn.py'

load_from = 'work_dirs/rebnn_faster_rcnn_stage1_w32a1/epoch_24.pth'
