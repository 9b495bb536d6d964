"""Binarizers of ReBNN (Xu et al., AAAI 2023, arXiv 2302.00956) and the BNNs it builds on.

One small function per binarizer; the forward and the gradient each one defines are in its docstring.
Convention used everywhere: ``sign(0) = +1``, so a binarized tensor holds exactly ``{-1, +1}`` (or ``{-a, +a}``).
Nothing here imports mmdet or mmengine.
"""
import torch
from torch import Tensor

WEIGHT_BINARIZERS = ('rebnn', 'xnor', 'none')
ACT_BINARIZERS = ('rsign', 'approxsign', 'none')


def sign_bit(x: Tensor) -> Tensor:
    """The sign convention, once: ``True`` where ``sign(x) = -1`` (``x < 0``), ``False`` where ``sign(x) = +1``
    (``x >= 0``, so ``sign(0) = +1``). Training (:func:`hard_sign`) and the packed 1-bit format (bit 1 = -1) use it."""
    return x < 0


def hard_sign(x: Tensor) -> Tensor:
    """sign(x) with sign(0) = +1; no gradient (use :func:`approx_sign` or :func:`sign_ste` for training)."""
    return torch.where(sign_bit(x), -torch.ones_like(x), torch.ones_like(x))


class _ApproxSign(torch.autograd.Function):

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return hard_sign(x)

    @staticmethod
    def backward(ctx, grad_out):
        x, = ctx.saved_tensors
        # d sign(x)/dx ~ 2 - 2|x| on [-1, 1), 0 elsewhere (Bi-Real Net's ApproxSign).
        return grad_out * (2 - 2 * x.abs()).clamp_(min=0)


def approx_sign(x: Tensor) -> Tensor:
    """Activation binarizer: forward ``sign(x)``; backward ApproxSign (Bi-Real Net, used by ReBNN Sec. 3).

    ``dsign/dx = 2 + 2x`` for ``-1 <= x < 0``, ``2 - 2x`` for ``0 <= x < 1``, ``0`` otherwise.
    """
    return _ApproxSign.apply(x)


class _SignSTE(torch.autograd.Function):

    @staticmethod
    def forward(ctx, w):
        ctx.save_for_backward(w)
        return hard_sign(w)

    @staticmethod
    def backward(ctx, grad_out):
        w, = ctx.saved_tensors
        return grad_out * (w.abs() <= 1).to(grad_out.dtype)


def sign_ste(w: Tensor) -> Tensor:
    """Clipped straight-through sign: forward ``b = sign(w)``; backward ``db/dw = 1{|w| <= 1}``."""
    return _SignSTE.apply(w)


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


def weight_factors(w: Tensor, binarizer: str, alpha=None):
    """The binary weight ``w_hat = alpha * b`` as its two factors ``(b, alpha)``: ``b = sign_ste(w)`` (clipped STE
    gradient) and the per-output-channel scale (``alpha`` for 'rebnn', the channel mean ``|w|`` for 'xnor', a
    constant in backward). ``scale_signs(*weight_factors(...))`` is ``w_hat``; an eval-mode conv applies the scale
    to the ``{-1, +1}`` conv's exact integer output instead (one rounding, what the packed kernels compute)."""
    if binarizer == 'rebnn':
        return sign_ste(w), alpha
    if binarizer == 'xnor':
        return sign_ste(w), channel_mean_abs(w)
    raise ValueError(f'weight binarizer {binarizer!r} has no (signs, scale) factors')


def binarize_weight_rebnn(w: Tensor, alpha: Tensor) -> Tensor:
    """ReBNN weight binarizer (paper Eq. 1): ``w_hat = alpha_i * sign(w_i)``, alpha learnable per channel.

    Gradients (Eq. 3 without the reconstruction term, which :class:`ReBNNHook` adds):
    ``dL/dw_ij = alpha_i * dL/dw_hat_ij * 1{|w_ij| <= 1}`` and ``dL/dalpha_i = sum_j dL/dw_hat_ij * b_ij``.
    """
    return scale_signs(*weight_factors(w, 'rebnn', alpha))


def binarize_weight_xnor(w: Tensor) -> Tensor:
    """XNOR-Net/Bi-Real/ReActNet weight binarizer: ``w_hat = mean|w_i| * sign(w_i)``, the scale not learnable.

    The scale is recomputed every forward and treated as a constant in backward:
    ``dL/dw_ij = mean|w_i| * dL/dw_hat_ij * 1{|w_ij| <= 1}``.
    """
    return scale_signs(*weight_factors(w, 'xnor'))


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
