"""ShapesDataset: mmdet's CocoDataset over the embedded shapes set, generated on first use."""
from typing import Optional, Sequence

from mmdet.datasets import CocoDataset
from mmdet.registry import DATASETS

from .shapes import ensure_shapes_split
from .shapes_settings import ALL_SHAPE_CLASSES, SHAPE_CLASSES, ShapesSettings

DEFAULT = ShapesSettings  # the defaults of every setting, in one place (dataclass fields)


def _palette(classes: Sequence[str]) -> list:
    """RGB colours of ``classes`` for the visualizer (the generator's colours are BGR)."""
    return [tuple(int(c) for c in reversed(ALL_SHAPE_CLASSES[name][0])) for name in classes]


PALETTE = _palette(SHAPE_CLASSES)


@DATASETS.register_module()
class ShapesDataset(CocoDataset):
    """The embedded detection set (see :mod:`rebnn_det.datasets.shapes`) read by mmdet's ``CocoDataset``.

    The split is generated (or regenerated when missing, unreadable or made with other settings) when the
    annotations are first loaded, i.e. at construction unless ``lazy_init=True``; concurrent processes (DDP
    ranks, two experiments on one ``data_root``) are safe, see :func:`ensure_shapes_split`.

    Args:
        split: ``'train'`` or ``'val'`` (different random streams of the same generator).
        num_images / img_size / seed: generator settings; a cached split made with other settings is rebuilt.
        classes / max_objects / size_probs / clutter_lines / distractors: the difficulty knobs (see
            :mod:`rebnn_det.datasets.shapes`; the defaults give the original set). ``classes`` also sets the
            dataset's ``metainfo`` classes and palette unless ``metainfo`` is passed.
        Other arguments are CocoDataset's (``data_root`` is required; ``ann_file`` is set from ``split``).
    """
    METAINFO = dict(classes=tuple(SHAPE_CLASSES), palette=PALETTE)

    def __init__(self, split: str = 'train', num_images: int = DEFAULT.num_images, img_size: int = DEFAULT.img_size,
                 seed: int = DEFAULT.seed, data_root: str = 'data/shapes/', classes: Optional[Sequence[str]] = None,
                 max_objects: int = DEFAULT.max_objects, size_probs: Sequence[float] = DEFAULT.size_probs,
                 clutter_lines: Sequence[int] = DEFAULT.clutter_lines, distractors: int = DEFAULT.distractors,
                 **kwargs):
        if split not in ('train', 'val', 'test'):
            raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}")
        classes = tuple(SHAPE_CLASSES) if classes is None else tuple(classes)
        # checked here, at build time, before any file is read or written
        self.shapes_settings = ShapesSettings(num_images, img_size, seed, max_objects, classes, size_probs,
                                              clutter_lines, distractors)
        self.shapes_root, self.shapes_split = data_root, split
        kwargs.setdefault('ann_file', f'annotations/instances_{split}.json')
        kwargs.setdefault('data_prefix', dict(img=''))
        if classes != tuple(SHAPE_CLASSES):
            kwargs.setdefault('metainfo', dict(classes=classes, palette=_palette(classes)))
        super().__init__(data_root=data_root, **kwargs)

    def full_init(self) -> None:
        if not self._fully_initialized:
            ensure_shapes_split(self.shapes_root, self.shapes_split, self.shapes_settings)
        super().full_init()
