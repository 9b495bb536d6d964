from ..layers import BinaryConvBlock, channel_shortcut
from .binary_fpn import BinaryFPN

__all__ = ['BinaryConvBlock', 'BinaryFPN', 'channel_shortcut']
