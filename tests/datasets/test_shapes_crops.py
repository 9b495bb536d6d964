"""The embedded classification set: object crops of a shapes split, labelled from its COCO json."""
import json
import os
import os.path as osp

import numpy as np
import pytest

from rebnn_det.datasets.shapes_crops import crop_box, ensure_shapes_crops
from rebnn_det.datasets.shapes_settings import ShapesSettings

SETTINGS = ShapesSettings(num_images=6, img_size=64, seed=11)


def test_crop_box_is_the_square_around_the_box_centre():
    img = np.zeros((20, 20, 3), np.uint8)
    img[..., 0] = np.arange(20)[None, :]  # x in channel 0
    img[..., 1] = np.arange(20)[:, None]  # y in channel 1
    # box x 6..10 (w 4), y 4..6 (h 2): centre (8, 5); side 4 * 1.0 -> x 6..10, y 3..7
    crop = crop_box(img, [6, 4, 4, 2], size=4, context=1.0, min_side=1)
    assert crop[0, :, 0].tolist() == [6, 7, 8, 9] and crop[:, 0, 1].tolist() == [3, 4, 5, 6]
    # at the border the image's edge is repeated: box at the corner, centre (1, 1), side 4 -> x and y -1..2
    crop = crop_box(img, [0, 0, 2, 2], size=4, context=2.0, min_side=1)
    assert crop[0, :, 0].tolist() == [0, 0, 1, 2] and crop[:, 0, 1].tolist() == [0, 0, 1, 2]
    # min_side enlarges a tiny box; the result is resized to size
    crop = crop_box(img, [10, 10, 1, 1], size=8, context=1.0, min_side=4)
    assert crop.shape == (8, 8, 3)


def test_crops_follow_the_coco_annotations(tmp_path):
    root = str(tmp_path / 'crops')
    images, labels = ensure_shapes_crops(root, 'train', SETTINGS, size=16, context=1.5)
    with open(osp.join(root, 'annotations', 'instances_train.json')) as f:
        coco = json.load(f)
    assert len(labels) == len(coco['annotations']) > 0
    assert labels.tolist() == [a['category_id'] - 1 for a in coco['annotations']]
    assert images.shape == (len(labels), 16, 16, 3) and images.dtype == np.uint8
    # crop 0 is crop_box of annotation 0 on its image
    import cv2
    first = coco['annotations'][0]
    img = cv2.imread(osp.join(root, coco['images'][first['image_id']]['file_name']))
    assert np.array_equal(images[0], crop_box(img, first['bbox'], 16, 1.5, 8))


def test_crops_are_cached_and_rebuilt_for_other_settings_or_a_damaged_file(tmp_path):
    root = str(tmp_path / 'crops')
    images, labels = ensure_shapes_crops(root, 'val', SETTINGS, size=16)
    path = osp.join(root, 'crops_val.npz')
    stamp = os.stat(path).st_mtime_ns
    again, _ = ensure_shapes_crops(root, 'val', SETTINGS, size=16)
    assert os.stat(path).st_mtime_ns == stamp and np.array_equal(again, images)
    bigger, _ = ensure_shapes_crops(root, 'val', SETTINGS, size=24)  # other crop settings: rebuilt
    assert bigger.shape[1:3] == (24, 24)
    with open(path, 'r+b') as f:
        f.truncate(100)
    repaired, repaired_labels = ensure_shapes_crops(root, 'val', SETTINGS, size=16)
    assert np.array_equal(repaired, images) and np.array_equal(repaired_labels, labels)


def test_bad_crop_settings_are_named(tmp_path):
    with pytest.raises(ValueError, match='crop size must be an int >= 8'):
        ensure_shapes_crops(str(tmp_path), 'val', SETTINGS, size=4)
    with pytest.raises(ValueError, match='context must be >= 1.0'):
        ensure_shapes_crops(str(tmp_path), 'val', SETTINGS, context=0.5)
    assert not osp.exists(osp.join(str(tmp_path), 'crops_val.npz'))
