from .binary_bbox_head import BinaryShared2FCBBoxHead
from .binary_mask_head import BinaryFCNMaskHead

__all__ = ['BinaryFCNMaskHead', 'BinaryShared2FCBBoxHead']
