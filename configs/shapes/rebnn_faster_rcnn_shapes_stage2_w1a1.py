# Two-stage recipe on the embedded shapes set, stage 2: W1A1 with ReBNN, initialised from stage 1 (alpha is
# derived from the loaded real weights), 4 epochs with the lr drop after 2. Run stage 1 first with
#   python tools/train.py configs/shapes/rebnn_faster_rcnn_shapes_stage1_w32a1.py
_base_ = './rebnn_faster_rcnn_shapes.py'

load_from = 'work_dirs/rebnn_faster_rcnn_shapes_stage1_w32a1/epoch_4.pth'
max_epochs = 4
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
param_scheduler = [dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[2], gamma=0.1)]
default_hooks = dict(checkpoint=dict(interval=max_epochs))
