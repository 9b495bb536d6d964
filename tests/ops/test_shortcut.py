"""The parameter-free shortcut of a binary block, hand-computed: the pooling of a strided block, which widths it
adapts, the channel repeat and the group mean (feature maps and feature vectors)."""
import pytest
import torch

from rebnn_det.ops.shortcut import channel_shortcut, shortcut_fits, shortcut_pool


def test_shortcut_pool_is_identity_for_stride_1_and_a_ceil_average_for_stride_2():
    x = torch.arange(9.0).view(1, 1, 3, 3)
    assert shortcut_pool(x, 1) is x
    # 2x2 windows, ceil mode: the last row/column windows hold 2 or 1 values, averaged over those only
    assert shortcut_pool(x, 2).flatten().tolist() == [(0 + 1 + 3 + 4) / 4, (2 + 5) / 2, (6 + 7) / 2, 8.0]


@pytest.mark.parametrize('c_in, c_out, fits', [(4, 8, True), (8, 4, True), (3, 3, True), (6, 4, False),
                                               (4, 6, False), (2, 3, False)])
def test_shortcut_fits_when_one_width_divides_the_other(c_in, c_out, fits):
    assert shortcut_fits(c_in, c_out) is fits


def test_channel_shortcut_repeat_and_group_mean_on_maps_and_vectors():
    maps = torch.arange(8.0).view(1, 4, 1, 2)
    assert channel_shortcut(maps, 8)[0, :, 0, 1].tolist() == [1, 3, 5, 7, 1, 3, 5, 7]
    assert channel_shortcut(maps, 2)[0, :, 0, 0].tolist() == [(0 + 2) / 2, (4 + 6) / 2]
    vectors = torch.tensor([[1.0, 2.0, 3.0, 5.0, 8.0, 13.0]])
    assert channel_shortcut(vectors, 3).tolist() == [[1.5, 4.0, 10.5]]
    assert channel_shortcut(vectors, 12).tolist() == [[1.0, 2.0, 3.0, 5.0, 8.0, 13.0] * 2]
    assert channel_shortcut(vectors, 6) is vectors
    with pytest.raises(ValueError, match=r'^a shortcut adapts 6 to 4 channels only when one divides the other$'):
        channel_shortcut(vectors, 4)
