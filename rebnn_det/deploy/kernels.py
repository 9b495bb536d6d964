"""XNOR-popcount binary convolution: dispatch between the compiled kernels (``rebnn_det._C``) and a pure-PyTorch
reference path.

For a binary conv with packed activations ``a`` (RSign: ``sign(x - beta)``) and packed weight signs ``b``, the
output at pixel ``p`` and output channel ``o`` is the integer

    count[o, p] = sum over valid taps t of (C_in - 2 * popcount(a[p + t] XOR b[o, t]))  =  sum_t sum_c a_c * b_c,

(``a . b = n - 2 popcount(a XOR b)`` for ``n`` channels in ``{-1, +1}``). "Valid" depends on ``pad_value``: with 0
(training's zero padding) a padded tap contributes 0; with ``+1`` / ``-1`` every tap counts, the padded input being
that constant. The float output repeats the simulated model's arithmetic step by step (eval mode), each step rounded
once like the torch op it mirrors, so it is bit-identical to it: ``y = scale[o] * count`` (``scale = alpha``: the
eval-mode ReBNNConv's ``alpha * conv(sign, sign)``), ``+ shift[o]`` (the conv's bias), then optionally a BatchNorm
``y = fma(y, bn_scale[o], bn_shift[o])`` (PyTorch's CPU eval BatchNorm: one fused multiply-add with its per-channel
terms, see :func:`bn_terms`), ``+ residual`` and RPReLU ``prelu(y - shift_in, slope) + shift_out``.

Kernel paths (``REBNN_KERNEL_ISA`` or the ``isa`` argument): ``'avx512'`` (AVX-512 VPOPCNTDQ), ``'avx2'`` (nibble
lookup popcount), ``'portable'`` (``__builtin_popcountll``), ``'reference'`` (unpack + float64 ``F.conv2d``, the
path used without the compiled extension and for geometry the kernels don't cover: dilation != 1, groups != 1),
``'auto'`` (default: the best the CPU runs). The native kernels cover any kernel size, stride and padding.
"""
import os
from typing import NamedTuple, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from ..caller_warning import warn_at_caller
from ..ops.binarize import check_pad_value
from ..ops.shortcut import channel_shortcut
from . import custom_ops
from .packing import num_words, pack_activations, pack_signs_last, unpack_conv_weight, unpack_signs_last

ISA_ENV = 'REBNN_KERNEL_ISA'
NATIVE_ISAS = ('avx512', 'avx2', 'portable')
ISAS = ('auto', ) + NATIVE_ISAS + ('reference', )
LANES = 8  # output channels per kernel vector (8 x 64-bit lanes of a 512-bit register)

_ext = None
_ext_error: Optional[str] = None
_native_isas: Tuple[str, ...] = ()  # what the extension's CPU check admits, best first
_warned_missing = False


def _load_extension():
    """``rebnn_det._C`` (its import registers the operators ``torch.ops.rebnn.*``, :mod:`.custom_ops`), or None."""
    global _ext, _ext_error, _native_isas
    if _ext is None and _ext_error is None:
        try:
            from .. import _C
            custom_ops.register_fakes()
            _native_isas = tuple(_C.available_isas())  # asked once: plain Python from here (torch.compile traces it)
            _ext = _C
        except ImportError as e:  # not built (failed build, other architecture): the reference path is used
            _ext_error = str(e)
    return _ext


def extension_available() -> bool:
    """Whether the compiled kernels (``rebnn_det._C``) could be imported."""
    return _load_extension() is not None


def available_isas() -> Tuple[str, ...]:
    """The kernel paths this machine can run, best first (``'reference'`` always)."""
    return (_native_isas if _load_extension() is not None else ()) + ('reference', )


def _requested_isa(isa: Optional[str]) -> str:
    return isa if isa is not None else (os.environ.get(ISA_ENV) or 'auto')


def kernel_isa(isa: Optional[str] = None) -> str:
    """Resolve the kernel path: ``isa`` if given, else ``$REBNN_KERNEL_ISA``, else ``'auto'`` (the best available).

    Forcing a path this machine cannot run (a native one without the extension, AVX-512 on an AVX2 CPU) is an
    error. Without the extension ``'auto'`` resolves to ``'reference'`` and warns once.
    """
    global _warned_missing
    requested = _requested_isa(isa)
    if requested not in ISAS:
        source = 'isa argument' if isa is not None else f'${ISA_ENV}'
        raise ValueError(f'unknown kernel ISA {requested!r} (from {source}); allowed: '
                         f'{", ".join(map(repr, ISAS))}')
    if requested == 'reference':
        return requested
    ext = _load_extension()
    if ext is None:
        if requested != 'auto':
            raise RuntimeError(f'kernel ISA {requested!r} needs the compiled extension rebnn_det._C, which is not '
                               f'available ({_ext_error}); reinstall with `pip install --no-build-isolation -e .` '
                               "or use 'reference'")
        if not _warned_missing:
            _warned_missing = True
            warn_at_caller('rebnn_det._C (the XNOR-popcount kernels) is not built; binary convolutions run on the '
                           f'slow pure-PyTorch reference path ({_ext_error})', RuntimeWarning)
        return 'reference'
    if requested == 'auto':
        return _native_isas[0]
    if requested not in _native_isas:
        raise RuntimeError(f'this CPU cannot run the {requested!r} kernel path; available: '
                           f'{", ".join(map(repr, available_isas()))}')
    return requested


class KernelWeight:
    """A binary conv weight ready for the kernels: the kernel layout ``kernel`` ``[ceil(C_out/8), kh*kw*words, 8]``
    int64 (8 output channels per vector, zero-padded), ``tap_sum[kh*kw, C_out] = sum_c b[o, tap, c]`` (int16: the
    correction of zero padding, ``|tap_sum| <= C_in``), the input channels, and -- derived from the kernel layout
    when asked for, so it is stored once -- the packed signs ``packed`` (format of :mod:`.packing`,
    ``[C_out, kh, kw, words]``)."""
    __slots__ = ('kernel', 'tap_sum', 'in_channels', 'out_channels', 'kernel_size', '_packed')

    def __init__(self, kernel: Tensor, tap_sum: Tensor, in_channels: int, out_channels: int, kernel_size,
                 packed: Optional[Tensor] = None):
        self.kernel, self.tap_sum, self.in_channels = kernel, tap_sum, in_channels
        self.out_channels, self.kernel_size = out_channels, pair(kernel_size)
        self._packed = packed

    @property
    def packed(self) -> Tensor:
        if self._packed is None:
            self._packed = packed_from_kernel_layout(self.kernel, self.out_channels, self.kernel_size)
        return self._packed

    def to(self, device) -> 'KernelWeight':
        return KernelWeight(self.kernel.to(device), self.tap_sum.to(device), self.in_channels, self.out_channels,
                            self.kernel_size, None if self._packed is None else self._packed.to(device))


def kernel_layout(packed: Tensor) -> Tensor:
    """``[C_out, kh, kw, words]`` -> ``[ceil(C_out/8), kh*kw*words, 8]`` int64 (the kernel's weight layout)."""
    c_out = packed.shape[0]
    flat = packed.reshape(c_out, -1)
    blocks = -(-c_out // LANES)
    flat = F.pad(flat, (0, 0, 0, blocks * LANES - c_out))
    return flat.view(blocks, LANES, -1).transpose(1, 2).contiguous()


def packed_from_kernel_layout(kernel: Tensor, out_channels: int, kernel_size) -> Tensor:
    """The inverse of :func:`kernel_layout`: ``[ceil(C_out/8), kh*kw*words, 8]`` -> ``[C_out, kh, kw, words]``."""
    kh, kw = pair(kernel_size)
    blocks, taps_words, lanes = kernel.shape
    flat = kernel.transpose(1, 2).reshape(blocks * lanes, taps_words)[:out_channels]
    return flat.reshape(out_channels, kh, kw, taps_words // (kh * kw)).contiguous()


def prepare_weight(packed: Tensor, in_channels: int) -> KernelWeight:
    """Build a :class:`KernelWeight` from packed weight signs ``[C_out, kh, kw, words]`` of ``in_channels``."""
    if packed.dtype != torch.int64 or packed.dim() != 4:
        raise ValueError(f'packed weight must be int64 [C_out, kh, kw, words], got {packed.dtype} '
                         f'{tuple(packed.shape)}')
    if packed.shape[-1] != num_words(in_channels):
        raise ValueError(f'packed weight has {packed.shape[-1]} words per tap; {in_channels} input channels need '
                         f'{num_words(in_channels)}')
    signs = unpack_conv_weight(packed, in_channels, torch.int32)  # [C_out, C_in, kh, kw]
    tap_sum = signs.sum(1).flatten(1).t().to(torch.int16).contiguous()  # [kh*kw, C_out]
    return KernelWeight(kernel_layout(packed), tap_sum, in_channels, packed.shape[0], tuple(packed.shape[1:3]),
                        packed.contiguous())


def pair(v) -> Tuple[int, int]:
    """A conv geometry argument (an int or two) as ``(int, int)``."""
    if isinstance(v, int):
        return int(v), int(v)
    if len(v) != 2:
        raise ValueError(f'a conv size is an int or two ints, got {tuple(v)}')
    return int(v[0]), int(v[1])


def native_supported(dilation=1, groups: int = 1) -> bool:
    """Geometry the compiled kernels run (any kernel size, stride and padding; dilation 1; groups 1)."""
    return pair(dilation) == (1, 1) and groups == 1


def _path_for(x: Tensor, isa: Optional[str]) -> str:
    """The kernel path for input ``x``, as the operators' ``isa`` argument: ``'reference'`` for tensors on any other
    device than the CPU (the compiled kernels are CPU code) and where :func:`kernel_isa` resolves to it; else the
    forced native path, or ``'auto'`` when none is forced -- the operator then picks the best path of the CPU it
    runs on (so a traced or exported graph is not tied to the machine that traced it)."""
    if x.device.type != 'cpu':
        return 'reference'
    path = kernel_isa(isa)
    return 'auto' if path != 'reference' and _requested_isa(isa) == 'auto' else path


def _reference_counts(x: Tensor, threshold: Optional[Tensor], weight: KernelWeight, stride, padding,
                      pad_value: float, dilation, groups: int) -> Tensor:
    """Unpack + float64 ``F.conv2d`` (exact integer sums) with the padding constant; int32 NCHW counts."""
    channels = x.shape[1]
    packed = pack_activations(x.float(), threshold)  # [N, H, W, words]
    signs = unpack_signs_last(packed, channels, torch.float64).permute(0, 3, 1, 2)
    w = unpack_conv_weight(weight.packed, weight.in_channels, torch.float64)
    ph, pw = pair(padding)
    if pad_value != 0 and (ph or pw):
        signs = F.pad(signs, (pw, pw, ph, ph), value=pad_value)
        ph = pw = 0
    out = F.conv2d(signs, w, None, pair(stride), (ph, pw), pair(dilation), groups)
    return out.round().to(torch.int32)


def binary_conv_counts(x: Tensor, threshold: Optional[Tensor], weight: KernelWeight, stride=1, padding=0,
                       pad_value: float = 0.0, dilation=1, groups: int = 1, isa: Optional[str] = None) -> Tensor:
    """The exact integer counts ``sum_valid taps sum_c a_c b_c`` as int32 ``[N, C_out, H_o, W_o]``."""
    pad_value = check_pad_value(pad_value)
    path = _path_for(x, isa)
    if path == 'reference' or not native_supported(dilation, groups):
        return _reference_counts(x, threshold, weight, stride, padding, pad_value, dilation, groups)
    kh, kw = weight.kernel_size
    (sh, sw), (ph, pw) = pair(stride), pair(padding)
    return torch.ops.rebnn.conv_counts(x.float(), threshold, weight.kernel, weight.tap_sum, weight.out_channels,
                                       kh, kw, sh, sw, ph, pw, pad_value, path)


def bn_terms(bn) -> Tuple[Tensor, Tensor]:
    """``(bn_scale, bn_shift)`` of an eval-mode BatchNorm exactly as PyTorch's CPU kernel computes them.

    PyTorch (CPU, float32, eval) computes ``y = fma(x, a, b)`` per channel with ``a = weight / sqrt(var + eps)``
    and ``b = bias - mean * a`` (itself fused), for NCHW and channels-last inputs alike. Rather than re-deriving
    ``a`` and ``b`` (how ``1 / sqrt`` and the fused ``b`` round is the library's business), they are read back
    from ``F.batch_norm`` itself: on an input of ones with zero mean and bias the output is ``fma(1, a, 0) = a``;
    on zeros with the real statistics it is ``fma(0, a, b) = b``."""
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError('a BatchNorm without running statistics (track_running_stats=False) has no eval form')
    mean, var = bn.running_mean.detach().float(), bn.running_var.detach().float()
    weight = None if bn.weight is None else bn.weight.detach().float()
    bias = None if bn.bias is None else bn.bias.detach().float()
    channels = mean.numel()
    with torch.no_grad():
        a = F.batch_norm(torch.ones(1, channels, 1, 1), torch.zeros_like(mean), var, weight,
                         None if bias is None else torch.zeros_like(bias), False, 0.0, bn.eps)
        b = F.batch_norm(torch.zeros(1, channels, 1, 1), mean, var, weight, bias, False, 0.0, bn.eps)
    return a.reshape(-1).clone(), b.reshape(-1).clone()


def fma32(x: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """``x * a + b`` for float32 tensors, rounded once (C's ``fmaf``; what PyTorch's CPU eval BatchNorm does).

    ``x * a`` is exact in float64; the float64 sum is made round-to-odd (from its exact error, TwoSum), which
    makes the final rounding to float32 correct (no double rounding)."""
    p = x.double() * a.double()
    bd = b.double().expand_as(p)
    s = p + bd
    bb = s - p
    err = (p - (s - bb)) + (bd - bb)
    fix = (err != 0) & ((s.view(torch.int64) & 1) == 0) & torch.isfinite(s)
    if bool(fix.any()):
        s = torch.where(fix, torch.nextafter(s, torch.where(err > 0, torch.inf, -torch.inf).to(s.dtype)), s)
    return s.float()


def _rprelu(y: Tensor, rprelu: Sequence[Tensor]) -> Tensor:
    shift_in, slope, shift_out = rprelu
    return F.prelu(y - shift_in.view(1, -1, 1, 1), slope.reshape(-1)) + shift_out.view(1, -1, 1, 1)


def _repeat_channels(residual: Tensor, channels: int) -> Tensor:
    """The residual the epilogue adds: :func:`~rebnn_det.ops.shortcut.channel_shortcut`'s repeat (the only form the
    native kernels add without materializing it)."""
    if channels % residual.shape[1]:
        raise ValueError(f'residual has {residual.shape[1]} channels; the conv output has {channels} (the residual '
                         'may have C_out / k channels, repeated k times)')
    return channel_shortcut(residual, channels)


class PackedActivations(NamedTuple):
    """A binary conv's input packed ahead of it -- by the previous conv's epilogue (LCE's "bitpacked output") --
    and what it was packed for: ``bits`` is the padded channels-last buffer ``[N, H + 2 ph, W + 2 pw, words]`` of
    ``sign(x - threshold)`` (:func:`pack_padded`'s format) of a ``channels``-channel ``x``."""
    bits: Tensor
    channels: int
    threshold: Optional[Tensor]
    padding: Tuple[int, int]
    pad_value: float

    def check_made_for(self, threshold: Optional[Tensor], padding, pad_value: float, channels: int) -> None:
        """Raise unless these bits were packed for a conv with this threshold (the same tensor), padding,
        pad_value and input channels."""
        wanted = (pair(padding), float(pad_value), channels)
        if self.threshold is not threshold or (self.padding, self.pad_value, self.channels) != wanted:
            raise ValueError(f'packed input made for padding {self.padding}, pad_value {self.pad_value}, '
                             f'{self.channels} channels and another threshold; this conv has padding {wanted[0]}, '
                             f'pad_value {wanted[1]}, {channels} channels')


def binary_conv2d(x: Tensor, threshold: Optional[Tensor], weight: KernelWeight, scale: Tensor,
                  shift: Optional[Tensor] = None, stride=1, padding=0, pad_value: float = 0.0, dilation=1,
                  groups: int = 1, residual: Optional[Tensor] = None,
                  rprelu: Optional[Sequence[Tensor]] = None, isa: Optional[str] = None,
                  bn: Optional[Sequence[Tensor]] = None, packed_input: Optional[PackedActivations] = None,
                  pack_next: Optional[Tuple[Optional[Tensor], object, float]] = None, out_nchw: bool = False,
                  relu: bool = False):
    """Binary conv of ``sign(x - threshold)`` with the packed weight, as float32 ``[N, C_out, H_o, W_o]``, each
    step rounded once: ``y = scale * count``, ``y = y + shift`` (the conv's bias), ``y = fma(y, bn[0], bn[1])``
    (a BatchNorm's :func:`bn_terms`), ``y = y + residual``, then ``RPReLU(y) = prelu(y - rprelu[0], rprelu[1]) +
    rprelu[2]`` and ``torch.relu`` (``relu=True``) (each if given): bit-identical to the eval-mode simulated
    layers. ``residual`` may have ``C_out / k`` channels: channel ``o`` adds its channel ``o mod (C_out / k)`` (a
    shortcut repeated along channels, without materializing the repeat). The native path returns a channels-last
    tensor (the next layer packs it fastest), or with ``out_nchw`` an NCHW-contiguous one (for a real conv reading
    it next: no layout copy).

    ``packed_input``: ``x`` already packed for this conv (:class:`PackedActivations`, e.g. by the previous conv);
    the kernel reads it instead of packing ``x``. ``pack_next = (threshold, padding, pad_value)`` of the binary conv
    that reads the output next: the kernel also packs each output row for it while the row is in cache, and the
    call returns ``(y, PackedActivations)`` (``(y, None)`` on the reference path, where the next conv packs its
    input itself). Both give bits equal to packing the float tensor separately (the same packing code)."""
    pad_value = check_pad_value(pad_value)
    path = _path_for(x, isa)
    if packed_input is not None:
        packed_input.check_made_for(threshold, padding, pad_value, x.shape[1])
    if path == 'reference' or not native_supported(dilation, groups):
        y = _reference_conv2d(x, threshold, weight, scale, shift, stride, padding, pad_value, dilation, groups,
                              residual, rprelu, bn)
        y = torch.relu(y) if relu else y
        return y if pack_next is None else (y, None)
    kh, kw = weight.kernel_size
    (sh, sw), (ph, pw) = pair(stride), pair(padding)
    act = tuple(rprelu) if rprelu is not None else (None, None, None)
    bn_scale, bn_shift = tuple(bn) if bn is not None else (None, None)
    next_threshold, next_padding, next_pad_value = pack_next if pack_next is not None else (None, 0, 0.0)
    (nph, npw), next_pad_value = pair(next_padding), check_pad_value(next_pad_value)
    use_bits = packed_input is not None and packed_input.bits.device == x.device
    y, bits = torch.ops.rebnn.binary_conv(
        None if use_bits else (x if x.dtype == torch.float32 else x.float()), threshold, weight.kernel,
        weight.tap_sum, weight.out_channels, kh, kw, sh, sw, ph, pw, pad_value, scale, shift, bn_scale, bn_shift,
        residual, act[0], act[1], act[2], path, packed_input=packed_input.bits if use_bits else None,
        in_channels=x.shape[1], pack_next=pack_next is not None, next_threshold=next_threshold, next_pad_h=nph,
        next_pad_w=npw, next_pad_value=next_pad_value, out_nchw=out_nchw, relu=relu)
    if pack_next is None:
        return y
    return y, PackedActivations(bits, y.shape[1], next_threshold, (nph, npw), next_pad_value)


def _reference_conv2d(x, threshold, weight, scale, shift, stride, padding, pad_value, dilation, groups, residual,
                      rprelu, bn) -> Tensor:
    """:func:`binary_conv2d` on the reference path: exact counts, then the epilogue as torch ops."""
    counts = _reference_counts(x, threshold, weight, stride, padding, pad_value, dilation, groups)
    y = counts.float() * scale.view(1, -1, 1, 1)
    if shift is not None:
        y = y + shift.view(1, -1, 1, 1)
    if bn is not None:
        y = fma32(y, bn[0].view(1, -1, 1, 1), bn[1].view(1, -1, 1, 1))
    if residual is not None:
        y = y + _repeat_channels(residual, y.shape[1])
    return _rprelu(y, rprelu) if rprelu is not None else y


def pack_padded(x: Tensor, threshold: Optional[Tensor], padding=0, pad_value: float = 0.0,
                isa: Optional[str] = None) -> Tensor:
    """The kernel's packed input: ``[N, H + 2 ph, W + 2 pw, words]`` (border: +1 bits for pad_value 0 / +1, -1
    bits for -1). The reference path builds it from :func:`.packing.pack_activations`."""
    pad_value = check_pad_value(pad_value)
    ph, pw = pair(padding)
    path = _path_for(x, isa)
    if path != 'reference':
        return torch.ops.rebnn.pack_padded(x.float(), threshold, ph, pw, pad_value, path)
    packed = pack_activations(x.float(), threshold)
    if not (ph or pw):
        return packed
    border = pack_signs_last(torch.full((x.shape[1], ), -1.0 if pad_value == -1.0 else 1.0, device=x.device))
    n, h, w, words = packed.shape
    out = border.expand(n, h + 2 * ph, w + 2 * pw, words).clone()
    out[:, ph:ph + h, pw:pw + w] = packed
    return out


# RoIs per kernel row of the binary GEMM: the conv kernel blocks several output pixels of one row against each
# loaded weight vector and parallelizes over rows, so a batch of N feature vectors is laid out as rows of about this
# many 1x1 "pixels" (a divisor of N between GEMM_ROW / 2 and 2 * GEMM_ROW when there is one: one kernel call with
# equal rows; else rows of GEMM_ROW and one shorter row).
GEMM_ROW = 100


def gemm_rows(n: int):
    """``[(start, rows, cols)]``: the kernel calls that cover ``n`` feature vectors as rows of ``cols`` pixels."""
    for delta in range(GEMM_ROW):
        for cols in (GEMM_ROW - delta, GEMM_ROW + delta):
            if GEMM_ROW // 2 <= cols <= 2 * GEMM_ROW and n % cols == 0:
                return [(0, n // cols, cols)]
    full = n - n % GEMM_ROW
    return [(start, rows, cols) for start, rows, cols in ((0, full // GEMM_ROW, GEMM_ROW), (full, 1, n - full))
            if rows * cols]


def linear_weight(packed: Tensor, in_features: int) -> KernelWeight:
    """A binary linear weight ``[out_features, words]`` (format of :mod:`.packing`) ready for :func:`binary_linear`:
    the weight of a 1x1 binary conv over ``in_features`` channels."""
    if packed.dtype != torch.int64 or packed.dim() != 2:
        raise ValueError(f'packed linear weight must be int64 [out_features, words], got {packed.dtype} '
                         f'{tuple(packed.shape)}')
    return prepare_weight(packed.reshape(packed.shape[0], 1, 1, packed.shape[1]), in_features)


def _as_pixels(x: Tensor, rows: int, cols: int) -> Tensor:
    """``[rows * cols, K]`` features as a ``[1, K, rows, cols]`` image whose pixels are the feature vectors (a view:
    the channels of one pixel stay contiguous, which is how the packer reads them fastest)."""
    return x.t().unsqueeze(0).view(1, x.shape[1], rows, cols)


def binary_linear(x: Tensor, threshold: Optional[Tensor], weight: KernelWeight, scale: Tensor,
                  shift: Optional[Tensor] = None, bn: Optional[Sequence[Tensor]] = None,
                  residual: Optional[Tensor] = None, isa: Optional[str] = None) -> Tensor:
    """Binary GEMM ``[N, K] -> [N, C_out]``: ``count[n, o] = sum_k sign(x[n, k] - threshold[k]) * b[o, k]`` by
    XNOR-popcount over the packed features, then the epilogue of :func:`binary_conv2d` (``scale * count``,
    ``+ shift``, the BN ``fma``, ``+ residual``), each step rounded once like the simulated ReBNNLinear -> BN1d ->
    add. It is the 1x1 binary conv of the same ISA paths and dispatch, with the N feature vectors as pixels (rows
    of :data:`GEMM_ROW`), so its counts are exact on every path."""
    if x.dim() != 2:
        raise ValueError(f'binary_linear expects [N, in_features] features, got shape {tuple(x.shape)}')
    n, k = x.shape
    if k != weight.in_channels:
        raise ValueError(f'input has {k} features; the weight has {weight.in_channels}')
    if residual is not None and residual.shape != (n, weight.out_channels):
        raise ValueError(f'residual has shape {tuple(residual.shape)}; the output is {(n, weight.out_channels)}')
    outs = []
    for start, rows, cols in gemm_rows(n):
        chunk = slice(start, start + rows * cols)
        res = None if residual is None else _as_pixels(residual[chunk].float(), rows, cols)
        y = binary_conv2d(_as_pixels(x[chunk], rows, cols), threshold, weight, scale, shift, residual=res,
                          bn=bn, isa=isa)
        outs.append(y.permute(0, 2, 3, 1).reshape(rows * cols, -1))
    return outs[0] if len(outs) == 1 else torch.cat(outs)


def binary_linear_counts(x: Tensor, threshold: Optional[Tensor], weight: KernelWeight,
                         isa: Optional[str] = None) -> Tensor:
    """The exact integer counts (int32 ``[N, C_out]``) of :func:`binary_linear`, before its epilogue."""
    n, k = x.shape
    if k != weight.in_channels:
        raise ValueError(f'input has {k} features; the weight has {weight.in_channels}')
    return binary_conv_counts(_as_pixels(x, 1, n), threshold, weight, isa=isa).permute(0, 2, 3, 1).reshape(n, -1)
