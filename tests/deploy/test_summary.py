"""Model summary (rebnn_det.deploy.summary): storage and operation counts checked against counts made by hand,
and the FLOPs of the real-valued reference equal to what mmengine's complexity analysis reports (mmdet get_flops)."""
import os.path as osp
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config

from rebnn_det.deploy import build_detector, format_summary, model_summary
from rebnn_det.models.backbones.rebnn_resnet import ReBNNResNet

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _conv_out(size, k, s, p):
    return (size + 2 * p - k) // s + 1


def _hand_counts(width, size, weight_binarizer):
    """BOPs, FLOPs, fp32 bits and packed bits of ReBNNResNet-18 (stem/base width ``width``) on a size x size image,
    from its architecture alone: stem 7x7/2 conv + BN, 3x3/2 max-pool; per stage two blocks of two 3x3 binary
    convs (each + BN + RPReLU), stride 2 and a real AvgPool + 1x1 conv + BN shortcut where the shape changes.
    mmengine's conventions: conv = MACs, eval BN = 2 per element; pooling, adds, PReLU, sign: 0."""
    bops = flops = fp32 = packed = 0
    h = _conv_out(size, 7, 2, 3)
    flops += width * 3 * 49 * h * h + 2 * width * h * h  # stem conv + BN
    fp32 += 32 * (width * 3 * 49 + 4 * width)
    packed += 32 * (width * 3 * 49 + 4 * width)
    h = _conv_out(h, 3, 2, 1)
    c_in = width
    for stage in range(4):
        c_out = width * 2**stage
        for block in range(2):
            stride = 2 if stage > 0 and block == 0 else 1
            h_block = _conv_out(h, 3, stride, 1)
            for conv in range(2):
                cin = c_in if conv == 0 else c_out
                h_out = h_block
                bops += c_out * cin * 9 * h_out * h_out
                flops += 2 * c_out * h_out * h_out  # BN
                n_w = c_out * cin * 9
                alpha = c_out if weight_binarizer == 'rebnn' else 0
                real = alpha + cin + 4 * c_out + 3 * c_out  # alpha, RSign threshold, BN (4), RPReLU (3)
                fp32 += 32 * (n_w + real)
                packed += n_w + 32 * (real + (c_out if weight_binarizer == 'xnor' else 0))
            if stride != 1 or c_in != c_out:  # AvgPool + 1x1 conv + BN shortcut
                flops += c_out * c_in * h_block * h_block + 2 * c_out * h_block * h_block
                fp32 += 32 * (c_out * c_in + 4 * c_out)
                packed += 32 * (c_out * c_in + 4 * c_out)
            h, c_in = h_block, c_out
    return bops, flops, fp32, packed


@pytest.mark.parametrize('weight_binarizer', ['rebnn', 'xnor'])
def test_tiny_backbone_totals_match_hand_counts(weight_binarizer):
    backbone = ReBNNResNet(depth=18, base_channels=8, stem_channels=8, weight_binarizer=weight_binarizer)
    summary = model_summary(backbone, (64, 64))
    bops, flops, fp32_bits, packed_bits = _hand_counts(8, 64, weight_binarizer)
    assert summary.bops == bops
    assert summary.flops == flops
    assert summary.fp32_bytes == fp32_bits / 8
    assert summary.packed_bytes == packed_bits / 8
    assert summary.ops == bops / 64 + flops
    convs = [r for r in summary.layers if r.kind == 'ReBNNConv 3x3']
    assert len(convs) == 16 and all((r.weight_bits, r.act_bits) == (1, 1) for r in convs)
    first = next(r for r in summary.layers if r.name == 'layer1.0.conv1')
    assert first.binary_macs == 8 * 8 * 9 * 16 * 16 and first.float_macs == 0
    assert first.packed_bits == 8 * 8 * 9 + 32 * (8 + 8)  # 1 bit per weight, alpha and threshold 32 bits each
    text = format_summary(summary)
    assert 'layer1.0.conv1' in text and f'{summary.compression:.2f}x' in text and 'BOPs/64 + FLOPs' in text


def test_w32a1_and_w1a32_layers_count_as_flops():
    backbone = ReBNNResNet(depth=18, base_channels=8, stem_channels=8, weight_binarizer='none')
    summary = model_summary(backbone, (64, 64))
    bops, flops, fp32_bits, _ = _hand_counts(8, 64, 'rebnn')
    assert summary.bops == 0 and summary.flops == bops + flops
    assert summary.packed_bytes == summary.fp32_bytes  # nothing stored in 1 bit
    backbone = ReBNNResNet(depth=18, base_channels=8, stem_channels=8, act_binarizer='none')
    summary = model_summary(backbone, (64, 64))
    assert summary.bops == 0 and summary.flops == bops + flops and summary.packed_bytes < summary.fp32_bytes


def test_real_reference_flops_equal_mmengine_get_flops():
    """mmdet's tools/analysis_tools/get_flops.py: ``model.forward = model.extract_feat`` and mmengine's
    ``get_model_complexity_info``; the summary's backbone + neck FLOPs must be that number exactly."""
    from mmengine.analysis import get_model_complexity_info
    cfg = Config.fromfile(osp.join(ROOT, 'configs', 'real_faster_rcnn.py'))
    model = build_detector(cfg)
    summary = model_summary(model, (128, 160))
    x = torch.zeros(1, 3, 128, 160)
    model.forward = model.extract_feat
    reference = get_model_complexity_info(model, inputs=(x, ), show_table=False, show_arch=False)
    assert summary.bops == 0 and summary.compression == 1.0
    assert summary.part('backbone', 'neck').flops == reference['flops']
    assert summary.flops > reference['flops']  # the RPN head is counted too
    assert summary.params == sum(p.numel() for p in model.parameters())


def test_detector_summary_counts_binary_parts_and_heads():
    cfg = Config.fromfile(osp.join(ROOT, 'configs', 'shapes', 'rebnn_faster_rcnn_shapes.py'))
    model = build_detector(cfg)
    summary = model_summary(model, (64, 64))
    feat = summary.part('backbone', 'neck')
    assert feat.bops > 0 and feat.compression > 10
    roi = summary.part('roi_head')  # counted at the test-time proposals (this config: 100), all real
    assert roi.layers and all(r.binary_macs == 0 and r.float_macs > 0 for r in roi.layers)
    assert summary.traced == ['backbone', 'neck', 'rpn_head', 'roi_head']
    assert summary.rois == {'roi_head.bbox_head': 100}
    binary = [r for r in summary.layers if r.weight_bits == 1]
    assert len(binary) == 16 + 4 + 4  # backbone convs, FPN lateral + output (num_outs 5 by max-pool)


def test_model_summary_tool_prints_totals():
    proc = subprocess.run([sys.executable, 'tools/model_summary.py', 'configs/shapes/rebnn_faster_rcnn_shapes.py',
                           '--shape', '64', '64', '--totals-only'], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for key in ('fp32 size', 'packed size', 'compression', 'BOPs', 'FLOPs', 'OPs', 'input 1x3x64x64'):
        assert key in proc.stdout


def test_half_packed_bytes_counts_each_kind_of_value():
    from torch import nn

    from rebnn_det.deploy.summary import half_packed_bytes
    from rebnn_det.ops import ReBNNConv
    model = nn.Sequential(ReBNNConv(64, 8, 3), nn.Conv2d(8, 4, 1))
    # signs 64*8*9 bits + alpha 8*32 + RSign threshold 64*32 + real 1x1 weight 32*16 + its bias 4*32
    assert half_packed_bytes(model) == (64 * 8 * 9 + 8 * 32 + 64 * 32 + 32 * 16 + 4 * 32) / 8


def test_roi_head_macs_are_counted_per_proposal():
    import os.path as osp

    from mmengine.config import Config
    root = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    shapes = osp.join(root, 'configs', 'shapes')
    real = build_detector(Config.fromfile(osp.join(shapes, 'rebnn_faster_rcnn_shapes_binary_rpn.py')))
    binary = build_detector(Config.fromfile(osp.join(shapes, 'rebnn_faster_rcnn_shapes_binary_roi.py')))
    head = binary.roi_head.bbox_head
    c, f, k = binary.roi_head.bbox_roi_extractor.out_channels, head.shared_fcs[1].out_features, head.num_classes
    n = 10
    fc6, fc7, cls, reg = n * c * 49 * f, n * f * f, n * f * (k + 1), n * f * 4 * k
    real_roi = model_summary(real, (64, 64), proposals=n).part('roi_head')
    assert (real_roi.bops, real_roi.flops) == (0, fc6 + fc7 + cls + reg)
    roi = model_summary(binary, (64, 64), proposals=n).part('roi_head')
    # the two shared FCs are 1-bit x 1-bit MACs; fc_cls / fc_reg and the two BN1d (2 per element) stay FLOPs
    assert (roi.bops, roi.flops) == (fc6 + fc7, cls + reg + 2 * 2 * n * f)
    assert roi.rois == {'roi_head.bbox_head': n}
    default = model_summary(binary, (64, 64))
    assert default.rois == {'roi_head.bbox_head': binary.test_cfg['rpn']['max_per_img']}
    assert 'RoI heads at roi_head.bbox_head x10 RoIs' in format_summary(model_summary(binary, (64, 64), proposals=10))
