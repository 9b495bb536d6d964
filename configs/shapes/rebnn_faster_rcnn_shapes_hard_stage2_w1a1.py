# Two-stage recipe on the harder embedded set, stage 2 (as rebnn_faster_rcnn_shapes_stage2_w1a1.py): W1A1 with
# ReBNN (adaptive gamma), initialised from stage 1, 4 epochs with the lr drop after 2. Run stage 1 first with
#   python tools/train.py configs/shapes/rebnn_faster_rcnn_shapes_hard_stage1_w32a1.py
_base_ = './rebnn_faster_rcnn_shapes_hard.py'

load_from = 'work_dirs/rebnn_faster_rcnn_shapes_hard_stage1_w32a1/epoch_4.pth'
max_epochs = 4
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
param_scheduler = [dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[2], gamma=0.1)]
default_hooks = dict(checkpoint=dict(interval=max_epochs))
