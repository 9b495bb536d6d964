from .binary_bbox_head import BinaryShared2FCBBoxHead

__all__ = ['BinaryShared2FCBBoxHead']
