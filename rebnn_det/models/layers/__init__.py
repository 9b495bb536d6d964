from ...ops.shortcut import channel_shortcut
from .binary_conv_block import BLOCK_CFG_KEYS, BinaryConvBlock, binarize_conv_tower, check_block_cfg
from .binary_linear_block import LINEAR_BLOCK_CFG_KEYS, BinaryLinearBlock, check_linear_block_cfg

__all__ = ['BLOCK_CFG_KEYS', 'LINEAR_BLOCK_CFG_KEYS', 'BinaryConvBlock', 'BinaryLinearBlock', 'binarize_conv_tower',
           'channel_shortcut', 'check_block_cfg', 'check_linear_block_cfg']
