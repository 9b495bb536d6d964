"""PackedBinaryLayer: what the packed binary conv and linear layers share -- their buffers and the BatchNorm they
take over into the kernel epilogue."""
from typing import Optional

import torch
from torch import Tensor, nn

from .kernels import KernelWeight, bn_terms


def _vector(t: Optional[Tensor]) -> Optional[Tensor]:
    return None if t is None else t.detach().float().reshape(-1).clone()


def not_deployable(layer: nn.Module, expected: str, inputs: str, runs_on: str) -> ValueError:
    """The error for a layer that cannot run packed: it needs binary weights and binary inputs."""
    from ..ops import binary_act_choices, binary_weight_choices
    return ValueError(f'only a {expected} with binary weights (weight_binarizer in {binary_weight_choices()}) and '
                      f'binary {inputs} (act_binarizer in {binary_act_choices()}) runs on the {runs_on}; got '
                      f'{type(layer).__name__}(weight_binarizer={getattr(layer, "weight_binarizer", None)!r}, '
                      f'act_binarizer={getattr(layer, "act_binarizer", None)!r})')


class PackedBinaryLayer(nn.Module):
    """Buffers of a packed binary layer: the packed signs in their kernel layout (``packed_weight`` derives the
    :mod:`.packing` layout from it), ``tap_sum``, the per-output
    ``scale`` (alpha) and ``shift`` (bias), the RSign ``threshold``, and after :meth:`fuse_bn` the BatchNorm terms
    ``bn_scale`` / ``bn_shift`` (applied as ``fma(y, bn_scale, bn_shift)``, as PyTorch's CPU BatchNorm computes)."""

    OUTPUTS = 'outputs'  # what the outputs are called in messages ('output channels', 'output features')

    def _register_packed(self, weight: KernelWeight, scale: Tensor, shift: Optional[Tensor],
                         threshold: Optional[Tensor], outputs: int) -> None:
        self.register_buffer('kernel_weight', weight.kernel)  # the packed signs, stored once (kernel layout)
        self.register_buffer('tap_sum', weight.tap_sum)
        self.register_buffer('scale', _vector(scale))
        self.register_buffer('shift', _vector(shift))
        self.register_buffer('bn_scale', None)
        self.register_buffer('bn_shift', None)
        self.register_buffer('threshold', _vector(threshold))
        self._outputs = outputs
        if self.scale.numel() != outputs:
            raise ValueError(f'scale has {self.scale.numel()} values for {outputs} {self.OUTPUTS}')

    @torch.no_grad()
    def fuse_bn(self, bn: nn.modules.batchnorm._BatchNorm) -> None:
        """Take over an eval-mode BN that follows this layer (then drop the BN): the epilogue applies it as
        ``fma(y, bn_scale, bn_shift)`` with the per-channel terms PyTorch's CPU BatchNorm uses (:func:`bn_terms`),
        after ``scale * count + shift``, so the result is bit-identical to ``bn(layer(x))``."""
        if self.bn_scale is not None:
            raise ValueError(f'this {type(self).__name__} already has a BatchNorm')
        bn_scale, bn_shift = bn_terms(bn)
        if bn_scale.numel() != self._outputs:
            raise ValueError(f'BatchNorm has {bn_scale.numel()} channels; the layer has {self._outputs} {self.OUTPUTS}')
        self.bn_scale, self.bn_shift = bn_scale, bn_shift

    @property
    def bn(self):
        """``(bn_scale, bn_shift)`` after :meth:`fuse_bn`, else ``None``."""
        return None if self.bn_scale is None else (self.bn_scale, self.bn_shift)
