"""The shapes generator's difficulty knobs: defaults leave the original set byte-identical, each knob
does what it says, bad values are refused naming what is allowed, and the hard configs match their data."""
import glob
import hashlib
import json
import os.path as osp

import numpy as np
import pytest
from mmdet.registry import DATASETS
from mmengine.config import Config

from rebnn_det.datasets import (ALL_SHAPE_CLASSES, KNOB_DEFAULTS, LOOKALIKE_CLASSES, SHAPE_CLASSES, ensure_shapes_split,
                                generate_shapes_split)

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
# sha256 over the annotation json bytes then every jpg (sorted) of two small splits, computed with the generator
# as it was before the knobs were added (commit 0432b6b): the default set must not change.
ORIGINAL_SHA256 = {
    ('train', 6, 128, 0): '75e6c714dda2dfede28ae9bb0931de544951a1ae1d64e28378205901adb950fb',
    ('val', 4, 96, 5): '3e291e7dfa77b0409143dca357dd47b195f94455a78d88b992fa3c3578d23155',
}


def _split_sha256(root, split):
    h = hashlib.sha256(open(osp.join(root, 'annotations', f'instances_{split}.json'), 'rb').read())
    for path in sorted(glob.glob(osp.join(root, split, '*.jpg'))):
        h.update(open(path, 'rb').read())
    return h.hexdigest()


@pytest.mark.parametrize('explicit', [False, True], ids=['implicit-defaults', 'explicit-defaults'])
def test_default_generation_is_byte_identical_to_the_original(tmp_path, explicit):
    knobs = dict(max_objects=4, classes=tuple(SHAPE_CLASSES), **KNOB_DEFAULTS) if explicit else {}
    for (split, n, size, seed), digest in ORIGINAL_SHA256.items():
        root = str(tmp_path / split)
        generate_shapes_split(root, split, n, img_size=size, seed=seed, **knobs)
        assert _split_sha256(root, split) == digest
        info = json.load(open(osp.join(root, 'annotations', f'instances_{split}.json')))['info']
        assert not set(KNOB_DEFAULTS) & set(info)  # default knobs are not recorded: the json is the original one


def _anns(path):
    return json.load(open(path))['annotations']


def test_size_probs_move_objects_between_coco_area_ranges(tmp_path):
    small = _anns(generate_shapes_split(str(tmp_path / 's'), 'train', 30, seed=1, size_probs=(1, 0, 0)))
    large = _anns(generate_shapes_split(str(tmp_path / 'l'), 'train', 30, seed=1, size_probs=[0, 0, 1],
                                        max_objects=1))
    assert small and max(a['area'] for a in small) < 32 ** 2  # sides 12..30 px
    boxes = [a['bbox'] for a in large]
    assert large and min(max(w, h) for _, _, w, h in boxes) >= 90  # sides 104..124 px (rotation/occlusion aside)


def test_more_classes_max_objects_and_recorded_settings(tmp_path):
    names = list(ALL_SHAPE_CLASSES)
    path = generate_shapes_split(str(tmp_path), 'train', 40, seed=2, classes=names, max_objects=8, distractors=2,
                                 clutter_lines=(8, 20), size_probs=(0.5, 0.4, 0.1))
    coco = json.load(open(path))
    assert [c['name'] for c in coco['categories']] == names and len(names) == 12
    assert {a['category_id'] for a in coco['annotations']} == set(range(1, 13))  # look-alikes are drawn too
    per_image = np.bincount([a['image_id'] for a in coco['annotations']])
    assert per_image.max() > 4  # more than the default's 4 objects fit
    info = coco['info']
    assert (info['size_probs'], info['clutter_lines'], info['distractors']) == ([0.5, 0.4, 0.1], [8, 20], 2)
    assert set(LOOKALIKE_CLASSES) == set(names[6:])


def test_distractors_and_clutter_change_pixels_not_the_default_stream(tmp_path):
    base = generate_shapes_split(str(tmp_path / 'a'), 'val', 3, img_size=64, seed=0)
    busy = generate_shapes_split(str(tmp_path / 'b'), 'val', 3, img_size=64, seed=0, distractors=3,
                                 clutter_lines=(20, 30))
    img_a = open(tmp_path / 'a' / 'val' / '000000.jpg', 'rb').read()
    img_b = open(tmp_path / 'b' / 'val' / '000000.jpg', 'rb').read()
    assert img_a != img_b and _anns(base) != _anns(busy)
    # the lines alone: more clutter, no other change of what the generator is asked for
    lines = generate_shapes_split(str(tmp_path / 'c'), 'val', 3, img_size=64, seed=0, clutter_lines=(3, 4))
    assert json.load(open(lines))['info']['clutter_lines'] == [3, 4]


@pytest.mark.parametrize('knobs, message', [
    (dict(classes=['circle', 'hexagon', 'octagon']), r"unknown shape classes \['octagon'\]; allowed: \['circle', "
                                                     r"'square', .*'hexagon', .*'kite'\]"),
    (dict(classes=[]), r'classes must be a non-empty list of shape names from \[.circle.'),
    (dict(classes=['ring', 'ring']), 'classes must not repeat a name'),
    (dict(max_objects=0), r'max_objects must be an integer >= 1, got 0'),
    (dict(size_probs=(0.5, 0.5)), r'size_probs must be 3 probabilities >= 0 summing to 1 \(small: side 12-30 px'),
    (dict(size_probs=(0.5, 0.6, -0.1)), r'size_probs must be 3 probabilities >= 0 summing to 1'),
    (dict(size_probs=(0.2, 0.2, 0.2)), r'size_probs must be 3 probabilities >= 0 summing to 1.*got \(0.2, 0.2, 0.2\)'),
    (dict(clutter_lines=(5, 5)), r'clutter_lines must be two integers \(lo, hi\) with 0 <= lo < hi'),
    (dict(clutter_lines=(-1, 3)), 'clutter_lines must be two integers'),
    (dict(clutter_lines=(1.5, 3)), 'clutter_lines must be two integers'),
    (dict(distractors=-1), r'distractors must be an integer >= 0'),
])
def test_bad_knob_values_are_refused_naming_the_allowed_ones(tmp_path, knobs, message):
    with pytest.raises(ValueError, match=message):
        generate_shapes_split(str(tmp_path), 'train', 1, **knobs)
    with pytest.raises(ValueError, match=message):
        ensure_shapes_split(str(tmp_path), 'train', 1, 64, 0, **knobs)
    with pytest.raises(ValueError, match=message):  # at build time, before any file is read or written
        DATASETS.build(dict(type='ShapesDataset', data_root=str(tmp_path) + '/', lazy_init=True, pipeline=[],
                            **knobs))
    assert not osp.exists(tmp_path / 'annotations')


def test_cached_split_with_other_knobs_is_regenerated_both_ways(tmp_path, capsys):
    root = str(tmp_path)
    ann = ensure_shapes_split(root, 'train', 4, 64, 0)
    default_json = open(ann, 'rb').read()
    capsys.readouterr()
    ensure_shapes_split(root, 'train', 4, 64, 0, distractors=2)
    assert "made with other settings" in capsys.readouterr().out
    assert json.load(open(ann))['info']['distractors'] == 2
    ensure_shapes_split(root, 'train', 4, 64, 0, distractors=2)
    assert capsys.readouterr().out == ''  # up to date
    ensure_shapes_split(root, 'train', 4, 64, 0)  # the default again: the hard json must not pass for it
    assert "'distractors': 2" in capsys.readouterr().out
    assert open(ann, 'rb').read() == default_json


def test_dataset_with_lookalike_classes_sets_metainfo_and_labels(tmp_path):
    names = list(ALL_SHAPE_CLASSES)
    ds = DATASETS.build(dict(type='ShapesDataset', split='val', num_images=12, img_size=64, classes=names,
                             max_objects=6, data_root=str(tmp_path) + '/', pipeline=[]))
    assert ds.metainfo['classes'] == tuple(names) and len(ds.metainfo['palette']) == 12
    assert ds.metainfo['palette'][6] == (205, 50, 55)  # hexagon's BGR (55, 50, 205) as RGB
    labels = {inst['bbox_label'] for i in range(len(ds)) for inst in ds.get_data_info(i)['instances']}
    assert max(labels) >= 6 and labels <= set(range(12))
    default = DATASETS.build(dict(type='ShapesDataset', split='val', num_images=2, img_size=64, pipeline=[],
                                  data_root=str(tmp_path / 'd') + '/'))
    assert default.metainfo['classes'] == tuple(SHAPE_CLASSES)


def test_hard_configs_share_one_setting_and_match_the_head():
    paths = sorted(glob.glob(osp.join(ROOT, 'configs', 'shapes', '*_shapes_hard*.py')))
    assert {osp.basename(p) for p in paths} == {
        'rebnn_faster_rcnn_shapes_hard.py', 'real_faster_rcnn_shapes_hard.py', 'xnor_faster_rcnn_shapes_hard.py',
        'rebnn_faster_rcnn_shapes_hard_stage1_w32a1.py', 'rebnn_faster_rcnn_shapes_hard_stage2_w1a1.py',
        'rebnn_faster_rcnn_shapes_hard_binary_rpn.py', 'rebnn_faster_rcnn_shapes_hard_binary_roi.py',
        'rebnn_faster_rcnn_shapes_hard_distill.py', 'rebnn_faster_rcnn_shapes_hard_pretrained.py',
        'rebnn_faster_rcnn_shapes_hard_pretrained_distill.py', 'rebnn_fcos_shapes_hard_binary_head.py',
        'real_fcos_shapes_hard.py', 'rebnn_fcos_shapes_hard_binary_head_distill.py',
        'rebnn_fcos_shapes_hard_binary_head_pretrained.py', 'rebnn_fcos_shapes_hard_binary_head_pretrained_distill.py'}
    default = Config.fromfile(osp.join(ROOT, 'configs', 'shapes', 'rebnn_faster_rcnn_shapes.py'))
    for path in paths:
        cfg = Config.fromfile(path)
        for loader in (cfg.train_dataloader, cfg.val_dataloader):
            ds = loader.dataset
            assert ds.data_root == 'data/shapes_hard/' and len(ds.classes) == 12
            assert (ds.max_objects, ds.size_probs, ds.clutter_lines, ds.distractors) == (8, [0.5, 0.4, 0.1],
                                                                                         [8, 20], 4)
        head = cfg.model.roi_head.bbox_head if 'roi_head' in cfg.model else cfg.model.bbox_head  # FCOS: dense
        assert head.num_classes == 12
        assert cfg.val_evaluator.ann_file == 'data/shapes_hard/annotations/instances_val.json'
        assert cfg.train_cfg == default.train_cfg or 'stage' in path  # same schedule as the default set's demo
