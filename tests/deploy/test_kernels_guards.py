"""Kernel dispatch and packed-conv details the exactness tests do not pin: which path runs (its output layout),
the extension cache, defaults, geometry the kernels must hand to the reference path, fma32 against exact rational
arithmetic, the bn_terms eps, the packed format's dtypes, and every error text."""
import sys
from fractions import Fraction
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import rebnn_det
from rebnn_det.deploy import kernels
from rebnn_det.deploy.packed_conv import PackedBinaryConv
from rebnn_det.deploy.packing import pack_conv_weight, pack_signs_last, unpack_conv_weight, unpack_signs_last
from rebnn_det.ops import ReBNNConv


def case(c_in=6, c_out=4, k=3, seed=0, h=5, w=7):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, c_in, h, w, generator=g)
    weight = torch.randn(c_out, c_in, k, k, generator=g)
    return x, kernels.prepare_weight(pack_conv_weight(weight), c_in), weight


def signs(t):
    return torch.where(t < 0, -1.0, 1.0).double()


def test_extension_cache_is_filled_on_first_use(monkeypatch):
    monkeypatch.setattr(kernels, '_ext', None)
    monkeypatch.setattr(kernels, '_ext_error', None)
    assert kernels.extension_available()
    from rebnn_det import _C
    assert kernels._ext is _C and kernels._ext_error is None
    assert kernels.available_isas() == tuple(_C.available_isas()) + ('reference', )
    monkeypatch.setattr(kernels, '_ext', None)
    monkeypatch.setattr(kernels, '_ext_error', None)
    monkeypatch.setitem(sys.modules, 'rebnn_det._C', None)  # an install without the compiled kernels
    monkeypatch.delattr(rebnn_det, '_C', raising=False)
    assert not kernels.extension_available() and kernels.available_isas() == ('reference', )
    assert 'rebnn_det._C' in kernels._ext_error
    with pytest.raises(RuntimeError, match=r"^kernel ISA 'portable' needs the compiled extension rebnn_det._C, "
                       r"which is not available \(.*rebnn_det._C.*\); reinstall with `pip install "
                       r"--no-build-isolation -e \.` or use 'reference'$"):
        kernels.kernel_isa('portable')
    monkeypatch.setattr(kernels, '_warned_missing', False)
    with pytest.warns(RuntimeWarning, match=r"^rebnn_det._C \(the XNOR-popcount kernels\) is not built; binary "
                      r"convolutions run on the slow pure-PyTorch reference path \(.*\)$"):
        assert kernels.kernel_isa('auto') == 'reference'


def test_isa_errors_say_where_the_choice_came_from(monkeypatch):
    with pytest.raises(ValueError, match=r"^unknown kernel ISA 'x' \(from isa argument\)"):
        kernels.kernel_isa('x')
    monkeypatch.setenv(kernels.ISA_ENV, 'y')
    with pytest.raises(ValueError, match=r"^unknown kernel ISA 'y' \(from \$REBNN_KERNEL_ISA\)"):
        kernels.kernel_isa()
    monkeypatch.setattr(kernels, '_ext', SimpleNamespace())  # an extension on a CPU that runs only 'portable'
    monkeypatch.setattr(kernels, '_native_isas', ('portable', ))
    monkeypatch.delenv(kernels.ISA_ENV)
    assert kernels.kernel_isa() == 'portable'
    with pytest.raises(RuntimeError, match=r"^this CPU cannot run the 'avx512' kernel path; available: "
                       r"'portable', 'reference'$"):
        kernels.kernel_isa('avx512')


def test_float64_input_is_converted_for_the_native_kernel():
    x, weight, _ = case()
    scale = torch.ones(4)
    native = kernels.binary_conv2d(x, None, weight, scale, padding=1, isa='portable')
    assert torch.equal(native, kernels.binary_conv2d(x, None, weight, scale, padding=1, isa='reference'))
    assert torch.equal(kernels.binary_conv2d(x.double(), None, weight, scale, padding=1, isa='portable'), native)


def test_defaults_are_stride_1_padding_0_zero_pad():
    x, weight, w = case(k=3)
    expected = F.conv2d(signs(x), signs(w)).round().int()
    for isa in ('portable', 'reference'):
        assert torch.equal(kernels.binary_conv_counts(x, None, weight, isa=isa), expected)
        assert torch.equal(kernels.binary_conv2d(x, None, weight, torch.ones(4), isa=isa), expected.float())
    zero_padded = F.conv2d(signs(x), signs(w), None, 1, 1).round().int()  # pad_value 0 by default
    for isa in ('portable', 'reference'):
        assert torch.equal(kernels.binary_conv_counts(x, None, weight, padding=1, isa=isa), zero_padded)
        assert torch.equal(kernels.binary_conv2d(x, None, weight, torch.ones(4), padding=1, isa=isa),
                           zero_padded.float())
    assert kernels.native_supported() and not kernels.native_supported(2) and not kernels.native_supported(1, 2)
    assert torch.equal(kernels.pack_padded(x, None, isa='reference'), kernels.pack_padded(x, None, 0, 0.0,
                                                                                            isa='reference'))


@pytest.mark.parametrize('isa', ['portable', 'reference'])
@pytest.mark.parametrize('dilation, groups, padding, pad_value', [
    (2, 1, 2, 0.0), (1, 2, 1, 0.0), ((1, 2), 1, (1, 0), -1.0), (1, 1, (1, 0), -1.0), (1, 1, (0, 2), 1.0)])
def test_counts_for_geometry_the_native_kernels_hand_on(isa, dilation, groups, padding, pad_value):
    x, _, w = case(c_in=6, c_out=4)
    wg = w[:, :6 // groups]
    weight = kernels.prepare_weight(pack_conv_weight(wg), 6 // groups)
    ph, pw = kernels.pair(padding)
    xs = signs(x)
    if pad_value:
        xs, ph, pw = F.pad(xs, (pw, pw, ph, ph), value=pad_value), 0, 0
    expected = F.conv2d(xs, signs(wg), None, 1, (ph, pw), dilation, groups).round().int()
    got = kernels.binary_conv_counts(x, None, weight, 1, padding, pad_value, dilation, groups, isa=isa)
    assert torch.equal(got, expected)


def test_residual_with_fewer_channels_is_repeated():
    x, weight, _ = case(c_out=4, h=4, w=4)  # H == C_out: the channel axis must be the one compared
    y = kernels.binary_conv2d(x, None, weight, torch.ones(4), padding=1, isa='reference')
    residual = torch.randn(2, 2, 4, 4)
    with_res = kernels.binary_conv2d(x, None, weight, torch.ones(4), padding=1, residual=residual, isa='reference')
    assert torch.equal(with_res, y + residual.repeat(1, 2, 1, 1))
    with pytest.raises(ValueError, match=r'^residual has 3 channels; the conv output has 4 \(the residual may have '
                       r'C_out / k channels, repeated k times\)$'):
        kernels.binary_conv2d(x, None, weight, torch.ones(4), padding=1, residual=torch.ones(2, 3, 4, 5),
                              isa='reference')


def round_to_float32(v: Fraction) -> float:
    """The float32 nearest to the exact rational ``v`` (ties to even), found without intermediate rounding."""
    c = np.float32(float(v))
    best = None
    for cand in (np.nextafter(c, np.float32(-np.inf)), c, np.nextafter(c, np.float32(np.inf))):
        d = abs(Fraction(float(cand)) - v)
        even = int(np.array(cand, dtype=np.float32).view(np.int32)) % 2 == 0
        key = (d, not even)
        if best is None or key < best[0]:
            best = (key, float(cand))
    return best[1]


def test_fma32_is_the_correctly_rounded_fused_multiply_add():
    g = torch.Generator().manual_seed(3)
    # ties of float32 after the product (x * a exactly halfway), broken by a b far below float64's ulp, with both
    # signs, at several magnitudes; plus plain random triples
    xs, as_, bs = [], [], []
    for scale in (1.0, 2.0 ** 20, 2.0 ** -20):
        for sign in (1.0, -1.0):
            for tiny in (2.0 ** -40, -2.0 ** -40, 2.0 ** -33, 0.0):
                xs.append(24929.0 * sign)
                as_.append(673.0 * scale)
                bs.append(tiny * scale * 2.0 ** 24)
    # float64 sums that land on (or one ulp from) a float32 midpoint, where the round-to-odd fix decides:
    # 2^24 + 1 + (2^-28 - 2^-52) rounds (float64) to one ulp above the midpoint 2^24 + 1, inexactly;
    # 2^24 + 1 and 2^24 + 3 are exact midpoints (ties to even: down, then up)
    xs += [24929.0, 2.0 ** 12, 2.0 ** 24 + 2]
    as_ += [673.0, 2.0 ** 12, 1.0]
    bs += [2.0 ** -28 - 2.0 ** -52, 1.0, 1.0]
    x = torch.cat([torch.tensor(xs), torch.randn(200, generator=g) * 100])
    a = torch.cat([torch.tensor(as_), torch.randn(200, generator=g)])
    b = torch.cat([torch.tensor(bs), torch.randn(200, generator=g) * 10])
    got = kernels.fma32(x, a, b).tolist()
    expected = [round_to_float32(Fraction(xi) * Fraction(ai) + Fraction(bi))
                for xi, ai, bi in zip(x.tolist(), a.tolist(), b.tolist())]
    assert got == expected


def test_bn_terms_use_the_bn_eps_and_need_running_stats():
    bn = nn.BatchNorm2d(3, eps=0.5).eval()
    with torch.no_grad():
        bn.running_var.copy_(torch.tensor([0.5, 3.5, 3.5]))
        bn.running_mean.copy_(torch.tensor([1.0, -2.0, 0.5]))
        bn.weight.copy_(torch.tensor([2.0, 1.0, -1.0]))
        bn.bias.copy_(torch.tensor([0.0, 1.0, 2.0]))
    a, b = kernels.bn_terms(bn)
    assert a.tolist() == [2.0, 0.5, -0.5]  # weight / sqrt(var + 0.5)
    assert b.tolist() == [-2.0, 2.0, 2.25]  # bias - mean * a
    with pytest.raises(ValueError, match=r'^a BatchNorm without running statistics \(track_running_stats=False\) '
                       r'has no eval form$'):
        kernels.bn_terms(nn.BatchNorm2d(3, track_running_stats=False))


def test_prepare_weight_checks_and_layout_dtypes():
    with pytest.raises(ValueError, match=r'^packed weight must be int64 \[C_out, kh, kw, words\], got torch.int32 '
                       r'\(2, 1, 1, 1\)$'):
        kernels.prepare_weight(torch.zeros(2, 1, 1, 1, dtype=torch.int32), 3)
    with pytest.raises(ValueError, match=r'^packed weight has 2 words per tap; 3 input channels need 1$'):
        kernels.prepare_weight(torch.zeros(2, 1, 1, 2, dtype=torch.int64), 3)
    _, weight, _ = case()
    assert not weight.tap_sum.is_floating_point() and weight.kernel.dtype == torch.int64


def test_packed_format_dtypes_and_shape_errors():
    packed = pack_signs_last(torch.tensor([[-1.0, 2.0, -3.0]]))
    assert packed.dtype == torch.int64 and packed.tolist() == [[0b101]]
    assert unpack_signs_last(packed, 3).dtype == torch.float32
    assert unpack_signs_last(packed, 3).tolist() == [[-1.0, 1.0, -1.0]]
    with pytest.raises(ValueError, match=r'^expected a 4-d conv weight \[C_out, C_in/groups, kh, kw\], got shape '
                       r'\(2, 3\)$'):
        pack_conv_weight(torch.ones(2, 3))
    with pytest.raises(ValueError, match=r'^expected packed conv weight \[C_out, kh, kw, words\], got shape '
                       r'\(2, 3\)$'):
        unpack_conv_weight(torch.ones(2, 3, dtype=torch.int64), 3)
    padded = kernels.pack_padded(torch.randn(1, 3, 2, 2), None, (1, 0), 0.0, isa='reference')
    assert padded.shape == (1, 4, 2, 1) and padded.dtype == torch.int64


def test_packed_conv_defaults_geometry_and_repr():
    _, weight, _ = case(c_in=6, c_out=4, k=3)
    conv = PackedBinaryConv(weight.packed, 6, torch.ones(4))
    assert (conv.stride, conv.padding, conv.dilation, conv.groups, conv.pad_value) == ((1, 1), (0, 0), (1, 1), 1, 0.0)
    assert conv.kernel_size == (3, 3) and conv.isa is None
    assert conv.extra_repr() == '6, 4, kernel_size=(3, 3), stride=(1, 1), padding=(0, 0), pad_value=0.0, ' \
                                'threshold=False'
    grouped = PackedBinaryConv(pack_conv_weight(torch.randn(4, 3, 3, 3)), 3, torch.ones(4), stride=2, padding=1,
                               dilation=2, groups=2, pad_value=-1.0, threshold=torch.zeros(6), isa='reference')
    assert grouped.in_channels == 6 and grouped.stride == (2, 2) and grouped.padding == (1, 1)
    assert grouped.isa == 'reference'
    assert grouped.extra_repr() == '6, 4, kernel_size=(3, 3), stride=(2, 2), padding=(1, 1), dilation=(2, 2), ' \
                                   'groups=2, pad_value=-1.0, threshold=True'
    assert kernels.pair(3) == (3, 3) and kernels.pair((1, 2)) == (1, 2) and kernels.pair([2, 1]) == (2, 1)
    with pytest.raises(ValueError, match=r'^scale has 3 values for 4 output channels$'):
        PackedBinaryConv(weight.packed, 6, torch.ones(3))
    bn = nn.BatchNorm2d(4).eval()
    conv.fuse_bn(bn)
    assert {'bn_scale', 'bn_shift'} <= set(conv.state_dict())


def test_packed_conv_forward_adds_residual_and_rprelu():
    x, weight, _ = case(c_in=6, c_out=4)
    conv = PackedBinaryConv(weight.packed, 6, torch.rand(4) + 0.5, padding=1, isa='reference')
    y = conv(x)
    residual = torch.randn_like(y)
    assert torch.equal(conv(x, residual), y + residual)
    act = (torch.randn(4), torch.rand(4), torch.randn(4))
    assert torch.equal(conv(x, rprelu=act), kernels._rprelu(y, act))


def test_from_conv_rejects_real_layers_naming_them_and_keeps_the_isa():
    with pytest.raises(ValueError, match=r"^only a ReBNNConv with binary weights \(weight_binarizer in \('rebnn', "
                       r"'xnor'\)\) and binary activations \(act_binarizer in \('rsign', 'approxsign'\)\) runs on "
                       r"the XNOR-popcount kernels; got "
                       r"ReBNNConv\(weight_binarizer='none', act_binarizer='rsign'\)$"):
        PackedBinaryConv.from_conv(ReBNNConv(2, 2, 1, weight_binarizer='none'))
    with pytest.raises(ValueError, match=r"got Conv2d\(weight_binarizer=None, act_binarizer=None\)$"):
        PackedBinaryConv.from_conv(nn.Conv2d(2, 2, 1))
    assert PackedBinaryConv.from_conv(ReBNNConv(2, 2, 1), isa='reference').isa == 'reference'
