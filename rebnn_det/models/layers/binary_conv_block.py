"""BinaryConvBlock: ``act(BN(ReBNNConv(x)) + shortcut(x))``, the binary replacement of a ConvModule."""
from typing import Optional

from mmcv.cnn import ConvModule, build_norm_layer
from mmdet.registry import MODELS
from torch import Tensor, nn

from ...ops import ReBNNConv
from ...ops.shortcut import channel_shortcut, shortcut_fits, shortcut_pool


class BinaryConvBlock(nn.Module):
    """A binary convolution with BN and a shortcut (Bi-Real Net: every binary conv gets one), then an optional
    activation: ``act(BN(ReBNNConv(x)) + shortcut(x))`` (ReActNet's order; ReBNNConv binarizes its input itself).

    The shortcut is parameter free: identity, an AvgPool for stride 2, and :func:`channel_shortcut` when the
    widths differ by an integer factor; with no such factor the block has no shortcut (``has_shortcut`` False).

    Args:
        norm_cfg: the norm after the binary conv (restores the scale a binary conv loses). BN is a
            per-channel multiply-add at inference, run inside the binary kernel's epilogue in deploy mode, which
            is why it is the default.
        act_cfg: ``None`` (no activation: the FPN's convs), an mmcv activation (e.g. ``dict(type='ReLU')``) or
            ``dict(type='RPReLU')`` (ReActNet's, one set of parameters per output channel).
        conv_kwargs: ``weight_binarizer``, ``act_binarizer``, ``pad_value``... of :class:`ReBNNConv`.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0,
                 norm_cfg: dict = dict(type='BN'), shortcut: bool = True, act_cfg: Optional[dict] = None,
                 **conv_kwargs):
        super().__init__()
        self.conv = ReBNNConv(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                              bias=False, **conv_kwargs)
        self.bn = build_norm_layer(norm_cfg, out_channels)[1]
        self.out_channels = out_channels
        self.has_shortcut = shortcut and shortcut_fits(in_channels, out_channels)
        self.stride = stride
        if act_cfg is not None:
            act_cfg = dict(act_cfg)
            if act_cfg['type'] == 'RPReLU':
                act_cfg.setdefault('channels', out_channels)
            self.act = MODELS.build(act_cfg)
        else:
            self.act = None

    @classmethod
    def like(cls, conv: nn.Module, **kwargs) -> 'BinaryConvBlock':
        """A block with the geometry (channels, kernel, stride, padding) of an ``nn.Conv2d``, or of an mmcv
        ``ConvModule``, whose activation it then keeps too (unless ``act_cfg`` is given)."""
        if isinstance(conv, ConvModule):
            kwargs.setdefault('act_cfg', conv.act_cfg if conv.with_activation else None)
            conv = conv.conv
        return cls(conv.in_channels, conv.out_channels, conv.kernel_size[0], conv.stride[0], conv.padding[0],
                   **kwargs)

    def forward(self, x: Tensor) -> Tensor:
        out = self.bn(self.conv(x))
        if self.has_shortcut:
            out = out + channel_shortcut(shortcut_pool(x, self.stride), self.out_channels)
        return out if self.act is None else self.act(out)


BLOCK_CFG_KEYS = ('weight_binarizer', 'act_binarizer', 'pad_value', 'norm_cfg', 'shortcut', 'act_cfg')


def check_block_cfg(binary_cfg: Optional[dict]) -> dict:
    """A head's ``binary_cfg`` (``None`` = the defaults) as a dict of :class:`BinaryConvBlock` arguments; an
    unknown key raises a ``ValueError`` naming the allowed ones."""
    cfg = dict(binary_cfg or {})
    unknown = sorted(set(cfg) - set(BLOCK_CFG_KEYS))
    if unknown:
        raise ValueError(f'unknown binary_cfg key(s) {unknown}; allowed: {", ".join(BLOCK_CFG_KEYS)}')
    return cfg


def binarize_conv_tower(convs: nn.ModuleList, binary_cfg: Optional[dict] = None) -> None:
    """Replace, in place, every convolution (``nn.Conv2d`` or ``ConvModule``) of a head's conv tower by a
    :class:`BinaryConvBlock` of the same geometry (and activation, for a ConvModule)."""
    cfg = check_block_cfg(binary_cfg)
    for i, m in enumerate(convs):
        convs[i] = BinaryConvBlock.like(m, **cfg)
