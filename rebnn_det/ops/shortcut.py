"""The parameter-free shortcut of a binary block (Bi-Real Net: every binary conv gets one), written once for the
training blocks and the deploy kernels' epilogue."""
import torch.nn.functional as F
from torch import Tensor


def shortcut_pool(x: Tensor, stride: int) -> Tensor:
    """The shortcut's input at the output resolution: ``x`` itself, or a ``stride x stride`` average pool (ceil
    mode, padding not counted) for a strided conv."""
    return F.avg_pool2d(x, stride, stride, ceil_mode=True, count_include_pad=False) if stride > 1 else x


def shortcut_fits(in_channels: int, out_channels: int) -> bool:
    """Whether :func:`channel_shortcut` adapts ``in_channels`` to ``out_channels`` (one divides the other)."""
    return out_channels % in_channels == 0 or in_channels % out_channels == 0


def channel_shortcut(x: Tensor, out_channels: int) -> Tensor:
    """Parameter-free channel adapter for shortcuts: repeat channels (``out = k * in``: channel ``o`` is input channel
    ``o mod in``) or average groups of ``k`` consecutive channels (``in = k * out``)."""
    in_channels = x.shape[1]
    if in_channels == out_channels:
        return x
    if out_channels % in_channels == 0:
        return x.repeat(1, out_channels // in_channels, *([1] * (x.dim() - 2)))
    if in_channels % out_channels:
        raise ValueError(f'a shortcut adapts {in_channels} to {out_channels} channels only when one divides the other')
    n, _, *spatial = x.shape
    return x.view(n, out_channels, in_channels // out_channels, *spatial).mean(2)
