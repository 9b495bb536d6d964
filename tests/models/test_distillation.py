"""Distillation from a real teacher (rebnn_det/models/detectors/distillation.py): the loss terms by their formulas,
the teacher outside the student's module tree and checkpoints, and the errors."""
import copy
import math

import pytest
import torch
from mmdet.registry import MODELS
from mmdet.testing import demo_mm_inputs
from mmengine.config import Config

from rebnn_det.models.detectors.distillation import pkd_loss, soft_logit_loss
from tests.helpers import save_teacher
from tests.tiny_detector import tiny_shapes_cfg


def test_pkd_loss_by_hand():
    s = torch.tensor([0.0, 2.0]).view(1, 1, 1, 2)  # mean 1, std 1 -> (-1, 1)
    t = torch.tensor([5.0, 1.0]).view(1, 1, 1, 2)  # mean 3, std 2 -> (1, -1)
    assert pkd_loss(s, t).item() == pytest.approx(0.5 * 4.0, rel=1e-5)  # 1/2 * mean((-2)^2, 2^2)
    # per channel, over batch and positions: a channel's scale and offset do not matter
    x = torch.randn(2, 3, 4, 5)
    scaled = x * torch.tensor([10.0, 0.1, 3.0]).view(1, 3, 1, 1) + 7
    assert pkd_loss(scaled, x).item() == pytest.approx(0.0, abs=1e-6)


def test_soft_logit_loss_by_hand():
    zero = torch.zeros(3)
    assert soft_logit_loss(zero, zero, 1.0).item() == pytest.approx(math.log(2))
    s, t = torch.tensor([2.0]), torch.tensor([-2.0])
    p = 1 / (1 + math.exp(1.0))  # sigmoid(-2 / 2)
    q = 1 / (1 + math.exp(-1.0))  # sigmoid(2 / 2)
    expected = 4 * -(p * math.log(q) + (1 - p) * math.log(1 - q))  # T^2 * BCE, T = 2
    assert soft_logit_loss(s, t, 2.0).item() == pytest.approx(expected, rel=1e-6)


@pytest.fixture(scope='module')
def setting(tmp_path_factory):
    """(student config, teacher config file, teacher checkpoint, a training batch)."""
    tmp = tmp_path_factory.mktemp('distill')
    cfg = tiny_shapes_cfg(str(tmp / 'data'), str(tmp / 'work'))
    teacher_file, teacher_ckpt = save_teacher(cfg, tmp)
    packed = demo_mm_inputs(2, [(3, 96, 96), (3, 96, 96)], num_items=[3, 2], num_classes=6)
    return cfg, teacher_file, teacher_ckpt, packed


def _student(setting, **distill):
    cfg, teacher_file, teacher_ckpt, _ = setting
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.update(type='DistilledFasterRCNN',
                     distill=dict(dict(teacher_config=teacher_file, teacher_checkpoint=teacher_ckpt), **distill))
    torch.manual_seed(0)
    model = MODELS.build(model_cfg)
    model.init_weights()
    return model.train()


def test_losses_are_the_formulas_on_the_two_networks(setting):
    model = _student(setting, feature_weight=2.0, logit_weight=0.5, temperature=2.0)
    data = model.data_preprocessor(setting[3], True)
    assert model.teacher is None  # loaded on the first training step, not when built
    losses = model(**data, mode='loss')
    teacher = model.teacher
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
    with torch.no_grad():
        feats = model.extract_feat(data['inputs'])  # train-mode BN: batch statistics, the same outputs again
        t_feats = teacher.extract_feat(data['inputs'])
        s_maps, t_maps = model.rpn_head(feats)[0], teacher.rpn_head(t_feats)[0]
    expected_fpn = 2.0 * sum(pkd_loss(s, t) for s, t in zip(feats, t_feats))
    expected_logits = 0.5 * sum(soft_logit_loss(s, t, 2.0) for s, t in zip(s_maps, t_maps)) / len(s_maps)
    assert len(feats) == 5 and losses['loss_distill_fpn'].item() == pytest.approx(expected_fpn.item(), rel=1e-5)
    assert losses['loss_distill_logits'].item() == pytest.approx(expected_logits.item(), rel=1e-5)
    # gradients reach the student's backbone, never the teacher
    (losses['loss_distill_fpn'] + losses['loss_distill_logits']).backward()
    assert model.backbone.layer1[0].conv1.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in teacher.parameters())


def test_distillation_terms_under_autocast_are_float32_and_match(setting):
    """Mixed precision (what --amp runs on a GPU; CPU autocast to bfloat16 here): student and teacher run in low
    precision, the distillation terms come out in float32, close to the float32 run's. (The whole detector loss
    cannot run under CPU autocast: mmcv's CPU nms has no bfloat16 kernel.)"""
    model = _student(setting)
    teacher = model.load_teacher()
    x = model.data_preprocessor(setting[3], True)['inputs']

    def terms():
        feats, t_feats = model.extract_feat(x), teacher.extract_feat(x)
        s_maps, t_maps = model.rpn_head(feats)[0], teacher.rpn_head(t_feats)[0]
        return (sum(pkd_loss(s, t) for s, t in zip(feats, t_feats)),
                sum(soft_logit_loss(s, t, 1.0) for s, t in zip(s_maps, t_maps)), s_maps[0].dtype)
    fpn, logits, dtype = terms()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        fpn_mixed, logits_mixed, dtype_mixed = terms()
    assert dtype == torch.float32 and dtype_mixed == torch.bfloat16  # the heads' convs did run in low precision
    for full, mixed in ((fpn, fpn_mixed), (logits, logits_mixed)):
        assert mixed.dtype == torch.float32 and torch.isfinite(mixed)
        assert mixed.item() == pytest.approx(full.item(), rel=0.05)
    fpn_mixed.backward()
    assert model.backbone.layer1[0].conv1.weight.grad.abs().sum() > 0


def test_the_student_is_a_plain_detector_for_checkpoints_and_its_own_losses(setting):
    cfg = setting[0]
    model = _student(setting, feature_weight=0.0, logit_weight=0.0)
    plain = MODELS.build(copy.deepcopy(cfg.model)).train()
    assert set(model.state_dict()) == set(plain.state_dict())  # no teacher in the student's checkpoints
    plain.load_state_dict(model.state_dict())
    torch.manual_seed(3)
    losses = model(**model.data_preprocessor(setting[3], True), mode='loss')
    torch.manual_seed(3)
    plain_losses = plain(**plain.data_preprocessor(setting[3], True), mode='loss')
    assert set(losses) == set(plain_losses) | {'loss_distill_fpn', 'loss_distill_logits'}
    assert losses['loss_distill_fpn'].item() == 0 and losses['loss_distill_logits'].item() == 0
    for key, value in plain_losses.items():  # the student's own losses unchanged (RPN/RoI sampling: same seed)
        a, b = (torch.stack(list(v)) if isinstance(v, (list, tuple)) else v for v in (losses[key], value))
        assert torch.allclose(a, b), key
    assert set(model.state_dict()) == set(plain.state_dict())  # still none after the teacher was loaded
    model.train()
    assert not model.teacher.training  # .train() does not reach the teacher


def test_errors(setting, tmp_path):
    cfg, teacher_file, _, packed = setting
    model = _student(setting, teacher_checkpoint=str(tmp_path / 'missing.pth'))
    with pytest.raises(FileNotFoundError, match=r"distill\.teacher_checkpoint '.*missing\.pth' does not exist"):
        model(**model.data_preprocessor(packed, True), mode='loss')
    # a teacher with other FPN widths: both shapes named
    wide = copy.deepcopy(cfg)
    wide.model.neck.out_channels = 48
    wide.model.rpn_head.update(in_channels=48, feat_channels=48)
    wide.model.roi_head.bbox_roi_extractor.out_channels = 48
    wide.model.roi_head.bbox_head.in_channels = 48
    wide_file, wide_ckpt = save_teacher(wide, tmp_path, 'wide')
    model = _student(setting, teacher_config=wide_file, teacher_checkpoint=wide_ckpt)
    with pytest.raises(ValueError, match=r"the teacher's FPN outputs do not match the student's: teacher "
                                         r"\[\(48, 24, 24\), .*student \[\(32, 24, 24\)"):
        model(**model.data_preprocessor(packed, True), mode='loss')
    # a checkpoint that does not fit the teacher config: the missing keys named (strict load)
    small = str(tmp_path / 'small.pth')
    torch.save(dict(state_dict={'backbone.conv1.weight': torch.zeros(1)}, meta={}), small)
    model = _student(setting, teacher_checkpoint=small)
    with pytest.raises(RuntimeError, match='size mismatch for backbone.conv1.weight|missing keys'):
        model(**model.data_preprocessor(packed, True), mode='loss')
    with pytest.raises(ValueError, match=r"distill: unknown keys \['teacher'\], missing \['teacher_checkpoint'\]"):
        MODELS.build(dict(copy.deepcopy(cfg.model), type='DistilledFasterRCNN',
                          distill=dict(teacher_config=teacher_file, teacher='x')))
    with pytest.raises(ValueError, match=r'distill\.temperature must be a number >= 0 \(temperature > 0\), got 0'):
        _student(setting, temperature=0)
    with pytest.raises(ValueError, match='DistilledFasterRCNN needs distill=dict'):
        MODELS.build(dict(copy.deepcopy(cfg.model), type='DistilledFasterRCNN'))


def test_fcos_student_distils_its_class_scores(tmp_path):
    import os.path as osp
    root = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    cfg = Config.fromfile(osp.join(root, 'configs', 'rebnn_fcos_binary_head.py'))
    teacher_file, teacher_ckpt = save_teacher(cfg, tmp_path, 'fcos')
    torch.manual_seed(0)
    model = MODELS.build(dict(copy.deepcopy(cfg.model), type='DistilledFCOS',
                              distill=dict(teacher_config=teacher_file, teacher_checkpoint=teacher_ckpt,
                                           feature_weight=0.0, logit_weight=1.0)))
    model.init_weights()
    model.train()
    packed = demo_mm_inputs(2, [(3, 160, 160)] * 2, num_items=[2, 1], num_classes=80)  # train-mode BN: 2 images
    data = model.data_preprocessor(packed, True)
    losses = model(**data, mode='loss')
    with torch.no_grad():
        s_maps = model.bbox_head(model.extract_feat(data['inputs']))[0]
        t_maps = model.teacher.bbox_head(model.teacher.extract_feat(data['inputs']))[0]
    assert s_maps[0].shape[1] == 80  # the class maps, not the box or centerness maps
    expected = sum(soft_logit_loss(s, t, 1.0) for s, t in zip(s_maps, t_maps)) / len(s_maps)
    assert losses['loss_distill_logits'].item() == pytest.approx(expected.item(), rel=1e-5)
    assert losses['loss_distill_fpn'].item() == 0


def test_training_with_rebnn_hook_saves_a_plain_student(tiny_trained_detector, tmp_path):
    """mmengine's Runner (what tools/train.py runs) with ReBNNHook: the distillation losses are logged, and the
    checkpoint holds the student alone (it loads strictly into the plain detector of the same config)."""
    import json
    import os.path as osp

    from mmengine.runner import Runner
    cfg = copy.deepcopy(tiny_trained_detector.cfg)
    teacher_file = str(tmp_path / 'teacher.py')
    tiny_trained_detector.cfg.dump(teacher_file)
    cfg.model.update(type='DistilledFasterRCNN', distill=dict(teacher_config=teacher_file,
                                                              teacher_checkpoint=tiny_trained_detector.checkpoint))
    cfg.work_dir = str(tmp_path / 'work')
    cfg.train_cfg.update(max_epochs=1, val_interval=2)
    cfg.default_hooks.checkpoint.update(interval=1)
    cfg.default_hooks.logger.interval = 1
    cfg.update(val_dataloader=None, val_cfg=None, val_evaluator=None)
    assert any(h['type'] == 'ReBNNHook' for h in cfg.custom_hooks)
    Runner.from_cfg(cfg).train()
    scalars = glob_one(osp.join(cfg.work_dir, '*', 'vis_data', 'scalars.json'))
    records = [json.loads(line) for line in open(scalars)]
    assert all('loss_distill_fpn' in r and 'loss_distill_logits' in r and 'rebnn_flip' in r
               for r in records if 'loss' in r)
    state = torch.load(osp.join(cfg.work_dir, 'epoch_1.pth'), map_location='cpu', weights_only=False)['state_dict']
    plain = MODELS.build(copy.deepcopy(tiny_trained_detector.cfg.model))
    plain.load_state_dict(state, strict=True)


def glob_one(pattern):
    import glob
    found = glob.glob(pattern)
    assert len(found) == 1, found
    return found[0]


def test_a_teacher_from_mmdets_model_zoo_config(tmp_path):
    """``teacher_config`` may name a config of a package (``mmdet::...``): built from mmdet's own file."""
    from mmengine.hub import get_config

    from rebnn_det.models.teacher import build_frozen_teacher
    name = 'mmdet::retinanet/retinanet_r18_fpn_1x_coco.py'
    model = MODELS.build(get_config(name).model)
    torch.save(dict(state_dict=model.state_dict()), tmp_path / 'r18.pth')
    teacher = build_frozen_teacher(name, str(tmp_path / 'r18.pth'), MODELS, 'mmdet')
    assert type(teacher).__name__ == 'RetinaNet' and not teacher.training
    assert all(torch.equal(a, b) for a, b in zip(teacher.state_dict().values(), model.state_dict().values()))
    with pytest.raises(FileNotFoundError, match="distill.teacher_config 'nothing.py' does not exist"):
        build_frozen_teacher('nothing.py', str(tmp_path / 'r18.pth'), MODELS, 'mmdet')
