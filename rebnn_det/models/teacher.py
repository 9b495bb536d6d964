"""The frozen real-valued teacher of a distillation: built from a config, loaded strictly, held outside the
student's module tree (shared by the distilled detectors and the distilled classifier)."""
import os.path as osp
from typing import Optional

import torch
from torch import nn


def build_frozen_teacher(config_path: str, checkpoint: str, registry, default_scope: str) -> nn.Module:
    """Build ``config_path``'s ``model`` from ``registry`` (under the config's ``default_scope``, else
    ``default_scope``) and load ``checkpoint`` into it with ``strict=True`` through mmengine's ``load_checkpoint``
    (rebnn_det's checked loader for local files: data only); ``config_path`` is a file or a package's config
    (``'mmdet::retinanet/retinanet_r18_fpn_1x_coco.py'``: mmdet's model-zoo config of the teacher); returned in
    eval mode with ``requires_grad=False``. A missing config file or checkpoint is a ``FileNotFoundError`` naming
    it (a missing package config: mmengine's error); a checkpoint that does not fit the model
    is mmengine's strict-load error (missing/unexpected keys)."""
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmengine.runner import load_checkpoint
    if '::' not in config_path and not osp.isfile(config_path):  # 'mmdet::retinanet/...': a package's config
        raise FileNotFoundError(f'distill.teacher_config {config_path!r} does not exist')
    if not osp.isfile(checkpoint):
        raise FileNotFoundError(f'distill.teacher_checkpoint {checkpoint!r} does not exist (train the real teacher '
                                f'first, e.g. tools/train.py {config_path})')
    if '::' in config_path:
        from mmengine.hub import get_config
        cfg = get_config(config_path)
    else:
        cfg = Config.fromfile(config_path)
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope', default_scope)):
        teacher = registry.build(cfg.model)
    load_checkpoint(teacher, checkpoint, map_location='cpu', strict=True, logger='silent')
    teacher.eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher


class FrozenTeacherMixin:
    """The ``distill`` settings and the lazily loaded teacher of a distilled model (detector or classifier).

    :meth:`init_distill` checks ``distill=dict(teacher_config, teacher_checkpoint, <weights>)`` and fills in the
    weights' defaults; :meth:`teacher_on` builds the teacher on first use (:func:`build_frozen_teacher`, from mmdet's
    ``MODELS``) and moves it to the batch's device. The teacher is held outside the module tree: not in
    ``state_dict``, not wrapped by DDP, not changed by ``.train()``."""

    def init_distill(self, distill: Optional[dict], weights: dict) -> None:
        """Check ``distill`` and set ``self.distill_cfg``; ``weights``: the other keys and their defaults (each a
        number >= 0, ``temperature`` > 0)."""
        keys = ('teacher_config', 'teacher_checkpoint', *weights)
        if not isinstance(distill, dict):
            raise ValueError(f'{type(self).__name__} needs distill=dict(teacher_config=..., teacher_checkpoint=..., '
                             + ', '.join(f'{k}=...' for k in weights) + f'); got {distill!r}')
        unknown = sorted(set(distill) - set(keys))
        missing = [k for k in ('teacher_config', 'teacher_checkpoint') if k not in distill]
        if unknown or missing:
            raise ValueError(f'distill: unknown keys {unknown}, missing {missing}; the keys are {list(keys)}')
        self.distill_cfg = {**weights, **distill}
        for key in weights:
            value = self.distill_cfg[key]
            if not isinstance(value, (int, float)) or value < 0 or (key == 'temperature' and value == 0):
                raise ValueError(f'distill.{key} must be a number >= 0 (temperature > 0), got {value!r}')
        object.__setattr__(self, '_teacher', None)  # outside the module tree

    @property
    def teacher(self) -> Optional[nn.Module]:
        """The teacher once loaded (on the first training step), else None."""
        return self._teacher

    def load_teacher(self) -> nn.Module:
        """Build ``teacher_config``'s model and load ``teacher_checkpoint`` (strict); frozen, eval mode."""
        from mmdet.registry import MODELS
        teacher = build_frozen_teacher(self.distill_cfg['teacher_config'], self.distill_cfg['teacher_checkpoint'],
                                       MODELS, 'mmdet')
        object.__setattr__(self, '_teacher', teacher)
        return teacher

    def teacher_on(self, device: torch.device) -> nn.Module:
        """The teacher (loaded first if needed) on ``device``."""
        teacher = self._teacher if self._teacher is not None else self.load_teacher()
        first = next(teacher.parameters(), None)
        if first is not None and first.device != device:
            teacher.to(device)
        return teacher
