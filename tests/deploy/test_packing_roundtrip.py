"""The packed 1-bit format of rebnn_det.deploy.packing: bit order, word size, zero tails, round trips."""
import pytest
import torch

from rebnn_det.deploy.packing import WORD_BITS, num_words, pack_conv_weight, unpack_conv_weight


def _reference_words(weight):
    """Bit by bit in plain Python: bit (c % 64) of word (c // 64) is 1 where w[o, c, i, j] < 0."""
    c_out, c_in, kh, kw = weight.shape
    words = torch.zeros(c_out, kh, kw, num_words(c_in), dtype=torch.int64)
    for o in range(c_out):
        for i in range(kh):
            for j in range(kw):
                for w in range(num_words(c_in)):
                    value = 0
                    for c in range(w * 64, min(c_in, (w + 1) * 64)):
                        if weight[o, c, i, j] < 0:
                            value |= 1 << (c - w * 64)
                    words[o, i, j, w] = value - (1 << 64) if value >= 1 << 63 else value  # int64 bit pattern
    return words


@pytest.mark.parametrize('c_in_per_group', [1, 63, 64, 65, 130])
@pytest.mark.parametrize('kernel', [1, 3])
def test_round_trip_and_reference_bits(c_in_per_group, kernel):
    torch.manual_seed(c_in_per_group * 10 + kernel)
    weight = torch.randn(5, c_in_per_group, kernel, kernel)
    weight[0, 0, 0, 0] = 0.0  # sign(0) = +1: bit 0
    packed = pack_conv_weight(weight)
    assert packed.dtype == torch.int64 and packed.shape == (5, kernel, kernel, num_words(c_in_per_group))
    assert torch.equal(packed, _reference_words(weight))
    signs = unpack_conv_weight(packed, c_in_per_group)
    assert torch.equal(signs, torch.where(weight < 0, -1.0, 1.0))
    # tail bits of the last word are zero: every word holds at most its real channels' bits
    tail = num_words(c_in_per_group) * WORD_BITS - c_in_per_group
    if tail:
        last = packed[..., -1]
        assert torch.all((last >> (WORD_BITS - tail)) & ((1 << tail) - 1) == 0)


def test_bit_order_by_hand():
    weight = torch.ones(1, 130, 1, 1)
    weight[0, 0] = -1   # bit 0 of word 0
    weight[0, 63] = -2  # bit 63 of word 0: the int64 sign bit
    weight[0, 64] = -3  # bit 0 of word 1
    weight[0, 129] = -0.5  # bit 1 of word 2
    packed = pack_conv_weight(weight)
    assert packed.flatten().tolist() == [1 - 2**63, 1, 2]


@pytest.mark.parametrize('groups, c_in', [(2, 130), (4, 256), (130, 130)])
def test_grouped_weights_pack_per_group_channels(groups, c_in):
    conv = torch.nn.Conv2d(c_in, 2 * groups, 3, groups=groups, bias=False)
    weight = conv.weight.detach()  # [C_out, C_in / groups, 3, 3]
    packed = pack_conv_weight(weight)
    assert packed.shape == (2 * groups, 3, 3, num_words(c_in // groups))
    assert torch.equal(unpack_conv_weight(packed, c_in // groups), torch.where(weight < 0, -1.0, 1.0))


def test_unpack_rejects_wrong_word_count_and_dtype():
    packed = pack_conv_weight(torch.randn(2, 65, 1, 1))
    with pytest.raises(ValueError, match='2 packed words hold 128 channels; 64 channels need 1'):
        unpack_conv_weight(packed, 64)
    with pytest.raises(TypeError, match='torch.int64'):
        unpack_conv_weight(packed.int(), 65)


@pytest.mark.parametrize('shape', [(64, 64, 3, 3), (96, 48, 3, 3), (256, 130, 1, 1), (8, 3, 7, 7), (4, 1, 1, 1)])
def test_xnor_latent_weights_recompute_the_exact_scale(shape):
    """An 'xnor' layer recomputes mean|w| every forward: the rebuilt latent weights give the stored alpha bit for
    bit (a float32 mean of equal magnitudes would miss about half of the channels by a few ulps)."""
    from rebnn_det.deploy.packed_file import _xnor_latent
    from rebnn_det.ops import binarize_weight_xnor, channel_mean_abs
    torch.manual_seed(shape[0] + shape[1])
    weight = torch.randn(*shape) * torch.rand(shape[0], 1, 1, 1)
    weight[0] = 0.0  # a dead channel: alpha 0, signs +1
    alpha = channel_mean_abs(weight)
    signs = unpack_conv_weight(pack_conv_weight(weight), shape[1])
    latent = _xnor_latent(signs, alpha)
    assert torch.equal(channel_mean_abs(latent), alpha)
    assert torch.equal(binarize_weight_xnor(latent), binarize_weight_xnor(weight))
