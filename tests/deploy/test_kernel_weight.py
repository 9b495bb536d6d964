"""KernelWeight (what prepare_weight builds and .to() moves), the kernel path chosen for an input, a packed input
read instead of the float one, and PackedBinaryConv's repr."""
import pytest
import torch

from rebnn_det.deploy import kernels
from rebnn_det.deploy.packing import pack_conv_weight

pytestmark = pytest.mark.skipif(not kernels.extension_available(), reason='needs the compiled kernels')


def _packed_weight(c_out=10, c_in=70, k=3, seed=0):
    w = torch.randn(c_out, c_in, k, k, generator=torch.Generator().manual_seed(seed))
    return w, pack_conv_weight(w)


def test_prepare_weight_by_hand():
    w, packed = _packed_weight()
    weight = kernels.prepare_weight(packed, 70)
    signs = torch.where(w >= 0, 1, -1)
    assert weight.tap_sum.dtype == torch.int16 and weight.tap_sum.shape == (9, 10)
    assert torch.equal(weight.tap_sum, signs.sum(1).flatten(1).t().to(torch.int16))  # sum_c b[o, tap, c]
    assert weight.kernel.dtype == torch.int64 and weight.kernel.shape == (2, 9 * 2, 8)  # ceil(10 / 8) blocks
    assert (weight.in_channels, weight.out_channels, weight.kernel_size) == (70, 10, (3, 3))
    # the given signs are kept (not derived again from the kernel layout), and equal the derived ones
    assert weight.packed.data_ptr() == packed.data_ptr()
    derived = kernels.KernelWeight(weight.kernel, weight.tap_sum, 70, 10, (3, 3)).packed
    assert torch.equal(derived, packed)


def test_pair_takes_one_or_two_sizes_only():
    assert kernels.pair(3) == (3, 3) and kernels.pair((1, 2)) == (1, 2)
    with pytest.raises(ValueError, match=r'a conv size is an int or two ints, got \(3, 3, 2\)'):
        kernels.pair((3, 3, 2))


@pytest.mark.parametrize('with_packed', [True, False])
def test_kernel_weight_to_moves_every_tensor(with_packed):
    _, packed = _packed_weight()
    weight = kernels.prepare_weight(packed, 70)
    if not with_packed:
        weight = kernels.KernelWeight(weight.kernel, weight.tap_sum, 70, 10, (3, 3))
    moved = weight.to('meta')
    assert moved.kernel.device.type == moved.tap_sum.device.type == 'meta'
    assert moved.kernel.shape == weight.kernel.shape and moved.tap_sum.dtype == torch.int16
    assert (moved.in_channels, moved.out_channels, moved.kernel_size) == (70, 10, (3, 3))
    if with_packed:  # the cached signs travel too
        assert moved._packed is not None and moved._packed.device.type == 'meta'
    else:  # nothing cached: derived on demand
        assert moved._packed is None
        assert moved.packed.shape == packed.shape and moved.packed.device.type == 'meta'


def test_path_for_an_input(monkeypatch):
    x = torch.zeros(1, 8, 4, 4)
    monkeypatch.delenv(kernels.ISA_ENV, raising=False)
    assert kernels._path_for(torch.zeros(1, device='meta'), None) == 'reference'  # not on the CPU
    assert kernels._path_for(x, None) == 'auto'  # unforced: the operator picks where it runs
    assert kernels._path_for(x, 'portable') == 'portable'  # forced by the argument ...
    monkeypatch.setenv(kernels.ISA_ENV, 'portable')
    assert kernels._path_for(x, None) == 'portable'  # ... or by the environment
    monkeypatch.delenv(kernels.ISA_ENV)
    monkeypatch.setattr(kernels, '_load_extension', lambda: None)  # no extension: 'auto' is the reference path
    monkeypatch.setattr(kernels, '_warned_missing', True)
    assert kernels._path_for(x, None) == 'reference'


@pytest.mark.parametrize('isa', ['portable', None])
def test_the_kernel_reads_the_packed_input_not_the_float_one(isa):
    """Given packed bits, the conv uses them: here they are of ``x`` while the float argument is another tensor
    (made for the same conv), and the result is the conv of ``x``."""
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(1, 70, 6, 7, generator=gen)
    other = torch.randn(1, 70, 6, 7, generator=gen)
    threshold = torch.randn(70, generator=gen) * 0.1
    _, packed = _packed_weight()
    weight = kernels.prepare_weight(packed, 70)
    scale = torch.rand(10, generator=gen) + 0.5
    bits = kernels.pack_padded(x, threshold, 1, 0.0, isa=isa)
    given = kernels.PackedActivations(bits, 70, threshold, (1, 1), 0.0)
    expected = kernels.binary_conv2d(x, threshold, weight, scale, padding=1, isa=isa)
    got = kernels.binary_conv2d(other, threshold, weight, scale, padding=1, isa=isa, packed_input=given)
    assert torch.equal(got, expected)
    assert not torch.equal(kernels.binary_conv2d(other, threshold, weight, scale, padding=1, isa=isa), expected)


def test_packed_conv_forward_reads_the_packed_input_and_repr_says_nchw():
    from rebnn_det.deploy.packed_conv import PackedBinaryConv
    from rebnn_det.ops import ReBNNConv
    torch.manual_seed(0)
    conv = ReBNNConv(70, 10, 3, padding=1, weight_binarizer='rebnn', act_binarizer='rsign').eval()
    packed = PackedBinaryConv.from_conv(conv)
    x, other = torch.randn(1, 70, 6, 7), torch.randn(1, 70, 6, 7)
    bits = kernels.pack_padded(x, packed.threshold, 1, packed.pad_value)
    given = kernels.PackedActivations(bits, 70, packed.threshold, (1, 1), packed.pad_value)
    assert torch.equal(packed(other, packed_input=given), packed(x))
    assert 'nchw_output' not in packed.extra_repr()
    assert not packed(x).is_contiguous()  # channels-last: the next binary conv packs it fastest
    packed.nchw_output = True
    assert packed.extra_repr().endswith(', nchw_output=True')
    assert packed(x).is_contiguous()  # NCHW for a real conv reading it next
