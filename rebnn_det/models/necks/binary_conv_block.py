"""Moved to :mod:`rebnn_det.models.layers.binary_conv_block` (shared by the neck and the heads); kept importable."""
from ..layers.binary_conv_block import BinaryConvBlock, channel_shortcut

__all__ = ['BinaryConvBlock', 'channel_shortcut']
