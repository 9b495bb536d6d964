"""ReBNNConv: a 1-bit convolution (binary weights and binary activations), an ``nn.Conv2d`` subclass."""
from typing import Iterator, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .activations import RSign
from .binarize import (ACT_BINARIZERS, WEIGHT_BINARIZERS, approx_sign, binarize_weight_rebnn,
                       binarize_weight_xnor, channel_mean_abs, check_choice, check_pad_value, weight_factors)


class ReBNNConv(nn.Conv2d):
    """Binary convolution ``y = conv(B_a(x), w_hat)`` (ReBNN, Xu et al. 2023, Eq. 1).

    Args (beyond ``nn.Conv2d``'s ``in_channels, out_channels, kernel_size, stride, padding, dilation, groups,
    bias``; ``bias`` defaults to False since a BN follows):
        weight_binarizer: ``'rebnn'`` -- ``w_hat = alpha * sign(w)``, ``alpha`` a learnable parameter per output
            channel initialised to the channel mean ``|w|`` (re-initialised by :meth:`reset_alpha`, and computed
            from the loaded weight when a checkpoint has no ``alpha``); ``'xnor'`` -- ``mean|w| * sign(w)``,
            recomputed every forward, not learnable; ``'none'`` -- real weights (W32A1, stage 1 of two-stage
            training).
        act_binarizer: ``'rsign'`` -- ``sign(x - beta)`` with a learnable threshold per input channel;
            ``'approxsign'`` -- ``sign(x)``; both with the ApproxSign gradient; ``'none'`` -- real activations.
        pad_value: value used for spatial padding of the binarized input. ``0`` (default) is what ``nn.Conv2d``
            does; ``-1``/``+1`` keep the padded input strictly binary (what XNOR-popcount hardware computes).

    In eval mode (:meth:`factored_forward`) the output is computed as ``alpha * conv(B_a(x), sign(w)) + bias``: the
    same function, rounded once per output like the deploy kernels' ``alpha * count`` (bit-identical to them).

    ``sign(0) = +1`` for weights and activations. The latent weight gets the clipped STE gradient
    ``dL/dw = alpha * dL/dw_hat * 1{|w| <= 1}``. For the ReBNN balanced parameter, :meth:`track_weight_hat_grad`
    makes the layer accumulate ``dL/dw_hat`` in :attr:`weight_hat_grad` during backward.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: int = 1, bias: bool = False, weight_binarizer: str = 'rebnn',
                 act_binarizer: str = 'rsign', pad_value: float = 0.0, **kwargs):
        self.weight_binarizer = check_choice('weight_binarizer', weight_binarizer, WEIGHT_BINARIZERS)
        self.act_binarizer = check_choice('act_binarizer', act_binarizer, ACT_BINARIZERS)
        padding_mode = kwargs.pop('padding_mode', 'zeros')
        if padding_mode != 'zeros':
            raise ValueError(f"ReBNNConv supports padding_mode 'zeros' only (got {padding_mode!r}); "
                             'use pad_value to choose the padding constant')
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         **kwargs)
        if isinstance(self.padding, str):
            raise ValueError(f'ReBNNConv needs numeric padding, got {self.padding!r}')
        self.pad_value = check_pad_value(pad_value)
        if self.weight_binarizer == 'rebnn':
            self.alpha = nn.Parameter(channel_mean_abs(self.weight))
        else:
            self.register_parameter('alpha', None)
        self.rsign = RSign(in_channels) if self.act_binarizer == 'rsign' else None
        self._track_weight_hat_grad = False
        self.weight_hat_grad: Optional[Tensor] = None

    # ---- initialisation and loading --------------------------------------------------------------------------
    def reset_parameters(self) -> None:
        super().reset_parameters()
        self.reset_alpha()

    def init_weights(self) -> None:
        """mmengine/mmcv initialisation hook: keep ``alpha`` consistent with weights initialised elsewhere.

        Its presence also tells mmcv's ``ConvModule`` not to re-initialise this conv behind alpha's back.
        """
        self.reset_alpha()

    @torch.no_grad()
    def reset_alpha(self) -> None:
        """Set ``alpha`` to the channel mean ``|w|`` of the current latent weights (no-op without alpha)."""
        if getattr(self, 'alpha', None) is not None:
            self.alpha.copy_(channel_mean_abs(self.weight))

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        # A real-valued (or 'xnor'/'none') checkpoint has no alpha: derive it from the weight being loaded.
        if self.alpha is not None and prefix + 'alpha' not in state_dict and prefix + 'weight' in state_dict:
            state_dict[prefix + 'alpha'] = channel_mean_abs(state_dict[prefix + 'weight'])
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)

    # ---- the binarized operands ------------------------------------------------------------------------------
    def binarize_input(self, x: Tensor) -> Tensor:
        """``B_a(x)``: the activations the convolution sees (``{-1, +1}`` unless ``act_binarizer='none'``)."""
        if self.act_binarizer == 'rsign':
            return self.rsign(x)
        if self.act_binarizer == 'approxsign':
            return approx_sign(x)
        return x

    def binarize_weight(self) -> Tensor:
        """``w_hat``: the weights the convolution sees (``{-alpha_i, +alpha_i}`` per output channel for 'rebnn')."""
        if self.weight_binarizer == 'rebnn':
            return binarize_weight_rebnn(self.weight, self.alpha)
        if self.weight_binarizer == 'xnor':
            return binarize_weight_xnor(self.weight)
        return self.weight

    def track_weight_hat_grad(self, enabled: bool = True) -> None:
        """Accumulate ``dL/dw_hat`` into :attr:`weight_hat_grad` on every backward while ``enabled``."""
        self._track_weight_hat_grad = enabled
        self.weight_hat_grad = None

    def _accumulate_weight_hat_grad(self, grad: Tensor) -> None:
        if self.weight_hat_grad is None:
            self.weight_hat_grad = grad.detach().clone()
        else:
            self.weight_hat_grad.add_(grad.detach())

    def forward(self, x: Tensor) -> Tensor:
        if self.factored_forward():
            # eval: alpha * conv(B_a(x), sign(w)) -- the {-1, +1} conv of binary activations is an exact integer,
            # so the output is alpha * count with one rounding, bit for bit what the deploy kernels compute
            signs, scale = weight_factors(self.weight, self.weight_binarizer, self.alpha)
            out = self._conv(self.binarize_input(x), signs, None) * scale.view(1, -1, 1, 1)
            return out if self.bias is None else out + self.bias.view(1, -1, 1, 1)
        w_hat = self.binarize_weight()
        if self._track_weight_hat_grad and w_hat.requires_grad:
            w_hat.register_hook(self._accumulate_weight_hat_grad)
        return self._conv(self.binarize_input(x), w_hat, self.bias)

    def factored_forward(self) -> bool:
        """Whether :meth:`forward` applies the weight scale to the conv output (``alpha * conv(B_a(x), sign(w))``)
        rather than convolving with ``w_hat = alpha * sign(w)``: in eval mode with a binary weight, unless
        :meth:`track_weight_hat_grad` is on *and* autograd is recording (the gradient hook of ReBNN's balanced
        parameter needs the ``w_hat`` tensor). Validation during training (no grad, ReBNNHook's tracking on)
        therefore computes exactly what ``tools/test.py`` and deploy mode compute. Both forms are the same
        function; they round differently."""
        return (not self.training and self.weight_binarizer != 'none'
                and not (self._track_weight_hat_grad and torch.is_grad_enabled()))

    def _conv(self, x: Tensor, weight: Tensor, bias: Optional[Tensor]) -> Tensor:
        if self.pad_value != 0 and any(self.padding):
            ph, pw = self.padding
            x = F.pad(x, (pw, pw, ph, ph), value=self.pad_value)
            return F.conv2d(x, weight, bias, self.stride, 0, self.dilation, self.groups)
        return self._conv_forward(x, weight, bias)

    def extra_repr(self) -> str:
        s = super().extra_repr() + f', weight_binarizer={self.weight_binarizer!r}, ' \
            f'act_binarizer={self.act_binarizer!r}'
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
    for _, m in named_binary_convs(module, 'rebnn'):
        m.reset_alpha()
