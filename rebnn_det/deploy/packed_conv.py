"""PackedBinaryConv: the inference form of a :class:`~rebnn_det.ops.ReBNNConv` with binary weights and binary
activations, running the XNOR-popcount kernels of :mod:`.kernels`.

Forward: ``y = scale * count`` with ``count[o, p] = sum_valid taps sum_c sign(x_c - beta_c) * b[o, t, c]`` (exact
integers) and ``scale = alpha``, then ``+ shift`` (the conv's bias, if any), then -- after :meth:`fuse_bn` -- the
BatchNorm ``y = fma(y, bn_scale, bn_shift)`` exactly as PyTorch's CPU eval BatchNorm computes it. Each step rounds
once, in the simulated model's order, so the output is bit-identical to ``BN(ReBNNConv(x))`` in eval mode (the
BN is not folded into ``scale``: that would round differently).
"""
from typing import Optional, Sequence

import torch
from torch import Tensor, nn

from ..ops import ReBNNConv
from .kernels import KernelWeight, PackedActivations, binary_conv2d, binary_conv_counts, pair, prepare_weight
from .packed_layer import PackedBinaryLayer, not_deployable
from .packing import pack_conv_weight


def is_deployable(conv: nn.Module) -> bool:
    """A ReBNNConv whose weights and activations are both binary (the kernels need both)."""
    return isinstance(conv, ReBNNConv) and conv.is_w1a1


class PackedBinaryConv(PackedBinaryLayer):
    """A binary convolution stored as packed sign bits (64 input channels per int64 word) plus per-channel
    ``scale``/``shift`` (and, after :meth:`fuse_bn`, ``bn_scale``/``bn_shift``); 32x smaller weights than the float
    layer and XNOR-popcount arithmetic.

    Args:
        packed_weight: ``[C_out, kh, kw, words]`` int64 (format of :mod:`.packing`).
        in_channels: input channels (per group).
        scale: ``[C_out]`` (``alpha``), shift: ``[C_out]`` (the conv's bias) or ``None``.
        threshold: RSign's ``beta`` ``[C_in]`` or ``None`` (``sign(x)``).
        stride / padding / dilation / groups / pad_value: the geometry of the original conv.
        isa: force a kernel path (``None``: ``$REBNN_KERNEL_ISA`` or the best available).
    """

    OUTPUTS = 'output channels'

    def __init__(self, packed_weight: Tensor, in_channels: int, scale: Tensor, shift: Optional[Tensor] = None,
                 threshold: Optional[Tensor] = None, stride=1, padding=0, dilation=1, groups: int = 1,
                 pad_value: float = 0.0, isa: Optional[str] = None):
        super().__init__()
        weight = prepare_weight(packed_weight, in_channels)
        self.in_channels = in_channels * groups
        self.out_channels = packed_weight.shape[0]
        self.kernel_size = tuple(packed_weight.shape[1:3])
        self.stride, self.padding, self.dilation = pair(stride), pair(padding), pair(dilation)
        self.groups = groups
        self.pad_value = float(pad_value)
        self.isa = isa
        self._in_per_group = in_channels
        self.nchw_output = False  # set by convert_to_deploy where a real conv reads the output next
        self._register_packed(weight, scale, shift, threshold, self.out_channels)

    @classmethod
    def from_conv(cls, conv: ReBNNConv, isa: Optional[str] = None) -> 'PackedBinaryConv':
        """Pack a trained ReBNNConv (``alpha = conv.alpha`` for 'rebnn', the channel mean ``|w|`` for 'xnor')."""
        if not is_deployable(conv):
            raise not_deployable(conv, 'ReBNNConv', 'activations', 'XNOR-popcount kernels')
        with torch.no_grad():
            alpha = conv.scale()
            threshold = conv.rsign.threshold if conv.rsign is not None else None
            return cls(pack_conv_weight(conv.weight.detach()), conv.in_channels // conv.groups, alpha, conv.bias,
                       threshold, conv.stride, conv.padding, conv.dilation, conv.groups, conv.pad_value, isa)

    @property
    def packed_weight(self) -> Tensor:
        """The packed signs in the format of :mod:`.packing` (derived from the stored kernel layout)."""
        return self.weight.packed

    @property
    def weight(self) -> KernelWeight:
        return KernelWeight(self.kernel_weight, self.tap_sum, self._in_per_group, self.out_channels, self.kernel_size)

    def counts(self, x: Tensor) -> Tensor:
        """The exact integer counts (int32 ``[N, C_out, H_o, W_o]``) before scale and shift."""
        return binary_conv_counts(x, self.threshold, self.weight, self.stride, self.padding, self.pad_value,
                                  self.dilation, self.groups, self.isa)

    def forward(self, x: Tensor, residual: Optional[Tensor] = None, rprelu: Optional[Sequence[Tensor]] = None,
                packed_input: Optional[PackedActivations] = None, pack_for: Optional['PackedBinaryConv'] = None,
                relu: bool = False):
        """``scale * count``, ``+ shift``, the BN of :meth:`fuse_bn`, then ``+ residual`` and RPReLU
        ``(shift_in, slope, shift_out)`` if given (all in the kernel's epilogue on the native path), each step
        rounded like the simulated model's op, then ``torch.relu`` if ``relu``. ``packed_input``: ``x`` packed for
        this conv by the previous one; ``pack_for``: the binary conv that reads the output next -- the output is
        packed for it too and ``(y, PackedActivations or None)`` returned (see :func:`.kernels.binary_conv2d`)."""
        return binary_conv2d(x, self.threshold, self.weight, self.scale, self.shift, self.stride, self.padding,
                             self.pad_value, self.dilation, self.groups, residual, rprelu, self.isa, self.bn,
                             packed_input, None if pack_for is None else pack_for.input_spec, self.nchw_output,
                             relu)

    @property
    def input_spec(self):
        """``(threshold, padding, pad_value)``: how this conv packs its input."""
        return self.threshold, self.padding, self.pad_value

    def extra_repr(self) -> str:
        s = (f'{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, '
             f'padding={self.padding}')
        if self.dilation != (1, 1):
            s += f', dilation={self.dilation}'
        if self.groups != 1:
            s += f', groups={self.groups}'
        s += f', pad_value={self.pad_value}, threshold={self.threshold is not None}'
        return s + (', nchw_output=True' if self.nchw_output else '')

