"""ShapesDataset: mmdet's CocoDataset over the embedded shapes set, generated on first use."""
from typing import Optional, Sequence

from mmdet.datasets import CocoDataset
from mmdet.registry import DATASETS

from .shapes import ALL_SHAPE_CLASSES, KNOB_DEFAULTS, SHAPE_CLASSES, check_shapes_knobs, ensure_shapes_split


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

    def __init__(self, split: str = 'train', num_images: int = 600, img_size: int = 128, seed: int = 0,
                 data_root: str = 'data/shapes/', classes: Optional[Sequence[str]] = None, max_objects: int = 4,
                 size_probs: Sequence[float] = KNOB_DEFAULTS['size_probs'],
                 clutter_lines: Sequence[int] = KNOB_DEFAULTS['clutter_lines'],
                 distractors: int = KNOB_DEFAULTS['distractors'], **kwargs):
        if split not in ('train', 'val', 'test'):
            raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}")
        classes = tuple(SHAPE_CLASSES) if classes is None else tuple(classes)
        check_shapes_knobs(classes, max_objects, size_probs, clutter_lines, distractors)  # fail at build time
        self.shapes_settings = dict(data_root=data_root, split=split, num_images=num_images, img_size=img_size,
                                    seed=seed, classes=classes, max_objects=max_objects, size_probs=size_probs,
                                    clutter_lines=clutter_lines, distractors=distractors)
        kwargs.setdefault('ann_file', f'annotations/instances_{split}.json')
        kwargs.setdefault('data_prefix', dict(img=''))
        if classes != tuple(SHAPE_CLASSES):
            kwargs.setdefault('metainfo', dict(classes=classes, palette=_palette(classes)))
        super().__init__(data_root=data_root, **kwargs)

    def full_init(self) -> None:
        if not self._fully_initialized:
            ensure_shapes_split(**self.shapes_settings)
        super().full_init()
