"""The threaded RoIAlign of deploy mode: bit-equal to mmcv's CPU RoIAlign (the simulated model's) on random RoIs,
RoIs crossing or outside the borders, tiny and degenerate RoIs, NCHW and channels-last features, every setting
mmdet's configs use; and mmdet's SingleRoIExtractor replaced by ParallelRoIExtractor gives the same features."""
import pytest
import torch
from mmcv.ops import RoIAlign, roi_align

from rebnn_det.deploy.roi_align import ParallelRoIExtractor, roi_align_levels


def random_rois(n_images, count, width, height, generator, scale=1.0):
    """RoIs in image coordinates: random boxes, boxes crossing each border, boxes fully outside, tiny boxes
    (zero width / height, sub-pixel) and one covering more than the image."""
    g = generator
    x1 = torch.rand(count, generator=g) * width * 1.2 - 0.1 * width
    y1 = torch.rand(count, generator=g) * height * 1.2 - 0.1 * height
    w = torch.rand(count, generator=g) ** 2 * width * 0.8
    h = torch.rand(count, generator=g) ** 2 * height * 0.8
    boxes = torch.stack([x1, y1, x1 + w, y1 + h], 1)
    special = torch.tensor([
        [0, 0, width, height], [-30, -30, width + 30, height + 30],  # whole image, beyond it
        [-20, 5, 3, 9], [width - 2, height - 2, width + 15, height + 15],  # crossing the borders
        [width + 5, height + 5, width + 25, height + 40], [-50, -50, -10, -20],  # fully outside
        [10, 10, 10, 10], [5.2, 7.1, 5.3, 7.15], [12.5, 3, 12.5, 40], [0, 0, 0.01, height],  # tiny / degenerate
    ], dtype=torch.float32)
    boxes = torch.cat([boxes, special]) * scale
    batch = torch.randint(0, n_images, (boxes.shape[0], 1), generator=g).float()
    return torch.cat([batch, boxes], 1)


@pytest.mark.parametrize('aligned', [True, False])
@pytest.mark.parametrize('sampling_ratio', [0, 2])
@pytest.mark.parametrize('channels_last', [False, True])
def test_equal_to_mmcv_on_one_level(aligned, sampling_ratio, channels_last):
    g = torch.Generator().manual_seed(int(aligned) * 4 + sampling_ratio + int(channels_last))
    feat = torch.randn(2, 19, 13, 21, generator=g)
    rois = random_rois(2, 200, 21 * 8, 13 * 8, g)
    expected = roi_align(feat, rois, (7, 7), 1 / 8, sampling_ratio, 'avg', aligned)
    x = feat.contiguous(memory_format=torch.channels_last) if channels_last else feat
    got = roi_align_levels([x], [1 / 8], rois, torch.zeros(len(rois), dtype=torch.long), 7, sampling_ratio, aligned)
    assert got.shape == expected.shape and got.is_contiguous()
    assert torch.equal(got, expected)


def test_equal_to_mmcv_per_level_with_mask_size_and_large_rois():
    """Four levels at strides 4..32, 14x14 output (the mask head's), each RoI on a random level, large RoIs
    (adaptive grids of up to 8x8 samples) included."""
    g = torch.Generator().manual_seed(3)
    strides = [4, 8, 16, 32]
    feats = [torch.randn(1, 8, 256 // s, 320 // s, generator=g) for s in strides]
    rois = random_rois(1, 300, 320, 256, g)
    levels = torch.randint(0, 4, (len(rois), ), generator=g)
    got = roi_align_levels([f.contiguous(memory_format=torch.channels_last) for f in feats], [1 / s for s in strides],
                           rois, levels, (14, 14), 0, True)
    for i, s in enumerate(strides):
        rows = levels == i
        assert torch.equal(got[rows], roi_align(feats[i], rois[rows], (14, 14), 1 / s, 0, 'avg', True))


def test_non_finite_features_propagate_like_mmcv():
    """A sample outside the map reads the first pixel with weight 0 in mmcv: 0 * inf = nan there, and here."""
    feat = torch.randn(1, 3, 6, 6)
    feat[0, 1, 0, 0] = float('inf')
    rois = torch.tensor([[0, -40, -40, -30, -30], [0, 1, 1, 4, 4]], dtype=torch.float32)
    expected = roi_align(feat, rois, 2, 1.0, 0, 'avg', True)
    got = roi_align_levels([feat], [1.0], rois, torch.zeros(2, dtype=torch.long), 2, 0, True)
    assert torch.equal(got.isnan(), expected.isnan()) and got.isnan().any()
    assert torch.equal(got.nan_to_num(), expected.nan_to_num())


def test_parallel_extractor_equals_mmdet_single_roi_extractor():
    from mmdet.models.roi_heads.roi_extractors import SingleRoIExtractor
    torch.manual_seed(0)
    extractor = SingleRoIExtractor(roi_layer=dict(type='RoIAlign', output_size=7, sampling_ratio=0),
                                   out_channels=16, featmap_strides=[4, 8, 16, 32]).eval()
    assert ParallelRoIExtractor.applies(extractor)
    parallel = ParallelRoIExtractor(extractor)
    feats = tuple(torch.randn(2, 16, 512 // s, 640 // s) for s in [4, 8, 16, 32])
    g = torch.Generator().manual_seed(1)
    rois = random_rois(2, 400, 640, 512, g)
    with torch.no_grad():
        expected = extractor(feats, rois)
        assert torch.equal(parallel(feats, rois), expected)
        cl = tuple(f.contiguous(memory_format=torch.channels_last) for f in feats)
        assert torch.equal(parallel(cl, rois), expected)
        assert torch.equal(parallel(feats, rois, roi_scale_factor=1.5), extractor(feats, rois, roi_scale_factor=1.5))
        assert parallel(feats, rois[:0]).shape == (0, 16, 7, 7)
        # only the finest level used (small RoIs): mmdet's empty-level branch adds zeros
        small = random_rois(2, 50, 640, 512, g, scale=0.05)
        assert torch.equal(parallel(feats, small), extractor(feats, small))


def test_extractor_not_replaced_for_max_pooling_or_torchvision():
    from mmdet.models.roi_heads.roi_extractors import SingleRoIExtractor
    maxpool = SingleRoIExtractor(roi_layer=dict(type='RoIAlign', output_size=7, pool_mode='max'), out_channels=4,
                                 featmap_strides=[4, 8])
    assert not ParallelRoIExtractor.applies(maxpool)
    with pytest.raises(ValueError, match='average pooling'):
        ParallelRoIExtractor(maxpool)
    layers = torch.nn.ModuleList([RoIAlign(7, 0.25, use_torchvision=True)])
    tv = SingleRoIExtractor(roi_layer=dict(type='RoIAlign', output_size=7), out_channels=4, featmap_strides=[4])
    tv.roi_layers = layers
    assert not ParallelRoIExtractor.applies(tv)


def test_errors_name_the_bad_input():
    feat = torch.randn(1, 4, 8, 8)
    rois = torch.tensor([[0, 1, 1, 5, 5]], dtype=torch.float32)
    zero = torch.zeros(1, dtype=torch.long)
    with pytest.raises(RuntimeError, match='RoI 0 has level 3; there are 1 levels'):
        roi_align_levels([feat], [1.0], rois, zero + 3, 7)
    with pytest.raises(RuntimeError, match='RoI 0 has batch index 2; the batch has 1 images'):
        roi_align_levels([feat], [1.0], torch.tensor([[2, 1, 1, 5, 5.]]), zero, 7)
    with pytest.raises(RuntimeError, match='x2 < x1 or y2 < y1'):
        roi_align_levels([feat], [1.0], torch.tensor([[0, 5, 1, 1, 5.]]), zero, 7)
    with pytest.raises(RuntimeError, match=r'float32 CPU \[K, 5\]'):
        roi_align_levels([feat], [1.0], rois[:, :4], zero, 7)
    with pytest.raises(RuntimeError, match='feature level 1 has shape'):
        roi_align_levels([feat, torch.randn(1, 5, 4, 4)], [1.0, 0.5], rois, zero, 7)
    with pytest.raises(RuntimeError, match='2 feature levels and 1 spatial scales'):
        roi_align_levels([feat, feat], [1.0], rois, zero, 7)
    with pytest.raises(RuntimeError, match='float32'):
        roi_align_levels([feat.double()], [1.0], rois, zero, 7)
