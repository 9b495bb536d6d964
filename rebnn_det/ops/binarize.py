"""Binarizers of ReBNN (Xu et al., AAAI 2023, arXiv 2302.00956) and the BNNs it builds on.

One small function per rule (sign, the STE, alpha * sign(w)), and one small object per binarizer choice, like
larq's quantizers: :class:`WeightBinarizer` (``'rebnn'``, ``'xnor'``, ``'none'``) and :class:`ActBinarizer`
(``'rsign'``, ``'approxsign'``, ``'none'``) each answer "how many bits, is the scale learnable, what are the
factors (signs, scale)" -- the one definition of "binary" that training, the ReBNN rule, the packed format, the
deploy kernels and the model summary all ask. Their forward and gradient are in the docstrings.
Convention used everywhere: ``sign(0) = +1``, so a binarized tensor holds exactly ``{-1, +1}`` (or ``{-a, +a}``).
Nothing here imports mmdet or mmengine.
"""
from dataclasses import dataclass
from typing import Optional, Tuple

import torch
from torch import Tensor


def sign_bit(x: Tensor) -> Tensor:
    """The sign convention, once: ``True`` where ``sign(x) = -1`` (``x < 0``), ``False`` where ``sign(x) = +1``
    (``x >= 0``, so ``sign(0) = +1``). Training (:func:`hard_sign`) and the packed 1-bit format (bit 1 = -1) use it."""
    return x < 0


def hard_sign(x: Tensor) -> Tensor:
    """sign(x) with sign(0) = +1; no gradient (use :func:`approx_sign` or :func:`sign_ste` for training)."""
    return torch.where(sign_bit(x), -torch.ones_like(x), torch.ones_like(x))


class _Sign(torch.autograd.Function):
    """``sign(x)`` forward; backward ``grad_out * surrogate(x)``: the one sign of training, with its pseudo-gradient
    given by the binarizer (ApproxSign for activations, the clipped STE for weights)."""

    @staticmethod
    def forward(ctx, x, surrogate):
        ctx.save_for_backward(x)
        ctx.surrogate = surrogate
        return hard_sign(x)

    @staticmethod
    def backward(ctx, grad_out):
        x, = ctx.saved_tensors
        return grad_out * ctx.surrogate(x).to(grad_out.dtype), None


def _approx_sign_grad(x: Tensor) -> Tensor:
    # d sign(x)/dx ~ 2 - 2|x| on [-1, 1), 0 elsewhere (Bi-Real Net's ApproxSign).
    return (2 - 2 * x.abs()).clamp_(min=0)


def _clipped_ste_grad(w: Tensor) -> Tensor:
    return w.abs() <= 1


def approx_sign(x: Tensor) -> Tensor:
    """Activation binarizer: forward ``sign(x)``; backward ApproxSign (Bi-Real Net, used by ReBNN Sec. 3).

    ``dsign/dx = 2 + 2x`` for ``-1 <= x < 0``, ``2 - 2x`` for ``0 <= x < 1``, ``0`` otherwise.
    """
    return _Sign.apply(x, _approx_sign_grad)


def sign_ste(w: Tensor) -> Tensor:
    """Clipped straight-through sign: forward ``b = sign(w)``; backward ``db/dw = 1{|w| <= 1}``."""
    return _Sign.apply(w, _clipped_ste_grad)


def per_channel(scale: Tensor, like: Tensor) -> Tensor:
    """``scale`` (one value per output channel) viewed to broadcast over ``like`` (``(C_out, 1, 1, 1)``)."""
    return scale.view(-1, *([1] * (like.dim() - 1)))


def channel_mean_abs(w: Tensor) -> Tensor:
    """Per-output-channel ``mean_j |w_ij|`` (XNOR-Net's optimal scale; ReBNN's initial alpha)."""
    return w.detach().abs().flatten(1).mean(1)


def scale_signs(signs: Tensor, alpha: Tensor) -> Tensor:
    """The binary weight of Eq. 1 from its signs: ``w_hat_ij = alpha_i * b_ij``, ``b`` in ``{-1, +1}``.

    The one definition of ``alpha * sign(w)``: the binarizers below call it on ``sign_ste(w)`` (training,
    with the STE gradient), the ReBNN regularizer on ``hard_sign(w)`` (its residual ``w - alpha * b``).
    """
    return per_channel(alpha, signs) * signs


@dataclass(frozen=True)
class Binarizer:
    """A binarizer choice: the config string ``name`` and its precision (``bits``: 1 binary, 32 real)."""
    name: str
    bits: int

    @property
    def binary(self) -> bool:
        return self.bits == 1


@dataclass(frozen=True)
class WeightBinarizer(Binarizer):
    """A weight binarizer: ``w_hat = scale * sign(w)`` for 1 bit, the real weight (``'none'``) for 32.

    ``learnable_scale``: the scale is the layer's ``alpha`` parameter (``'rebnn'``, Eq. 1) rather than the
    channel mean ``|w|`` recomputed every forward (``'xnor'``). :meth:`factors` and :meth:`scale` give them.
    """
    learnable_scale: bool = False

    def factors(self, w: Tensor, alpha: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        """``(b, scale)`` with ``w_hat = scale_signs(b, scale)``: ``b = sign_ste(w)`` (clipped STE gradient),
        ``scale`` = ``alpha`` (gradient ``dL/dalpha_i = sum_j dL/dw_hat_ij b_ij``) or the channel mean ``|w|``
        (a constant in backward). ``ValueError`` for a real weight."""
        return sign_ste(w), self.scale(w, alpha)

    def scale(self, w: Tensor, alpha: Optional[Tensor] = None) -> Tensor:
        """The per-output-channel scale of ``w_hat`` (``alpha`` itself for a learnable scale)."""
        if not self.binary:
            raise ValueError(f'weight binarizer {self.name!r} has no (signs, scale) factors')
        if self.learnable_scale:
            if alpha is None:
                raise ValueError(f'weight binarizer {self.name!r} needs the learnable alpha')
            return alpha
        return channel_mean_abs(w)

    def __call__(self, w: Tensor, alpha: Optional[Tensor] = None) -> Tensor:
        """``w_hat``: ``scale * sign(w)`` for a binary weight, ``w`` itself for a real one."""
        return scale_signs(*self.factors(w, alpha)) if self.binary else w


@dataclass(frozen=True)
class ActBinarizer(Binarizer):
    """An activation binarizer: ``sign(x - beta)`` forward with the ApproxSign gradient for 1 bit, the real input
    (``'none'``) for 32. ``learnable_threshold``: ``beta`` is a learnable parameter per channel (RSign), else 0."""
    learnable_threshold: bool = False


_WEIGHT_BINARIZERS = (WeightBinarizer('rebnn', 1, True), WeightBinarizer('xnor', 1, False),
                      WeightBinarizer('none', 32, False))
_ACT_BINARIZERS = (ActBinarizer('rsign', 1, True), ActBinarizer('approxsign', 1, False),
                   ActBinarizer('none', 32, False))
WEIGHT_BINARIZERS = tuple(b.name for b in _WEIGHT_BINARIZERS)  # the config strings
ACT_BINARIZERS = tuple(b.name for b in _ACT_BINARIZERS)


def binary_weight_choices() -> Tuple[str, ...]:
    """The config strings of the weight binarizers with 1-bit weights."""
    return tuple(b.name for b in _WEIGHT_BINARIZERS if b.binary)


def binary_act_choices() -> Tuple[str, ...]:
    """The config strings of the activation binarizers with 1-bit activations."""
    return tuple(b.name for b in _ACT_BINARIZERS if b.binary)


def weight_binarizer(name: str) -> WeightBinarizer:
    """The weight binarizer a config string names (``ValueError`` naming the allowed values otherwise)."""
    check_choice('weight_binarizer', name, WEIGHT_BINARIZERS)
    return _WEIGHT_BINARIZERS[WEIGHT_BINARIZERS.index(name)]


def act_binarizer(name: str) -> ActBinarizer:
    """The activation binarizer a config string names (``ValueError`` naming the allowed values otherwise)."""
    check_choice('act_binarizer', name, ACT_BINARIZERS)
    return _ACT_BINARIZERS[ACT_BINARIZERS.index(name)]


def binarize_weight_rebnn(w: Tensor, alpha: Tensor) -> Tensor:
    """ReBNN weight binarizer (paper Eq. 1): ``w_hat = alpha_i * sign(w_i)``, alpha learnable per channel.

    Gradients (Eq. 3 without the reconstruction term, which :class:`ReBNNHook` adds):
    ``dL/dw_ij = alpha_i * dL/dw_hat_ij * 1{|w_ij| <= 1}`` and ``dL/dalpha_i = sum_j dL/dw_hat_ij * b_ij``.
    """
    return weight_binarizer('rebnn')(w, alpha)


def binarize_weight_xnor(w: Tensor) -> Tensor:
    """XNOR-Net/Bi-Real/ReActNet weight binarizer: ``w_hat = mean|w_i| * sign(w_i)``, the scale not learnable.

    The scale is recomputed every forward and treated as a constant in backward:
    ``dL/dw_ij = mean|w_i| * dL/dw_hat_ij * 1{|w_ij| <= 1}``.
    """
    return weight_binarizer('xnor')(w)


PAD_VALUES = (0.0, 1.0, -1.0)  # padding constants of a binary conv's input: 0 (nn.Conv2d's), or a +-1 value


def check_pad_value(pad_value) -> float:
    """``pad_value`` as a float if it is one of :data:`PAD_VALUES` (what ReBNNConv and the deploy kernels
    compute exactly), else a ``ValueError`` naming the allowed values (NaN, 0.5 ... are refused)."""
    try:
        value = float(pad_value)
    except (TypeError, ValueError):
        value = None
    if value not in PAD_VALUES:
        raise ValueError(f'pad_value must be one of 0, +1, -1 (the padding constants the binary conv and its '
                         f'kernels support), got {pad_value!r}')
    return value


def check_choice(kind: str, value: str, allowed) -> str:
    """Return ``value`` if it is in ``allowed``, else raise a ``ValueError`` naming the allowed values."""
    if value not in allowed:
        raise ValueError(f'unknown {kind} {value!r}; allowed: {", ".join(map(repr, allowed))}')
    return value
