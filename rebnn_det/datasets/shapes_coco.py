"""The COCO writer of the embedded shapes set: images and ``annotations/instances_{split}.json`` under a root,
read by mmdet's own ``CocoDataset``/``CocoMetric`` exactly as a real COCO directory would be::

    root/annotations/instances_{train,val}.json
    root/{train,val}/000000.jpg ...

Every file is written under a unique temporary name and moved into place (:func:`rebnn_det.fileio.atomic_write`);
the json, which records the settings, is removed first and written last, so it exists only while every image it
lists is complete.
"""
import contextlib
import json
import os
import os.path as osp
from typing import List

import cv2
import numpy as np

from ..fileio import atomic_write
from .shapes_render import render_image
from .shapes_settings import as_settings


def _annotation(obj: dict, ann_id: int, image_id: int) -> dict:
    mask = obj['mask'].astype(np.uint8)
    ys, xs = np.nonzero(mask)
    x0, y0, x1, y1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    segm = [c.flatten().astype(float).tolist() for c in contours if len(c) >= 3]
    return dict(id=ann_id, image_id=image_id, category_id=obj['label'] + 1, iscrowd=0, area=float(mask.sum()),
                bbox=[float(x0), float(y0), float(x1 - x0), float(y1 - y0)], segmentation=segm)


def generate_shapes_split(root: str, split: str, *settings, **fields) -> str:
    """Write the images of a split and ``annotations/instances_{split}.json`` under ``root``; returns the json path.

    ``settings``: a :class:`~.shapes_settings.ShapesSettings`, or its fields (``num_images, img_size, seed, ...``;
    checked, with the original set's defaults). The json (with the settings in ``info``) is removed first and
    written last, so it exists only while every image it lists is complete. Not locked: concurrent callers
    should use :func:`~.shapes.ensure_shapes_split`."""
    settings = as_settings(settings, fields)
    from mmengine.utils import ProgressBar
    os.makedirs(osp.join(root, split), exist_ok=True)
    os.makedirs(osp.join(root, 'annotations'), exist_ok=True)
    path = osp.join(root, 'annotations', f'instances_{split}.json')
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)  # an old json must not outlive the images it described
    rng = np.random.default_rng([settings.seed, {'train': 0, 'val': 1, 'test': 2}.get(split, 3)])
    num_images, classes = settings.num_images, settings.classes
    images: List[dict] = []
    anns: List[dict] = []
    print(f'[rebnn_det] generating the embedded shapes dataset: {num_images} {split} images in {root}', flush=True)
    bar = ProgressBar(num_images)
    for i in range(num_images):
        img, objects = render_image(rng, settings)
        file_name = f'{split}/{i:06d}.jpg'
        ok, jpg = cv2.imencode('.jpg', img, [cv2.IMWRITE_JPEG_QUALITY, 95])
        if not ok:
            raise RuntimeError(f'OpenCV could not encode {file_name} as JPEG')
        atomic_write(osp.join(root, file_name), lambda f: f.write(jpg.tobytes()))
        images.append(dict(id=i, file_name=file_name, height=settings.img_size, width=settings.img_size))
        anns += [_annotation(o, len(anns) + 1 + k, i) for k, o in enumerate(objects)]
        bar.update()
    print(flush=True)
    info = dict(description='rebnn_det embedded shapes', **settings.recorded())
    coco = dict(info=info, images=images, annotations=anns,
                categories=[dict(id=k + 1, name=c, supercategory='shape') for k, c in enumerate(classes)])
    atomic_write(path, lambda f: f.write(json.dumps(coco).encode()))  # the json comes last, after every image
    return path


