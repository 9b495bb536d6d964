"""Every config in configs/ builds and runs one loss forward/backward (and a predict) on CPU, tiny input."""
import glob
import os.path as osp

import pytest
import torch
from mmdet.registry import MODELS
from mmdet.testing import demo_mm_inputs
from mmengine.config import Config

from rebnn_det.ops import named_binary_convs
from tests.helpers import assert_operands_binary, record_binary_operands, save_teacher

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = sorted(p for p in glob.glob(osp.join(ROOT, 'configs', '**', '*.py'), recursive=True)
                 if '_base_' not in p and osp.sep + 'classification' + osp.sep not in p)  # those: tests/classification/


def pretrained_backbone_file(model_cfg, folder) -> str:
    """A checkpoint of a classifier whose ``backbone.*`` fits ``model_cfg.backbone`` (its tensors random, the
    binary-only ones too), saved in ``folder``: what a pretraining run would leave."""
    backbone_cfg = {k: v for k, v in model_cfg.backbone.items() if k != 'init_cfg'}
    torch.manual_seed(5)
    backbone = MODELS.build(backbone_cfg)
    state = {f'backbone.{k}': v + torch.rand_like(v) if v.is_floating_point() else v
             for k, v in backbone.state_dict().items()}
    state['head.fc.weight'] = torch.zeros(3, 4)  # outside the prefix: not the backbone's
    path = osp.join(str(folder), 'pretrained_backbone.pth')
    torch.save(dict(state_dict=state, meta={}), path)
    return path


def _num_classes(model_cfg) -> int:
    for head in ('bbox_head', 'roi_head'):
        h = model_cfg.get(head)
        if h is None:
            continue
        h = h.get('bbox_head', h)
        h = h[0] if isinstance(h, list) else h
        return h['num_classes']
    raise KeyError('no bbox head')


def test_all_expected_configs_exist():
    names = {osp.relpath(p, osp.join(ROOT, 'configs')) for p in CONFIGS}
    assert {'rebnn_faster_rcnn.py', 'rebnn_faster_rcnn_voc.py', 'real_faster_rcnn.py', 'xnor_faster_rcnn.py',
            'rebnn_faster_rcnn_stage1_w32a1.py', 'rebnn_faster_rcnn_stage2_w1a1.py', 'rebnn_retinanet.py',
            'rebnn_fcos.py', 'rebnn_cascade_rcnn.py', 'rebnn_mask_rcnn.py',
            'shapes/rebnn_faster_rcnn_shapes.py', 'shapes/real_faster_rcnn_shapes.py',
            'shapes/xnor_faster_rcnn_shapes.py', 'rebnn_faster_rcnn_binary_rpn.py', 'rebnn_cascade_rcnn_binary_rpn.py',
            'rebnn_mask_rcnn_binary_rpn.py', 'rebnn_retinanet_binary_head.py', 'rebnn_fcos_binary_head.py',
            'shapes/rebnn_faster_rcnn_shapes_binary_rpn.py', 'rebnn_faster_rcnn_binary_roi.py',
            'rebnn_cascade_rcnn_binary_roi.py', 'rebnn_mask_rcnn_binary_roi.py',
            'shapes/rebnn_faster_rcnn_shapes_binary_roi.py', 'shapes/rebnn_faster_rcnn_shapes_hard_binary_rpn.py',
            'shapes/rebnn_faster_rcnn_shapes_hard_binary_roi.py'} <= names


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: osp.relpath(p, osp.join(ROOT, 'configs')))
def test_config_loss_backward_and_predict(path, tmp_path):
    cfg = Config.fromfile(path)
    assert cfg.custom_imports['imports'] == ['rebnn_det.plugin']
    if 'distill' in cfg.model:  # its teacher: the named config, untrained, saved where the test can read it
        teacher_cfg, teacher_ckpt = save_teacher(Config.fromfile(osp.join(ROOT, cfg.model.distill.teacher_config)),
                                                 tmp_path)
        cfg.model.distill.update(teacher_config=teacher_cfg, teacher_checkpoint=teacher_ckpt)
    init = cfg.model.backbone.get('init_cfg') or {}
    if init.get('type') == 'Pretrained':  # the classification stage's checkpoint, loaded and checked
        assert init.prefix == 'backbone.' and init.checkpoint.startswith('work_dirs/')
        init.checkpoint = pretrained_backbone_file(cfg.model, tmp_path)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    if init.get('type') == 'Pretrained':
        saved = torch.load(init.checkpoint, weights_only=True)['state_dict']
        for key, value in model.backbone.state_dict().items():
            assert torch.equal(value, saved[f'backbone.{key}']), key
    with_mask = 'mask_head' in cfg.model.get('roi_head', {})
    packed = demo_mm_inputs(2, [(3, 96, 128), (3, 128, 96)], num_items=[3, 2], num_classes=_num_classes(cfg.model),
                            with_mask=with_mask)
    data = model.data_preprocessor(packed, True)
    model.train()
    binary = list(named_binary_convs(model))
    with record_binary_operands(model) as seen:
        losses = model(**data, mode='loss')
    loss, _ = model.parse_losses(losses)
    assert torch.isfinite(loss)
    if 'distill' in cfg.model:
        assert {'loss_distill_fpn', 'loss_distill_logits'} <= set(losses) and model.teacher is not None
        assert not any(k.startswith('_teacher') or k.startswith('teacher') for k in model.state_dict())
    loss.backward()
    if binary:
        assert_operands_binary(model, seen)
        assert all(m.weight.grad is not None for _, m in binary)
        # every backbone layer learns (a neck level can get no RoI/anchor on a tiny image)
        assert all(m.weight.grad.abs().sum() > 0 for n, m in binary if n.startswith('backbone.'))
        for _, m in binary:
            if m.alpha is not None:
                assert m.alpha.grad is not None
    model.eval()
    with torch.no_grad():
        data = model.data_preprocessor(packed, False)
        results = model(**data, mode='predict')
    assert len(results) == 2 and hasattr(results[0], 'pred_instances')


@pytest.mark.parametrize('config, layers', [
    ('rebnn_faster_rcnn_binary_roi.py', ['roi_head.bbox_head.shared_fcs.0.fc', 'roi_head.bbox_head.shared_fcs.1.fc']),
    ('rebnn_cascade_rcnn_binary_roi.py',
     [f'roi_head.bbox_head.{s}.shared_fcs.{i}.fc' for s in range(3) for i in (0, 1)]),
    ('rebnn_mask_rcnn_binary_roi.py', ['roi_head.bbox_head.shared_fcs.0.fc', 'roi_head.bbox_head.shared_fcs.1.fc']
     + [f'roi_head.mask_head.convs.{i}.conv' for i in range(4)]),
])
def test_binary_roi_configs_make_every_inner_roi_layer_binary(config, layers):
    from rebnn_det.ops import binary_weight_layers
    model = MODELS.build(Config.fromfile(osp.join(ROOT, 'configs', config)).model)
    roi = [n for n, m in binary_weight_layers(model) if n.startswith('roi_head.')]
    assert roi == layers
    head = model.roi_head.bbox_head[0] if isinstance(model.roi_head.bbox_head, torch.nn.ModuleList) \
        else model.roi_head.bbox_head
    assert type(head.fc_cls) is torch.nn.Linear and type(head.fc_reg) is torch.nn.Linear  # prediction layers real
