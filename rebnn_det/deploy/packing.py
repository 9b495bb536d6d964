"""The packed 1-bit format shared by export (files) and the XNOR-popcount kernel (inference).

Format (version 1):
- word size 64 bits; a packed tensor is ``torch.int64`` holding the bit pattern of an unsigned 64-bit word;
- bits run along the **channel** axis, which is moved last: channel ``c`` is bit ``c % 64`` (bit 0 = least
  significant) of word ``c // 64``;
- bit value 1 means the sign is -1 (``x < 0``), 0 means +1 (``x >= 0``; ``sign(0) = +1`` as in training);
- the tail bits of the last word (channels ``C .. 64*ceil(C/64)-1``) are 0, so ``XOR`` + ``popcount`` over whole
  words counts only real channels and ``sum_c a_c b_c = C - 2 * popcount(a XOR b)``.

A conv weight ``[C_out, C_in/groups, kh, kw]`` packs to ``[C_out, kh, kw, ceil((C_in/groups)/64)]``; an activation
``[N, C, H, W]`` packs to ``[N, H, W, ceil(C/64)]`` (channels-last pixels). Nothing here imports mmdet/mmengine.
"""
import torch
from torch import Tensor

from ..ops.binarize import sign_bit

WORD_BITS = 64


def _shifts(device) -> Tensor:
    return torch.arange(WORD_BITS, dtype=torch.int64, device=device)


def num_words(channels: int) -> int:
    """Words needed for ``channels`` sign bits."""
    return (channels + WORD_BITS - 1) // WORD_BITS


def pack_signs_last(x: Tensor) -> Tensor:
    """Pack the signs of ``x`` along its **last** axis: ``[..., C]`` -> ``[..., ceil(C/64)]`` int64 words."""
    channels = x.shape[-1]
    words = num_words(channels)
    bits = sign_bit(x).to(torch.int64)
    pad = words * WORD_BITS - channels
    if pad:
        bits = torch.nn.functional.pad(bits, (0, pad))
    bits = bits.view(*x.shape[:-1], words, WORD_BITS) << _shifts(x.device)
    # distinct powers of two: the sum is the bitwise OR (bit 63 alone makes the int64 negative, no overflow)
    return bits.sum(-1)


def unpack_signs_last(packed: Tensor, channels: int, dtype=torch.float32) -> Tensor:
    """Inverse of :func:`pack_signs_last`: ``[..., words]`` -> ``[..., channels]`` of ``-1.0 / +1.0``."""
    if packed.dtype != torch.int64:
        raise TypeError(f'packed signs must be torch.int64 words, got {packed.dtype}')
    words = packed.shape[-1]
    if words != num_words(channels):
        raise ValueError(f'{words} packed words hold {words * WORD_BITS} channels; {channels} channels need '
                         f'{num_words(channels)}')
    bits = (packed.unsqueeze(-1) >> _shifts(packed.device)) & 1
    bits = bits.flatten(-2)[..., :channels]
    return (1 - 2 * bits).to(dtype)


def pack_conv_weight(weight: Tensor) -> Tensor:
    """Signs of a conv weight ``[C_out, C_in/g, kh, kw]`` -> ``[C_out, kh, kw, words]`` (see module docstring)."""
    if weight.dim() != 4:
        raise ValueError(f'expected a 4-d conv weight [C_out, C_in/groups, kh, kw], got shape {tuple(weight.shape)}')
    return pack_signs_last(weight.permute(0, 2, 3, 1))


def unpack_conv_weight(packed: Tensor, in_channels_per_group: int, dtype=torch.float32) -> Tensor:
    """``[C_out, kh, kw, words]`` -> ``[C_out, C_in/g, kh, kw]`` of ``-1 / +1``."""
    if packed.dim() != 4:
        raise ValueError(f'expected packed conv weight [C_out, kh, kw, words], got shape {tuple(packed.shape)}')
    return unpack_signs_last(packed, in_channels_per_group, dtype).permute(0, 3, 1, 2).contiguous()


def pack_activations(x: Tensor, threshold: Tensor = None) -> Tensor:
    """Binarize ``x [N, C, H, W]`` as training does (``sign(x - threshold)``, RSign) and pack the channels of each
    pixel: ``[N, H, W, words]``. ``threshold``: per-channel (any shape with C elements) or ``None`` (sign(x))."""
    if threshold is not None:
        x = x - threshold.reshape(1, -1, 1, 1).to(x.dtype)
    return pack_signs_last(x.permute(0, 2, 3, 1))
