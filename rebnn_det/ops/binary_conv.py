"""ReBNNConv: a 1-bit convolution (binary weights and binary activations), an ``nn.Conv2d`` subclass."""
from typing import Iterator, Optional, Tuple

import torch.nn.functional as F
from torch import Tensor, nn

from .binarize import act_binarizer as act_binarizer_for
from .binarize import check_pad_value
from .binarize import weight_binarizer as weight_binarizer_for
from .binary_layer import BinaryLayerMixin


class ReBNNConv(BinaryLayerMixin, nn.Conv2d):
    """Binary convolution ``y = conv(B_a(x), w_hat)`` (ReBNN, Xu et al. 2023, Eq. 1).

    Args (beyond ``nn.Conv2d``'s ``in_channels, out_channels, kernel_size, stride, padding, dilation, groups,
    bias``; ``bias`` defaults to False since a BN follows):
        weight_binarizer: ``'rebnn'`` -- ``w_hat = alpha * sign(w)``, ``alpha`` a learnable parameter per output
            channel initialised to the channel mean ``|w|`` (re-initialised by :meth:`reset_alpha`, and computed
            from the loaded weight when a checkpoint has no ``alpha``); ``'xnor'`` -- ``mean|w| * sign(w)``,
            recomputed every forward, not learnable; ``'none'`` -- real weights (W32A1, stage 1 of two-stage
            training). The choice is a :class:`~rebnn_det.ops.binarize.WeightBinarizer` (:attr:`weight_quantizer`).
        act_binarizer: ``'rsign'`` -- ``sign(x - beta)`` with a learnable threshold per input channel;
            ``'approxsign'`` -- ``sign(x)``; both with the ApproxSign gradient; ``'none'`` -- real activations.
        pad_value: value used for spatial padding of the binarized input. ``0`` (default) is what ``nn.Conv2d``
            does; ``-1``/``+1`` keep the padded input strictly binary (what XNOR-popcount hardware computes).

    What the layer is (:attr:`binary_weights`, :attr:`binary_activations`, :attr:`is_w1a1`, :meth:`scale`) comes
    from :class:`~rebnn_det.ops.binary_layer.BinaryLayerMixin`. In eval mode (:meth:`scales_output`) the output
    is computed as ``scale * conv(B_a(x), sign(w)) + bias``: the same function, rounded once per output like the
    deploy kernels' ``alpha * count`` (bit-identical to them).

    ``sign(0) = +1`` for weights and activations. The latent weight gets the clipped STE gradient
    ``dL/dw = alpha * dL/dw_hat * 1{|w| <= 1}``. For the ReBNN balanced parameter, :meth:`track_weight_hat_grad`
    makes the layer accumulate ``dL/dw_hat`` in :attr:`weight_hat_grad` during backward.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: int = 1, bias: bool = False, weight_binarizer: str = 'rebnn',
                 act_binarizer: str = 'rsign', pad_value: float = 0.0, **kwargs):
        weight_binarizer_for(weight_binarizer), act_binarizer_for(act_binarizer)  # fail before building
        padding_mode = kwargs.pop('padding_mode', 'zeros')
        if padding_mode != 'zeros':
            raise ValueError(f"ReBNNConv supports padding_mode 'zeros' only (got {padding_mode!r}); "
                             'use pad_value to choose the padding constant')
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         **kwargs)
        if isinstance(self.padding, str):
            raise ValueError(f'ReBNNConv needs numeric padding, got {self.padding!r}')
        self.pad_value = check_pad_value(pad_value)
        self._init_binarizers(weight_binarizer, act_binarizer, in_channels)

    def forward(self, x: Tensor) -> Tensor:
        if self.scales_output():
            # eval: scale * conv(B_a(x), sign(w)) -- the {-1, +1} conv of binary activations is an exact integer,
            # so the output is scale * count with one rounding, bit for bit what the deploy kernels compute
            signs, scale = self.weight_quantizer.factors(self.weight, self.alpha)
            out = self._conv(self.binarize_input(x), signs, None) * scale.view(1, -1, 1, 1)
            return out if self.bias is None else out + self.bias.view(1, -1, 1, 1)
        return self._conv(self.binarize_input(x), self._tracked_weight_hat(), self.bias)

    def _conv(self, x: Tensor, weight: Tensor, bias: Optional[Tensor]) -> Tensor:
        if self.pad_value != 0 and any(self.padding):
            ph, pw = self.padding
            x = F.pad(x, (pw, pw, ph, ph), value=self.pad_value)
            return F.conv2d(x, weight, bias, self.stride, 0, self.dilation, self.groups)
        return self._conv_forward(x, weight, bias)

    def extra_repr(self) -> str:
        s = super().extra_repr() + ', ' + self.binarizer_repr()
        if self.pad_value:
            s += f', pad_value={self.pad_value}'
        return s


def named_binary_convs(module: nn.Module, weight_binarizer: Optional[str] = None
                       ) -> Iterator[Tuple[str, ReBNNConv]]:
    """``(name, layer)`` for every :class:`ReBNNConv` in ``module`` (optionally of one weight binarizer)."""
    for name, m in module.named_modules():
        if isinstance(m, ReBNNConv) and (weight_binarizer is None or m.weight_binarizer == weight_binarizer):
            yield name, m


def reset_binary_alphas(module: nn.Module) -> None:
    """Re-initialise ``alpha`` of every ReBNNConv in ``module`` from its current weights (after an init)."""
    for _, m in named_binary_convs(module):
        m.reset_alpha()
