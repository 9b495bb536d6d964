"""Every shipped detection config trains with the one binary schedule (configs/_base_/schedules/binary_2x.py):
AdamW, clip 35; every config (the classification stage's too, with its own optimizer) puts weight decay on
ordinary weights only -- never on alpha, RSign thresholds, RPReLU shifts/slopes or norms.
Checked on the optimizer mmengine's builder makes for the built model (what a training run gets)."""
import glob
import os.path as osp

import pytest
import torch
from mmdet.registry import MODELS
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from rebnn_det.ops import ReBNNConv, RPReLU

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = sorted(p for p in glob.glob(osp.join(ROOT, 'configs', '**', '*.py'), recursive=True)
                 if '_base_' not in p)
NO_DECAY_NAMES = ('alpha', 'threshold', 'shift_in', 'shift_out', 'slope')  # ReBNNConv, RSign, RPReLU
NORMS = (_BatchNorm, nn.GroupNorm, nn.LayerNorm)


def decay_per_parameter(path):
    cfg = Config.fromfile(path)
    model = MODELS.build(cfg.model)
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    decay = {}
    for group in wrapper.optimizer.param_groups:
        for p in group['params']:
            decay[id(p)] = group['weight_decay']
    return cfg, model, wrapper, {name: decay[id(p)] for name, p in model.named_parameters()}


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: osp.relpath(p, osp.join(ROOT, 'configs')))
def test_binary_schedule_and_no_decay_groups(path):
    cfg, model, wrapper, decay = decay_per_parameter(path)
    weight_decay = 1e-4
    if osp.sep + 'classification' + osp.sep in path:  # the classification stage: its own (ReActNet's) optimizer
        optimizer = torch.optim.Adam if 'in1k' in path else torch.optim.AdamW
        assert type(wrapper.optimizer) is optimizer
        weight_decay = wrapper.optimizer.defaults['weight_decay']
        assert weight_decay == {'stage1': 5e-6, 'stage2': 0.0, 'real_r': 5e-6, 'crops': 0.0}[
            next(k for k in ('stage1', 'stage2', 'real_r', 'crops') if k in path)]
    else:
        assert type(wrapper.optimizer) is torch.optim.AdamW
        assert wrapper.optimizer.defaults['weight_decay'] == 1e-4
        assert cfg.optim_wrapper.clip_grad == dict(max_norm=35, norm_type=2)
    norm_params = {f'{m_name}.{n}' for m_name, m in model.named_modules() if isinstance(m, NORMS)
                   for n, _ in m.named_parameters(recurse=False)}
    special = {n for n in decay if n.rsplit('.', 1)[-1] in NO_DECAY_NAMES}
    assert norm_params, 'every detector here has norm layers'
    for name in sorted(norm_params | special):
        assert decay[name] == 0, f'{name} gets weight decay {decay[name]}'
    conv_weights = {f'{m_name}.weight' for m_name, m in model.named_modules() if isinstance(m, nn.Conv2d)}
    for name in sorted(conv_weights):
        assert decay[name] == weight_decay, f'{name} (a conv weight) gets weight decay {decay[name]}'
    # the special parameters the model has were all found by name (the test can't pass by finding none)
    binary = [m for m in model.modules() if isinstance(m, ReBNNConv)]
    expected = ({'alpha'} if any(m.alpha is not None for m in binary) else set()) | \
        ({'threshold'} if any(m.rsign is not None for m in binary) else set()) | \
        ({'shift_in', 'slope', 'shift_out'} if any(isinstance(m, RPReLU) for m in model.modules()) else set())
    assert {n.rsplit('.', 1)[-1] for n in special} == expected
