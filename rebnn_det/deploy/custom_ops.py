"""The compiled kernels as PyTorch custom operators: ``torch.ops.rebnn.*``.

``csrc/ops.cpp`` registers each operator with ``torch.library`` (its schema and the CPU kernel) when the
library is loaded -- by importing ``rebnn_det._C`` from Python, or by ``dlopen`` of the plain C++ library in a
libtorch program. This module adds what tracing needs: a *fake* implementation of each operator (the output
shape, dtype and strides from the input metadata alone, no data), so deploy models run under ``torch.compile``
and trace under ``torch.export`` with the operators as single nodes of the graph.

Operators (all functional: fresh outputs, nothing mutated or aliased):

- ``pack_padded(x, threshold, pad_h, pad_w, pad_value, isa) -> int64 [N, H + 2 pad_h, W + 2 pad_w, words]``
- ``conv_counts(x, threshold, weight, tap_sum, out_channels, kh, kw, stride_h, stride_w, pad_h, pad_w, pad_value,
  isa) -> int32 [N, C_out, H_o, W_o]`` (channels-last)
- ``binary_conv(x, ..., pack_next, ..., out_nchw, relu) -> (float32 [N, C_out, H_o, W_o], packed next input)``
  (channels-last, or NCHW with ``out_nchw``; the second output is an empty int64 tensor without ``pack_next``)
- ``max_pool2d_channels_last(x, kh, kw, stride_h, stride_w, pad_h, pad_w, bn_scale, bn_shift, relu, isa)``
- ``roi_align_levels(feats, spatial_scales, rois, level, out_h, out_w, sampling_ratio, aligned)
  -> float32 [K, C, out_h, out_w]``

No mmdet, mmcv or mmengine import: an exported model runs with torch and this module only.
"""
from typing import Optional, Sequence

import torch
from torch import Tensor

WORD_BITS = 64  # bits per packed int64 word (:mod:`.packing`)
NAMESPACE = 'rebnn'
OPERATORS = ('pack_padded', 'conv_counts', 'binary_conv', 'max_pool2d_channels_last', 'roi_align_levels')


def _words(channels: int) -> int:
    return (channels + WORD_BITS - 1) // WORD_BITS


def _channels_last(n, c, h, w, dtype, like: Tensor) -> Tensor:
    return torch.empty((n, c, h, w), dtype=dtype, device=like.device, memory_format=torch.channels_last)


def _conv_out_size(padded: int, kernel: int, stride: int) -> int:
    return (padded - kernel) // stride + 1


def _fake_pack_padded(x: Tensor, threshold: Optional[Tensor], pad_h: int, pad_w: int, pad_value: float,
                      isa: str = 'auto') -> Tensor:
    n, c, h, w = x.shape
    return x.new_empty((n, h + 2 * pad_h, w + 2 * pad_w, _words(c)), dtype=torch.int64)


def _fake_conv_counts(x: Tensor, threshold, weight, tap_sum, out_channels: int, kh: int, kw: int, stride_h: int,
                      stride_w: int, pad_h: int, pad_w: int, pad_value: float, isa: str = 'auto') -> Tensor:
    n, _, h, w = x.shape
    return _channels_last(n, out_channels, _conv_out_size(h + 2 * pad_h, kh, stride_h),
                          _conv_out_size(w + 2 * pad_w, kw, stride_w), torch.int32, x)


def _fake_binary_conv(x: Optional[Tensor], threshold, weight: Tensor, tap_sum, out_channels: int, kh: int, kw: int,
                      stride_h: int, stride_w: int, pad_h: int, pad_w: int, pad_value: float, scale: Tensor,
                      bias=None, bn_scale=None, bn_shift=None, residual=None, act_in=None, act_slope=None,
                      act_out=None, isa: str = 'auto', packed_input: Optional[Tensor] = None, in_channels: int = 0,
                      pack_next: bool = False, next_threshold=None, next_pad_h: int = 0, next_pad_w: int = 0,
                      next_pad_value: float = 0.0, out_nchw: bool = False, relu: bool = False):
    if packed_input is not None:
        n, hp, wp = packed_input.shape[:3]
        like = packed_input
    else:
        n, hp, wp = x.shape[0], x.shape[2] + 2 * pad_h, x.shape[3] + 2 * pad_w
        like = x
    ho, wo = _conv_out_size(hp, kh, stride_h), _conv_out_size(wp, kw, stride_w)
    if out_nchw:
        y = like.new_empty((n, out_channels, ho, wo), dtype=torch.float32)
    else:
        y = _channels_last(n, out_channels, ho, wo, torch.float32, like)
    if pack_next:
        bits = like.new_empty((n, ho + 2 * next_pad_h, wo + 2 * next_pad_w, _words(out_channels)), dtype=torch.int64)
    else:
        bits = like.new_empty((0, ), dtype=torch.int64)
    return y, bits


def _fake_max_pool(x: Tensor, kh: int, kw: int, stride_h: int, stride_w: int, pad_h: int, pad_w: int,
                   bn_scale=None, bn_shift=None, relu: bool = False, isa: str = 'auto') -> Tensor:
    n, c, h, w = x.shape
    ho, wo = _conv_out_size(h + 2 * pad_h, kh, stride_h), _conv_out_size(w + 2 * pad_w, kw, stride_w)
    return _channels_last(n, c, ho, wo, x.dtype, x)


def _fake_roi_align_levels(feats: Sequence[Tensor], spatial_scales: Sequence[float], rois: Tensor, level: Tensor,
                           out_h: int, out_w: int, sampling_ratio: int, aligned: bool) -> Tensor:
    return feats[0].new_empty((rois.shape[0], feats[0].shape[1], out_h, out_w))


_FAKES = {
    'pack_padded': _fake_pack_padded,
    'conv_counts': _fake_conv_counts,
    'binary_conv': _fake_binary_conv,
    'max_pool2d_channels_last': _fake_max_pool,
    'roi_align_levels': _fake_roi_align_levels,
}
_registered = False


def register_fakes() -> None:
    """Register the fake implementations (once per process; the C++ library must be loaded first)."""
    global _registered
    if _registered:
        return
    for name, fake in _FAKES.items():
        torch.library.register_fake(f'{NAMESPACE}::{name}', fake)
    _registered = True


def load_library(path: Optional[str] = None) -> None:
    """Load the operators: the Python extension ``rebnn_det._C`` (default) or the C++ library at ``path``
    (``torch.ops.load_library``), then register the fake implementations. Raises ImportError / OSError when
    neither can be loaded."""
    if path is None:
        from .. import _C  # noqa: F401  (its load registers torch.ops.rebnn.*)
    else:
        torch.ops.load_library(path)
    register_fakes()


def operator(name: str):
    """``torch.ops.rebnn.<name>`` (the operator's overload packet)."""
    if name not in OPERATORS:
        raise ValueError(f'unknown rebnn operator {name!r}; the operators are {", ".join(OPERATORS)}')
    return getattr(getattr(torch.ops, NAMESPACE), name)
