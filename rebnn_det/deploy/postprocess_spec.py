"""The mmdet side of :mod:`rebnn_det.deploy.postprocess`: :func:`detector_spec` reads a built mmdet detector
(FCOS, RetinaNet, Faster R-CNN; rebnn_det's binary heads included) into the plain-JSON ``spec`` that drives the
torch-only post-processing. Anything whose post-processing differs from what that module reproduces (other heads,
coders, prior generators, soft-NMS, overridden ``predict`` methods, a mask branch, ...) is refused with a
ValueError naming what is supported."""
from typing import Any, Sequence

from mmdet.models.dense_heads import FCOSHead, RetinaHead, RPNHead
from mmdet.models.dense_heads.base_dense_head import BaseDenseHead
from mmdet.models.detectors import SingleStageDetector, TwoStageDetector
from mmdet.models.roi_heads import BBoxHead, StandardRoIHead
from mmdet.models.roi_heads.base_roi_head import BaseRoIHead
from mmdet.models.task_modules.coders import DeltaXYWHBBoxCoder, DistancePointBBoxCoder
from mmdet.models.task_modules.prior_generators import AnchorGenerator, MlvlPointGenerator

from .postprocess import BATCHED_NMS_KEYS, NMS_TYPES

SUPPORTED = ('FCOS-type single-stage detectors with an FCOSHead, RetinaNet-type ones with a RetinaHead, '
             'Faster R-CNN-type two-stage detectors (RPNHead + StandardRoIHead with a BBoxHead, no mask head)')
# mmdet's decoders use this wh_ratio_clip: none of the supported heads passes another to bbox_coder.decode
WH_RATIO_CLIP = 16 / 1000


def _refuse(what: str) -> ValueError:
    return ValueError(f'post-processing spec: {what} is not supported; supported: {SUPPORTED}')


def _require_inherited(obj: Any, base: type, names: Sequence[str]) -> None:
    """``obj`` must run ``base``'s own ``names`` methods (a subclass may change layers, not post-processing)."""
    for name in names:
        if getattr(type(obj), name) is not getattr(base, name):
            raise _refuse(f'{type(obj).__name__}.{name} (overrides {base.__name__}.{name})')


def _plain(value: Any) -> Any:
    """Config values (ConfigDict, tuples) as JSON data: dicts, lists, numbers, strings, bools, None."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise _refuse(f'config value {value!r} of type {type(value).__name__}')


def _nms_spec(nms_cfg: Any) -> Any:
    """The NMS config as batched_nms reads it ('iou_thr' renamed to 'iou_threshold', as mmcv does)."""
    if nms_cfg is None:
        return None
    nms = _plain(dict(nms_cfg))
    if 'iou_thr' in nms:
        nms['iou_threshold'] = nms.pop('iou_thr')
    if nms.get('type', 'nms') not in NMS_TYPES:
        raise _refuse(f"NMS type {nms['type']!r} (supported NMS types: {list(NMS_TYPES)})")
    unknown = sorted(set(nms) - set(BATCHED_NMS_KEYS))
    if unknown or 'iou_threshold' not in nms:
        raise _refuse(f'NMS config {nms} (keys: {list(BATCHED_NMS_KEYS)}, iou_threshold required)')
    return nms


def _prior_spec(gen: Any) -> dict:
    """MlvlPointGenerator (strides, offset) or AnchorGenerator (strides, base sizes, ratios, scales -- for
    RetinaNet ``octave_base_scale * 2 ** (i / scales_per_octave)`` as the generator holds them, float32 --,
    scale_major, centers, center_offset). Subclasses (Legacy/SSD/YOLO generators) are refused."""
    if type(gen) is MlvlPointGenerator:
        return dict(type='MlvlPointGenerator', strides=_plain(gen.strides), offset=_plain(gen.offset))
    if type(gen) is AnchorGenerator:
        return dict(type='AnchorGenerator', strides=_plain(gen.strides), base_sizes=_plain(gen.base_sizes),
                    ratios=gen.ratios.tolist(), scales=gen.scales.tolist(), scale_major=bool(gen.scale_major),
                    centers=_plain(gen.centers), center_offset=_plain(gen.center_offset),
                    use_box_type=bool(gen.use_box_type))
    raise _refuse(f'prior generator {type(gen).__name__} (supported: MlvlPointGenerator, AnchorGenerator)')


def _coder_spec(coder: Any) -> dict:
    """DistancePointBBoxCoder or DeltaXYWHBBoxCoder settings; subclasses (e.g. the GLIP coder) are refused."""
    if type(coder) is DistancePointBBoxCoder:
        return dict(type='DistancePointBBoxCoder', clip_border=bool(coder.clip_border),
                    use_box_type=bool(coder.use_box_type))
    if type(coder) is DeltaXYWHBBoxCoder:
        return dict(type='DeltaXYWHBBoxCoder', target_means=[float(m) for m in coder.means],
                    target_stds=[float(s) for s in coder.stds], clip_border=bool(coder.clip_border),
                    add_ctr_clamp=bool(coder.add_ctr_clamp), ctr_clamp=_plain(coder.ctr_clamp),
                    wh_ratio_clip=WH_RATIO_CLIP, use_box_type=bool(coder.use_box_type))
    raise _refuse(f'bbox coder {type(coder).__name__} (supported: DistancePointBBoxCoder, DeltaXYWHBBoxCoder)')


def _test_cfg(cfg: Any, keys: Sequence[str]) -> dict:
    """The test_cfg values the head reads, with mmdet's defaults for absent ones (nms_pre -1, score_thr 0,
    min_bbox_size -1); nms and max_per_img are required, as mmdet reads them unconditionally."""
    if cfg is None or 'nms' not in cfg or 'max_per_img' not in cfg:
        raise _refuse(f'test_cfg {cfg!r} (needs nms and max_per_img)')
    defaults = dict(nms_pre=-1, score_thr=0, min_bbox_size=-1)
    spec = {k: _plain(cfg.get(k, defaults.get(k))) for k in keys if k != 'nms'}
    spec['nms'] = _nms_spec(cfg['nms'])
    return spec


def _check_cls(head: Any) -> None:
    if getattr(head.loss_cls, 'custom_cls_channels', False) or getattr(head, 'custom_cls_channels', False):
        raise _refuse(f'{type(head).__name__} with a custom classification activation')


def _dense_spec(head: BaseDenseHead) -> dict:
    kind = 'fcos' if isinstance(head, FCOSHead) else 'retina' if isinstance(head, RetinaHead) else None
    if kind is None:
        raise _refuse(f'dense head {type(head).__name__}')
    _require_inherited(head, BaseDenseHead, ('predict', 'predict_by_feat', '_predict_by_feat_single',
                                             '_bbox_post_process'))
    _check_cls(head)
    return dict(type=kind, num_classes=int(head.num_classes), use_sigmoid_cls=bool(head.use_sigmoid_cls),
                prior_generator=_prior_spec(head.prior_generator), bbox_coder=_coder_spec(head.bbox_coder),
                test_cfg=_test_cfg(head.test_cfg, ('nms_pre', 'score_thr', 'min_bbox_size', 'nms', 'max_per_img')))


def _rpn_spec(head: Any) -> dict:
    if not isinstance(head, RPNHead):
        raise _refuse(f'RPN head {type(head).__name__}')
    _require_inherited(head, BaseDenseHead, ('predict', 'predict_by_feat'))
    _require_inherited(head, RPNHead, ('_predict_by_feat_single', '_bbox_post_process'))
    return dict(type='rpn', use_sigmoid_cls=bool(head.use_sigmoid_cls),
                prior_generator=_prior_spec(head.prior_generator), bbox_coder=_coder_spec(head.bbox_coder),
                test_cfg=_test_cfg(head.test_cfg, ('nms_pre', 'min_bbox_size', 'nms', 'max_per_img')))


def _rcnn_spec(roi_head: Any) -> dict:
    if not isinstance(roi_head, StandardRoIHead) or roi_head.with_mask:
        raise _refuse(f'RoI head {type(roi_head).__name__} (a StandardRoIHead without a mask head)')
    _require_inherited(roi_head, BaseRoIHead, ('predict', ))
    _require_inherited(roi_head, StandardRoIHead, ('predict_bbox', ))
    bbox_head = roi_head.bbox_head
    if not isinstance(bbox_head, BBoxHead) or not (bbox_head.with_cls and bbox_head.with_reg):
        raise _refuse(f'bbox head {type(bbox_head).__name__} (needs classification and regression)')
    _require_inherited(bbox_head, BBoxHead, ('predict_by_feat', '_predict_by_feat_single'))
    _check_cls(bbox_head)
    return dict(type='rcnn', num_classes=int(bbox_head.num_classes),
                reg_class_agnostic=bool(bbox_head.reg_class_agnostic), bbox_coder=_coder_spec(bbox_head.bbox_coder),
                test_cfg=_test_cfg(roi_head.test_cfg, ('score_thr', 'nms', 'max_per_img')))


def detector_spec(model: Any) -> dict:
    """The post-processing spec of a built mmdet detector (see :mod:`rebnn_det.deploy.postprocess` for the
    layout): ``{'type': 'fcos' | 'retina', ...}`` from ``model.bbox_head``, or ``{'type': 'faster_rcnn',
    'rpn': ..., 'rcnn': ...}`` from ``model.rpn_head`` and ``model.roi_head``. Plain JSON data."""
    if isinstance(model, TwoStageDetector):
        _require_inherited(model, TwoStageDetector, ('predict', ))
        if not model.with_rpn:
            raise _refuse('a two-stage detector without an RPN')
        return dict(type='faster_rcnn', rpn=_rpn_spec(model.rpn_head), rcnn=_rcnn_spec(model.roi_head))
    if isinstance(model, SingleStageDetector):
        _require_inherited(model, SingleStageDetector, ('predict', ))
        return _dense_spec(model.bbox_head)
    raise _refuse(f'detector {type(model).__name__}')
