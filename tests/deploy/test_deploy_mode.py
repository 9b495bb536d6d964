"""Deploy mode (convert_to_deploy, BinaryDeployHook): the XNOR-popcount model gives the simulated model's outputs
bit for bit (eval mode), layer by layer (integer counts and float outputs) and detection by detection, on every
kernel path this machine runs."""
import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from rebnn_det.deploy import kernels
from rebnn_det.deploy.convert import (FusedBinaryConvBlock, FusedReActBasicBlock, FusedReActStage, convert_to_deploy,
                                      deploy_layers)
from rebnn_det.deploy.packed_conv import PackedBinaryConv, is_deployable
from rebnn_det.deploy.roi_align import ParallelRoIExtractor
from rebnn_det.models.backbones.rebnn_resnet import ReBNNResNet
from rebnn_det.models.necks.binary_fpn import BinaryFPN
from rebnn_det.ops import ReBNNConv, named_binary_convs
from rebnn_det.ops.binarize import hard_sign

ISAS = list(kernels.available_isas())  # the native paths this CPU runs, then 'reference'


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
                              binary_cfg=conv_cfg)

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


@pytest.mark.parametrize('isa', ISAS)
@pytest.mark.parametrize('pad_value', [0.0, -1.0])
@pytest.mark.parametrize('fuse', [True, False], ids=['fused', 'unfused'])
def test_backbone_neck_bit_identical_to_simulated(pad_value, fuse, isa):
    sim = randomize_inference_state(BackboneNeck(pad_value=pad_value), seed=1)
    dep = convert_to_deploy(copy.deepcopy(sim), fuse=fuse, isa=isa)
    assert not list(named_binary_convs(dep))  # every binary conv converted
    assert len(deploy_layers(dep)) == len(list(named_binary_convs(sim))) == 16 + 9  # backbone + FPN (4+4+1)
    fused = [m for m in dep.modules() if isinstance(m, (FusedReActBasicBlock, FusedBinaryConvBlock))]
    assert len(fused) == (8 + 9 if fuse else 0)
    # the 4 stages of 2 blocks pass their activations on packed (block -> block inside a stage)
    assert sum(isinstance(m, FusedReActStage) for m in dep.modules()) == (4 if fuse else 0)
    x = torch.randn(2, 3, 96, 80)
    with torch.no_grad():
        outs_sim, outs_dep = sim(x), dep(x)
    for a, b in zip(outs_sim, outs_dep, strict=True):
        assert torch.equal(b, a)


@pytest.mark.parametrize('isa', ISAS)
def test_every_layer_counts_and_outputs_exact(isa):
    """Per layer, on the inputs the simulated model really feeds it: counts exact, float output = alpha * count
    bit for bit (the eval-mode ReBNNConv rounds once, like the kernel)."""
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
        packed = PackedBinaryConv.from_conv(conv, isa=isa)
        counts = packed.counts(x).contiguous()
        assert torch.equal(counts, exact_counts(conv, x)), name
        assert torch.equal(packed(x), out), name
        assert torch.equal(counts.float() * conv.alpha.view(1, -1, 1, 1), out), name


@pytest.mark.parametrize('isa', ISAS)
def test_fused_blocks_bit_identical_per_block(isa):
    """Each fused block (conv, BN, shortcut, RPReLU in the epilogue) against its simulated block, on the inputs the
    simulated model feeds it."""
    sim = randomize_inference_state(BackboneNeck(), seed=4)
    dep = convert_to_deploy(copy.deepcopy(sim), isa=isa)
    fused = {n: m for n, m in dep.named_modules() if isinstance(m, (FusedReActBasicBlock, FusedBinaryConvBlock))}
    seen = {}
    handles = [sim.get_submodule(n).register_forward_hook(lambda m, i, o, n=n: seen.__setitem__(n, (i[0], o)))
               for n in fused]
    with torch.no_grad():
        sim(torch.randn(1, 3, 80, 64))
    for h in handles:
        h.remove()
    assert len(seen) == len(fused) == 8 + 9
    with torch.no_grad():
        for n, block in fused.items():
            x, out = seen[n]
            assert torch.equal(block(x), out), n
            assert torch.equal(block(x.contiguous(memory_format=torch.channels_last)), out), n


@pytest.mark.parametrize('isa', ISAS)
def test_real_conv_after_binary_block_reads_nchw(isa):
    """The kernels write channels-last; PyTorch's CPU convolution rounds differently on channels-last inputs, so a
    real conv after a converted block is fed NCHW, as in the simulated model: still bit-identical."""
    from rebnn_det.models.layers.binary_conv_block import BinaryConvBlock
    model = nn.Sequential(BinaryConvBlock(64, 128, 3, padding=1, act_cfg=dict(type='RPReLU')),
                          nn.Conv2d(128, 96, 3, padding=1), nn.ReLU(),
                          BinaryConvBlock(96, 96, 3, padding=1, act_cfg=dict(type='ReLU')), nn.Conv2d(96, 40, 1))
    randomize_inference_state(model, seed=5)
    x = torch.randn(2, 64, 17, 15)
    with torch.no_grad():
        expected = model(x)
        got = convert_to_deploy(model, isa=isa)(x)
    assert isinstance(model[0], FusedBinaryConvBlock) and isinstance(model[3], FusedBinaryConvBlock)
    assert torch.equal(got, expected)


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
    assert isinstance(model[2].conv, PackedBinaryConv) and not model[2].with_norm  # BN in the epilogue
    assert model[2].conv.bn is not None
    assert isinstance(model[3], PackedBinaryConv)
    with torch.no_grad():
        assert torch.equal(model(x), expected)


def _trained_detector(det):
    from mmdet.registry import MODELS
    from mmengine.runner import load_checkpoint
    model = MODELS.build(det.cfg.model)
    load_checkpoint(model, det.checkpoint, map_location='cpu', strict=True, logger='silent')
    return model.eval()


@pytest.mark.parametrize('isa', ISAS)
def test_detector_deploy_same_detections_and_counts(tiny_trained_detector, isa):
    from mmengine.runner import Runner
    sim = _trained_detector(tiny_trained_detector)
    dep = convert_to_deploy(copy.deepcopy(sim), isa=isa)
    assert len(deploy_layers(dep)) == len(list(named_binary_convs(sim))) > 0
    # the RoI features come from the threaded RoIAlign, which reads the neck's channels-last outputs as they are
    assert isinstance(dep.roi_head.bbox_roi_extractor, ParallelRoIExtractor)
    assert not getattr(dep.neck, '_rebnn_nchw', False)
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
                assert torch.equal(b.scores, a.scores)
                assert torch.equal(b.bboxes, a.bboxes)
                n_dets += len(a.labels)
    for h in handles:
        h.remove()
    assert n_dets > 0
    for name, conv in named_binary_convs(sim):  # per layer, on the detector's real activations
        x, out = seen[name]
        counts = PackedBinaryConv.from_conv(conv, isa=isa).counts(x).contiguous()
        assert torch.equal(counts, exact_counts(conv, x)), name
        assert torch.equal(counts.float() * conv.alpha.view(1, -1, 1, 1), out), name


def test_features_made_nchw_while_an_mmcv_op_remains(tiny_trained_detector):
    """With a max-pooling RoIAlign (which the threaded kernel does not replace) the neck's outputs are made
    NCHW-contiguous for it, and the detections still equal the simulated model's."""
    cfg = copy.deepcopy(tiny_trained_detector.cfg)
    cfg.model.roi_head.bbox_roi_extractor.roi_layer.pool_mode = 'max'
    from mmdet.registry import MODELS
    sim = MODELS.build(cfg.model).eval()
    dep = convert_to_deploy(copy.deepcopy(sim))
    assert not isinstance(dep.roi_head.bbox_roi_extractor, ParallelRoIExtractor)
    assert dep.neck._rebnn_nchw
    feats = dep.extract_feat(torch.randn(1, 3, 64, 64))
    assert all(f.is_contiguous() for f in feats)


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
