"""ShapesDataset: mmdet's CocoDataset over the embedded shapes set, generated on first use."""
from mmdet.datasets import CocoDataset
from mmdet.registry import DATASETS

from .shapes import SHAPE_CLASSES, ensure_shapes_split

PALETTE = [tuple(int(c) for c in reversed(col)) for col, _ in SHAPE_CLASSES.values()]  # RGB for the visualizer


@DATASETS.register_module()
class ShapesDataset(CocoDataset):
    """The embedded detection set (see :mod:`rebnn_det.datasets.shapes`) read by mmdet's ``CocoDataset``.

    The split is generated (or regenerated when missing, unreadable or made with other settings) when the
    annotations are first loaded, i.e. at construction unless ``lazy_init=True``; concurrent processes (DDP
    ranks, two experiments on one ``data_root``) are safe, see :func:`ensure_shapes_split`.

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
        self.shapes_settings = dict(data_root=data_root, split=split, num_images=num_images, img_size=img_size,
                                    seed=seed)
        kwargs.setdefault('ann_file', f'annotations/instances_{split}.json')
        kwargs.setdefault('data_prefix', dict(img=''))
        super().__init__(data_root=data_root, **kwargs)

    def full_init(self) -> None:
        if not self._fully_initialized:
            ensure_shapes_split(**self.shapes_settings)
        super().full_init()
