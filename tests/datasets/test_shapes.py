import json
import os
import os.path as osp

import pytest
from mmdet.registry import DATASETS

from rebnn_det.datasets import SHAPE_CLASSES, ensure_shapes_split, generate_shapes_split


def test_generation_is_deterministic_and_covers_coco_area_ranges(tmp_path):
    a = generate_shapes_split(str(tmp_path / 'a'), 'train', 40, img_size=128, seed=3)
    b = generate_shapes_split(str(tmp_path / 'b'), 'train', 40, img_size=128, seed=3)
    c = generate_shapes_split(str(tmp_path / 'c'), 'train', 40, img_size=128, seed=4)
    ja, jb, jc = (json.load(open(p)) for p in (a, b, c))
    assert ja == jb and ja['annotations'] != jc['annotations']
    assert open(tmp_path / 'a' / 'train' / '000007.jpg', 'rb').read() == \
        open(tmp_path / 'b' / 'train' / '000007.jpg', 'rb').read()
    areas = [ann['area'] for ann in ja['annotations']]
    assert min(areas) < 32**2 and any(32**2 <= x <= 96**2 for x in areas) and max(areas) > 96**2
    assert {ann['category_id'] for ann in ja['annotations']} == set(range(1, len(SHAPE_CLASSES) + 1))
    assert [cat['name'] for cat in ja['categories']] == list(SHAPE_CLASSES)
    for ann in ja['annotations']:
        x, y, w, h = ann['bbox']
        assert 0 <= x and 0 <= y and x + w <= 128 and y + h <= 128 and w * h >= ann['area'] > 0
        assert ann['segmentation'] and len(ann['segmentation'][0]) >= 6
    # some images hold several objects that overlap
    per_image = {}
    for ann in ja['annotations']:
        per_image.setdefault(ann['image_id'], []).append(ann['bbox'])
    assert max(len(v) for v in per_image.values()) >= 3


def test_unknown_class_and_split_errors(tmp_path):
    with pytest.raises(ValueError, match=r"unknown shape classes \['octagon'\]; allowed: \['circle'"):
        generate_shapes_split(str(tmp_path), 'train', 1, classes=('circle', 'octagon'))
    with pytest.raises(ValueError, match="split must be 'train', 'val' or 'test'"):
        DATASETS.build(dict(type='ShapesDataset', split='trainval', data_root=str(tmp_path)))


def test_registered_dataset_generates_once_and_reads_with_coco_dataset(tmp_path):
    root = str(tmp_path) + '/'
    cfg = dict(type='ShapesDataset', split='val', num_images=6, img_size=64, data_root=root, pipeline=[])
    ds = DATASETS.build(cfg)
    assert len(ds) <= 6 and ds.metainfo['classes'] == tuple(SHAPE_CLASSES)
    item = ds[0]
    assert item['img_path'].startswith(osp.join(root, 'val')) and item['instances']
    ann = osp.join(root, 'annotations', 'instances_val.json')
    mtime = os.stat(ann).st_mtime_ns
    DATASETS.build(cfg)
    assert os.stat(ann).st_mtime_ns == mtime  # cached: not regenerated
    ensure_shapes_split(root, 'val', 8, 64, 0)  # other settings: regenerated
    assert len(json.load(open(ann))['images']) == 8
