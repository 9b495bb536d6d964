"""The XNOR-popcount kernels: exact integer counts against the reference on every ISA path this machine runs."""
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from rebnn_det.deploy import kernels
from rebnn_det.deploy.packing import pack_activations, pack_conv_weight
from rebnn_det.ops.binarize import hard_sign

NATIVE_ISAS = [isa for isa in kernels.available_isas() if isa != 'reference']


def test_extension_is_built_with_the_portable_path():
    """The install builds rebnn_det._C (tools/setup_env.sh); the portable path runs on any CPU."""
    assert kernels.extension_available()
    assert 'portable' in NATIVE_ISAS and kernels.available_isas()[-1] == 'reference'


def independent_counts(x, threshold, weight, stride, padding, pad_value):
    """sum_c sign(x_c - beta_c) * sign(w_c) over the taps, from hard_sign and a float64 conv (no packing)."""
    a = hard_sign(x.float() - threshold.view(1, -1, 1, 1)).double()
    ph = pw = padding
    if pad_value != 0 and padding:
        a = F.pad(a, (pw, pw, ph, ph), value=pad_value)
        ph = pw = 0
    return F.conv2d(a, hard_sign(weight).double(), None, stride, (ph, pw)).round().int()


def random_case(n, c_in, c_out, h, w, k, seed):
    g = torch.Generator().manual_seed(seed)
    # values on a 0.5 grid: many x_c == beta_c, so sign(0) = +1 is exercised
    x = torch.randint(-4, 5, (n, c_in, h, w), generator=g).float() / 2
    threshold = torch.randint(-2, 3, (c_in, ), generator=g).float() / 2
    weight = torch.randn(c_out, c_in, k, k, generator=g)
    weight[weight.abs() < 0.1] = 0.0  # sign(0) = +1 for weights too
    return x, threshold, weight


CASES = [  # n, c_in, c_out, h, w, k, stride, padding
    (2, 3, 5, 7, 6, 3, 1, 1),
    (1, 63, 17, 9, 11, 3, 2, 1),
    (2, 65, 9, 8, 8, 1, 1, 0),
    (1, 130, 24, 10, 7, 3, 2, 0),
    (3, 64, 16, 6, 5, 3, 1, 1),
    (1, 200, 70, 5, 9, 3, 2, 1),
    (2, 5, 3, 4, 4, 1, 2, 0),
    (1, 7, 11, 9, 9, 5, 1, 2),  # other kernel sizes run natively too
]


def layouts(x):
    """The same values as NCHW-contiguous, channels-last and two non-contiguous views."""
    big = torch.zeros(x.shape[0], x.shape[1] + 2, x.shape[2], x.shape[3] * 2)
    big[:, 1:-1, :, ::2] = x
    return {'nchw': x, 'channels_last': x.contiguous(memory_format=torch.channels_last),
            'transposed': x.transpose(2, 3).contiguous().transpose(2, 3), 'strided': big[:, 1:-1, :, ::2]}


@pytest.mark.parametrize('isa', NATIVE_ISAS + ['reference'])
@pytest.mark.parametrize('case', CASES, ids=lambda c: 'n{}_c{}-{}_{}x{}_k{}_s{}_p{}'.format(*c))
def test_counts_exact_on_every_path(isa, case):
    n, c_in, c_out, h, w, k, stride, padding = case
    x, threshold, weight = random_case(n, c_in, c_out, h, w, k, seed=hash(case) % 1000)
    kw = kernels.prepare_weight(pack_conv_weight(weight), c_in)
    for pad_value in (0.0, 1.0, -1.0):
        expected = independent_counts(x, threshold, weight, stride, padding, pad_value)
        for name, xx in layouts(x).items():
            got = kernels.binary_conv_counts(xx, threshold, kw, stride, padding, pad_value, isa=isa)
            assert got.dtype == torch.int32 and got.shape == expected.shape
            assert torch.equal(got.contiguous(), expected), (pad_value, name)


@pytest.mark.parametrize('isa', NATIVE_ISAS)
def test_env_var_forces_the_path(isa, monkeypatch):
    monkeypatch.setenv(kernels.ISA_ENV, isa)
    assert kernels.kernel_isa() == isa
    x, threshold, weight = random_case(2, 70, 12, 6, 6, 3, seed=1)
    kw = kernels.prepare_weight(pack_conv_weight(weight), 70)
    got = kernels.binary_conv_counts(x, threshold, kw, 1, 1, 0.0)
    assert torch.equal(got.contiguous(), independent_counts(x, threshold, weight, 1, 1, 0.0))


def test_zero_padding_counts_by_hand():
    """One channel, all +1, 3x3 kernel of +1, 3x4 input: valid taps are 4 in a corner, 6 on an edge, 9 inside;
    pad +1 makes every tap count (9); pad -1 gives 9 - 2 * (padded taps)."""
    x = torch.ones(1, 1, 3, 4)
    kw = kernels.prepare_weight(pack_conv_weight(torch.ones(1, 1, 3, 3)), 1)
    zero = torch.tensor([[4, 6, 6, 4], [6, 9, 9, 6], [4, 6, 6, 4]], dtype=torch.int32)
    for isa in NATIVE_ISAS + ['reference']:
        got = {pv: kernels.binary_conv_counts(x, None, kw, 1, 1, pv, isa=isa)[0, 0] for pv in (0.0, 1.0, -1.0)}
        assert torch.equal(got[0.0], zero), isa
        assert torch.equal(got[1.0], torch.full((3, 4), 9, dtype=torch.int32)), isa
        assert torch.equal(got[-1.0], 9 - 2 * (9 - zero)), isa


@pytest.mark.parametrize('isa', NATIVE_ISAS + ['reference'])
def test_pack_padded_matches_the_packed_format(isa):
    x, threshold, _ = random_case(2, 130, 1, 5, 4, 1, seed=3)
    interior = pack_activations(x, threshold)
    for pad_value, border in ((0.0, [0, 0, 0]), (1.0, [0, 0, 0]), (-1.0, [-1, -1, 3])):  # 130 = 64 + 64 + 2
        got = kernels.pack_padded(x, threshold, 1, pad_value, isa=isa)
        assert got.shape == (2, 7, 6, 3)
        assert torch.equal(got[:, 1:-1, 1:-1], interior)
        assert (got[:, 0] == torch.tensor(border)).all() and (got[:, :, -1] == torch.tensor(border)).all()


@pytest.mark.parametrize('isa', NATIVE_ISAS + ['reference'])
def test_epilogue_scale_shift_residual_rprelu(isa):
    x, threshold, weight = random_case(2, 65, 20, 6, 7, 3, seed=4)
    kw = kernels.prepare_weight(pack_conv_weight(weight), 65)
    counts = independent_counts(x, threshold, weight, 2, 1, 0.0).float()
    scale, shift = torch.rand(20) + 0.5, torch.randn(20)
    residual = torch.randn_like(counts)
    rprelu = (torch.randn(1, 20, 1, 1), torch.rand(20), torch.randn(1, 20, 1, 1))
    y = kernels.binary_conv2d(x, threshold, kw, scale, shift, 2, 1, 0.0, residual=residual, rprelu=rprelu, isa=isa)
    z = counts * scale.view(1, -1, 1, 1) + shift.view(1, -1, 1, 1)
    expected = F.prelu(z + residual - rprelu[0], rprelu[1]) + rprelu[2]
    assert torch.equal(y, expected)  # each step rounded once, in this order
    # a BatchNorm between conv and residual: PyTorch's eval BN, bit for bit
    mean, var, gamma, beta = torch.randn(20), torch.rand(20) + 0.1, torch.rand(20) + 0.5, torch.randn(20)
    bn = nn.BatchNorm2d(20).eval()
    with torch.no_grad():
        bn.running_mean.copy_(mean), bn.running_var.copy_(var), bn.weight.copy_(gamma), bn.bias.copy_(beta)
    y = kernels.binary_conv2d(x, threshold, kw, scale, shift, 2, 1, 0.0, residual=residual, rprelu=rprelu, isa=isa,
                              bn=kernels.bn_terms(bn))
    assert torch.equal(y, F.prelu(F.batch_norm(z, mean, var, gamma, beta) + residual - rprelu[0], rprelu[1])
                       + rprelu[2])
    # a shortcut repeated along channels (out = 2 * in) is added without materializing the repeat
    half = residual[:, :10]
    y = kernels.binary_conv2d(x, threshold, kw, scale, shift, 2, 1, 0.0, residual=half, isa=isa)
    assert torch.equal(y, z + half.repeat(1, 2, 1, 1))
    with pytest.raises((ValueError, RuntimeError), match='the residual may have C_out / k channels'):
        kernels.binary_conv2d(x, threshold, kw, scale, shift, 2, 1, 0.0, residual=residual[:, :7], isa=isa)
    plain = kernels.binary_conv2d(x, threshold, kw, scale, None, 2, 1, 0.0, isa=isa)
    assert torch.equal(plain, counts * scale.view(1, -1, 1, 1))


@pytest.mark.parametrize('shape', [(2, 37, 5, 7), (1, 64, 13, 13), (2, 256, 3, 3), (1, 16, 1, 1), (2, 8, 33, 17)])
@pytest.mark.parametrize('channels_last', [False, True], ids=['nchw', 'channels_last'])
def test_eval_batch_norm_is_one_fma_with_bn_terms(shape, channels_last):
    """The empirical fact the deploy epilogue relies on: PyTorch's CPU eval BatchNorm (float32) is
    ``fma(x, a, b)`` per channel, ``(a, b) = bn_terms(bn)``, for NCHW and channels-last inputs, with vector
    tails. (Two roundings, ``x * a + b``, differ in many elements.) If a PyTorch release changes its BN kernel,
    this test says so first."""
    g = torch.Generator().manual_seed(sum(shape))
    c = shape[1]
    bn = nn.BatchNorm2d(c).eval()
    with torch.no_grad():
        bn.running_mean.copy_(torch.randn(c, generator=g))
        bn.running_var.copy_(torch.rand(c, generator=g) * 3 + 0.01)
        bn.weight.copy_(torch.randn(c, generator=g))
        bn.bias.copy_(torch.randn(c, generator=g))
    x = torch.randn(shape, generator=g) * 50
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    a, b = kernels.bn_terms(bn)
    with torch.no_grad():
        assert torch.equal(bn(x), kernels.fma32(x, a.view(1, -1, 1, 1), b.view(1, -1, 1, 1)))


def test_fma32_rounds_once():
    # 24929 * 673 = 2^24 + 1: a tie between the float32 neighbours 2^24 and 2^24 + 2; a tiny b breaks it. float64
    # alone loses b (its ulp at 2^24 is 2^-28) and then rounds the tie to even: the double rounding fma32 avoids
    x, a, tiny = torch.tensor([24929.0, -24929.0]), torch.tensor([673.0, 673.0]), 2.0 ** -30
    assert (x.double() * a.double() + tiny).float()[0].item() == 2.0 ** 24  # what float64 arithmetic gives
    assert kernels.fma32(x, a, torch.tensor([tiny, -tiny])).tolist() == [2.0 ** 24 + 2, -(2.0 ** 24 + 2)]
    assert kernels.fma32(x, a, torch.tensor([-tiny, tiny])).tolist() == [2.0 ** 24, -(2.0 ** 24)]
    assert kernels.fma32(x, a, torch.zeros(2)).tolist() == [2.0 ** 24, -(2.0 ** 24)]  # the tie to even


def test_bad_isa_and_pad_value_are_clear_errors(monkeypatch):
    with pytest.raises(ValueError, match="unknown kernel ISA 'sse9'.*allowed: 'auto', 'avx512'"):
        kernels.kernel_isa('sse9')
    monkeypatch.setenv(kernels.ISA_ENV, 'fast')
    with pytest.raises(ValueError, match=r"'fast' \(from \$REBNN_KERNEL_ISA\)"):
        kernels.kernel_isa()
    monkeypatch.delenv(kernels.ISA_ENV)
    kw = kernels.prepare_weight(pack_conv_weight(torch.randn(4, 3, 3, 3)), 3)
    with pytest.raises(ValueError, match=r'pad_value must be one of 0, \+1, -1 \(the padding constants the binary '
                                         r'conv and its kernels support\), got 0.5'):
        kernels.binary_conv_counts(torch.randn(1, 3, 4, 4), None, kw, 1, 1, 0.5)
    with pytest.raises(RuntimeError, match='threshold has 5 elements, input has 3 channels'):
        kernels.binary_conv_counts(torch.randn(1, 3, 4, 4), torch.zeros(5), kw, 1, 1, 0.0, isa='portable')
    with pytest.raises(ValueError, match='2 input channels need 1'):
        kernels.prepare_weight(torch.zeros(4, 3, 3, 2, dtype=torch.int64), 2)


def test_without_the_extension_the_reference_path_runs_and_warns_once(monkeypatch):
    x, threshold, weight = random_case(1, 70, 9, 5, 6, 3, seed=5)
    kw = kernels.prepare_weight(pack_conv_weight(weight), 70)
    native = kernels.binary_conv_counts(x, threshold, kw, 1, 1, 0.0)
    monkeypatch.setattr(kernels, '_ext', None)
    monkeypatch.setattr(kernels, '_ext_error', 'simulated: no module rebnn_det._C')
    monkeypatch.setattr(kernels, '_warned_missing', False)
    monkeypatch.delenv(kernels.ISA_ENV, raising=False)
    with pytest.warns(RuntimeWarning, match='not built.*pure-PyTorch reference path.*simulated'):
        assert kernels.kernel_isa() == 'reference'
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # said once only
        assert torch.equal(kernels.binary_conv_counts(x, threshold, kw, 1, 1, 0.0), native)
    assert kernels.available_isas() == ('reference', )
    with pytest.raises(RuntimeError, match="'avx2' needs the compiled extension rebnn_det._C"):
        kernels.kernel_isa('avx2')


@pytest.mark.parametrize('isa', NATIVE_ISAS)
@pytest.mark.parametrize('pad_value', [0.0, 1.0, -1.0])
@pytest.mark.parametrize('geometry', [(64, 64, 1, 1), (70, 37, 2, 1), (16, 130, 1, 2), (8, 64, 1, 0)],
                         ids=lambda g: 'cin{}_cout{}_s{}_nextpad{}'.format(*g))
def test_bitpacked_output_equals_separate_packing(isa, pad_value, geometry):
    """The bits a conv's epilogue packs for the next conv equal kernels.pack_padded of its float output (border
    included), and the next conv reading them gives the same output as packing its input itself."""
    c_in, c_out, stride, next_pad = geometry
    g = torch.Generator().manual_seed(c_in + c_out)
    x = torch.randn(2, c_in, 11, 9, generator=g)
    thr = torch.randn(c_in, generator=g) * 0.1
    w = kernels.prepare_weight(pack_conv_weight(torch.randn(c_out, c_in, 3, 3, generator=g)), c_in)
    scale, bn = torch.rand(c_out, generator=g), (torch.rand(c_out, generator=g), torch.randn(c_out, generator=g))
    next_thr = torch.randn(c_out, generator=g) * 0.5
    w2 = kernels.prepare_weight(pack_conv_weight(torch.randn(5, c_out, 3, 3, generator=g)), c_out)
    y, packed = kernels.binary_conv2d(x, thr, w, scale, stride=stride, padding=1, pad_value=pad_value, bn=bn,
                                      isa=isa, pack_next=(next_thr, next_pad, pad_value))
    assert torch.equal(y, kernels.binary_conv2d(x, thr, w, scale, stride=stride, padding=1, pad_value=pad_value,
                                                bn=bn, isa=isa))
    separate = kernels.pack_padded(y, next_thr, next_pad, pad_value, isa=isa)
    assert packed.bits.shape == separate.shape and torch.equal(packed.bits, separate)
    assert (packed.channels, packed.padding, packed.pad_value) == (c_out, (next_pad, next_pad), pad_value)
    scale2 = torch.rand(5, generator=g)
    from_bits = kernels.binary_conv2d(y, next_thr, w2, scale2, padding=next_pad, pad_value=pad_value, isa=isa,
                                      packed_input=packed)
    assert torch.equal(from_bits, kernels.binary_conv2d(y, next_thr, w2, scale2, padding=next_pad,
                                                        pad_value=pad_value, isa=isa))


def test_packed_input_made_for_another_conv_is_refused():
    x = torch.randn(1, 8, 6, 6)
    thr = torch.zeros(8)
    w = kernels.prepare_weight(pack_conv_weight(torch.randn(4, 8, 3, 3)), 8)
    bits = kernels.PackedActivations(kernels.pack_padded(x, thr, 1), 8, thr, (1, 1), 0.0)
    with pytest.raises(ValueError, match=r'made for padding \(1, 1\), pad_value 0.0, 8 channels and another '
                                         r'threshold; this conv has padding \(0, 0\), pad_value 0.0, 8 channels'):
        kernels.binary_conv2d(x, thr, w, torch.ones(4), padding=0, packed_input=bits)
    with pytest.raises(ValueError, match='another threshold'):
        kernels.binary_conv2d(x, thr.clone(), w, torch.ones(4), padding=1, packed_input=bits)


def test_reference_path_packs_nothing_ahead():
    x = torch.randn(1, 8, 6, 6)
    w = kernels.prepare_weight(pack_conv_weight(torch.randn(4, 8, 3, 3)), 8)
    y, packed = kernels.binary_conv2d(x, None, w, torch.ones(4), padding=1, isa='reference',
                                      pack_next=(None, 1, 0.0))
    assert packed is None and torch.equal(y, kernels.binary_conv2d(x, None, w, torch.ones(4), padding=1,
                                                                   isa='reference'))
