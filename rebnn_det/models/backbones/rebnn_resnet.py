"""ReBNNResNet: a ResNet-18/34 whose 3x3 convolutions are 1-bit ReActNet blocks (registered in mmdet)."""
from typing import Sequence

import torch
from mmcv.cnn import build_norm_layer
from mmdet.registry import MODELS
from mmengine.model import BaseModule
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from ...ops import reset_binary_alphas
from ...ops.binarize import ACT_BINARIZERS, WEIGHT_BINARIZERS, check_choice
from .pretrained import load_pretrained_backbone
from .reactnet_block import ReActBasicBlock


@MODELS.register_module()
class ReBNNResNet(BaseModule):
    """ResNet-18/34 with binary (ReBNN) 3x3 convolutions, for mmdet detectors.

    The stem (7x7 conv, BN, ReLU, max-pool) and the downsample shortcuts (AvgPool + 1x1 conv + BN) stay real.
    Outputs and arguments follow mmdet's ``ResNet`` (``out_indices``, ``frozen_stages``, ``norm_cfg``,
    ``norm_eval``, ``init_cfg``), so it drops into any mmdet config; channels per stage are 64/128/256/512.

    Args:
        depth: 18 or 34.
        binary_stages: one bool per stage; ``False`` makes that stage real-valued.
        weight_binarizer / act_binarizer / pad_value: passed to every :class:`ReBNNConv`.
    """
    arch_settings = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3)}

    def __init__(self, depth: int = 18, in_channels: int = 3, stem_channels: int = 64, base_channels: int = 64,
                 num_stages: int = 4, strides: Sequence[int] = (1, 2, 2, 2), out_indices=(0, 1, 2, 3),
                 frozen_stages: int = -1, norm_cfg: dict = dict(type='BN', requires_grad=True),
                 norm_eval: bool = False, binary_stages: Sequence[bool] = (True, True, True, True),
                 weight_binarizer: str = 'rebnn', act_binarizer: str = 'rsign', pad_value: float = 0.0,
                 init_cfg=None):
        super().__init__(init_cfg)
        if depth not in self.arch_settings:
            raise KeyError(f'invalid depth {depth} for ReBNNResNet; allowed: {sorted(self.arch_settings)}')
        if not 1 <= num_stages <= 4:
            raise ValueError(f'num_stages must be 1..4, got {num_stages}')
        if len(strides) != num_stages or len(binary_stages) != num_stages:
            raise ValueError(f'strides {tuple(strides)} and binary_stages {tuple(binary_stages)} need one entry '
                             f'per stage ({num_stages})')
        if not out_indices or max(out_indices) >= num_stages or min(out_indices) < 0:
            raise ValueError(f'out_indices {tuple(out_indices)} must lie in 0..{num_stages - 1}')
        check_choice('weight_binarizer', weight_binarizer, WEIGHT_BINARIZERS)
        check_choice('act_binarizer', act_binarizer, ACT_BINARIZERS)
        self.depth = depth
        self.out_indices = tuple(out_indices)
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self.binary_stages = tuple(bool(b) for b in binary_stages)

        self.conv1 = nn.Conv2d(in_channels, stem_channels, 7, stride=2, padding=3, bias=False)
        self.bn1 = build_norm_layer(norm_cfg, stem_channels)[1]
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)

        conv_cfg = dict(weight_binarizer=weight_binarizer, act_binarizer=act_binarizer, pad_value=pad_value)
        self.res_layers = []
        channels_in = stem_channels
        for i, num_blocks in enumerate(self.arch_settings[depth][:num_stages]):
            channels_out = base_channels * 2**i
            blocks = [
                ReActBasicBlock(channels_in if j == 0 else channels_out, channels_out,
                                strides[i] if j == 0 else 1, self.binary_stages[i], conv_cfg, norm_cfg)
                for j in range(num_blocks)
            ]
            self.add_module(f'layer{i + 1}', nn.Sequential(*blocks))
            self.res_layers.append(f'layer{i + 1}')
            channels_in = channels_out
        self.out_channels = [base_channels * 2**i for i in self.out_indices]
        self._freeze_stages()

    def init_weights(self) -> None:
        """Initialise the layers; with ``init_cfg=dict(type='Pretrained', checkpoint=..., prefix=...)`` then load
        that checkpoint checked (:func:`~.pretrained.load_pretrained_backbone`: every tensor must fit; mmengine's
        own ``Pretrained`` load is non-strict)."""
        if isinstance(self.init_cfg, (list, tuple)) and any(
                isinstance(c, dict) and c.get('type') == 'Pretrained' for c in self.init_cfg):
            raise ValueError("ReBNNResNet: give a Pretrained init_cfg alone, as a dict (init_cfg=dict("
                             "type='Pretrained', "
                             'checkpoint=..., prefix=...)), so it is loaded checked; not inside a list')
        pretrained = self.init_cfg if isinstance(self.init_cfg, dict) and self.init_cfg.get('type') == 'Pretrained' \
            else None
        if pretrained is None:
            super().init_weights()
            reset_binary_alphas(self)
            return
        self.init_cfg = None  # the layers' own initialisation first (as mmengine orders it), then the checked load
        try:
            super().init_weights()
        finally:
            self.init_cfg = pretrained
        load_pretrained_backbone(self, pretrained)

    def _freeze_stages(self) -> None:
        if self.frozen_stages >= 0:
            for m in (self.conv1, self.bn1):
                m.eval()
                for p in m.parameters():
                    p.requires_grad = False
        for i in range(1, self.frozen_stages + 1):
            m = getattr(self, f'layer{i}')
            m.eval()
            for p in m.parameters():
                p.requires_grad = False

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        outs = []
        for i, name in enumerate(self.res_layers):
            x = getattr(self, name)(x)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)

    def train(self, mode: bool = True):
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, _BatchNorm):
                    m.eval()
        return self


def convert_real_resnet_state_dict(state_dict: dict, prefix: str = '') -> dict:
    """Map a real ResNet-18/34 state dict (torchvision or mmdet layout) onto :class:`ReBNNResNet` keys.

    ``prefix`` selects a sub-module (e.g. ``'backbone.'`` for an mmdet detector checkpoint); keys outside it and
    the classifier (``fc.*``) are dropped. The downsample conv/BN move from ``downsample.0/1`` to
    ``downsample.1/2`` (index 0 is the AvgPool). ``alpha`` is not written: ReBNNConv derives it from each loaded
    weight (channel mean ``|w|``). Raises ``KeyError`` when no ResNet key is found under ``prefix``.
    """
    if 'state_dict' in state_dict and isinstance(state_dict['state_dict'], dict):
        state_dict = state_dict['state_dict']
    out = {}
    for key, value in state_dict.items():
        if not key.startswith(prefix):
            continue
        key = key[len(prefix):]
        if key.startswith('fc.') or not isinstance(value, torch.Tensor):
            continue
        parts = key.split('.')
        if len(parts) > 3 and parts[2] == 'downsample' and parts[3] in ('0', '1'):
            parts[3] = str(int(parts[3]) + 1)
        out['.'.join(parts)] = value
    if 'conv1.weight' not in out or not any(k.startswith('layer1.') for k in out):
        raise KeyError(f'no ResNet weights (conv1.weight, layer1.*) found under prefix {prefix!r}; '
                       f'first keys: {list(state_dict)[:5]}')
    return out
