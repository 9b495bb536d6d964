"""The embedded synthetic COCO-format dataset."""
from .shapes import SHAPE_CLASSES, ensure_shapes_split, generate_shapes_split
from .shapes_dataset import ShapesDataset

__all__ = ['SHAPE_CLASSES', 'ShapesDataset', 'ensure_shapes_split', 'generate_shapes_split']
