"""The embedded synthetic COCO-format dataset."""
from .shapes import (ALL_SHAPE_CLASSES, KNOB_DEFAULTS, LOOKALIKE_CLASSES, SHAPE_CLASSES, ShapesInUseError,
                     ShapesSettings, check_shapes_knobs, ensure_shapes_split, generate_shapes_split)
from .shapes_dataset import ShapesDataset

__all__ = ['ALL_SHAPE_CLASSES', 'KNOB_DEFAULTS', 'LOOKALIKE_CLASSES', 'SHAPE_CLASSES', 'ShapesDataset',
           'ShapesInUseError', 'ShapesSettings', 'check_shapes_knobs', 'ensure_shapes_split', 'generate_shapes_split']
