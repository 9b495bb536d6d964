"""The torch-only post-processing (rebnn_det/deploy/postprocess.py) gives mmdet 3.3 / mmcv 2.1's detections bit for
bit: NMS and batched NMS on hand-built boxes (ties, identical boxes, IoU exactly at the threshold, the >= split_thr
branch, empty input), priors, FCOS / RetinaNet / RPN / RoI-head post-processing on synthetic raw outputs with
quantized values (many equal scores and boxes) under several test_cfg and coder settings, and whole detectors
built from configs/ through ``model.predict``. Every spec goes through JSON first."""
import copy
import json
import os.path as osp
import subprocess
import sys

import pytest
import torch

from rebnn_det.deploy import postprocess as pp
from rebnn_det.deploy.postprocess_spec import _prior_spec, detector_spec

from tests.deploy.test_deploy_mode import randomize_inference_state

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
FCOS, RETINA, FASTER = 'rebnn_fcos_binary_head.py', 'rebnn_retinanet_binary_head.py', 'rebnn_faster_rcnn_binary_roi.py'
META_FULL = dict(img_shape=(160, 224), ori_shape=(160, 224), pad_shape=(160, 224), batch_input_shape=(160, 224),
                 scale_factor=(1.0, 1.0))
# resized from 185 x 289 and padded: img_shape not a multiple of 32, scale factors that are not round numbers
META_RESIZED = dict(img_shape=(150, 211), ori_shape=(185, 289), pad_shape=(160, 224), batch_input_shape=(160, 224),
                    scale_factor=(211 / 289, 150 / 185))
METAS = pytest.mark.parametrize('meta', [META_FULL, META_RESIZED], ids=['full', 'resized'])
# feature map sizes of a 160 x 224 input for strides 8..128 (FCOS, RetinaNet) and 4..64 (RPN)
SIZES_P3 = [(20, 28), (10, 14), (5, 7), (3, 4), (2, 2)]
SIZES_P2 = [(40, 56), (20, 28), (10, 14), (5, 7), (3, 4)]


# --------------------------------------------------------------------------------------------------- helpers


@pytest.fixture(scope='module')
def models():
    """Detectors from configs/ with random weights and inference state, built once per module."""
    from mmdet.registry import MODELS
    from mmengine.config import Config
    cache = {}

    def get(config):
        if config not in cache:
            cfg = Config.fromfile(osp.join(REPO, 'configs', config))
            torch.manual_seed(0)
            model = MODELS.build(cfg.model)
            model.init_weights()
            cache[config] = randomize_inference_state(model, seed=2)
        return cache[config]
    return get


def _spec(model) -> dict:
    spec = detector_spec(model)
    loaded = json.loads(json.dumps(spec))
    assert loaded == spec  # plain data: a tuple would come back as a list and compare unequal
    return loaded


def _set_test_cfg(monkeypatch, owner, **changes):
    cfg = copy.deepcopy(owner.test_cfg)
    cfg.update(changes)
    monkeypatch.setattr(owner, 'test_cfg', cfg)


def _assert_identical(mine: dict, theirs, min_count: int = 1):
    assert len(theirs.bboxes) >= min_count
    for key in ('bboxes', 'scores', 'labels'):
        assert mine[key].dtype == theirs[key].dtype, key
        assert torch.equal(mine[key], theirs[key]), key


def _quantized(g, shape, scale, step, shift=0.0):
    """Random values on a grid of ``step``: many exact ties."""
    return torch.round((torch.randn(shape, generator=g) * scale + shift) / step) * step


def _sample(meta):
    from mmdet.structures import DetDataSample
    sample = DetDataSample()
    sample.set_metainfo(meta)
    return sample


class _Capture:
    """Outputs of ``module`` (or with ``arg`` the positional input #arg) while in the ``with`` block."""

    def __init__(self, module, arg=None):
        self.module, self.arg, self.values = module, arg, []

    def __enter__(self):
        if self.arg is None:
            self.handle = self.module.register_forward_hook(lambda m, args, out: self.values.append(out))
        else:
            self.handle = self.module.register_forward_pre_hook(lambda m, args: self.values.append(args[self.arg]))
        return self

    def __exit__(self, *exc):
        self.handle.remove()


# --------------------------------------------------------------------------------------------------- import


def test_postprocess_imports_no_mmdet_mmcv_mmengine():
    code = ('import sys; import rebnn_det.deploy.postprocess; '
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('mmdet', 'mmcv', 'mmengine')); "
            'print(bad); sys.exit(1 if bad else 0)')
    run = subprocess.run([sys.executable, '-c', code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr


# --------------------------------------------------------------------------------------------------- NMS


def _random_boxes(g, n, span=100.0, size=40.0, integer=False):
    xy = torch.rand(n, 2, generator=g) * span - 10
    boxes = torch.cat([xy, xy + torch.rand(n, 2, generator=g) * size], 1)
    return boxes.round() if integer else boxes


def _nms_case(name):
    g = torch.Generator().manual_seed(len(name))
    if name == 'random':
        return _random_boxes(g, 600), torch.rand(600, generator=g)
    if name == 'integer_ties':  # identical boxes and IoUs, scores on a 0.1 grid
        return _random_boxes(g, 600, span=30, size=12, integer=True), torch.randint(0, 10, (600, ), generator=g) / 10
    if name == 'identical':
        boxes = torch.tensor([[5.0, 5.0, 25.0, 30.0]]).repeat(40, 1)
        boxes[::7] += 50
        return boxes, torch.full((40, ), 0.5)
    if name == 'iou_at_threshold':  # IoU 1/2, 1/3 (float32(1/3) == the float32 threshold) and 7/10 exactly
        boxes = torch.tensor([[0, 0, 4, 4], [0, 0, 4, 2], [10, 0, 13, 1], [10, 0, 11, 1], [20, 0, 30, 10],
                              [20, 0, 30, 7], [40, 0, 41, 3], [40, 0, 41, 1]], dtype=torch.float32)
        return boxes, torch.tensor([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2])
    if name == 'degenerate':  # zero-area boxes, NaN-free
        boxes = _random_boxes(g, 200, size=3, integer=True)
        boxes[::3, 2] = boxes[::3, 0]
        return boxes, torch.randint(0, 4, (200, ), generator=g) / 4
    assert name == 'empty'
    return torch.zeros(0, 4), torch.zeros(0)


NMS_CASES = ['random', 'integer_ties', 'identical', 'iou_at_threshold', 'degenerate', 'empty']


@pytest.mark.parametrize('case', NMS_CASES)
@pytest.mark.parametrize('iou_threshold', [0.5, 0.7, 1 / 3, 0.0])
def test_nms_identical_to_mmcv(case, iou_threshold):
    from mmcv.ops import nms as mmcv_nms
    boxes, scores = _nms_case(case)
    for kwargs in (dict(), dict(offset=1), dict(score_threshold=0.3, max_num=7)):
        expected = mmcv_nms(boxes, scores, iou_threshold, **kwargs)[1]
        assert torch.equal(pp.nms(boxes, scores, iou_threshold, **kwargs), expected), kwargs


def test_nms_iou_at_threshold_keeps_the_box():
    boxes, scores = _nms_case('iou_at_threshold')
    # pairs (0, 1), (2, 3), (4, 5), (6, 7) with IoU 1/2, 1/3, 7/10, 1/3: a box with IoU == threshold is kept
    assert pp.nms(boxes, scores, 0.5).tolist() == [0, 1, 2, 3, 4, 6, 7]
    assert pp.nms(boxes, scores, 1 / 3).tolist() == [0, 2, 3, 4, 6, 7]  # float32(1/3) > float32(1/3) is false
    assert pp.nms(boxes, scores, 0.7).tolist() == [0, 1, 2, 3, 4, 5, 6, 7]


def _batched_case(n, num_classes, seed):
    g = torch.Generator().manual_seed(seed)
    boxes = _random_boxes(g, n, span=200, size=30, integer=seed % 2 == 1)
    scores = torch.randint(0, 50, (n, ), generator=g) / 50
    return boxes, scores, torch.randint(0, num_classes, (n, ), generator=g)


@pytest.mark.parametrize('nms_cfg', [
    dict(type='nms', iou_threshold=0.5),
    dict(type='nms', iou_threshold=0.6, max_num=40, score_threshold=0.2),
    dict(type='nms', iou_threshold=0.5, class_agnostic=True),
    dict(type='nms', iou_threshold=0.5, split_thr=300),  # n == split_thr: the per-class branch
    dict(type='nms', iou_threshold=0.5, split_thr=301),
    dict(type='nms', iou_threshold=0.7, split_thr=100, max_num=25, offset=1),
    None,
], ids=['default', 'max_num_score_thr', 'cfg_agnostic', 'split_at_n', 'split_above_n', 'split_max_num', 'no_nms'])
@pytest.mark.parametrize('class_agnostic', [False, True])
@pytest.mark.parametrize('seed', [0, 1])
def test_batched_nms_identical_to_mmcv(nms_cfg, class_agnostic, seed):
    from mmcv.ops import batched_nms as mmcv_batched_nms
    boxes, scores, idxs = _batched_case(300, 7, seed)
    expected = mmcv_batched_nms(boxes, scores, idxs, copy.deepcopy(nms_cfg), class_agnostic)
    got = pp.batched_nms(boxes, scores, idxs, copy.deepcopy(nms_cfg), class_agnostic)
    assert torch.equal(got[0], expected[0]) and torch.equal(got[1], expected[1])


def test_batched_nms_over_split_thr_identical_to_mmcv():
    """12000 boxes (> the default split_thr 10000): mmcv's per-class loop over shifted boxes."""
    from mmcv.ops import batched_nms as mmcv_batched_nms
    boxes, scores, idxs = _batched_case(12000, 5, 3)
    for nms_cfg in (dict(type='nms', iou_threshold=0.5), dict(type='nms', iou_threshold=0.3, max_num=500)):
        expected = mmcv_batched_nms(boxes, scores, idxs, dict(nms_cfg))
        got = pp.batched_nms(boxes, scores, idxs, dict(nms_cfg))
        assert torch.equal(got[0], expected[0]) and torch.equal(got[1], expected[1])


def test_batched_nms_empty_input():
    from mmcv.ops import batched_nms as mmcv_batched_nms
    boxes, scores, idxs = torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.long)
    cfg = dict(type='nms', iou_threshold=0.5)
    expected = mmcv_batched_nms(boxes, scores, idxs, dict(cfg), class_agnostic=True)
    for class_agnostic in (True, False):  # mmcv raises on the class-aware one (max of nothing); here: empty
        dets, keep = pp.batched_nms(boxes, scores, idxs, dict(cfg), class_agnostic)
        assert torch.equal(dets, expected[0]) and torch.equal(keep, expected[1])
    with pytest.raises(RuntimeError):
        mmcv_batched_nms(boxes, scores, idxs, dict(cfg))


def test_nms_refuses_unsupported_settings():
    boxes, scores, idxs = _batched_case(10, 2, 0)
    with pytest.raises(ValueError, match="supported: \\['nms'\\]"):
        pp.batched_nms(boxes, scores, idxs, dict(type='soft_nms', iou_threshold=0.5))
    with pytest.raises(ValueError, match='min_score'):
        pp.batched_nms(boxes, scores, idxs, dict(type='nms', iou_threshold=0.5, min_score=0.1))
    with pytest.raises(ValueError, match='iou_threshold'):
        pp.batched_nms(boxes, scores, idxs, dict(type='nms'))


# --------------------------------------------------------------------------------------------------- priors


@pytest.mark.parametrize('config, sizes', [(FCOS, SIZES_P3), (RETINA, SIZES_P3), (FASTER, SIZES_P2)])
def test_priors_identical(models, config, sizes):
    model = models(config)
    head = model.rpn_head if hasattr(model, 'rpn_head') else model.bbox_head
    spec = _spec(model)
    gen = spec['rpn' if 'rpn' in spec else 'prior_generator']
    gen = gen['prior_generator'] if 'prior_generator' in gen else gen
    expected = head.prior_generator.grid_priors(sizes, dtype=torch.float32, device='cpu')
    for got, want in zip(pp.grid_priors(gen, sizes), expected, strict=True):
        assert torch.equal(got, want)


@pytest.mark.parametrize('gen_cfg', [
    dict(type='AnchorGenerator', strides=[8, 16], ratios=[0.5, 1.0, 2.0], scales=[8], scale_major=False),
    dict(type='AnchorGenerator', strides=[(8, 12), 32], ratios=[0.3, 1.7], octave_base_scale=3,
         scales_per_octave=5, center_offset=0.5),
    dict(type='AnchorGenerator', strides=[16], ratios=[1.0, 0.7], scales=[2.5, 6], base_sizes=[10.5],
         centers=[(3.5, 2.25)]),
    dict(type='MlvlPointGenerator', strides=[(8, 6), 13], offset=0.0),
    dict(type='MlvlPointGenerator', strides=[7], offset=0.25),
], ids=['scale_minor', 'octave_non_square', 'centers', 'points_offset0', 'points_offset'])
def test_other_prior_settings_identical(gen_cfg):
    from mmdet.registry import TASK_UTILS
    gen = TASK_UTILS.build(gen_cfg)
    sizes = [(9, 13), (5, 4)][:gen.num_levels]
    spec = json.loads(json.dumps(_prior_spec(gen)))
    expected = gen.grid_priors(sizes, dtype=torch.float32, device='cpu')
    for got, want in zip(pp.grid_priors(spec, sizes), expected, strict=True):
        assert torch.equal(got, want)


# --------------------------------------------------------------------------------------------------- dense heads


def _dense_raw(head, sizes, seed):
    """Raw head outputs [1, C, H, W] per level: quantized logits (ties), box regressions, centerness."""
    g = torch.Generator().manual_seed(seed)
    a, c = head.prior_generator.num_base_priors[0], head.cls_out_channels
    fcos = hasattr(head, 'conv_centerness')
    cls = [_quantized(g, (1, a * c, h, w), 2.0, 0.1, -1.0) for h, w in sizes]
    if fcos:  # distances to the sides (relu'd, times the stride, in the head)
        reg = [torch.round(torch.rand(1, 4, h, w, generator=g) * 96) / 2 for h, w in sizes]
        factors = [_quantized(g, (1, 1, h, w), 1.5, 0.25) for h, w in sizes]
    else:
        reg = [_quantized(g, (1, a * 4, h, w), 0.5, 0.05) for h, w in sizes]
        factors = None
    return cls, reg, factors


DENSE_VARIANTS = {
    'config': {},
    'score_thr_0': dict(test_cfg=dict(score_thr=0.0)),
    # nms_pre -1 (mmdet then drops each level's lowest candidate) and > split_thr boxes into the NMS
    'all_candidates_min_size': dict(test_cfg=dict(nms_pre=-1, score_thr=0.3, min_bbox_size=6.0)),
    'agnostic_nms_top50': dict(test_cfg=dict(score_thr=0.0, max_per_img=50,
                                             nms=dict(type='nms', iou_threshold=0.6, class_agnostic=True))),
    'no_min_size_no_clip': dict(test_cfg=dict(min_bbox_size=-1, score_thr=0.0), coder=dict(clip_border=False)),
    'softmax': dict(test_cfg=dict(score_thr=0.0), head=dict(use_sigmoid_cls=False)),
    'ctr_clamp': dict(test_cfg=dict(score_thr=0.0), coder=dict(add_ctr_clamp=True, ctr_clamp=4)),
}


def _apply_variant(monkeypatch, head, variant):
    _set_test_cfg(monkeypatch, head, **variant.get('test_cfg', {}))
    for name, value in variant.get('coder', {}).items():
        monkeypatch.setattr(head.bbox_coder, name, value)
    if variant.get('head', {}).get('use_sigmoid_cls') is False:
        monkeypatch.setattr(head, 'use_sigmoid_cls', False)
        monkeypatch.setattr(head, 'cls_out_channels', head.num_classes + 1)


@METAS
@pytest.mark.parametrize('config, variant', [(c, v) for c in (FCOS, RETINA) for v in DENSE_VARIANTS
                                             if not (c == FCOS and v == 'ctr_clamp')])  # FCOS' coder has no clamp
def test_dense_predict_by_feat_identical(models, monkeypatch, config, variant, meta):
    model = models(config)
    head = model.bbox_head
    _apply_variant(monkeypatch, head, DENSE_VARIANTS[variant])
    cls, reg, factors = _dense_raw(head, SIZES_P3, seed=len(variant))
    for rescale in (True, False):
        expected = head.predict_by_feat(cls, reg, factors, batch_img_metas=[meta], rescale=rescale)[0]
        got = pp.dense_detections(_spec(model), cls, reg, factors, meta, rescale=rescale)
        _assert_identical(got, expected, min_count=20)


@pytest.mark.parametrize('config', [FCOS, RETINA])
def test_dense_no_candidate_left(models, monkeypatch, config):
    model = models(config)
    _set_test_cfg(monkeypatch, model.bbox_head, score_thr=1.0)
    cls, reg, factors = _dense_raw(model.bbox_head, SIZES_P3, seed=0)
    expected = model.bbox_head.predict_by_feat(cls, reg, factors, batch_img_metas=[META_FULL], rescale=True)[0]
    got = pp.dense_detections(_spec(model), cls, reg, factors, META_FULL)
    _assert_identical(got, expected, min_count=0)
    assert len(got['bboxes']) == 0


@METAS
@pytest.mark.parametrize('config', [FCOS, RETINA])
def test_single_stage_model_predict_identical(models, monkeypatch, config, meta):
    """The whole detector: ``model.predict`` against the post-processing of the head outputs it computed."""
    model = models(config)
    _set_test_cfg(monkeypatch, model.bbox_head, score_thr=0.0)
    x = torch.randn(1, 3, 160, 224, generator=torch.Generator().manual_seed(3))
    with torch.no_grad(), _Capture(model.bbox_head) as raw:
        expected = model.predict(x, [_sample(meta)])[0].pred_instances
    outs = raw.values[0]
    got = pp.dense_detections(_spec(model), outs[0], outs[1], outs[2] if config == FCOS else None, meta)
    _assert_identical(got, expected, min_count=100)


# --------------------------------------------------------------------------------------------------- two-stage


def _rpn_raw(head, seed):
    g = torch.Generator().manual_seed(seed)
    a, c = head.prior_generator.num_base_priors[0], head.cls_out_channels
    cls = [_quantized(g, (1, a * c, h, w), 2.0, 0.1) for h, w in SIZES_P2]
    reg = [_quantized(g, (1, a * 4, h, w), 0.5, 0.05) for h, w in SIZES_P2]
    return cls, reg


RPN_VARIANTS = {
    'config': {},
    'min_size_nms_pre': dict(test_cfg=dict(min_bbox_size=4.0, nms_pre=300, max_per_img=500)),
    'softmax': dict(head=dict(use_sigmoid_cls=False)),
}


@METAS
@pytest.mark.parametrize('variant', list(RPN_VARIANTS))
def test_rpn_proposals_identical(models, monkeypatch, variant, meta):
    model = models(FASTER)
    head = model.rpn_head
    _apply_variant(monkeypatch, head, RPN_VARIANTS[variant])
    cls, reg = _rpn_raw(head, seed=len(variant))
    expected = head.predict_by_feat(cls, reg, batch_img_metas=[meta], rescale=False)[0]
    got = pp.rpn_proposals(_spec(model), cls, reg, meta)
    assert len(got) >= 100 and torch.equal(got, expected.bboxes)


def _rcnn_raw(bbox_head, num_rois, seed):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(num_rois, 2, generator=g) * torch.tensor([200.0, 140.0])
    proposals = torch.cat([xy, xy + torch.rand(num_rois, 2, generator=g) * 60 + 1], 1).clamp(max=150)
    cls_score = _quantized(g, (num_rois, bbox_head.num_classes + 1), 3.0, 0.1)
    reg_dim = 4 if bbox_head.reg_class_agnostic else 4 * bbox_head.num_classes
    return proposals, cls_score, _quantized(g, (num_rois, reg_dim), 0.5, 0.05)


RCNN_VARIANTS = {
    'config': {},
    'score_thr_0': dict(test_cfg=dict(score_thr=0.0)),  # 80 classes x 300 rois: the per-class NMS branch
    'class_agnostic_reg': dict(test_cfg=dict(score_thr=0.02), head=dict(reg_class_agnostic=True)),
    'all_kept': dict(test_cfg=dict(score_thr=0.03, max_per_img=-1)),
}


@METAS
@pytest.mark.parametrize('variant', list(RCNN_VARIANTS))
def test_rcnn_detections_identical(models, monkeypatch, variant, meta):
    from mmdet.structures.bbox import bbox2roi
    model = models(FASTER)
    roi_head, bbox_head = model.roi_head, model.roi_head.bbox_head
    _set_test_cfg(monkeypatch, roi_head, **RCNN_VARIANTS[variant].get('test_cfg', {}))
    if RCNN_VARIANTS[variant].get('head'):
        monkeypatch.setattr(bbox_head, 'reg_class_agnostic', True)
    proposals, cls_score, bbox_pred = _rcnn_raw(bbox_head, 300, seed=len(variant))
    for rescale in (True, False):
        expected = bbox_head.predict_by_feat((bbox2roi([proposals]), ), (cls_score, ), (bbox_pred, ),
                                             batch_img_metas=[meta], rcnn_test_cfg=roi_head.test_cfg,
                                             rescale=rescale)[0]
        got = pp.rcnn_detections(_spec(model), proposals, cls_score, bbox_pred, meta, rescale=rescale)
        _assert_identical(got, expected, min_count=20)


def test_rcnn_no_proposals(models):
    model = models(FASTER)
    got = pp.rcnn_detections(_spec(model), torch.zeros(0, 4), torch.zeros(0, 81), torch.zeros(0, 320), META_FULL)
    assert [tuple(got[k].shape) for k in ('bboxes', 'scores', 'labels')] == [(0, 4), (0, ), (0, )]
    assert got['labels'].dtype == torch.long


@METAS
def test_faster_rcnn_model_predict_identical(models, monkeypatch, meta):
    """The whole detector: proposals equal to the rois ``model.predict`` fed the RoI stage, detections equal to
    its result, from the RPN and RoI-head outputs it computed."""
    model = models(FASTER)
    _set_test_cfg(monkeypatch, model.roi_head, score_thr=0.0)  # random weights: every class kept
    x = torch.randn(1, 3, 160, 224, generator=torch.Generator().manual_seed(3))
    with torch.no_grad(), _Capture(model.rpn_head) as rpn_out, \
            _Capture(model.roi_head.bbox_roi_extractor, arg=1) as rois, _Capture(model.roi_head.bbox_head) as roi_out:
        expected = model.predict(x, [_sample(meta)])[0].pred_instances
    spec = _spec(model)
    proposals = pp.rpn_proposals(spec, *rpn_out.values[0], meta)
    assert len(proposals) > 100 and torch.equal(proposals, rois.values[0][:, 1:])
    got = pp.rcnn_detections(spec, proposals, *roi_out.values[0], meta)
    _assert_identical(got, expected, min_count=100)


# --------------------------------------------------------------------------------------------------- refusals


def test_spec_refuses_what_postprocess_does_not_reproduce(models, monkeypatch):
    from mmdet.models.task_modules.coders import TBLRBBoxCoder
    fcos, faster = models(FCOS), models(FASTER)
    with pytest.raises(ValueError, match='supported'):
        detector_spec(torch.nn.Linear(2, 2))
    with monkeypatch.context() as m:
        _set_test_cfg(m, fcos.bbox_head, nms=dict(type='soft_nms', iou_threshold=0.5))
        with pytest.raises(ValueError, match='soft_nms'):
            detector_spec(fcos)
    with monkeypatch.context() as m:
        m.setattr(fcos.bbox_head, 'bbox_coder', TBLRBBoxCoder())
        with pytest.raises(ValueError, match='TBLRBBoxCoder'):
            detector_spec(fcos)
    with monkeypatch.context() as m:  # a subclass with its own post-processing
        m.setattr(fcos.bbox_head, '__class__', type('PatchedHead', (type(fcos.bbox_head), ),
                                                    dict(_bbox_post_process=lambda self, *args, **kwargs: None)))
        with pytest.raises(ValueError, match='PatchedHead._bbox_post_process'):
            detector_spec(fcos)
    with monkeypatch.context() as m:
        m.setattr(faster.roi_head, 'mask_head', torch.nn.Identity(), raising=False)
        with pytest.raises(ValueError, match='mask head'):
            detector_spec(faster)


def test_postprocess_refuses_unsupported_specs(models):
    spec = _spec(models(RETINA))
    cls, reg, _ = _dense_raw(models(RETINA).bbox_head, SIZES_P3, seed=0)
    with pytest.raises(ValueError, match="'fcos', 'retina', 'faster_rcnn'"):
        pp.dense_detections(dict(spec, type='yolo'), cls, reg, None, META_FULL)
    with pytest.raises(ValueError, match='DeltaXYWHBBoxCoder'):
        pp.dense_detections(dict(spec, bbox_coder=dict(type='TBLRBBoxCoder')), cls, reg, None, META_FULL)
    with pytest.raises(ValueError, match='AnchorGenerator'):
        pp.dense_detections(dict(spec, prior_generator=dict(type='SSDAnchorGenerator')), cls, reg, None, META_FULL)
    with pytest.raises(ValueError, match='score_factors'):
        pp.dense_detections(spec, cls, reg, cls, META_FULL)
    with pytest.raises(ValueError, match='batch of one'):
        pp.dense_detections(spec, [c.repeat(2, 1, 1, 1) for c in cls], reg, None, META_FULL)
    with pytest.raises(ValueError, match="'faster_rcnn', 'rpn'"):
        pp.rpn_proposals(spec, cls, reg, META_FULL)
