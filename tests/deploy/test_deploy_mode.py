"""Deploy mode (convert_to_deploy, BinaryDeployHook): the XNOR-popcount model gives the simulated model's outputs,
layer by layer (integer counts exactly) and detection by detection."""
import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from rebnn_det.deploy.convert import (FusedBinaryConvBlock, FusedReActBasicBlock, convert_to_deploy,
                                      deploy_layers)
from rebnn_det.deploy.packed_conv import PackedBinaryConv, is_deployable
from rebnn_det.models.backbones.rebnn_resnet import ReBNNResNet
from rebnn_det.models.necks.binary_fpn import BinaryFPN
from rebnn_det.ops import ReBNNConv, named_binary_convs
from rebnn_det.ops.binarize import hard_sign


def randomize_inference_state(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial alpha, RSign thresholds, RPReLU and BN statistics, as a trained model has."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith('alpha'):
                p.copy_(torch.rand(p.shape, generator=g) * 0.5 + 0.05)
            elif name.endswith(('threshold', 'shift_in', 'shift_out')):
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
            elif name.endswith('slope'):
                p.copy_(torch.rand(p.shape, generator=g) * 0.5)
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g))
                m.running_var.copy_(torch.rand(m.num_features, generator=g) * 2 + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.2)
    return model.eval()


class BackboneNeck(nn.Module):
    def __init__(self, width=16, **conv_cfg):
        super().__init__()
        self.backbone = ReBNNResNet(depth=18, stem_channels=width, base_channels=width, **conv_cfg)
        self.neck = BinaryFPN([width, 2 * width, 4 * width, 8 * width], 24, num_outs=5, add_extra_convs='on_output',
                              **conv_cfg)

    def forward(self, x):
        return self.neck(self.backbone(x))


def exact_counts(conv: ReBNNConv, x: torch.Tensor) -> torch.Tensor:
    """sum_valid taps sum_c sign(x - beta) sign(w), from the float layer's own binarizers in float64."""
    a = conv.binarize_input(x).double()
    b = hard_sign(conv.weight).double()
    padding = conv.padding
    if conv.pad_value != 0 and any(padding):
        a = F.pad(a, (padding[1], padding[1], padding[0], padding[0]), value=conv.pad_value)
        padding = 0
    return F.conv2d(a, b, None, conv.stride, padding, conv.dilation, conv.groups).round().int()


@pytest.mark.parametrize('pad_value', [0.0, -1.0])
@pytest.mark.parametrize('fuse', [True, False], ids=['fused', 'unfused'])
def test_backbone_neck_equal_to_simulated(pad_value, fuse):
    sim = randomize_inference_state(BackboneNeck(pad_value=pad_value), seed=1)
    dep = convert_to_deploy(copy.deepcopy(sim), fuse=fuse)
    assert not list(named_binary_convs(dep))  # every binary conv converted
    assert len(deploy_layers(dep)) == len(list(named_binary_convs(sim))) == 16 + 9  # backbone + FPN (4+4+1)
    fused = [m for m in dep.modules() if isinstance(m, (FusedReActBasicBlock, FusedBinaryConvBlock))]
    assert len(fused) == (8 + 9 if fuse else 0)
    x = torch.randn(2, 3, 96, 80)
    with torch.no_grad():
        outs_sim, outs_dep = sim(x), dep(x)
    for a, b in zip(outs_sim, outs_dep, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-4)


def test_every_layer_counts_exact_and_outputs_close():
    """Per layer, on the inputs the simulated model really feeds it: counts exact, float output = alpha * count."""
    sim = randomize_inference_state(BackboneNeck(), seed=2)
    seen = {}
    handles = [m.register_forward_hook(lambda m, i, o, n=name: seen.__setitem__(n, (i[0], o)))
               for name, m in named_binary_convs(sim)]
    with torch.no_grad():
        sim(torch.randn(1, 3, 64, 96))
    for h in handles:
        h.remove()
    assert len(seen) == 25
    for name, conv in named_binary_convs(sim):
        x, out = seen[name]
        packed = PackedBinaryConv.from_conv(conv)
        counts = packed.counts(x).contiguous()
        assert torch.equal(counts, exact_counts(conv, x)), name
        torch.testing.assert_close(packed(x), out, rtol=1e-5, atol=1e-4)
        torch.testing.assert_close(counts.float() * conv.alpha.view(1, -1, 1, 1), out, rtol=1e-5, atol=1e-4)


def test_real_layers_stay_and_conv_module_bn_folds():
    from mmcv.cnn import ConvModule
    model = nn.Sequential(
        ReBNNConv(8, 8, 3, padding=1, act_binarizer='none'),  # W1A32: stays a float conv
        ReBNNConv(8, 8, 3, padding=1, weight_binarizer='none'),  # W32A1: stays
        ConvModule(8, 16, 3, padding=1, conv_cfg=dict(type='ReBNNConv'), norm_cfg=dict(type='BN')),
        ReBNNConv(16, 8, 1))
    randomize_inference_state(model, seed=3)
    x = torch.randn(2, 8, 10, 10)
    with torch.no_grad():
        expected = model(x)
    convert_to_deploy(model)
    assert isinstance(model[0], ReBNNConv) and isinstance(model[1], ReBNNConv) and not is_deployable(model[0])
    assert isinstance(model[2].conv, PackedBinaryConv) and not model[2].with_norm  # BN folded into the epilogue
    assert isinstance(model[3], PackedBinaryConv)
    with torch.no_grad():
        torch.testing.assert_close(model(x), expected, rtol=1e-4, atol=1e-4)


def _trained_detector(det):
    from mmdet.registry import MODELS
    from mmengine.runner import load_checkpoint
    model = MODELS.build(det.cfg.model)
    load_checkpoint(model, det.checkpoint, map_location='cpu', strict=True, logger='silent')
    return model.eval()


def test_detector_deploy_same_detections_and_counts(tiny_trained_detector):
    from mmengine.runner import Runner
    sim = _trained_detector(tiny_trained_detector)
    dep = convert_to_deploy(copy.deepcopy(sim))
    assert len(deploy_layers(dep)) == len(list(named_binary_convs(sim))) > 0
    loader = Runner.build_dataloader(copy.deepcopy(tiny_trained_detector.cfg.test_dataloader))
    seen = {}
    handles = [m.register_forward_hook(lambda m, i, o, n=name: None if n in seen else seen.update({n: (i[0], o)}))
               for name, m in named_binary_convs(sim)]
    n_dets = 0
    with torch.no_grad():
        for batch in loader:
            for a, b in zip(sim.test_step(copy.deepcopy(batch)), dep.test_step(copy.deepcopy(batch)), strict=True):
                a, b = a.pred_instances, b.pred_instances
                assert torch.equal(a.labels, b.labels)
                torch.testing.assert_close(b.scores, a.scores, rtol=1e-4, atol=1e-5)
                torch.testing.assert_close(b.bboxes, a.bboxes, rtol=1e-4, atol=1e-3)
                n_dets += len(a.labels)
    for h in handles:
        h.remove()
    assert n_dets > 0
    for name, conv in named_binary_convs(sim):  # per layer, on the detector's real activations
        x, out = seen[name]
        counts = PackedBinaryConv.from_conv(conv).counts(x).contiguous()
        assert torch.equal(counts, exact_counts(conv, x)), name
        torch.testing.assert_close(counts.float() * conv.alpha.view(1, -1, 1, 1), out, rtol=1e-5, atol=1e-4)


def test_deploy_hook_gives_the_same_map(tiny_trained_detector, tmp_path):
    from mmengine.runner import Runner
    from rebnn_det.deploy.deploy_hook import BinaryDeployHook  # noqa: F401  registers the hook
    metrics = {}
    for deploy in (False, True):
        cfg = copy.deepcopy(tiny_trained_detector.cfg)
        cfg.load_from = tiny_trained_detector.checkpoint
        cfg.work_dir = str(tmp_path / f'deploy_{deploy}')
        cfg.visualizer.name = f'deploy_hook_test_{deploy}'  # one visualizer instance per runner
        if deploy:
            cfg.custom_hooks = list(cfg.get('custom_hooks', [])) + [dict(type='BinaryDeployHook')]
        runner = Runner.from_cfg(cfg)
        metrics[deploy] = runner.test()
        assert bool(deploy_layers(runner.model)) == deploy
    assert metrics[True]['coco/bbox_mAP'] > 0
    assert metrics[True] == metrics[False]
