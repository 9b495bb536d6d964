# ImageNet-1k pretraining, step 2: W1A1 (1-bit weights, learnable alpha) with ReBNNHook's adaptive gamma, from
# step 1's weights, weight decay 0, another 256 epochs. Its checkpoint initialises a detector's backbone:
#   model.backbone.init_cfg = dict(type='Pretrained', prefix='backbone.', checkpoint='<this run>/epoch_256.pth')
# (configs/rebnn_faster_rcnn_pretrained.py). Not run here (no ImageNet, no GPU on this machine).
_base_ = './rebnn_resnet18_8xb32_in1k_stage1_w32a1.py'

model = dict(backbone=dict(weight_binarizer='rebnn'))
load_from = 'work_dirs/rebnn_resnet18_8xb32_in1k_stage1_w32a1/epoch_256.pth'
optim_wrapper = dict(optimizer=dict(weight_decay=0.0))
custom_hooks = [dict(type='ReBNNHook', gamma='adaptive')]
