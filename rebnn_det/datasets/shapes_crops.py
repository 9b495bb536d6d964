"""The embedded classification set: one square crop per object of a shapes split, labelled with its class.

The binary backbone's pretraining stage (the paper's ImageNet stage, scaled to this machine) needs an image
classification set; this one is cut from the shapes generator itself, so it has the detection set's classes,
textures and clutter. ``ensure_shapes_crops(root, split, settings)`` makes sure the detection split exists under
``root`` (:func:`~.shapes.ensure_shapes_split`, generated on first use) and writes ``root/crops_{split}.npz``::

    images  uint8 (N, S, S, 3), BGR (OpenCV's order, like a loaded image file)
    labels  int64 (N,): the object's class index in ``settings.classes``
    meta    the json of the settings, the crop parameters and :data:`CROPS_VERSION` (a cached file made with
            other ones is rebuilt)

Crop ``k`` is the object's bounding box made square around its centre, its side ``context`` times the box's
longer side (at least ``min_side`` px), cut from the image with replicated borders and resized to ``S = size``
(``cv2.INTER_AREA`` when shrinking, ``cv2.INTER_LINEAR`` when enlarging). Objects are taken in the order of the
COCO json's annotations. Use a ``seed`` other than the detection set's so no detection val image is in it.
"""
import io
import json
import os.path as osp
import zipfile
from typing import Tuple

import cv2
import numpy as np

from ..fileio import atomic_write, exclusive_lock
from .shapes import ensure_shapes_split
from .shapes_settings import ShapesSettings

CROPS_VERSION = 1  # bump when the crops change for the same settings


def crop_box(img: np.ndarray, bbox, size: int, context: float, min_side: int) -> np.ndarray:
    """The square crop of the module docstring for one COCO ``bbox`` (x, y, w, h) of ``img``."""
    x, y, w, h = bbox
    side = max(int(round(max(w, h) * context)), min_side)
    cx, cy = x + w / 2, y + h / 2
    x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
    pad = side  # enough for any box inside the image
    padded = cv2.copyMakeBorder(img, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    patch = padded[y0 + pad:y0 + pad + side, x0 + pad:x0 + pad + side]
    interp = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    return cv2.resize(patch, (size, size), interpolation=interp)


def _wanted_meta(settings: ShapesSettings, size: int, context: float, min_side: int) -> dict:
    return dict(version=CROPS_VERSION, size=size, context=context, min_side=min_side,
                source=settings.recorded(full=True))


def _read(path: str, wanted: dict):
    """``(images, labels)`` of a complete crops file made with ``wanted``, else ``None``."""
    try:
        with np.load(path, allow_pickle=False) as data:
            if json.loads(str(data['meta'])) != wanted:
                return None
            return data['images'], data['labels']
    except (ValueError, KeyError, OSError, EOFError, zipfile.BadZipFile):  # missing, truncated, another layout
        return None


def make_crops(root: str, split: str, settings: ShapesSettings, size: int, context: float,
               min_side: int) -> Tuple[np.ndarray, np.ndarray]:
    """Cut every object of the split's COCO json (already generated under ``root``)."""
    with open(osp.join(root, 'annotations', f'instances_{split}.json')) as f:
        coco = json.load(f)
    files = {img['id']: img['file_name'] for img in coco['images']}
    images, labels, cache = [], [], {}
    for ann in coco['annotations']:
        image_id = ann['image_id']
        if image_id not in cache:
            cache.clear()
            cache[image_id] = cv2.imread(osp.join(root, files[image_id]), cv2.IMREAD_COLOR)
        images.append(crop_box(cache[image_id], ann['bbox'], size, context, min_side))
        labels.append(ann['category_id'] - 1)
    return (np.stack(images) if images else np.zeros((0, size, size, 3), np.uint8)), np.asarray(labels, np.int64)


def ensure_shapes_crops(root: str, split: str, settings: ShapesSettings, size: int = 32, context: float = 1.5,
                        min_side: int = 8) -> Tuple[np.ndarray, np.ndarray]:
    """``(images, labels)`` of ``root/crops_{split}.npz``, made first (from the detection split, itself generated
    if needed) when it is missing, unreadable or made with other settings. Concurrent callers are safe: one
    writes under ``root/.crops_{split}.lock`` (atomically: a reader never sees half a file), the others wait."""
    if not isinstance(size, int) or size < 8:
        raise ValueError(f'crop size must be an int >= 8, got {size!r}')
    if not context >= 1.0:
        raise ValueError(f'crop context must be >= 1.0 (1.0 = the box itself), got {context!r}')
    path = osp.join(root, f'crops_{split}.npz')
    wanted = _wanted_meta(settings, size, context, min_side)
    ensure_shapes_split(root, split, settings)
    found = _read(path, wanted)
    if found is not None:
        return found
    with exclusive_lock(osp.join(root, f'.crops_{split}.lock')):
        found = _read(path, wanted)  # another process may have written it meanwhile
        if found is not None:
            return found
        images, labels = make_crops(root, split, settings, size, context, min_side)
        buffer = io.BytesIO()
        np.savez(buffer, images=images, labels=labels, meta=np.asarray(json.dumps(wanted)))
        atomic_write(path, lambda f: f.write(buffer.getvalue()))
        print(f'[rebnn_det] {path}: {len(labels)} crops of {size}x{size} px from the {split!r} split', flush=True)
    return images, labels
