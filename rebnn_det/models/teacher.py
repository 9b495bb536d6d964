"""The frozen real-valued teacher of a distillation: built from a config, loaded strictly, held outside the
student's module tree (shared by the distilled detectors and the distilled classifier)."""
import os.path as osp

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
