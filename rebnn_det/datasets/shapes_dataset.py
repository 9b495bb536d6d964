"""ShapesDataset: mmdet's CocoDataset over the embedded shapes set, generated on first use."""
import json
import os.path as osp

from mmdet.datasets import CocoDataset
from mmdet.registry import DATASETS
from mmengine.dist import barrier, is_main_process

from .shapes import SHAPE_CLASSES, VERSION, generate_shapes_split

PALETTE = [tuple(int(c) for c in reversed(col)) for col, _ in SHAPE_CLASSES.values()]  # RGB for the visualizer


def ensure_shapes_split(data_root: str, split: str, num_images: int, img_size: int, seed: int) -> str:
    """Return ``data_root/annotations/instances_{split}.json``, generating the split first when it is missing or
    was made with other settings. In distributed runs rank 0 writes and the others wait."""
    ann = osp.join(data_root, 'annotations', f'instances_{split}.json')
    wanted = dict(version=VERSION, seed=seed, num_images=num_images, img_size=img_size)
    if is_main_process() and _recorded_settings(ann) != wanted:
        generate_shapes_split(data_root, split, num_images, img_size, seed=seed)
        with open(ann) as f:
            coco = json.load(f)
        coco['info'].update(wanted)
        with open(ann, 'w') as f:
            json.dump(coco, f)
    barrier()
    return ann


def _recorded_settings(ann: str):
    if not osp.isfile(ann):
        return None
    with open(ann) as f:
        info = json.load(f).get('info', {})
    return {k: info.get(k) for k in ('version', 'seed', 'num_images', 'img_size')}


@DATASETS.register_module()
class ShapesDataset(CocoDataset):
    """The embedded detection set (see :mod:`rebnn_det.datasets.shapes`) read by mmdet's ``CocoDataset``.

    Args:
        split: ``'train'`` or ``'val'`` (different random streams of the same generator).
        num_images / img_size / seed: generator settings; a cached split made with other settings is rebuilt.
        Other arguments are CocoDataset's (``data_root`` is required; ``ann_file`` is set from ``split``).
    """
    METAINFO = dict(classes=tuple(SHAPE_CLASSES), palette=PALETTE)

    def __init__(self, split: str = 'train', num_images: int = 600, img_size: int = 128, seed: int = 0,
                 data_root: str = 'data/shapes/', **kwargs):
        if split not in ('train', 'val', 'test'):
            raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}")
        if not kwargs.get('lazy_init', False):
            ensure_shapes_split(data_root, split, num_images, img_size, seed)
        kwargs.setdefault('ann_file', f'annotations/instances_{split}.json')
        kwargs.setdefault('data_prefix', dict(img=''))
        super().__init__(data_root=data_root, **kwargs)
