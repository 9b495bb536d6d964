from ...ops.shortcut import channel_shortcut
from .binary_conv_block import BLOCK_CFG_KEYS, BinaryConvBlock, binarize_conv_tower, check_block_cfg

__all__ = ['BLOCK_CFG_KEYS', 'BinaryConvBlock', 'binarize_conv_tower', 'channel_shortcut', 'check_block_cfg']
