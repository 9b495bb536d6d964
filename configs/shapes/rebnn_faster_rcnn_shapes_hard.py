# The harder embedded setting: the demo (rebnn_faster_rcnn_shapes.py: ReBNN Faster R-CNN, adaptive
# gamma, same detector, schedule and image size) on a harder shapes set, generated into data/shapes_hard/:
# 12 classes (the 6 default ones plus a look-alike of each: same texture, colour within ~20, related outline),
# up to 8 objects per image, mostly small ones (50 % small / 40 % medium / 10 % large instead of 25/50/25),
# 8-19 clutter lines instead of 3-7, and up to 4 unlabelled class-coloured blobs per image.
# The real/XNOR/two-stage variants are *_shapes_hard*.py next to this file.
_base_ = './rebnn_faster_rcnn_shapes.py'

data_root = 'data/shapes_hard/'
hard_setting = dict(
    data_root=data_root,
    classes=['circle', 'square', 'triangle', 'cross', 'ring', 'diamond',
             'hexagon', 'rectangle', 'trapezoid', 'star', 'thick_ring', 'kite'],
    max_objects=8, size_probs=[0.5, 0.4, 0.1], clutter_lines=[8, 20], distractors=4)
model = dict(roi_head=dict(bbox_head=dict(num_classes=12)))
train_dataloader = dict(dataset=hard_setting)
val_dataloader = dict(dataset=hard_setting)
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json')
test_evaluator = val_evaluator
