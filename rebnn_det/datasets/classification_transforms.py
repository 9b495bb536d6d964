"""Transforms of the classification stage (mmcv ``BaseTransform``, registered in mmdet's ``TRANSFORMS``)."""
import math

import cv2
import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmdet.registry import TRANSFORMS


@TRANSFORMS.register_module()
class RandomResizedCrop(BaseTransform):
    """The Inception crop of ImageNet training: a region of ``area in crop_scale * image area`` and aspect ratio
    ``exp(U(log ratio))``, resized to ``scale x scale``. Up to 10 draws must fit the image; otherwise the central
    crop of the nearest allowed ratio is taken. Reads and writes ``img`` (and ``img_shape``)."""

    def __init__(self, scale: int, crop_scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), interpolation: str = 'bilinear'):
        if not (0 < crop_scale[0] <= crop_scale[1] <= 1 and 0 < ratio[0] <= ratio[1]):
            raise ValueError(f'RandomResizedCrop: crop_scale {crop_scale} must satisfy 0 < lo <= hi <= 1 and ratio '
                             f'{ratio} 0 < lo <= hi')
        interps = dict(bilinear=cv2.INTER_LINEAR, bicubic=cv2.INTER_CUBIC, nearest=cv2.INTER_NEAREST)
        if interpolation not in interps:
            raise ValueError(f'interpolation must be one of {sorted(interps)}, got {interpolation!r}')
        self.scale, self.crop_scale, self.ratio, self.interp = int(scale), crop_scale, ratio, interps[interpolation]

    def crop_box(self, h: int, w: int, rng=np.random):
        """``(y, x, ch, cw)`` of the region to crop from an ``h x w`` image."""
        area = h * w
        log_ratio = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(10):
            target = area * rng.uniform(*self.crop_scale)
            aspect = math.exp(rng.uniform(*log_ratio))
            cw, ch = int(round(math.sqrt(target * aspect))), int(round(math.sqrt(target / aspect)))
            if 0 < cw <= w and 0 < ch <= h:
                return rng.randint(0, h - ch + 1), rng.randint(0, w - cw + 1), ch, cw
        aspect = min(max(w / h, self.ratio[0]), self.ratio[1])
        cw, ch = (w, int(round(w / aspect))) if w / h < aspect else (int(round(h * aspect)), h)
        cw, ch = min(cw, w), min(ch, h)
        return (h - ch) // 2, (w - cw) // 2, ch, cw

    def transform(self, results: dict) -> dict:
        img = results['img']
        y, x, ch, cw = self.crop_box(*img.shape[:2])
        results['img'] = cv2.resize(img[y:y + ch, x:x + cw], (self.scale, self.scale), interpolation=self.interp)
        results['img_shape'] = results['img'].shape[:2]
        return results


@TRANSFORMS.register_module()
class PackClassificationInputs(BaseTransform):
    """``dict(inputs=<uint8 CxHxW tensor of img>, data_samples=<gt_label>)``: what mmengine's ``pseudo_collate``
    and ``ImgDataPreprocessor`` batch for :class:`~rebnn_det.models.BackboneClassifier`."""

    def transform(self, results: dict) -> dict:
        img = results['img']
        if img.ndim == 2:
            img = img[..., None]
        return dict(inputs=torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))),
                    data_samples=int(results['gt_label']))
