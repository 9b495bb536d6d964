"""Max pooling for deploy mode: the compiled ``max_pool2d_channels_last`` (``csrc/max_pool.cpp``) in place of
``nn.MaxPool2d`` -- all cores, NCHW input read directly (PyTorch's CPU max pool is several times slower on NCHW
input than on channels-last), channels-last output (what the binary conv after it reads fastest). A maximum does
not depend on the order it is taken in, so the values are torch's exactly (a NaN in the window gives NaN)."""
import torch
from torch import Tensor, nn

from .kernels import _load_extension, pair


def _supported(pool: nn.Module) -> bool:
    k, s, p = pair(pool.kernel_size), pair(pool.stride), pair(pool.padding)
    return (type(pool) is nn.MaxPool2d and pair(pool.dilation) == (1, 1) and not pool.ceil_mode
            and not pool.return_indices and 2 * p[0] <= k[0] and 2 * p[1] <= k[1] and min(s) >= 1)


class ChannelsLastMaxPool2d(nn.Module):
    """Deploy form of an ``nn.MaxPool2d`` (dilation 1, floor mode, no indices): the same values, a channels-last
    output tensor. Channels-last inputs (torch is fast on them) and other inputs than float32 CPU go to the
    original module."""

    def __init__(self, pool: nn.MaxPool2d):
        super().__init__()
        if not _supported(pool):
            raise ValueError(f'ChannelsLastMaxPool2d replaces an nn.MaxPool2d with dilation 1, ceil_mode=False and '
                             f'return_indices=False (padding at most half the kernel); got {pool}')
        self.pool = pool
        self.kernel_size, self.stride, self.padding = pair(pool.kernel_size), pair(pool.stride), pair(pool.padding)

    @classmethod
    def applies(cls, module: nn.Module) -> bool:
        return _supported(module) if type(module) is nn.MaxPool2d else False

    def forward(self, x: Tensor) -> Tensor:
        ext = _load_extension()
        if ext is None or x.dtype != torch.float32 or x.device.type != 'cpu' or x.dim() != 4 or (
                x.stride(1) == 1 and x.shape[1] > 1):  # channels-last input: torch's own kernel is fast there
            return self.pool(x)
        return ext.max_pool2d_channels_last(x, *self.kernel_size, *self.stride, *self.padding)

    def extra_repr(self) -> str:
        return f'kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}'
