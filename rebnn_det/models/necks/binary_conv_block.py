"""BinaryConvBlock: ``BN(ReBNNConv(x)) + shortcut(x)``, the binary replacement of an FPN ConvModule."""
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from torch import Tensor, nn

from ...ops import ReBNNConv


def channel_shortcut(x: Tensor, out_channels: int) -> Tensor:
    """Parameter-free channel adapter for shortcuts: repeat channels (``out = k * in``) or average groups of
    ``k`` consecutive channels (``in = k * out``)."""
    in_channels = x.shape[1]
    if in_channels == out_channels:
        return x
    if out_channels % in_channels == 0:
        return x.repeat(1, out_channels // in_channels, 1, 1)
    n, _, h, w = x.shape
    return x.view(n, out_channels, in_channels // out_channels, h, w).mean(2)


class BinaryConvBlock(nn.Module):
    """A binary convolution with BN and a shortcut (Bi-Real Net: every binary conv gets one).

    The shortcut is parameter free: identity, an AvgPool for stride 2, and :func:`channel_shortcut` when the
    widths differ by an integer factor; with no such factor the block has no shortcut (``has_shortcut`` False).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0,
                 norm_cfg: dict = dict(type='BN'), shortcut: bool = True, **conv_kwargs):
        super().__init__()
        self.conv = ReBNNConv(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                              bias=False, **conv_kwargs)
        self.bn = build_norm_layer(norm_cfg, out_channels)[1]
        self.out_channels = out_channels
        ratio_ok = out_channels % in_channels == 0 or in_channels % out_channels == 0
        self.has_shortcut = shortcut and ratio_ok
        self.stride = stride

    @classmethod
    def like(cls, conv: nn.Conv2d, **kwargs) -> 'BinaryConvBlock':
        """A block with the geometry (channels, kernel, stride, padding) of an existing convolution."""
        return cls(conv.in_channels, conv.out_channels, conv.kernel_size[0], conv.stride[0], conv.padding[0],
                   **kwargs)

    def forward(self, x: Tensor) -> Tensor:
        out = self.bn(self.conv(x))
        if not self.has_shortcut:
            return out
        if self.stride > 1:
            x = F.avg_pool2d(x, self.stride, self.stride, ceil_mode=True, count_include_pad=False)
        return out + channel_shortcut(x, self.out_channels)
