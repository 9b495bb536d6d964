"""Distillation from a real-valued teacher detector: FPN feature imitation and dense-head logit distillation.

``DistilledFasterRCNN``, ``DistilledFCOS``, ``DistilledRetinaNet``: mmdet's detectors (same arguments, same
``predict``, same checkpoints) whose ``loss`` adds, with the ``distill`` settings of the config::

    loss_distill_fpn    = feature_weight * sum_l  PKD(s_l, t_l)
    PKD(s, t)           = 1/2 * mean((norm(s) - norm(t))^2),   norm(f)[n, c] = (f[n, c] - mu_c) / (sigma_c + 1e-6)
                          with mu_c, sigma_c the mean and (biased) std of channel c over batch and positions (PKD,
                          Cao et al. 2022: the imitation is free of the two networks' feature scales)
    loss_distill_logits = logit_weight * T^2 * mean_l BCE(sigmoid(z_s / T), sigmoid(z_t / T))
                          over the dense head's classification maps (the RPN's objectness for Faster R-CNN,
                          FCOS/RetinaNet's class scores), BCE with soft targets, averaged over elements

where ``s_l`` / ``t_l`` are the student's / teacher's FPN outputs of level ``l`` on the same batch. Gradients
flow into the student only. The teacher (``teacher_config`` + ``teacher_checkpoint``) is built and loaded on the
first training step (so testing, exporting and deploying a distilled config never needs it), through
mmengine's ``load_checkpoint`` with ``strict=True`` (rebnn_det's checked loader: data only); it stays in eval mode
with ``requires_grad=False`` and is held outside the module tree: not in ``state_dict`` (the student's
checkpoints are those of the plain detector), not wrapped by DDP, not changed by ``.train()``, moved to the
batch's device when needed. It consumes no random numbers, so an exact resume stays exact.
"""
from typing import List, Optional, Sequence

import torch
import torch.nn.functional as F
from mmdet.models.detectors import FCOS, FasterRCNN, RetinaNet
from mmdet.registry import MODELS
from torch import Tensor

from ..teacher import FrozenTeacherMixin
from .heads import dense_head

def pkd_loss(student: Tensor, teacher: Tensor, eps: float = 1e-6) -> Tensor:
    """``1/2 * mean((norm(s) - norm(t))^2)`` with each channel normalised over batch and positions."""
    def norm(f: Tensor) -> Tensor:
        f = f.float().transpose(0, 1).reshape(f.shape[1], -1)
        return (f - f.mean(dim=1, keepdim=True)) / (f.std(dim=1, unbiased=False, keepdim=True) + eps)
    return 0.5 * F.mse_loss(norm(student), norm(teacher))


def soft_logit_loss(student: Tensor, teacher: Tensor, temperature: float) -> Tensor:
    """``T^2 * BCE(sigmoid(z_s / T), sigmoid(z_t / T))`` averaged over elements."""
    target = torch.sigmoid(teacher.float() / temperature)
    return temperature ** 2 * F.binary_cross_entropy_with_logits(student.float() / temperature, target)


class DistillationMixin(FrozenTeacherMixin):
    """The distillation of the module docstring, for an mmdet detector class placed after it in the MRO."""

    def __init__(self, *args, distill: Optional[dict] = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.init_distill(distill, dict(feature_weight=1.0, logit_weight=1.0, temperature=1.0))
        self._captured_head_outputs = None
        dense_head(self).register_forward_hook(self._capture_head_outputs)

    # -- capture -------------------------------------------------------------------------------------------------

    def _capture_head_outputs(self, module, args, outputs) -> None:
        if self.training:
            self._captured_head_outputs = outputs

    def extract_feat(self, batch_inputs: Tensor):
        feats = super().extract_feat(batch_inputs)
        if self.training:
            self._captured_feats = feats
        return feats

    # -- the loss ------------------------------------------------------------------------------------------------
    @staticmethod
    def _check_levels(student: Sequence[Tensor], teacher: Sequence[Tensor], what: str) -> None:
        s_shapes = [tuple(t.shape[1:]) for t in student]
        t_shapes = [tuple(t.shape[1:]) for t in teacher]
        if s_shapes != t_shapes:
            raise ValueError(f"the teacher's {what} do not match the student's: teacher {t_shapes} (C, H, W per "
                             f'level), student {s_shapes}; distill from a teacher with the same FPN widths and levels')

    @staticmethod
    def _class_maps(outputs) -> List[Tensor]:
        """The classification maps of a dense head's ``forward`` output (its first element, per level)."""
        return list(outputs[0])

    def loss(self, batch_inputs: Tensor, batch_data_samples) -> dict:
        self._captured_feats = self._captured_head_outputs = None
        losses = super().loss(batch_inputs, batch_data_samples)
        feats, head_outputs = self._captured_feats, self._captured_head_outputs
        self._captured_feats = self._captured_head_outputs = None
        teacher = self.teacher_on(batch_inputs.device)
        with torch.no_grad():
            t_feats = teacher.extract_feat(batch_inputs)
            self._check_levels(feats, t_feats, 'FPN outputs')
            t_maps = self._class_maps(dense_head(teacher)(t_feats))
        cfg = self.distill_cfg
        losses['loss_distill_fpn'] = cfg['feature_weight'] * sum(pkd_loss(s, t) for s, t in zip(feats, t_feats))
        s_maps = self._class_maps(head_outputs)
        self._check_levels(s_maps, t_maps, 'dense-head classification maps')
        losses['loss_distill_logits'] = cfg['logit_weight'] * sum(
            soft_logit_loss(s, t, cfg['temperature']) for s, t in zip(s_maps, t_maps)) / len(s_maps)
        return losses


@MODELS.register_module()
class DistilledFasterRCNN(DistillationMixin, FasterRCNN):
    """FasterRCNN + distillation from a real teacher (module docstring; logits: the RPN's objectness)."""


@MODELS.register_module()
class DistilledFCOS(DistillationMixin, FCOS):
    """FCOS + distillation from a real teacher (module docstring; logits: the class scores)."""


@MODELS.register_module()
class DistilledRetinaNet(DistillationMixin, RetinaNet):
    """RetinaNet + distillation from a real teacher (module docstring; logits: the class scores)."""
