"""BackboneClassifier: a detection backbone trained as an image classifier (the classification stage of a binary
backbone), on mmengine directly.

Why not mmpretrain (the OpenMMLab classification toolbox): mmpretrain 1.2.0 installs on this stack (pure Python,
``mmcv<2.4``, ``mmengine<1.0``), but it imports ``torchvision`` in its transforms and metrics without declaring
it, and the only ``torchvision`` builds for torch 2.13.0 on the package registry (0.28.0) are linked against the
CUDA build of torch: on the CPU torch they fail at import (``operator torchvision::nms does not exist``). Its
``modelindex`` dependency also installs a top-level ``tests`` package into site-packages. So the stage uses
mmengine's runner with these few pieces, registered in mmdet's registries like the rest of rebnn_det.
"""
from typing import List, Optional

import torch
import torch.nn.functional as F
from mmdet.registry import MODELS
from mmengine.model import BaseModel
from torch import Tensor, nn


def labels_of(data_samples, device) -> Tensor:
    """The class indices of a batch: ``data_samples`` is the list of labels the packing transform put there."""
    if data_samples is None:
        raise ValueError('classification loss/predict needs the labels (data_samples) of the batch')
    return torch.as_tensor([int(s) for s in data_samples], dtype=torch.long, device=device)


@MODELS.register_module()
class BackboneClassifier(BaseModel):
    """``logits = fc(mean_{h,w} backbone(x)[-1])``: any mmdet backbone (``ReBNNResNet`` for the binary stage, mmdet's
    ``ResNet`` for a real teacher), global average pooling of its last output, a real linear classifier.

    ``loss``: ``loss_cls = loss_weight * CE(logits, labels)`` (``label_smoothing`` as ``F.cross_entropy``).
    ``predict``: one ``dict(pred_score=softmax(logits), pred_label, gt_label)`` per image (for
    :class:`~rebnn_det.evaluation.ClassificationAccuracy`). Checkpoint keys ``backbone.*`` and ``fc.*``: a detector
    starts from the backbone with ``init_cfg=dict(type='Pretrained', checkpoint=..., prefix='backbone.')``.
    """

    def __init__(self, backbone: dict, num_classes: int, in_channels: int, data_preprocessor: Optional[dict] = None,
                 label_smoothing: float = 0.0, loss_weight: float = 1.0, init_cfg=None):
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f'num_classes must be an int >= 2, got {num_classes!r}')
        if not 0.0 <= label_smoothing < 1.0 or loss_weight < 0:
            raise ValueError(f'label_smoothing must lie in [0, 1) and loss_weight be >= 0, got {label_smoothing!r}, '
                             f'{loss_weight!r}')
        self.backbone = MODELS.build(backbone)
        self.fc = nn.Linear(in_channels, num_classes)
        self.label_smoothing, self.loss_weight = float(label_smoothing), float(loss_weight)

    def extract_feat(self, inputs: Tensor) -> Tensor:
        """The pooled features ``(N, in_channels)`` of the backbone's last output."""
        feats = self.backbone(inputs)
        last = feats[-1] if isinstance(feats, (list, tuple)) else feats
        return F.adaptive_avg_pool2d(last, 1).flatten(1)

    def logits(self, inputs: Tensor) -> Tensor:
        return self.fc(self.extract_feat(inputs))

    def forward(self, inputs: Tensor, data_samples=None, mode: str = 'tensor'):
        if mode == 'tensor':
            return self.logits(inputs)
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        raise ValueError(f"mode must be 'tensor', 'loss' or 'predict', got {mode!r}")

    def cls_loss(self, logits: Tensor, data_samples) -> Tensor:
        """``loss_weight * CE(logits, labels)`` with the configured label smoothing."""
        return self.loss_weight * F.cross_entropy(logits.float(), labels_of(data_samples, logits.device),
                                                  label_smoothing=self.label_smoothing)

    def loss(self, inputs: Tensor, data_samples) -> dict:
        return dict(loss_cls=self.cls_loss(self.logits(inputs), data_samples))

    def predict(self, inputs: Tensor, data_samples=None) -> List[dict]:
        scores = F.softmax(self.logits(inputs).float(), dim=1)
        labels = labels_of(data_samples, scores.device) if data_samples is not None else [None] * len(scores)
        return [dict(pred_score=s, pred_label=int(s.argmax()), gt_label=None if g is None else int(g))
                for s, g in zip(scores, labels)]


def real_resnet_classifier_state_dict(state_dict: dict) -> dict:
    """A torchvision ResNet classifier's state dict (``conv1.*`` ... ``layer4.*``, ``fc.*``) as the keys of a
    :class:`BackboneClassifier` with mmdet's ``ResNet`` backbone (``backbone.conv1.*`` ..., ``fc.*``): mmdet's ResNet
    names its tensors as torchvision does. ``KeyError`` when it holds no ResNet and classifier weights."""
    if 'state_dict' in state_dict and isinstance(state_dict['state_dict'], dict):
        state_dict = state_dict['state_dict']
    if 'conv1.weight' not in state_dict or 'fc.weight' not in state_dict:
        raise KeyError(f'not a torchvision ResNet classifier (no conv1.weight / fc.weight); first keys: '
                       f'{list(state_dict)[:5]}')
    return {k if k.startswith('fc.') else f'backbone.{k}': v for k, v in state_dict.items()
            if isinstance(v, torch.Tensor)}
