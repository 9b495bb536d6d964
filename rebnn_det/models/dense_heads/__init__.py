from .binary_fcos_head import BinaryFCOSHead
from .binary_retina_head import BinaryRetinaHead
from .binary_rpn_head import BinaryRPNHead

__all__ = ['BinaryFCOSHead', 'BinaryRetinaHead', 'BinaryRPNHead']
