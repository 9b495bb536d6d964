"""BinaryLayerMixin: what every binary layer (ReBNNConv, and a binary linear layer) is and answers, written once."""
from typing import List, Optional, Tuple

import torch
from torch import Tensor, nn

from .activations import RSign
from .binarize import ActBinarizer, WeightBinarizer, act_binarizer, approx_sign, channel_mean_abs, weight_binarizer


class BinaryLayerMixin:
    """The binarizers of a layer with a ``weight`` (output channel/feature first) and their rules.

    A subclass calls :meth:`_init_binarizers` after ``nn.Module.__init__``. The layer then has
    :attr:`weight_quantizer` / :attr:`act_quantizer` (the objects of :mod:`.binarize`), the config strings
    :attr:`weight_binarizer` / :attr:`act_binarizer`, ``alpha`` (a learnable per-output scale, initialised to the
    mean ``|w|`` of each output, for a learnable-scale binarizer, else ``None``), ``rsign`` (for ``'rsign'``) and
    answers :attr:`binary_weights`, :attr:`binary_activations`, :attr:`is_w1a1` and :meth:`scale`. Everything that
    asks "is this layer binary, what is its scale" (the ReBNN rule, the packed format, the deploy kernels, the
    model summary, the benchmarks) asks these.
    """
    weight_quantizer: WeightBinarizer
    act_quantizer: ActBinarizer

    def _init_binarizers(self, weight: str, act: str, in_channels: int, rsign_ndim=None) -> None:
        self.weight_quantizer = weight_binarizer(weight)
        self.act_quantizer = act_binarizer(act)
        if self.weight_quantizer.learnable_scale:
            self.alpha = nn.Parameter(channel_mean_abs(self.weight))
        else:
            self.register_parameter('alpha', None)
        self.rsign = RSign(in_channels, rsign_ndim) if self.act_quantizer.learnable_threshold else None
        self._track_weight_hat_grad = False
        self.weight_hat_grad: Optional[Tensor] = None

    # ---- what the layer is -----------------------------------------------------------------------------------
    @property
    def weight_binarizer(self) -> str:
        return self.weight_quantizer.name

    @property
    def act_binarizer(self) -> str:
        return self.act_quantizer.name

    @property
    def binary_weights(self) -> bool:
        """``w_hat = scale * sign(w)`` (1-bit weights) rather than the real weight."""
        return self.weight_quantizer.binary

    @property
    def binary_activations(self) -> bool:
        """The layer sees ``{-1, +1}`` inputs."""
        return self.act_quantizer.binary

    @property
    def is_w1a1(self) -> bool:
        """Binary weights and binary activations: its MACs are XNOR-popcount operations (BOPs)."""
        return self.binary_weights and self.binary_activations

    def scale(self) -> Tensor:
        """The per-output scale of ``w_hat`` (a detached copy): ``alpha``, or the mean ``|w|`` of each output for a
        fixed-scale binarizer. ``ValueError`` for real weights."""
        return self.weight_quantizer.scale(self.weight, self.alpha).detach().clone()

    # ---- initialisation and loading --------------------------------------------------------------------------
    def reset_parameters(self) -> None:
        """The layer's own initialisation (``nn.Conv2d`` / ``nn.Linear``), then ``alpha`` from the new weights."""
        super().reset_parameters()
        self.reset_alpha()

    def init_weights(self) -> None:
        """mmengine/mmcv initialisation hook: keep ``alpha`` consistent with weights initialised elsewhere.

        Its presence also tells mmcv's ``ConvModule`` not to re-initialise this layer behind alpha's back.
        """
        self.reset_alpha()

    @torch.no_grad()
    def reset_alpha(self) -> None:
        """Set ``alpha`` to the mean ``|w|`` of each output of the current latent weights (no-op without alpha)."""
        if getattr(self, 'alpha', None) is not None:
            self.alpha.copy_(channel_mean_abs(self.weight))

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        # A real-valued (or fixed-scale) checkpoint has no alpha: derive it from the weight being loaded.
        if self.alpha is not None and prefix + 'alpha' not in state_dict and prefix + 'weight' in state_dict:
            state_dict[prefix + 'alpha'] = channel_mean_abs(state_dict[prefix + 'weight'])
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)

    # ---- the binarized operands ------------------------------------------------------------------------------
    def binarize_input(self, x: Tensor) -> Tensor:
        """``B_a(x)``: the activations the layer sees (``{-1, +1}`` unless ``act_binarizer='none'``)."""
        if self.rsign is not None:
            return self.rsign(x)
        return approx_sign(x) if self.binary_activations else x

    def binarize_weight(self) -> Tensor:
        """``w_hat``: the weights the layer sees (``{-alpha_i, +alpha_i}`` per output for 'rebnn')."""
        return self.weight_quantizer(self.weight, self.alpha)

    def scales_output(self) -> bool:
        """Whether the forward applies the weight scale to the output (``scale * op(B_a(x), sign(w))``) rather than
        computing with ``w_hat = scale * sign(w)``: in eval mode with binary weights, unless
        :meth:`track_weight_hat_grad` is on *and* autograd is recording (the gradient hook of ReBNN's balanced
        parameter needs the ``w_hat`` tensor). Validation during training (no grad, ReBNNHook's tracking on)
        therefore computes exactly what ``tools/test.py`` and deploy mode compute. Both forms are the same
        function; they round differently."""
        return (not self.training and self.binary_weights
                and not (self._track_weight_hat_grad and torch.is_grad_enabled()))

    def track_weight_hat_grad(self, enabled: bool = True) -> None:
        """Accumulate ``dL/dw_hat`` into :attr:`weight_hat_grad` on every backward while ``enabled``."""
        self._track_weight_hat_grad = enabled
        self.weight_hat_grad = None

    def _accumulate_weight_hat_grad(self, grad: Tensor) -> None:
        if self.weight_hat_grad is None:
            self.weight_hat_grad = grad.detach().clone()
        else:
            self.weight_hat_grad.add_(grad.detach())

    def _tracked_weight_hat(self) -> Tensor:
        """``w_hat`` for a training-form forward, with the ``dL/dw_hat`` hook when tracking."""
        w_hat = self.binarize_weight()
        if self._track_weight_hat_grad and w_hat.requires_grad:
            w_hat.register_hook(self._accumulate_weight_hat_grad)
        return w_hat

    def binarizer_repr(self) -> str:
        return f'weight_binarizer={self.weight_binarizer!r}, act_binarizer={self.act_binarizer!r}'


def binary_weight_layers(module: nn.Module) -> List[Tuple[str, BinaryLayerMixin]]:
    """``(name, layer)`` for every binary layer of ``module`` whose weights are binary (what the ReBNN rule
    regularizes and the packed format stores as bits)."""
    return [(name, m) for name, m in module.named_modules() if isinstance(m, BinaryLayerMixin) and m.binary_weights]
