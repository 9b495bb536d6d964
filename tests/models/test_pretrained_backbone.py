"""A backbone's init_cfg=dict(type='Pretrained', ...) loads every tensor of a binary classifier checkpoint, checked:
missing / unexpected / mis-shaped keys are named; a real-valued checkpoint leaves only the binary-only parameters
at their defaults."""
import re

import pytest
import torch
from mmdet.models.backbones import ResNet
from mmdet.registry import MODELS

from rebnn_det.models import PretrainedMismatchError, ReBNNResNet, convert_real_resnet_state_dict
from rebnn_det.models.backbones.pretrained import binary_only_keys
from rebnn_det.ops import channel_mean_abs

SMALL = dict(depth=18, base_channels=8, stem_channels=8)


def classifier_checkpoint(path, backbone_kwargs=SMALL, seed=3, drop=(), extra=()):
    """What the classification stage saves: ``backbone.*`` of a trained ReBNNResNet (every tensor moved away from
    its initial value, so a tensor left unloaded shows) plus the classifier's head."""
    torch.manual_seed(seed)
    source = ReBNNResNet(**backbone_kwargs)
    with torch.no_grad():
        for p in source.parameters():
            p.add_(torch.rand_like(p))
        for name, b in source.named_buffers():
            if b.is_floating_point():
                b.add_(torch.rand_like(b))
    state = {f'backbone.{k}': v for k, v in source.state_dict().items() if k not in drop}
    state.update({f'backbone.{k}': torch.zeros(2) for k in extra})
    state['head.fc.weight'] = torch.ones(12, 256)
    state['head.fc.bias'] = torch.ones(12)
    torch.save(dict(state_dict=state, meta=dict(epoch=12)), path)
    return source


def pretrained(path, prefix='backbone.', **kwargs):
    return ReBNNResNet(**{**SMALL, **kwargs}, init_cfg=dict(type='Pretrained', checkpoint=str(path), prefix=prefix))


def test_every_tensor_of_a_binary_classifier_is_loaded(tmp_path):
    source = classifier_checkpoint(tmp_path / 'cls.pth')
    torch.manual_seed(0)
    backbone = pretrained(tmp_path / 'cls.pth')
    backbone.init_weights()
    expected = source.state_dict()
    got = backbone.state_dict()
    assert set(got) == set(expected)
    for key in got:
        assert torch.equal(got[key], expected[key]), key
    # the binary-only parameters by name: alpha of every binary conv, RSign thresholds, RPReLU's three
    names = binary_only_keys(backbone)
    assert 'layer1.0.conv1.alpha' in names and 'layer4.1.conv2.alpha' in names
    assert any(n.endswith('threshold') for n in names) and any(n.endswith('slope') for n in names)
    assert {n.rsplit('.', 1)[-1] for n in names} == {'alpha', 'threshold', 'shift_in', 'slope', 'shift_out'}
    for name in names:
        assert torch.equal(got[name], expected[name]), name
        assert not torch.equal(got[name], ReBNNResNet(**SMALL).state_dict()[name]), name  # not the default


def test_the_detector_config_line_loads_it_through_mmdet(tmp_path):
    source = classifier_checkpoint(tmp_path / 'cls.pth')
    cfg = dict(type='ReBNNResNet', **SMALL, out_indices=(0, 1, 2, 3),
               init_cfg=dict(type='Pretrained', prefix='backbone.', checkpoint=str(tmp_path / 'cls.pth')))
    neck_cfg = dict(type='BinaryFPN', in_channels=[8, 16, 32, 64], out_channels=16, num_outs=5)
    detector = MODELS.build(dict(type='RetinaNet', backbone=cfg, neck=neck_cfg, bbox_head=dict(
        type='RetinaHead', num_classes=3, in_channels=16, feat_channels=16, anchor_generator=dict(
            type='AnchorGenerator', octave_base_scale=4, scales_per_octave=1, ratios=[1.0],
            strides=[8, 16, 32, 64, 128]), bbox_coder=dict(type='DeltaXYWHBBoxCoder'),
        loss_cls=dict(type='FocalLoss', use_sigmoid=True), loss_bbox=dict(type='L1Loss'))))
    detector.init_weights()
    for key, value in source.state_dict().items():
        assert torch.equal(detector.backbone.state_dict()[key], value), key


def test_a_real_resnet_leaves_only_the_binary_only_parameters_at_defaults(tmp_path):
    torch.manual_seed(1)
    real = ResNet(depth=18, base_channels=8, stem_channels=8)
    state = {k: v for k, v in real.state_dict().items() if not k.endswith('num_batches_tracked')}  # torchvision's
    torch.save(dict(state_dict=convert_real_resnet_state_dict(state)), tmp_path / 'r18.pth')
    backbone = pretrained(tmp_path / 'r18.pth', prefix=None)
    backbone.init_weights()
    got = backbone.state_dict()
    assert torch.equal(got['conv1.weight'], real.state_dict()['conv1.weight'])
    assert torch.equal(got['layer2.0.downsample.1.weight'], real.state_dict()['layer2.0.downsample.0.weight'])
    conv = backbone.layer3[1].conv2
    assert torch.equal(conv.weight, real.layer3[1].conv2.weight)
    assert torch.equal(conv.alpha.detach(), channel_mean_abs(real.layer3[1].conv2.weight))  # derived from w
    default = ReBNNResNet(**SMALL).state_dict()
    for name in binary_only_keys(backbone):
        if not name.endswith('alpha'):
            assert torch.equal(got[name], default[name]), name


@pytest.mark.parametrize('case, message', [
    (dict(kwargs=dict(base_channels=16)),
     r'shape mismatches \d+ \(layer1\.0\.conv1\.weight: file \(8, 8, 3, 3\) vs backbone \(16, 8, 3, 3\)'),
    (dict(prefix='neck.'), r"no key starts with 'neck\.'"),
    (dict(prefix=None), r'missing keys \d+ \(conv1\.weight, .*unexpected keys \d+ \(backbone\.conv1\.weight'),
    (dict(drop=('layer2.1.rsign1.threshold', )), r'missing keys 1 \(layer2\.1\.\S*threshold\)'),
    (dict(extra=('layer5.0.conv1.weight', )), r'unexpected keys 1 \(layer5\.0\.conv1\.weight\)'),
])
def test_a_checkpoint_that_does_not_fit_names_the_keys(tmp_path, case, message):
    drop = case.get('drop', ())
    source = classifier_checkpoint(tmp_path / 'cls.pth', extra=case.get('extra', ()))
    if drop:  # a key of this backbone's actual naming
        names = [k for k in source.state_dict() if k.startswith('layer2.1.') and k.endswith('threshold')][:1]
        classifier_checkpoint(tmp_path / 'cls.pth', drop=names)
    backbone = pretrained(tmp_path / 'cls.pth', prefix=case.get('prefix', 'backbone.'), **case.get('kwargs', {}))
    with pytest.raises(PretrainedMismatchError, match=message) as err:
        backbone.init_weights()
    assert 'cls.pth' in str(err.value)


def test_bad_init_cfg_keys_are_named(tmp_path):
    classifier_checkpoint(tmp_path / 'cls.pth')
    backbone = ReBNNResNet(**SMALL, init_cfg=dict(type='Pretrained', checkpoint=str(tmp_path / 'cls.pth'),
                                                  strict=True))
    with pytest.raises(ValueError, match=re.escape("unknown keys ['strict']")):
        backbone.init_weights()
    missing = ReBNNResNet(**SMALL, init_cfg=dict(type='Pretrained', checkpoint=str(tmp_path / 'none.pth')))
    with pytest.raises(FileNotFoundError, match='none.pth'):
        missing.init_weights()


def test_a_w32a1_checkpoint_derives_alpha_and_a_list_init_cfg_is_refused(tmp_path):
    """Stage 1 of the two-step recipe (real weights, binary activations) has no alpha: loaded into a W1A1
    backbone, alpha is derived from its weights and everything else is loaded; a Pretrained entry inside a list
    (which mmengine would load unchecked) is an error."""
    torch.manual_seed(2)
    stage1 = ReBNNResNet(**SMALL, weight_binarizer='none')
    with torch.no_grad():
        for p in stage1.parameters():
            p.add_(torch.rand_like(p))
    torch.save(dict(state_dict={f'backbone.{k}': v for k, v in stage1.state_dict().items()}), tmp_path / 's1.pth')
    backbone = pretrained(tmp_path / 's1.pth')
    backbone.init_weights()
    conv = backbone.layer2[0].conv1
    assert torch.equal(conv.weight, stage1.layer2[0].conv1.weight)
    assert torch.equal(conv.alpha.detach(), channel_mean_abs(stage1.layer2[0].conv1.weight))
    got, source = backbone.state_dict(), stage1.state_dict()
    for name in binary_only_keys(backbone):
        if not name.endswith('alpha'):
            assert torch.equal(got[name], source[name]), name  # thresholds and RPReLU loaded, not defaults
    listed = ReBNNResNet(**SMALL, init_cfg=[dict(type='Pretrained', checkpoint=str(tmp_path / 's1.pth'))])
    with pytest.raises(ValueError, match='give a Pretrained init_cfg alone, as a dict'):
        listed.init_weights()
