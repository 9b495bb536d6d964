"""The real-valued plumbing of deploy mode around the binary layers: NCHW outputs of the binary convs that real
convs read, the channels-last max pool of the stem, and -- on whole COCO detectors built from configs/ -- raw
outputs and detections identical to the simulated model's with all of it (threaded RoIAlign, packed stages)."""
import copy
import os.path as osp

import pytest
import torch
from torch import nn

from rebnn_det.deploy import kernels
from rebnn_det.deploy.convert import FusedReActStage, convert_to_deploy
from rebnn_det.deploy.packing import pack_conv_weight
from rebnn_det.deploy.pooling import ChannelsLastMaxPool2d
from rebnn_det.deploy.roi_align import ParallelRoIExtractor

from tests.deploy.test_deploy_mode import randomize_inference_state

CONFIGS = osp.join(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'configs')
NATIVE_ISAS = [isa for isa in kernels.available_isas() if isa != 'reference']


@pytest.mark.parametrize('isa', NATIVE_ISAS)
def test_nchw_output_equals_the_channels_last_output(isa):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 40, 9, 11, generator=g)
    w = kernels.prepare_weight(pack_conv_weight(torch.randn(24, 40, 3, 3, generator=g)), 40)
    args = dict(threshold=torch.randn(40, generator=g) * 0.1, weight=w, scale=torch.rand(24, generator=g),
                padding=1, residual=torch.randn(2, 24, 9, 11, generator=g), isa=isa,
                rprelu=(torch.randn(24, generator=g), torch.rand(24, generator=g), torch.randn(24, generator=g)))
    cl = kernels.binary_conv2d(x, **args)
    y, packed = kernels.binary_conv2d(x, **args, out_nchw=True, pack_next=(None, 1, 0.0))
    assert cl.is_contiguous(memory_format=torch.channels_last) and y.is_contiguous()
    assert torch.equal(y, cl)
    assert torch.equal(packed.bits, kernels.pack_padded(cl, None, 1, 0.0, isa=isa))


@pytest.mark.parametrize('geometry', [(3, 2, 1), (2, 2, 0), (3, 1, 1), (5, 3, 2), (1, 2, 0)],
                         ids=lambda g: 'k{}_s{}_p{}'.format(*g))
@pytest.mark.parametrize('layout', ['nchw', 'channels_last', 'sliced'])
def test_channels_last_max_pool_equals_torch(geometry, layout):
    k, s, p = geometry
    g = torch.Generator().manual_seed(k * 10 + s)
    x = torch.randn(2, 5, 17, 22, generator=g)
    x[0, 1, 2:4, 4] = float('nan')  # one lands on a stride-2 sample in every layout
    x[1, 2, :4, :4] = float('-inf')
    if layout == 'channels_last':
        x = x.contiguous(memory_format=torch.channels_last)
    elif layout == 'sliced':
        x = x[:, :, 1:, ::2]
    pool = nn.MaxPool2d(k, s, p)
    assert ChannelsLastMaxPool2d.applies(pool)
    got, expected = ChannelsLastMaxPool2d(pool)(x), pool(x)
    assert got.is_contiguous(memory_format=torch.channels_last) and got.shape == expected.shape
    assert torch.equal(got.isnan(), expected.isnan()) and got.isnan().any()
    assert torch.equal(got.nan_to_num(), expected.nan_to_num())


@pytest.mark.parametrize('layout', ['nchw', 'channels_last'])
def test_stem_bn_relu_max_pool_in_one_pass_equals_torch(layout):
    """relu(BN(x)) then max pool, in one pass: torch's values (eval BN as one fma, torch.relu), NaN kept."""
    g = torch.Generator().manual_seed(7)
    bn = nn.BatchNorm2d(6).eval()
    with torch.no_grad():
        bn.running_mean.copy_(torch.randn(6, generator=g))
        bn.running_var.copy_(torch.rand(6, generator=g) + 0.5)
        bn.weight.copy_(torch.randn(6, generator=g))  # negative scales too
        bn.bias.copy_(torch.randn(6, generator=g))
    x = torch.randn(2, 6, 19, 24, generator=g) * 3
    x[1, 3, 5, 6] = float('nan')
    if layout == 'channels_last':
        x = x.contiguous(memory_format=torch.channels_last)
    pool = nn.MaxPool2d(3, 2, 1)
    fused = ChannelsLastMaxPool2d(pool, bn, relu=True)
    with torch.no_grad():
        got, expected = fused(x), pool(torch.relu(bn(x)))
    assert torch.equal(got.isnan(), expected.isnan()) and got.isnan().any()
    assert torch.equal(got.nan_to_num(), expected.nan_to_num()) and (got == 0).any()


def test_max_pool_settings_it_does_not_replace():
    for pool in (nn.MaxPool2d(3, 2, 1, ceil_mode=True), nn.MaxPool2d(3, 2, 1, dilation=2),
                 nn.MaxPool2d(3, 2, 1, return_indices=True)):
        assert not ChannelsLastMaxPool2d.applies(pool)
        with pytest.raises(ValueError, match='dilation 1, ceil_mode=False'):
            ChannelsLastMaxPool2d(pool)
    assert not ChannelsLastMaxPool2d.applies(nn.AvgPool2d(2))


def _detector(config):
    from mmdet.registry import MODELS
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet')
    cfg = Config.fromfile(osp.join(CONFIGS, config))
    test_cfg = cfg.model.test_cfg
    for part in ([test_cfg.rcnn] if 'rcnn' in test_cfg else [test_cfg]):
        part.score_thr = 0.0  # random weights: keep every box, so detections are compared in numbers
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    return randomize_inference_state(model, seed=2)


def _sample(h, w):
    from mmdet.structures import DetDataSample
    sample = DetDataSample()
    sample.set_metainfo(dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w), batch_input_shape=(h, w),
                             scale_factor=(1.0, 1.0)))
    return sample


@pytest.mark.parametrize('config', ['rebnn_faster_rcnn_binary_roi.py', 'rebnn_fcos_binary_head.py',
                                    'rebnn_retinanet_binary_head.py'])
def test_whole_binary_detector_deploy_identical(config):
    sim = _detector(config)
    dep = convert_to_deploy(copy.deepcopy(sim))
    assert sum(isinstance(m, FusedReActStage) for m in dep.modules()) == 4
    # the stem's BN -> ReLU -> max pool is one pass
    assert isinstance(dep.backbone.maxpool, ChannelsLastMaxPool2d) and dep.backbone.maxpool.relu
    assert dep.backbone.maxpool.bn is not None and isinstance(dep.backbone.bn1, nn.Identity)
    head = dep.rpn_head if hasattr(dep, 'rpn_head') else dep.bbox_head
    if hasattr(head, 'rpn_conv'):
        assert head.rpn_conv.conv.nchw_output and head.rpn_conv.ends_with_relu
        assert isinstance(dep.roi_head.bbox_roi_extractor, ParallelRoIExtractor)
    else:
        assert head.cls_convs[-1].conv.nchw_output and head.reg_convs[-1].conv.nchw_output
        assert not head.cls_convs[0].conv.nchw_output
    x = torch.randn(1, 3, 160, 224, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        feats_sim, feats_dep = sim.extract_feat(x), dep.extract_feat(x)
        for a, b in zip(feats_sim, feats_dep, strict=True):
            assert torch.equal(a, b)
        raw_sim = (sim.rpn_head if hasattr(sim, 'rpn_head') else sim.bbox_head)(feats_sim)
        raw_dep = head(feats_dep)
        for level_sim, level_dep in zip(raw_sim, raw_dep, strict=True):
            for a, b in zip(level_sim, level_dep, strict=True):
                assert torch.equal(a, b)
        det_sim = sim.predict(x, [_sample(160, 224)])[0].pred_instances
        det_dep = dep.predict(x, [_sample(160, 224)])[0].pred_instances
    assert len(det_sim) > 10
    for key in ('bboxes', 'scores', 'labels'):
        assert torch.equal(det_sim[key], det_dep[key]), key


@pytest.mark.parametrize('isa', NATIVE_ISAS + ['reference'])
def test_fused_relu_is_torch_relu_bit_for_bit(isa):
    """relu=True in the epilogue equals torch.relu of the output to the bit: negatives -> +0, -0 kept, NaN kept."""
    g = torch.Generator().manual_seed(5)
    x = torch.randn(2, 2, 7, 9, generator=g)  # 2 channels, 1x1: counts in {-2, 0, 2}, so many exact zeros
    w = kernels.prepare_weight(pack_conv_weight(torch.randn(6, 2, 1, 1, generator=g)), 2)
    scale = torch.tensor([-1.0, 1.0, -0.5, 2.0, float('nan'), -3.0])  # negative scale * 0 = -0
    plain = kernels.binary_conv2d(x, None, w, scale, isa=isa)
    fused = kernels.binary_conv2d(x, None, w, scale, isa=isa, relu=True)
    expected = torch.relu(plain)
    assert (plain == 0).any() and torch.signbit(plain[plain == 0]).any() and plain.isnan().any()
    assert torch.equal(fused.contiguous().view(torch.int32), expected.contiguous().view(torch.int32))


def test_stem_pool_with_a_negative_zero_bn_shift_keeps_torch_signs_of_zero():
    """With a -0 BN shift a BN output can be -0, where relu-then-max and max-then-relu differ in the sign of a
    zero: the kernel then applies the ReLU per element (the slow path), bit for bit torch's."""
    g = torch.Generator().manual_seed(8)
    x = torch.randn(1, 3, 9, 10, generator=g)
    x[0, 1] = -x[0, 1].abs()  # a window of negatives and -0: torch gives +0 (relu of the first), max-then-relu -0
    x[0, 1, :, 1::2] = -0.0
    scale = torch.tensor([1.0, 2.0, -1.0])
    shift = torch.tensor([0.5, -0.0, 0.0])
    got = torch.ops.rebnn.max_pool2d_channels_last(x, 3, 3, 2, 2, 1, 1, scale, shift, True)
    y = kernels.fma32(x, scale.view(1, -1, 1, 1), shift.view(1, -1, 1, 1))
    assert torch.signbit(y[0, 1][y[0, 1] == 0]).any()
    expected = nn.functional.max_pool2d(torch.relu(y), 3, 2, 1)
    assert torch.equal(got.contiguous().view(torch.int32), expected.contiguous().view(torch.int32))
    max_then_relu = torch.relu(nn.functional.max_pool2d(y, 3, 2, 1))
    assert not torch.equal(max_then_relu.view(torch.int32), expected.view(torch.int32))  # the case is exercised


@pytest.mark.parametrize('isa', NATIVE_ISAS)
@pytest.mark.parametrize('with_bn', [True, False])
def test_max_pool_kernel_equal_on_every_path(isa, with_bn):
    """max_pool2d_channels_last on each kernel path (portable: std::fma in software; avx2/avx512: the FMA unit)
    equals torch's BN -> ReLU -> max pool (or the plain max pool)."""
    g = torch.Generator().manual_seed(9)
    x = torch.randn(2, 5, 15, 18, generator=g)
    scale, shift = torch.randn(5, generator=g), torch.randn(5, generator=g)
    if with_bn:
        got = torch.ops.rebnn.max_pool2d_channels_last(x, 3, 3, 2, 2, 1, 1, scale, shift, True, isa)
        y = kernels.fma32(x, scale.view(1, -1, 1, 1), shift.view(1, -1, 1, 1))
        expected = nn.functional.max_pool2d(torch.relu(y), 3, 2, 1)
    else:
        got = torch.ops.rebnn.max_pool2d_channels_last(x, 3, 3, 2, 2, 1, 1, None, None, False, isa)
        expected = nn.functional.max_pool2d(x, 3, 2, 1)
    assert torch.equal(got, expected)
