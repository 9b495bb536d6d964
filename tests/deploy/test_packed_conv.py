"""PackedBinaryConv: the packed inference form of a ReBNNConv gives the simulated (eval-mode) layer's output, bit for
bit, on every kernel path."""
import pytest
import torch
from torch import nn

from rebnn_det.deploy import kernels
from rebnn_det.deploy.packed_conv import PackedBinaryConv
from rebnn_det.ops import ReBNNConv

PATHS = [isa for isa in kernels.available_isas()]


def trained_like(conv: ReBNNConv, seed: int) -> ReBNNConv:
    """Give a fresh ReBNNConv non-trivial alpha / threshold / bias, as training would."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        if conv.alpha is not None:
            conv.alpha.copy_(torch.rand(conv.out_channels, generator=g) + 0.1)
        if conv.rsign is not None:
            conv.rsign.threshold.copy_(torch.randn(conv.rsign.threshold.shape, generator=g) * 0.2)
        if conv.bias is not None:
            conv.bias.copy_(torch.randn(conv.out_channels, generator=g))
    return conv.eval()


@pytest.mark.parametrize('isa', PATHS)
@pytest.mark.parametrize('geometry', [
    dict(in_channels=3, out_channels=8, kernel_size=3, stride=1, padding=1),
    dict(in_channels=63, out_channels=17, kernel_size=3, stride=2, padding=1),
    dict(in_channels=65, out_channels=32, kernel_size=1, stride=1, padding=0),
    dict(in_channels=130, out_channels=9, kernel_size=3, stride=2, padding=0, bias=True),
], ids=lambda g: f"c{g['in_channels']}-{g['out_channels']}_k{g['kernel_size']}_s{g['stride']}_p{g['padding']}")
def test_matches_rebnn_conv(isa, geometry):
    x = torch.randn(2, geometry['in_channels'], 9, 10)
    for pad_value in (0.0, 1.0, -1.0):
        for weight_binarizer, act_binarizer in (('rebnn', 'rsign'), ('xnor', 'approxsign')):
            conv = trained_like(ReBNNConv(**geometry, pad_value=pad_value, weight_binarizer=weight_binarizer,
                                          act_binarizer=act_binarizer), seed=7)
            packed = PackedBinaryConv.from_conv(conv, isa=isa)
            with torch.no_grad():
                expected = conv(x)
            assert torch.equal(packed(x), expected)
            # the integer counts themselves, exactly: the float layer divided by alpha, rounded
            alpha = conv.alpha if conv.alpha is not None else conv.weight.abs().flatten(1).mean(1)
            bias = conv.bias if conv.bias is not None else torch.zeros(conv.out_channels)
            counts = ((expected - bias.view(1, -1, 1, 1)) / alpha.view(1, -1, 1, 1)).round().int()
            assert torch.equal(packed.counts(x).contiguous(), counts)


@pytest.mark.parametrize('isa', PATHS)
@pytest.mark.parametrize('geometry', [dict(dilation=2, padding=2), dict(groups=2, padding=1)],
                         ids=['dilation2', 'groups2'])
def test_fallback_geometry_equals_rebnn_conv(isa, geometry):
    """Geometry outside the kernels (dilation, groups) runs on the reference path with the same results."""
    conv = trained_like(ReBNNConv(6, 4, 3, **geometry), seed=3)
    packed = PackedBinaryConv.from_conv(conv, isa=isa)
    assert not kernels.native_supported(packed.dilation, packed.groups)
    x = torch.randn(2, 6, 8, 7)
    with torch.no_grad():
        assert torch.equal(packed(x), conv(x))


@pytest.mark.parametrize('isa', PATHS)
@pytest.mark.parametrize('affine', [True, False])
def test_fuse_bn_bit_identical_to_conv_then_bn(isa, affine):
    for bias, c_out in ((True, 12), (False, 37)):  # 37: vector tails in the epilogue
        conv = trained_like(ReBNNConv(20, c_out, 3, padding=1, bias=bias), seed=1)
        bn = nn.BatchNorm2d(c_out, affine=affine).eval()
        with torch.no_grad():
            bn.running_mean.uniform_(-3, 3)
            bn.running_var.uniform_(0.01, 4)
            if affine:
                bn.weight.uniform_(0.5, 2)
                bn.bias.uniform_(-1, 1)
        packed = PackedBinaryConv.from_conv(conv, isa=isa)
        packed.fuse_bn(bn)
        for x in (torch.randn(2, 20, 6, 7) * 4,
                  torch.randn(1, 20, 11, 5).contiguous(memory_format=torch.channels_last)):
            with torch.no_grad():
                assert torch.equal(packed(x), bn(conv(x)))
        with pytest.raises(ValueError, match='already has a BatchNorm'):
            packed.fuse_bn(bn)
    with pytest.raises(ValueError, match='without running statistics'):
        PackedBinaryConv.from_conv(conv).fuse_bn(nn.BatchNorm2d(c_out, track_running_stats=False))


def test_packed_weight_is_32x_smaller_and_rejects_real_layers():
    conv = ReBNNConv(128, 64, 3, padding=1)
    packed = PackedBinaryConv.from_conv(conv)
    packed_bytes = packed.packed_weight.numel() * packed.packed_weight.element_size()
    assert conv.weight.numel() * conv.weight.element_size() == 32 * packed_bytes  # 1 bit per weight (128 = 2 words)
    assert packed.packed_weight.shape == (64, 3, 3, 2)
    for kwargs in (dict(act_binarizer='none'), dict(weight_binarizer='none')):
        with pytest.raises(ValueError, match=r"only a ReBNNConv with binary weights \(weight_binarizer in \('rebnn', "
                                             r"'xnor'\)\)"):
            PackedBinaryConv.from_conv(ReBNNConv(8, 8, 3, **kwargs))
