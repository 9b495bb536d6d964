"""Post-processing of exported detectors in plain torch: priors, box decoding, score filtering, NMS and rescale for
FCOS, RetinaNet and Faster R-CNN, driven by a JSON-serializable ``spec`` (written by
:func:`rebnn_det.deploy.postprocess_spec.detector_spec`). Imports nothing but torch and the standard library.

Every function repeats mmdet 3.3 / mmcv 2.1 op for op (same float32 operations in the same order, on tensors of
the same shapes and layouts, the same sorts), so that detections are bit-identical to mmdet's ``predict``:
``BaseDenseHead._predict_by_feat_single`` / ``_bbox_post_process`` (FCOS, RetinaNet), ``RPNHead``'s, and
``BBoxHead._predict_by_feat_single`` with ``multiclass_nms``; mmcv's CPU ``nms`` and ``batched_nms``.

Spec layout (all plain JSON data)::

    {'type': 'fcos' | 'retina', 'num_classes': int, 'use_sigmoid_cls': bool,
     'prior_generator': PRIORS, 'bbox_coder': CODER,
     'test_cfg': {'nms_pre': int, 'score_thr': float, 'min_bbox_size': float, 'nms': NMS, 'max_per_img': int}}
    {'type': 'faster_rcnn',
     'rpn': {'type': 'rpn', 'use_sigmoid_cls': bool, 'prior_generator': PRIORS, 'bbox_coder': CODER,
             'test_cfg': {'nms_pre': int, 'min_bbox_size': float, 'nms': NMS, 'max_per_img': int}},
     'rcnn': {'type': 'rcnn', 'num_classes': int, 'reg_class_agnostic': bool, 'bbox_coder': CODER,
              'test_cfg': {'score_thr': float, 'nms': NMS, 'max_per_img': int}}}
    PRIORS: {'type': 'MlvlPointGenerator', 'strides': [[sw, sh], ...], 'offset': float}
          | {'type': 'AnchorGenerator', 'strides': [[sw, sh], ...], 'base_sizes': [...], 'ratios': [...],
             'scales': [...], 'scale_major': bool, 'centers': None | [[cx, cy], ...], 'center_offset': float,
             'use_box_type': bool}
    CODER:  {'type': 'DistancePointBBoxCoder', 'clip_border': bool, 'use_box_type': bool}
          | {'type': 'DeltaXYWHBBoxCoder', 'target_means': [4], 'target_stds': [4], 'clip_border': bool,
             'add_ctr_clamp': bool, 'ctr_clamp': float, 'wh_ratio_clip': float, 'use_box_type': bool}
    NMS:    None | {'type': 'nms', 'iou_threshold': float, optional 'offset', 'score_threshold', 'max_num',
                    'split_thr', 'class_agnostic'}

``use_box_type`` only wraps boxes in mmdet's ``HorizontalBoxes``, whose widths, rescale and clip are the same
arithmetic as on plain tensors; it is kept in the spec for completeness and changes nothing here.
"""
import math
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor

DETECTOR_TYPES = ('fcos', 'retina', 'faster_rcnn')
PRIOR_GENERATORS = ('MlvlPointGenerator', 'AnchorGenerator')
BBOX_CODERS = ('DistancePointBBoxCoder', 'DeltaXYWHBBoxCoder')
NMS_TYPES = ('nms', )
NMS_KEYS = ('iou_threshold', 'offset', 'score_threshold', 'max_num')
BATCHED_NMS_KEYS = ('type', 'split_thr', 'class_agnostic') + NMS_KEYS
DEFAULT_SPLIT_THR = 10000


# --------------------------------------------------------------------------------------------------- NMS


def _std_max(a: Tensor, b: Tensor) -> Tensor:
    """C++ ``std::max(a, b)`` = ``(a < b) ? b : a`` (NaN and signed zeros included)."""
    return torch.where(a < b, b, a)


def _std_min(a: Tensor, b: Tensor) -> Tensor:
    """C++ ``std::min(a, b)`` = ``(b < a) ? b : a``."""
    return torch.where(b < a, b, a)


def _suppressed(x1: Tensor, y1: Tensor, x2: Tensor, y2: Tensor, areas: Tensor, rows: Tensor, start: int,
                threshold: Tensor, offset: int) -> Tensor:
    """``IoU(row, j) > threshold`` for the given row positions against positions ``start..`` (boxes sorted by
    score), as mmcv's ``nms_cpu`` computes it in float32::

        w = max(0, min(x2_i, x2_j) - max(x1_i, x1_j) + offset), h likewise
        inter = w * h;  iou = inter / (area_i + area_j - inter)
    """
    col = slice(start, None)
    xx1 = _std_max(x1[rows, None], x1[None, col])
    yy1 = _std_max(y1[rows, None], y1[None, col])
    xx2 = _std_min(x2[rows, None], x2[None, col])
    yy2 = _std_min(y2[rows, None], y2[None, col])
    zero = x1.new_zeros(())
    w = _std_max(zero, xx2 - xx1 + offset)
    h = _std_max(zero, yy2 - yy1 + offset)
    inter = w * h
    return inter / (areas[rows, None] + areas[None, col] - inter) > threshold


def _greedy_nms(boxes: Tensor, scores: Tensor, iou_threshold: float, offset: int, block: int = 256) -> Tensor:
    """mmcv's ``nms_cpu``: ``order = scores.sort(0, descending=True)``; walking that order, a box still selected
    suppresses every later box with IoU > iou_threshold (float32 compare); returns the kept indices in order.

    IoU rows are computed ``block`` sorted positions at a time (only for rows still selected when the block
    starts); the greedy walk inside a block is then a row of booleans per kept box.
    """
    if boxes.numel() == 0:
        return torch.empty(0, dtype=torch.long, device=boxes.device)
    x1, y1, x2, y2 = (boxes.select(1, k).contiguous() for k in range(4))
    areas = (x2 - x1 + offset) * (y2 - y1 + offset)
    order = scores.sort(0, descending=True)[1]
    x1, y1, x2, y2, areas = (t[order] for t in (x1, y1, x2, y2, areas))
    threshold = torch.tensor(iou_threshold, dtype=torch.float32, device=boxes.device)
    n = order.numel()
    select = torch.ones(n, dtype=torch.bool, device=boxes.device)
    for start in range(0, n, block):
        rows = select[start:start + block].nonzero().view(-1) + start
        if rows.numel() == 0:
            continue
        suppress = _suppressed(x1, y1, x2, y2, areas, rows, start, threshold, offset)
        for r, p in enumerate(rows.tolist()):
            if select[p]:
                select[p + 1:] &= ~suppress[r, p + 1 - start:]
    return order[select]


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float, offset: int = 0, score_threshold: float = 0,
        max_num: int = -1) -> Tensor:
    """mmcv's ``nms`` on CPU, returning the kept indices (mmcv returns ``(dets, inds)``):
    if score_threshold > 0 only boxes with score > score_threshold take part; greedy IoU suppression (see
    :func:`_greedy_nms`); the first ``max_num`` kept if max_num > 0; indices into the input boxes."""
    if boxes.dim() != 2 or boxes.size(1) != 4 or boxes.size(0) != scores.size(0):
        raise ValueError(f'nms takes boxes [N, 4] and scores [N], got {tuple(boxes.shape)}, {tuple(scores.shape)}')
    if offset not in (0, 1):
        raise ValueError(f'nms offset must be 0 or 1, got {offset!r}')
    filtering = score_threshold > 0
    if filtering:
        valid_mask = scores > score_threshold
        boxes, scores = boxes[valid_mask], scores[valid_mask]
        valid_inds = torch.nonzero(valid_mask, as_tuple=False).squeeze(dim=1)
    inds = _greedy_nms(boxes, scores, float(iou_threshold), offset)
    if max_num > 0:
        inds = inds[:max_num]
    if filtering:
        inds = valid_inds[inds]
    return inds


def _nms_kwargs(nms_cfg: dict) -> Tuple[dict, int, bool]:
    """Checks an NMS config against what this module runs; returns (nms kwargs, split_thr, class_agnostic)."""
    unknown = sorted(set(nms_cfg) - set(BATCHED_NMS_KEYS))
    if unknown:
        raise ValueError(f'unsupported NMS setting(s) {unknown}; supported: {list(BATCHED_NMS_KEYS)}')
    if nms_cfg.get('type', 'nms') not in NMS_TYPES:
        raise ValueError(f'unsupported NMS type {nms_cfg["type"]!r}; supported: {list(NMS_TYPES)}')
    if 'iou_threshold' not in nms_cfg:
        raise ValueError(f'the NMS config needs an iou_threshold, got {nms_cfg}')
    kwargs = {k: nms_cfg[k] for k in NMS_KEYS if k in nms_cfg}
    return kwargs, nms_cfg.get('split_thr', DEFAULT_SPLIT_THR), nms_cfg.get('class_agnostic')


def _offset_by_class(boxes: Tensor, idxs: Tensor) -> Tensor:
    """mmcv's class separation: ``boxes + idxs * (boxes.max() + 1)``, in the boxes' dtype."""
    max_coordinate = boxes.max()
    offsets = idxs.to(boxes) * (max_coordinate + torch.tensor(1).to(boxes))
    return boxes + offsets[:, None]


def _nms_per_class(boxes_for_nms: Tensor, scores: Tensor, idxs: Tensor, kwargs: dict) -> Tuple[Tensor, Tensor]:
    """mmcv's branch for >= split_thr boxes: nms per value of ``idxs`` (``torch.unique`` order), the union of the
    kept boxes sorted by score descending, then the first ``max_num`` if max_num > 0. Returns (keep, scores)."""
    kwargs = dict(kwargs)
    max_num = kwargs.pop('max_num', -1)
    total_mask = scores.new_zeros(scores.size(), dtype=torch.bool)
    scores_after_nms = scores.new_zeros(scores.size())
    for idx in torch.unique(idxs):
        mask = (idxs == idx).nonzero(as_tuple=False).view(-1)
        keep = nms(boxes_for_nms[mask], scores[mask], **kwargs)
        total_mask[mask[keep]] = True
        scores_after_nms[mask[keep]] = scores[mask][keep]
    keep = total_mask.nonzero(as_tuple=False).view(-1)
    kept_scores, inds = scores_after_nms[keep].sort(descending=True)
    keep = keep[inds]
    if max_num > 0:
        keep, kept_scores = keep[:max_num], kept_scores[:max_num]
    return keep, kept_scores


def batched_nms(boxes: Tensor, scores: Tensor, idxs: Tensor, nms_cfg: Optional[dict],
                class_agnostic: bool = False) -> Tuple[Tensor, Tensor]:
    """mmcv's ``batched_nms`` (what mmdet calls): NMS within each value of ``idxs``. Returns (dets [N, 5] =
    boxes and scores of the kept boxes, keep indices), sorted by score descending.

    - ``nms_cfg`` None: no NMS, all boxes sorted by ``scores.sort(descending=True)``;
    - ``nms_cfg['class_agnostic']`` (else the argument) true: one NMS over all boxes, else boxes are shifted
      apart per class by ``idxs * (max coordinate + 1)``;
    - fewer than ``split_thr`` (default 10000) boxes: one NMS of the shifted boxes (``max_num`` applied inside);
      otherwise one NMS per class (of the shifted boxes), merged and sorted.

    mmcv raises on empty input unless class-agnostic (``boxes.max()`` of nothing); here empty input gives empty
    outputs (mmdet's heads never call it with no boxes).
    """
    if nms_cfg is None:
        scores, inds = scores.sort(descending=True)
        return torch.cat([boxes[inds], scores[:, None]], -1), inds
    kwargs, split_thr, cfg_agnostic = _nms_kwargs(nms_cfg)
    class_agnostic = class_agnostic if cfg_agnostic is None else cfg_agnostic
    if boxes.numel() == 0:
        return boxes.new_zeros((0, 5)), torch.empty(0, dtype=torch.long, device=boxes.device)
    boxes_for_nms = boxes if class_agnostic else _offset_by_class(boxes, idxs)
    if boxes_for_nms.shape[0] < split_thr:
        keep = nms(boxes_for_nms, scores, **kwargs)
        kept_scores = scores[keep]
    else:
        keep, kept_scores = _nms_per_class(boxes_for_nms, scores, idxs, kwargs)
    return torch.cat([boxes[keep], kept_scores[:, None]], -1), keep


# --------------------------------------------------------------------------------------------------- priors


def _point_priors(gen: dict, featmap_size: Sequence[int], level: int) -> Tensor:
    """MlvlPointGenerator, one level: ``x = (arange(W) + offset) * stride_w``, y likewise; points [H*W, 2]
    row-major (x fastest), float32."""
    feat_h, feat_w = featmap_size
    stride_w, stride_h = gen['strides'][level]
    shift_x = ((torch.arange(0, feat_w) + gen['offset']) * stride_w).to(torch.float32)
    shift_y = ((torch.arange(0, feat_h) + gen['offset']) * stride_h).to(torch.float32)
    yy, xx = torch.meshgrid(shift_y, shift_x, indexing='ij')
    return torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=-1)


def _base_anchors(gen: dict, level: int) -> Tensor:
    """AnchorGenerator's base anchors of one level, in float32::

        h_ratio = sqrt(ratio), w_ratio = 1 / h_ratio
        ws = base * w_ratio * scale (scale_major: ratios outer, scales inner; else the other way), hs likewise
        anchor = (cx - 0.5 ws, cy - 0.5 hs, cx + 0.5 ws, cy + 0.5 hs), (cx, cy) = centers[level] or
                 center_offset * base
    """
    w = h = gen['base_sizes'][level]
    if gen['centers'] is None:
        x_center, y_center = gen['center_offset'] * w, gen['center_offset'] * h
    else:
        x_center, y_center = gen['centers'][level]
    ratios = torch.tensor(gen['ratios'], dtype=torch.float32)
    scales = torch.tensor(gen['scales'], dtype=torch.float32)
    h_ratios = torch.sqrt(ratios)
    w_ratios = 1 / h_ratios
    if gen['scale_major']:
        ws = (w * w_ratios[:, None] * scales[None, :]).view(-1)
        hs = (h * h_ratios[:, None] * scales[None, :]).view(-1)
    else:
        ws = (w * scales[:, None] * w_ratios[None, :]).view(-1)
        hs = (h * scales[:, None] * h_ratios[None, :]).view(-1)
    return torch.stack([x_center - 0.5 * ws, y_center - 0.5 * hs, x_center + 0.5 * ws, y_center + 0.5 * hs], dim=-1)


def _anchor_priors(gen: dict, featmap_size: Sequence[int], level: int) -> Tensor:
    """AnchorGenerator, one level: ``base_anchors[None] + (x, y, x, y)[:, None]`` with ``x = arange(W) * stride_w``
    (float32), y likewise; anchors [H*W*A, 4], location-major."""
    feat_h, feat_w = featmap_size
    stride_w, stride_h = gen['strides'][level]
    shift_x = torch.arange(0, feat_w).to(torch.float32) * stride_w
    shift_y = torch.arange(0, feat_h).to(torch.float32) * stride_h
    shift_xx = shift_x.repeat(shift_y.shape[0])
    shift_yy = shift_y.view(-1, 1).repeat(1, shift_x.shape[0]).view(-1)
    shifts = torch.stack([shift_xx, shift_yy, shift_xx, shift_yy], dim=-1)
    return (_base_anchors(gen, level)[None, :, :] + shifts[:, None, :]).view(-1, 4)


def grid_priors(gen: dict, featmap_sizes: Sequence[Sequence[int]]) -> List[Tensor]:
    """Priors of every level (``prior_generator.grid_priors``): points [H*W, 2] or anchors [H*W*A, 4]."""
    kind = gen.get('type')
    if kind not in PRIOR_GENERATORS:
        raise ValueError(f'unsupported prior generator {kind!r}; supported: {list(PRIOR_GENERATORS)}')
    if len(featmap_sizes) != len(gen['strides']):
        raise ValueError(f'{len(featmap_sizes)} feature levels for a prior generator of {len(gen["strides"])}')
    level_priors = _point_priors if kind == 'MlvlPointGenerator' else _anchor_priors
    return [level_priors(gen, tuple(size), level) for level, size in enumerate(featmap_sizes)]


# --------------------------------------------------------------------------------------------------- box coders


def _distance2bbox(points: Tensor, distance: Tensor, max_shape: Optional[Sequence[int]]) -> Tensor:
    """DistancePointBBoxCoder: ``x1 = px - d_left, y1 = py - d_top, x2 = px + d_right, y2 = py + d_bottom``,
    x clamped to [0, W] and y to [0, H] if max_shape is given."""
    x1 = points[..., 0] - distance[..., 0]
    y1 = points[..., 1] - distance[..., 1]
    x2 = points[..., 0] + distance[..., 2]
    y2 = points[..., 1] + distance[..., 3]
    bboxes = torch.stack([x1, y1, x2, y2], -1)
    if max_shape is not None:
        bboxes[:, 0::2].clamp_(min=0, max=max_shape[1])
        bboxes[:, 1::2].clamp_(min=0, max=max_shape[0])
    return bboxes


def _delta2bbox(coder: dict, rois: Tensor, deltas: Tensor, max_shape: Optional[Sequence[int]]) -> Tensor:
    """DeltaXYWHBBoxCoder (mmdet's ``delta2bbox``), with d = deltas * stds + means::

        pxy = (p1 + p2) * 0.5, pwh = p2 - p1, dxy_wh = pwh * dxy
        dwh clamped to |log(wh_ratio_clip)| (add_ctr_clamp: dxy_wh to [-ctr_clamp, ctr_clamp], dwh only above)
        gxy = pxy + dxy_wh, gwh = pwh * exp(dwh), box = (gxy - gwh * 0.5, gxy + gwh * 0.5)
        x clamped to [0, W], y to [0, H] if clip_border and max_shape is given
    """
    num_bboxes, num_classes = deltas.size(0), deltas.size(1) // 4
    if num_bboxes == 0:
        return deltas
    deltas = deltas.reshape(-1, 4)
    means = deltas.new_tensor(coder['target_means']).view(1, -1)
    stds = deltas.new_tensor(coder['target_stds']).view(1, -1)
    denorm_deltas = deltas * stds + means
    dxy = denorm_deltas[:, :2]
    dwh = denorm_deltas[:, 2:]
    rois_ = rois.repeat(1, num_classes).reshape(-1, 4)
    pxy = ((rois_[:, :2] + rois_[:, 2:]) * 0.5)
    pwh = (rois_[:, 2:] - rois_[:, :2])
    dxy_wh = pwh * dxy
    max_ratio = abs(math.log(coder['wh_ratio_clip']))
    if coder['add_ctr_clamp']:
        dxy_wh = torch.clamp(dxy_wh, max=coder['ctr_clamp'], min=-coder['ctr_clamp'])
        dwh = torch.clamp(dwh, max=max_ratio)
    else:
        dwh = dwh.clamp(min=-max_ratio, max=max_ratio)
    gxy = pxy + dxy_wh
    gwh = pwh * dwh.exp()
    x1y1 = gxy - (gwh * 0.5)
    x2y2 = gxy + (gwh * 0.5)
    bboxes = torch.cat([x1y1, x2y2], dim=-1)
    if coder['clip_border'] and max_shape is not None:
        bboxes[..., 0::2].clamp_(min=0, max=max_shape[1])
        bboxes[..., 1::2].clamp_(min=0, max=max_shape[0])
    return bboxes.reshape(num_bboxes, -1)


def decode_boxes(coder: dict, priors: Tensor, pred: Tensor, max_shape: Sequence[int]) -> Tensor:
    """``bbox_coder.decode(priors, pred, max_shape=img_shape)`` of a single image (2-D inputs)."""
    kind = coder.get('type')
    if kind == 'DistancePointBBoxCoder':
        return _distance2bbox(priors, pred, max_shape if coder['clip_border'] else None)
    if kind == 'DeltaXYWHBBoxCoder':
        return _delta2bbox(coder, priors, pred, max_shape)
    raise ValueError(f'unsupported bbox coder {kind!r}; supported: {list(BBOX_CODERS)}')


# --------------------------------------------------------------------------------------------------- shared steps


def _image_level(t: Tensor) -> Tensor:
    """One image's [C, H, W] map from the head's [1, C, H, W] output (or an already unbatched [C, H, W])."""
    if t.dim() == 4:
        if t.size(0) != 1:
            raise ValueError(f'post-processing takes a batch of one image, got a batch of {t.size(0)}')
        return t[0].detach()
    if t.dim() == 3:
        return t.detach()
    raise ValueError(f'expected a [1, C, H, W] level output, got shape {tuple(t.shape)}')


def _class_scores(logits: Tensor, use_sigmoid: bool) -> Tensor:
    """``sigmoid(logits)``, or ``softmax(logits, -1)`` without the last (background) column."""
    return logits.sigmoid() if use_sigmoid else logits.softmax(-1)[:, :-1]


def _rescale(bboxes: Tensor, img_meta: dict) -> Tensor:
    """mmdet's ``scale_boxes`` by ``1 / scale_factor``: boxes * float32([1/sw, 1/sh, 1/sw, 1/sh])."""
    scale_factor = [1 / s for s in img_meta['scale_factor']]
    return bboxes * bboxes.new_tensor(scale_factor).repeat((1, 2))


def _size_mask(bboxes: Tensor, min_bbox_size: float) -> Tensor:
    """``(x2 - x1 > min_bbox_size) & (y2 - y1 > min_bbox_size)``."""
    w = bboxes[:, 2] - bboxes[:, 0]
    h = bboxes[:, 3] - bboxes[:, 1]
    return (w > min_bbox_size) & (h > min_bbox_size)


def _empty(device: torch.device) -> Dict[str, Tensor]:
    return dict(bboxes=torch.zeros(0, 4, device=device), scores=torch.zeros(0, device=device),
                labels=torch.zeros(0, dtype=torch.long, device=device))


def _check_type(spec: dict, allowed: Sequence[str]) -> str:
    kind = spec.get('type') if isinstance(spec, dict) else None
    if kind not in allowed:
        raise ValueError(f'unsupported spec type {kind!r} here; supported: {list(allowed)} '
                         f'(detector types: {list(DETECTOR_TYPES)})')
    return kind


def _part(spec: dict, name: str) -> dict:
    """The 'rpn' / 'rcnn' part of a two-stage spec, or the part itself."""
    if _check_type(spec, ('faster_rcnn', name)) == 'faster_rcnn':
        spec = spec[name]
        _check_type(spec, (name, ))
    return spec


# --------------------------------------------------------------------------------------------------- dense heads


def _filter_scores_and_topk(scores: Tensor, score_thr: float, topk: int) -> Tuple[Tensor, Tensor, Tensor]:
    """mmdet's ``filter_scores_and_topk``: entries of scores [N, C] above score_thr, sorted descending
    (``sort(descending=True)``), the first ``min(topk, count)`` (a negative topk slices as Python does).
    Returns (scores, labels, prior indices)."""
    valid_mask = scores > score_thr
    scores = scores[valid_mask]
    valid_idxs = torch.nonzero(valid_mask)
    num_topk = min(topk, valid_idxs.size(0))
    scores, idxs = scores.sort(descending=True)
    scores = scores[:num_topk]
    keep_idxs, labels = valid_idxs[idxs[:num_topk]].unbind(dim=1)
    return scores, labels, keep_idxs


def _dense_candidates(spec: dict, cls_scores, bbox_preds, score_factors, mlvl_priors):
    """Per level: scores of [H*W*A, C] (HWC order), filter_scores_and_topk(score_thr, nms_pre), the kept
    regressions, priors and sigmoid(centerness); concatenated over levels."""
    cfg = spec['test_cfg']
    per_level = []
    for level, (cls_score, bbox_pred, priors) in enumerate(zip(cls_scores, bbox_preds, mlvl_priors)):
        cls_score, bbox_pred = _image_level(cls_score), _image_level(bbox_pred)
        bbox_pred = bbox_pred.permute(1, 2, 0).reshape(-1, 4)
        cls_out_channels = spec['num_classes'] if spec['use_sigmoid_cls'] else spec['num_classes'] + 1
        scores = _class_scores(cls_score.permute(1, 2, 0).reshape(-1, cls_out_channels), spec['use_sigmoid_cls'])
        scores, labels, keep_idxs = _filter_scores_and_topk(scores, cfg['score_thr'], cfg['nms_pre'])
        factors = None
        if score_factors is not None:
            factors = _image_level(score_factors[level]).permute(1, 2, 0).reshape(-1).sigmoid()[keep_idxs]
        per_level.append((bbox_pred[keep_idxs], priors[keep_idxs], scores, labels, factors))
    bbox_pred, priors, scores, labels, factors = zip(*per_level)
    return (torch.cat(bbox_pred), torch.cat(priors), torch.cat(scores), torch.cat(labels),
            None if score_factors is None else torch.cat(factors))


def _nms_and_top(bboxes: Tensor, scores: Tensor, labels: Tensor, cfg: dict) -> Dict[str, Tensor]:
    """batched_nms(bboxes, scores, labels, nms) if any box is left, its scores as the scores, the first
    max_per_img."""
    if bboxes.numel() > 0:
        dets, keep = batched_nms(bboxes, scores, labels, cfg['nms'])
        bboxes, labels, scores = bboxes[keep], labels[keep], dets[:, -1]
        bboxes, scores, labels = (t[:cfg['max_per_img']] for t in (bboxes, scores, labels))
    return dict(bboxes=bboxes, scores=scores, labels=labels)


def dense_detections(spec: dict, cls_scores: List[Tensor], bbox_preds: List[Tensor],
                     score_factors: Optional[List[Tensor]], img_meta: dict, rescale: bool = True) -> Dict[str, Tensor]:
    """Detections of FCOS / RetinaNet for one image, as ``BaseDenseHead.predict_by_feat``:

    priors; per level filter_scores_and_topk; decode (clipped to img_shape); rescale by 1/scale_factor;
    scores *= sigmoid(centerness) (FCOS); drop boxes of width or height <= min_bbox_size (if >= 0);
    batched_nms per class; the first max_per_img. Returns 'bboxes' [N, 4], 'scores' [N], 'labels' [N] int64.
    """
    kind = _check_type(spec, ('fcos', 'retina'))
    if (score_factors is None) != (kind == 'retina'):
        raise ValueError(f"{kind}: score_factors must be {'None' if kind == 'retina' else 'the centerness maps'}")
    if len(cls_scores) != len(bbox_preds):
        raise ValueError(f'{len(cls_scores)} levels of cls_scores but {len(bbox_preds)} of bbox_preds')
    mlvl_priors = grid_priors(spec['prior_generator'], [c.shape[-2:] for c in cls_scores])
    bbox_pred, priors, scores, labels, factors = _dense_candidates(spec, cls_scores, bbox_preds, score_factors,
                                                                   mlvl_priors)
    bboxes = decode_boxes(spec['bbox_coder'], priors, bbox_pred, img_meta['img_shape'])
    if rescale:
        bboxes = _rescale(bboxes, img_meta)
    if factors is not None:
        scores = scores * factors
    cfg = spec['test_cfg']
    if cfg['min_bbox_size'] >= 0:
        valid = _size_mask(bboxes, cfg['min_bbox_size'])
        bboxes, scores, labels = bboxes[valid], scores[valid], labels[valid]
    return _nms_and_top(bboxes, scores, labels, cfg)


# --------------------------------------------------------------------------------------------------- two-stage


def _rpn_candidates(rpn: dict, cls_scores, bbox_preds, mlvl_priors):
    """Per level: objectness of [H*W*A] (HWC order); if 0 < nms_pre < count, the nms_pre best
    (``sort(descending=True)``); the level index of each; concatenated over levels."""
    nms_pre = rpn['test_cfg']['nms_pre']
    cls_out_channels = 1 if rpn['use_sigmoid_cls'] else 2
    per_level = []
    for level, (cls_score, bbox_pred, priors) in enumerate(zip(cls_scores, bbox_preds, mlvl_priors)):
        cls_score, bbox_pred = _image_level(cls_score), _image_level(bbox_pred)
        bbox_pred = bbox_pred.permute(1, 2, 0).reshape(-1, 4)
        scores = _class_scores(cls_score.permute(1, 2, 0).reshape(-1, cls_out_channels), rpn['use_sigmoid_cls'])
        scores = scores.reshape(-1)
        if 0 < nms_pre < scores.shape[0]:
            ranked_scores, rank_inds = scores.sort(descending=True)
            topk_inds = rank_inds[:nms_pre]
            scores, bbox_pred, priors = ranked_scores[:nms_pre], bbox_pred[topk_inds, :], priors[topk_inds]
        level_ids = scores.new_full((scores.size(0), ), level, dtype=torch.long)
        per_level.append((bbox_pred, priors, scores, level_ids))
    return tuple(torch.cat(t) for t in zip(*per_level))


def rpn_proposals(spec: dict, cls_scores: List[Tensor], bbox_preds: List[Tensor], img_meta: dict) -> Tensor:
    """Proposals [K, 4] of one image, as ``RPNHead.predict_by_feat(..., rescale=False)``: per level the nms_pre
    best anchors; decode (clipped to img_shape); drop boxes of width or height <= min_bbox_size (if >= 0);
    batched_nms with the level as the class; the first max_per_img. ``spec``: a 'faster_rcnn' spec or its
    'rpn' part."""
    rpn = _part(spec, 'rpn')
    if not len(cls_scores) == len(bbox_preds) == len(rpn['prior_generator']['strides']):
        raise ValueError('cls_scores, bbox_preds and the prior generator disagree on the number of levels')
    mlvl_priors = grid_priors(rpn['prior_generator'], [c.shape[-2:] for c in cls_scores])
    bbox_pred, priors, scores, level_ids = _rpn_candidates(rpn, cls_scores, bbox_preds, mlvl_priors)
    bboxes = decode_boxes(rpn['bbox_coder'], priors, bbox_pred, img_meta['img_shape'])
    cfg = rpn['test_cfg']
    if cfg['min_bbox_size'] >= 0:
        valid = _size_mask(bboxes, cfg['min_bbox_size'])
        bboxes, scores, level_ids = bboxes[valid], scores[valid], level_ids[valid]
    return _nms_and_top(bboxes, scores, level_ids, cfg)['bboxes']


def _multiclass_nms(multi_bboxes: Tensor, multi_scores: Tensor, cfg: dict) -> Dict[str, Tensor]:
    """mmdet's ``multiclass_nms``: boxes [K, C*4] (or [K, 4] shared by all classes) and scores [K, C+1]; every
    (box, class) pair with score > score_thr (background column dropped), batched_nms per class, the first
    max_per_img (if > 0)."""
    num_classes = multi_scores.size(1) - 1
    if multi_bboxes.shape[1] > 4:
        bboxes = multi_bboxes.view(multi_scores.size(0), -1, 4)
    else:
        bboxes = multi_bboxes[:, None].expand(multi_scores.size(0), num_classes, 4)
    scores = multi_scores[:, :-1]
    labels = torch.arange(num_classes, dtype=torch.long, device=scores.device).view(1, -1).expand_as(scores)
    bboxes, scores, labels = bboxes.reshape(-1, 4), scores.reshape(-1), labels.reshape(-1)
    inds = (scores > cfg['score_thr']).nonzero(as_tuple=False).squeeze(1)
    bboxes, scores, labels = bboxes[inds], scores[inds], labels[inds]
    if bboxes.numel() == 0:
        return dict(bboxes=bboxes, scores=scores, labels=labels)
    dets, keep = batched_nms(bboxes, scores, labels, cfg['nms'])
    if cfg['max_per_img'] > 0:
        dets, keep = dets[:cfg['max_per_img']], keep[:cfg['max_per_img']]
    return dict(bboxes=dets[:, :-1], scores=dets[:, -1], labels=labels[keep])


def rcnn_detections(spec: dict, proposals: Tensor, cls_score: Tensor, bbox_pred: Tensor, img_meta: dict,
                    rescale: bool = True) -> Dict[str, Tensor]:
    """Detections of the RoI stage for one image, as ``BBoxHead._predict_by_feat_single``: softmax scores;
    each proposal decoded with the deltas of every class (one shared set if reg_class_agnostic), clipped to
    img_shape; rescaled by 1/scale_factor; multiclass_nms(score_thr, nms, max_per_img). ``proposals`` [K, 4] are
    :func:`rpn_proposals`' (the rois without their batch column), ``cls_score`` [K, C+1], ``bbox_pred``
    [K, C*4] (or [K, 4]). ``spec``: a 'faster_rcnn' spec or its 'rcnn' part."""
    rcnn = _part(spec, 'rcnn')
    if proposals.shape[0] == 0:
        return _empty(proposals.device)
    scores = torch.softmax(cls_score, dim=-1)
    num_rois = proposals.size(0)
    rois = proposals.repeat_interleave(1 if rcnn['reg_class_agnostic'] else rcnn['num_classes'], dim=0)
    bboxes = decode_boxes(rcnn['bbox_coder'], rois, bbox_pred.view(-1, 4), img_meta['img_shape'])
    if rescale and bboxes.size(0) > 0:
        bboxes = _rescale(bboxes, img_meta)
    return _multiclass_nms(bboxes.view(num_rois, -1), scores, rcnn['test_cfg'])
