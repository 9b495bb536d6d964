"""Image classification datasets for the backbone's classification stage (mmengine ``BaseDataset``, registered in
mmdet's ``DATASETS``): the embedded crops set and an image-list dataset in mmpretrain's ImageNet layout.

Every sample is ``dict(img=...|img_path=..., gt_label=int)``; the pipeline ends with ``PackClassificationInputs``.
"""
import os
import os.path as osp
from typing import List, Optional, Sequence

from mmdet.registry import DATASETS
from mmengine.dataset import BaseDataset

from .shapes_crops import ensure_shapes_crops
from .shapes_settings import SHAPE_CLASSES, ShapesSettings

DEFAULT = ShapesSettings
IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.ppm', '.webp')


@DATASETS.register_module()
class ShapesCropsDataset(BaseDataset):
    """One square crop per object of a shapes split, labelled with its class
    (:func:`rebnn_det.datasets.shapes_crops.ensure_shapes_crops`), made on first use under ``data_root``.

    The images live in one ``crops_{split}.npz``: each sample carries its ``img`` (uint8 HxWx3, BGR), so the
    pipeline starts after ``LoadImageFromFile``.

    Args:
        split: ``'train'`` or ``'val'``.
        crop_size / context / min_side: the crops (side in px; box side x ``context``; smallest side cut).
        num_images / img_size / seed / classes / max_objects / size_probs / clutter_lines / distractors: the
            detection split the crops come from (:class:`~rebnn_det.datasets.ShapesDataset`'s settings; give it a
            ``seed`` other than the detection set's, so none of the detector's val images is pretrained on).
        Other arguments are mmengine ``BaseDataset``'s (``pipeline``, ``test_mode``, ...).
    """

    def __init__(self, split: str = 'train', data_root: str = 'data/shapes_crops/', crop_size: int = 32,
                 context: float = 1.5, min_side: int = 8, num_images: int = DEFAULT.num_images,
                 img_size: int = DEFAULT.img_size, seed: int = DEFAULT.seed, classes: Optional[Sequence[str]] = None,
                 max_objects: int = DEFAULT.max_objects, size_probs: Sequence[float] = DEFAULT.size_probs,
                 clutter_lines: Sequence[int] = DEFAULT.clutter_lines, distractors: int = DEFAULT.distractors,
                 **kwargs):
        if split not in ('train', 'val'):
            raise ValueError(f"split must be 'train' or 'val', got {split!r}")
        classes = tuple(SHAPE_CLASSES) if classes is None else tuple(classes)
        self.shapes_settings = ShapesSettings(num_images, img_size, seed, max_objects, classes, size_probs,
                                              clutter_lines, distractors)
        self.crops_root, self.crops_split = data_root, split
        self.crop_args = dict(size=crop_size, context=context, min_side=min_side)
        super().__init__(ann_file='', data_root=data_root, metainfo=dict(classes=classes), **kwargs)

    def load_data_list(self) -> List[dict]:
        images, labels = ensure_shapes_crops(self.crops_root, self.crops_split, self.shapes_settings,
                                             **self.crop_args)
        return [dict(img=img, img_shape=img.shape[:2], ori_shape=img.shape[:2], gt_label=int(label))
                for img, label in zip(images, labels)]


@DATASETS.register_module()
class ImageListDataset(BaseDataset):
    """Images with class labels in mmpretrain's ImageNet layout::

        data_root/train/n01440764/n01440764_10026.JPEG ...      (data_prefix=dict(img_path='train'))
        data_root/meta/train.txt: "n01440764/n01440764_10026.JPEG 0" per line   (ann_file='meta/train.txt')

    With an ``ann_file``, each line is ``<path relative to the image folder> <label>``; without one, the image
    folder holds one sub-folder per class (sorted names -> labels 0, 1, ...). A missing folder or file, a line that
    is not ``path label`` or a label outside ``0..num_classes-1`` is an error naming the file and line.
    """

    def __init__(self, data_root: str = 'data/imagenet', ann_file: str = '', data_prefix=dict(img_path='train'),
                 num_classes: Optional[int] = None, **kwargs):
        self.num_classes = num_classes
        super().__init__(ann_file=ann_file, data_root=data_root, data_prefix=data_prefix, **kwargs)

    def load_data_list(self) -> List[dict]:
        folder = self.data_prefix['img_path']
        if not osp.isdir(folder):
            raise FileNotFoundError(f'image folder {folder!r} does not exist (data_root/data_prefix.img_path)')
        if self.ann_file:
            if not osp.isfile(self.ann_file):
                raise FileNotFoundError(f'ann_file {self.ann_file!r} does not exist')
            samples = []
            with open(self.ann_file) as f:
                for number, line in enumerate(f, 1):
                    parts = line.split()
                    if not parts:
                        continue
                    if len(parts) != 2 or not parts[1].lstrip('-').isdigit():
                        raise ValueError(f'{self.ann_file}:{number}: expected "<relative image path> <label>", got '
                                         f'{line.strip()!r}')
                    samples.append((parts[0], int(parts[1])))
        else:
            classes = sorted(d for d in os.listdir(folder) if osp.isdir(osp.join(folder, d)))
            samples = [(osp.join(c, name), label) for label, c in enumerate(classes)
                       for name in sorted(os.listdir(osp.join(folder, c))) if name.lower().endswith(IMAGE_EXTENSIONS)]
            if self.num_classes is not None and len(classes) != self.num_classes:
                raise ValueError(f'{folder}: {len(classes)} class folders, but num_classes={self.num_classes} (a '
                                 'missing class folder would shift every later label; list the images in an ann_file)')
            self._metainfo.setdefault('classes', tuple(classes))
        if not samples:
            raise ValueError(f'no images found: {self.ann_file or folder} lists none (a flat folder of images needs an '
                             'ann_file of "path label" lines)')
        limit = self.num_classes
        bad = [(p, label) for p, label in samples if label < 0 or (limit is not None and label >= limit)]
        if bad:
            allowed = f'0..{limit - 1}' if limit is not None else '>= 0'
            raise ValueError(f'{self.ann_file or folder}: label {bad[0][1]} of {bad[0][0]!r} is not in {allowed} '
                             '(num_classes)')
        return [dict(img_path=osp.join(folder, p), gt_label=label) for p, label in samples]
