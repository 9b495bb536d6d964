"""Max pooling for deploy mode: the compiled ``max_pool2d_channels_last`` (``csrc/max_pool.cpp``) in place of
``nn.MaxPool2d`` -- all cores, NCHW input read directly (PyTorch's CPU max pool is several times slower on NCHW
input than on channels-last), channels-last output (what the binary conv after it reads fastest) -- and, for a
ResNet stem, in place of its BN -> ReLU -> max pool (one pass instead of three over the stem's largest tensor).
The BN is PyTorch's CPU eval BN exactly (one fused multiply-add with :func:`.kernels.bn_terms`), the ReLU
``torch.relu`` exactly, and a maximum does not depend on the order it is taken in, so the values are torch's."""
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .kernels import _load_extension, bn_terms, pair


def _supported(pool: nn.Module) -> bool:
    k, s, p = pair(pool.kernel_size), pair(pool.stride), pair(pool.padding)
    return (type(pool) is nn.MaxPool2d and pair(pool.dilation) == (1, 1) and not pool.ceil_mode
            and not pool.return_indices and 2 * p[0] <= k[0] and 2 * p[1] <= k[1] and min(s) >= 1)


class ChannelsLastMaxPool2d(nn.Module):
    """Deploy form of an ``nn.MaxPool2d`` (dilation 1, floor mode, no indices), optionally preceded by an eval
    BatchNorm2d ``bn`` and a ReLU (``relu``): the same values, a channels-last output tensor. Channels-last inputs
    (torch is fast on them) and other inputs than float32 CPU run the original modules."""

    def __init__(self, pool: nn.MaxPool2d, bn: Optional[nn.Module] = None, relu: bool = False):
        super().__init__()
        if not _supported(pool):
            raise ValueError(f'ChannelsLastMaxPool2d replaces an nn.MaxPool2d with dilation 1, ceil_mode=False and '
                             f'return_indices=False (padding at most half the kernel); got {pool}')
        self.bn, self.relu = bn, relu
        self.kernel_size, self.stride, self.padding = pair(pool.kernel_size), pair(pool.stride), pair(pool.padding)
        scale, shift = bn_terms(bn) if bn is not None else (None, None)
        self.register_buffer('bn_scale', scale)
        self.register_buffer('bn_shift', shift)

    @classmethod
    def applies(cls, module: nn.Module) -> bool:
        """An ``nn.MaxPool2d`` it can replace, on a machine with the compiled extension."""
        return type(module) is nn.MaxPool2d and _supported(module) and _load_extension() is not None

    def _torch(self, x: Tensor) -> Tensor:
        if self.bn is not None:
            x = self.bn(x)
        return F.max_pool2d(torch.relu(x) if self.relu else x, self.kernel_size, self.stride, self.padding)

    def forward(self, x: Tensor) -> Tensor:
        ext = _load_extension()
        if ext is None or x.dtype != torch.float32 or x.device.type != 'cpu' or x.dim() != 4 or (
                x.stride(1) == 1 and x.shape[1] > 1):  # channels-last input: torch's own kernel is fast there
            return self._torch(x)
        return torch.ops.rebnn.max_pool2d_channels_last(x, *self.kernel_size, *self.stride, *self.padding,
                                                        self.bn_scale, self.bn_shift, self.relu)

    def extra_repr(self) -> str:
        return (f'kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, '
                f'bn={self.bn is not None}, relu={self.relu}')
