"""PackedBinaryLinear: the inference form of a :class:`~rebnn_det.ops.ReBNNLinear` with binary weights and binary
activations, running the binary GEMM of :mod:`.kernels` (XNOR-popcount over the packed input features).

Forward: ``y = scale * count`` with ``count[n, o] = sum_k sign(x[n, k] - beta_k) * b[o, k]`` (exact integers),
``+ shift`` (the layer's bias), the BatchNorm of :meth:`fuse_bn` as ``fma(y, bn_scale, bn_shift)``, ``+ residual``:
bit-identical to ``BN1d(ReBNNLinear(x)) + residual`` in eval mode.
"""
from typing import Optional

import torch
from torch import Tensor, nn

from ..ops import ReBNNLinear
from .kernels import KernelWeight, binary_linear, binary_linear_counts, linear_weight
from .packed_layer import PackedBinaryLayer, not_deployable
from .packing import pack_signs_last


def is_deployable_linear(layer: nn.Module) -> bool:
    """A ReBNNLinear whose weights and inputs are both binary (the binary GEMM needs both)."""
    return isinstance(layer, ReBNNLinear) and layer.is_w1a1


class PackedBinaryLinear(PackedBinaryLayer):
    """A binary linear layer stored as packed sign bits (64 input features per int64 word) plus per-output
    ``scale``/``shift`` (and, after :meth:`fuse_bn`, ``bn_scale``/``bn_shift``): 32x smaller weights than the float
    layer and XNOR-popcount arithmetic.

    Args:
        packed_weight: ``[out_features, words]`` int64 (format of :mod:`.packing`).
        in_features: input features.
        scale: ``[out_features]`` (``alpha``), shift: the layer's bias or ``None``.
        threshold: RSign's ``beta`` ``[in_features]`` or ``None`` (``sign(x)``).
        isa: force a kernel path (``None``: ``$REBNN_KERNEL_ISA`` or the best available).
    """

    OUTPUTS = 'output features'

    def __init__(self, packed_weight: Tensor, in_features: int, scale: Tensor, shift: Optional[Tensor] = None,
                 threshold: Optional[Tensor] = None, isa: Optional[str] = None):
        super().__init__()
        weight = linear_weight(packed_weight, in_features)
        self.in_features, self.out_features = in_features, packed_weight.shape[0]
        self.isa = isa
        self._register_packed(weight, scale, shift, threshold, self.out_features)

    @classmethod
    def from_linear(cls, layer: ReBNNLinear, isa: Optional[str] = None) -> 'PackedBinaryLinear':
        """Pack a trained ReBNNLinear (its scale: ``alpha``, or the row mean ``|w|`` for 'xnor')."""
        if not is_deployable_linear(layer):
            raise not_deployable(layer, 'ReBNNLinear', 'inputs', 'binary GEMM')
        with torch.no_grad():
            threshold = layer.rsign.threshold if layer.rsign is not None else None
            return cls(pack_signs_last(layer.weight.detach()), layer.in_features, layer.scale(), layer.bias,
                       threshold, isa)

    @property
    def packed_weight(self) -> Tensor:
        """The packed signs in the format of :mod:`.packing` (derived from the stored kernel layout)."""
        return self.weight.packed

    @property
    def weight(self) -> KernelWeight:
        return KernelWeight(self.kernel_weight, self.tap_sum, self.in_features, self.out_features, (1, 1))

    def counts(self, x: Tensor) -> Tensor:
        """The exact integer counts (int32 ``[N, out_features]``) before the epilogue."""
        return binary_linear_counts(x, self.threshold, self.weight, self.isa)

    def forward(self, x: Tensor, residual: Optional[Tensor] = None) -> Tensor:
        return binary_linear(x, self.threshold, self.weight, self.scale, self.shift, self.bn, residual, self.isa)

    def extra_repr(self) -> str:
        return f'{self.in_features}, {self.out_features}, threshold={self.threshold is not None}'
