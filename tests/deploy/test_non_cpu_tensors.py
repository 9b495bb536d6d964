"""Tensors off the CPU: packing keeps every tensor on the input's device and the kernels send non-CPU input to the
pure-PyTorch reference path (the compiled kernels are CPU code). The ``meta`` device stands in for an accelerator:
it holds no data, every op on it is shape-checked, and a tensor made on the wrong device or a call into the CPU
extension with it fails. (BatchNorm's fma32 epilogue reads values, so it is not run on meta.)"""
import sys

import pytest
import torch

from rebnn_det.deploy import kernels
from rebnn_det.deploy.packing import (pack_activations, pack_conv_weight, pack_signs_last, unpack_conv_weight,
                                      unpack_signs_last)

META = torch.device('meta')


def meta_weight(c_out=16, c_in=70, k=3):
    weight = kernels.prepare_weight(pack_conv_weight(torch.randn(c_out, c_in, k, k)), c_in)
    return weight.to(META)


def test_packing_stays_on_the_input_device():
    packed = pack_signs_last(torch.empty(2, 5, 70, device=META))
    assert (packed.device, packed.dtype, packed.shape) == (META, torch.int64, (2, 5, 2))
    signs = unpack_signs_last(packed, 70, torch.float16)
    assert (signs.device, signs.dtype, signs.shape) == (META, torch.float16, (2, 5, 70))
    acts = pack_activations(torch.empty(2, 70, 4, 3, device=META), torch.empty(70, device=META))
    assert (acts.device, acts.shape) == (META, (2, 4, 3, 2))
    weight = pack_conv_weight(torch.empty(8, 70, 3, 3, device=META))
    assert (weight.device, weight.shape) == (META, (8, 3, 3, 2))
    assert unpack_conv_weight(weight, 70).device == META


@pytest.mark.parametrize('pad_value', [0.0, -1.0, 1.0])
def test_kernels_take_the_reference_path_for_non_cpu_input(pad_value):
    weight = meta_weight()
    x = torch.empty(2, 70, 9, 7, device=META)
    threshold = torch.empty(70, device=META)
    counts = kernels.binary_conv_counts(x, threshold, weight, stride=2, padding=1, pad_value=pad_value)
    assert (counts.device, counts.dtype, counts.shape) == (META, torch.int32, (2, 16, 5, 4))
    per_channel = [torch.empty(16, device=META) for _ in range(5)]
    y = kernels.binary_conv2d(x, threshold, weight, per_channel[0], shift=per_channel[1], padding=1,
                              pad_value=pad_value, residual=torch.empty(2, 8, 9, 7, device=META),
                              rprelu=per_channel[2:])
    assert (y.device, y.dtype, y.shape) == (META, torch.float32, (2, 16, 9, 7))
    padded = kernels.pack_padded(x, threshold, (1, 2), pad_value)
    assert (padded.device, padded.dtype, padded.shape) == (META, torch.int64, (2, 11, 11, 2))


def test_pack_padded_border_on_the_reference_path():
    """The border words the reference path builds (CPU, checked bit by bit): +1 signs (bit 0) for pad 0 / +1,
    -1 signs (bit 1) for the 70 real channels and zero tail bits for pad -1."""
    x = torch.randn(1, 70, 2, 2)
    for pad_value, bits in [(0.0, [0] * 70), (1.0, [0] * 70), (-1.0, [1] * 70)]:
        padded = kernels.pack_padded(x, None, 1, pad_value, isa='reference')
        border = padded[0, 0, 0]
        got = [int(border[c // 64] >> (c % 64)) & 1 for c in range(128)]
        assert got == bits + [0] * 58
        assert torch.equal(padded[0, 1:3, 1:3], pack_activations(x, None)[0])


def test_missing_extension_warning_points_at_the_users_line(monkeypatch):
    """The warning names the line that called into rebnn_det (here: this test), through PackedBinaryConv's
    forward, nn.Module.__call__ and the kernel dispatch, not a line inside rebnn_det or torch."""
    from rebnn_det.deploy.packed_conv import PackedBinaryConv
    from rebnn_det.ops import ReBNNConv
    layer = PackedBinaryConv.from_conv(ReBNNConv(8, 4, 3, padding=1).eval())
    monkeypatch.setattr(kernels, '_ext', None)
    monkeypatch.setattr(kernels, '_ext_error', 'simulated: no module rebnn_det._C')
    monkeypatch.setattr(kernels, '_warned_missing', False)
    monkeypatch.delenv(kernels.ISA_ENV, raising=False)
    with pytest.warns(RuntimeWarning, match='is not built') as record:
        line = sys._getframe().f_lineno + 1
        layer(torch.randn(1, 8, 5, 5))
    assert [(w.filename, w.lineno) for w in record] == [(__file__, line)]

