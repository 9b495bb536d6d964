"""The embedded synthetic COCO-format dataset, and the classification sets of the backbone's pretraining stage."""
from .shapes import (ALL_SHAPE_CLASSES, KNOB_DEFAULTS, LOOKALIKE_CLASSES, SHAPE_CLASSES, ShapesInUseError,
                     ShapesSettings, check_shapes_knobs, ensure_shapes_split, generate_shapes_split)
from .classification_datasets import ImageListDataset, ShapesCropsDataset
from .classification_transforms import PackClassificationInputs, RandomResizedCrop
from .shapes_dataset import ShapesDataset

__all__ = ['ALL_SHAPE_CLASSES', 'ImageListDataset', 'KNOB_DEFAULTS', 'LOOKALIKE_CLASSES', 'PackClassificationInputs',
           'RandomResizedCrop', 'SHAPE_CLASSES', 'ShapesCropsDataset', 'ShapesDataset', 'ShapesInUseError',
           'ShapesSettings', 'check_shapes_knobs', 'ensure_shapes_split', 'generate_shapes_split']
