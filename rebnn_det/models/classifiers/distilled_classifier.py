"""DistilledBackboneClassifier: the classifier + logit distillation from a real-valued teacher classifier.

ReActNet's (and ReBNN's) ImageNet recipe trains the binary network against a real teacher's class distribution
(the "distributional loss"); with the ``distill`` settings of the config the loss adds::

    loss_distill = weight * T^2 * mean_n  soft_cross_entropy(z_s[n] / T, z_t[n] / T)
    soft_cross_entropy(a, b) = -sum_k softmax(b)_k * log_softmax(a)_k

beside ``loss_cls`` (set the classifier's ``loss_weight=0`` for the distributional loss alone, as ReActNet does).
``z_s`` / ``z_t``: the student's / teacher's logits on the same batch; gradients reach the student only. The
teacher (``teacher_config`` + ``teacher_checkpoint``, a :class:`BackboneClassifier` config) is built and loaded
strictly on the first training step, frozen, in eval mode and outside the module tree (not in checkpoints, not
DDP-wrapped), as for the distilled detectors (:mod:`rebnn_det.models.detectors.distillation`).
"""
from typing import Optional

import torch
import torch.nn.functional as F
from mmdet.registry import MODELS
from torch import Tensor

from ..teacher import FrozenTeacherMixin
from .backbone_classifier import BackboneClassifier

def soft_cross_entropy(student: Tensor, teacher: Tensor, temperature: float = 1.0) -> Tensor:
    """``T^2 * mean_n -sum_k softmax(z_t / T) log_softmax(z_s / T)`` (logits ``(N, K)``)."""
    target = F.softmax(teacher.float() / temperature, dim=1)
    log_p = F.log_softmax(student.float() / temperature, dim=1)
    return temperature ** 2 * -(target * log_p).sum(dim=1).mean()


@MODELS.register_module()
class DistilledBackboneClassifier(FrozenTeacherMixin, BackboneClassifier):
    """BackboneClassifier (same arguments, predictions and checkpoints) whose ``loss`` adds ``loss_distill``
    (module docstring). ``distill=dict(teacher_config, teacher_checkpoint, weight=1.0, temperature=1.0)``."""

    def __init__(self, *args, distill: Optional[dict] = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.init_distill(distill, dict(weight=1.0, temperature=1.0))

    def loss(self, inputs: Tensor, data_samples) -> dict:
        s_logits = self.logits(inputs)
        losses = dict(loss_cls=self.cls_loss(s_logits, data_samples))
        teacher = self.teacher_on(inputs.device)
        with torch.no_grad():
            t_logits = teacher.logits(inputs)
        if s_logits.shape != t_logits.shape:
            raise ValueError(f"the teacher's logits {tuple(t_logits.shape)} do not match the student's "
                             f'{tuple(s_logits.shape)}: distill from a teacher with the same classes')
        cfg = self.distill_cfg
        losses['loss_distill'] = cfg['weight'] * soft_cross_entropy(s_logits, t_logits, cfg['temperature'])
        return losses
