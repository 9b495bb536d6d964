import pytest
import torch
from mmdet.models.backbones import ResNet
from mmdet.registry import MODELS
from torch import nn

from rebnn_det.models import ReBNNResNet, convert_real_resnet_state_dict
from rebnn_det.ops import ReBNNConv, named_binary_convs
from tests.helpers import assert_operands_binary, record_binary_operands


def test_output_shapes_and_registered():
    torch.manual_seed(0)
    model = MODELS.build(dict(type='ReBNNResNet', depth=18))
    outs = model(torch.randn(2, 3, 64, 96))
    assert [tuple(o.shape) for o in outs] == [(2, 64, 16, 24), (2, 128, 8, 12), (2, 256, 4, 6), (2, 512, 2, 3)]
    assert model.out_channels == [64, 128, 256, 512]
    # every 3x3 conv of every block is binary: 2 per block, 8 blocks
    assert len(list(named_binary_convs(model))) == 16


def test_depth_34_block_counts_and_out_indices():
    model = ReBNNResNet(depth=34, out_indices=(1, 3))
    assert [len(getattr(model, f'layer{i}')) for i in range(1, 5)] == [3, 4, 6, 3]
    outs = model(torch.randn(1, 3, 64, 64))
    assert [o.shape[1] for o in outs] == [128, 512]


def test_every_binary_conv_sees_binary_operands():
    torch.manual_seed(0)
    model = ReBNNResNet(depth=18)
    with record_binary_operands(model) as seen:
        model(torch.randn(1, 3, 64, 64))
    assert_operands_binary(model, seen)


def test_real_stages_stem_and_downsample_stay_real():
    model = ReBNNResNet(depth=18, binary_stages=(False, True, True, False))
    assert type(model.layer1[0].conv1) is nn.Conv2d and type(model.layer4[1].conv2) is nn.Conv2d
    assert isinstance(model.layer2[0].conv1, ReBNNConv)
    assert type(model.conv1) is nn.Conv2d
    ds = model.layer2[0].downsample
    assert isinstance(ds[0], nn.AvgPool2d) and type(ds[1]) is nn.Conv2d and ds[1].kernel_size == (1, 1)


def test_binarizer_options_are_passed_to_every_conv():
    model = ReBNNResNet(depth=18, weight_binarizer='xnor', act_binarizer='approxsign', pad_value=-1)
    convs = [m for _, m in named_binary_convs(model)]
    assert {(m.weight_binarizer, m.act_binarizer, m.pad_value) for m in convs} == {('xnor', 'approxsign', -1.0)}


def test_frozen_stages_and_norm_eval():
    model = ReBNNResNet(depth=18, frozen_stages=1, norm_eval=True)
    model.train()
    assert not any(p.requires_grad for p in model.conv1.parameters())
    assert not any(p.requires_grad for p in model.layer1.parameters())
    assert all(p.requires_grad for p in model.layer2.parameters())
    assert not model.layer3[0].bn1.training


def test_bad_arguments():
    with pytest.raises(KeyError, match=r'invalid depth 50 .* allowed: \[18, 34\]'):
        ReBNNResNet(depth=50)
    with pytest.raises(ValueError, match="allowed: 'rebnn', 'xnor', 'none'"):
        ReBNNResNet(weight_binarizer='sign')
    with pytest.raises(ValueError, match="allowed: 'rsign', 'approxsign', 'none'"):
        ReBNNResNet(act_binarizer='relu')
    with pytest.raises(ValueError, match='out_indices'):
        ReBNNResNet(out_indices=(4, ))


@pytest.mark.parametrize('layout', ['torchvision', 'mmdet_detector'])
def test_init_from_real_resnet_checkpoint(tmp_path, layout):
    torch.manual_seed(0)
    real = ResNet(depth=18)  # torchvision key layout (conv1, bn1, layerX.Y.convZ, downsample.0/1)
    sd = real.state_dict()
    if layout == 'torchvision':
        sd = dict(sd, **{'fc.weight': torch.zeros(1000, 512), 'fc.bias': torch.zeros(1000)})
        converted = convert_real_resnet_state_dict(sd)
    else:
        sd = {'state_dict': {'backbone.' + k: v for k, v in sd.items()} | {'rpn_head.x': torch.zeros(1)}}
        converted = convert_real_resnet_state_dict(sd, prefix='backbone.')
    path = tmp_path / 'r18_rebnn.pth'
    torch.save({'state_dict': converted}, path)
    model = ReBNNResNet(depth=18, init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    model.init_weights()
    real_sd = real.state_dict()
    assert torch.equal(model.layer3[1].conv2.weight, real_sd['layer3.1.conv2.weight'])
    assert torch.equal(model.layer2[0].downsample[1].weight, real_sd['layer2.0.downsample.0.weight'])
    assert torch.equal(model.layer2[0].downsample[2].running_var, real_sd['layer2.0.downsample.1.running_var'])
    assert torch.equal(model.conv1.weight, real_sd['conv1.weight'])
    w = real_sd['layer1.0.conv1.weight']
    assert torch.allclose(model.layer1[0].conv1.alpha, w.abs().mean((1, 2, 3)))


def test_convert_rejects_non_resnet_checkpoint():
    with pytest.raises(KeyError, match="no ResNet weights .* under prefix 'backbone.'"):
        convert_real_resnet_state_dict({'state_dict': {'neck.x': torch.zeros(1)}}, prefix='backbone.')
