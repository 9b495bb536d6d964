"""Run a detector exported by ``tools/export_pt2.py`` with torch alone (no mmdet, mmcv or mmengine).

::

    from rebnn_det.deploy.pt2_runtime import load_pt2
    detector = load_pt2('fcos.pt2')              # checks the archive; loads the torch.ops.rebnn kernels
    det = detector(image)                        # uint8 [H, W, 3] (BGR, as cv2/mmcv read it) -> dict of
                                                 # 'bboxes' [N, 4] (original image pixels), 'scores', 'labels'

Steps (each a method, so the parts can be run and compared one by one): :meth:`ExportedDetector.preprocess`
(the test pipeline's keep-ratio resize, the data preprocessor's channel order, ``(x - mean) / std`` and padding
to the size divisor, in the same float operations), :meth:`~ExportedDetector.raw` (the exported ``network``
program: the raw score and box maps), :meth:`~ExportedDetector.predict` (post-processing of :mod:`.postprocess`;
for a two-stage detector the proposals, the exported ``roi`` program and the box head's post-processing).

A ``.pt2`` is data: :func:`load_pt2` reads its metadata as JSON (never unpickled), refuses an archive without
the rebnn_det marker or of another format version, and runs :func:`~.pt2_checks.check_archive` (nothing torch's
reader would unpickle, load as a library, ``eval`` or ``exec``; only ``aten`` / ``prims`` / ``rebnn`` operators
and integer arithmetic in the graphs) before torch reads the programs.
"""
import json
import math
import os.path as osp
import zipfile
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from .pt2_checks import Pt2FileError, archive_root, check_archive


FORMAT = 'rebnn_det.pt2'
FORMAT_VERSION = 1
META_FILE = 'rebnn_det.json'


def _read_meta(path: str) -> dict:
    if not osp.isfile(path):
        raise FileNotFoundError(f'.pt2 file {path!r} does not exist')
    if not zipfile.is_zipfile(path):
        raise Pt2FileError(f'{path!r} is not a .pt2 archive (not a zip file)')
    with zipfile.ZipFile(path) as z:
        entry = f'{archive_root(path, z.namelist())}/extra/{META_FILE}'
        if entry not in z.namelist():
            raise Pt2FileError(f'{path!r} has no extra/{META_FILE}: not exported by tools/export_pt2.py')
        try:
            meta = json.loads(z.read(entry).decode('utf-8'))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise Pt2FileError(f'{path!r}: extra/{META_FILE} is not valid JSON ({e})') from e
    if not isinstance(meta, dict) or meta.get('format') != FORMAT:
        raise Pt2FileError(f'{path!r}: extra/{META_FILE} lacks the {FORMAT!r} format marker')
    if meta.get('version') != FORMAT_VERSION:
        raise Pt2FileError(f'{path!r} has format version {meta.get("version")!r}; this rebnn_det reads version '
                           f'{FORMAT_VERSION}')
    for key, kind in (('preprocess', dict), ('postprocess', dict), ('outputs', dict), ('input_shape', list)):
        if not isinstance(meta.get(key), kind):
            raise Pt2FileError(f'{path!r}: extra/{META_FILE} has no {key!r} {kind.__name__}')
    return meta


def load_pt2(path: str, library: Optional[str] = None) -> 'ExportedDetector':
    """Load an exported detector (see the module docstring for the checks). ``library``: the path of the C++
    kernel library to load instead of the Python extension ``rebnn_det._C``."""
    from torch.export.pt2_archive._package import load_pt2 as load_archive

    from . import custom_ops
    meta = _read_meta(path)
    two_stage = meta['postprocess'].get('type') == 'faster_rcnn'
    check_archive(path, ['network', 'roi'] if two_stage else ['network'], META_FILE)
    custom_ops.load_library(library)
    programs = dict(load_archive(path).exported_programs)
    return ExportedDetector(meta, {name: program.module() for name, program in programs.items()})


class ExportedDetector:
    """An exported detector: its programs (``network``, and ``roi`` for a two-stage detector) and metadata."""

    def __init__(self, meta: dict, programs: Dict[str, Callable]):
        self.meta = meta
        self.programs = programs
        self.spec = meta['postprocess']
        self.classes = meta.get('classes')

    @property
    def two_stage(self) -> bool:
        return 'roi' in self.programs

    # -- preprocessing -------------------------------------------------------------------------------------
    def resized_shape(self, h: int, w: int) -> Tuple[int, int]:
        """The test pipeline's resize target ``(h, w)`` for an ``h x w`` image (mmcv's keep-ratio rule: the
        largest size within the scale, each side ``int(side * factor + 0.5)``; without keep_ratio the scale)."""
        resize = self.meta['preprocess'].get('resize')
        if resize is None:
            return h, w
        scale_w, scale_h = resize['scale']
        if not resize['keep_ratio']:
            return scale_h, scale_w
        factor = min(max(scale_w, scale_h) / max(h, w), min(scale_w, scale_h) / min(h, w))
        return int(h * float(factor) + 0.5), int(w * float(factor) + 0.5)

    def preprocess(self, image: Tensor) -> Tuple[Tensor, dict]:
        """uint8 ``[H, W, 3]`` image -> (``inputs [1, 3, H', W']`` for :meth:`raw`, ``img_meta``). An image already
        at the pipeline's size is used as it is (then the inputs equal mmdet's bit for bit); otherwise it is
        resized bilinearly with ``F.interpolate``, which is close to, not bit-equal to, mmcv's cv2 resize."""
        if image.dim() != 3 or image.shape[2] != 3:
            raise ValueError(f'expected an image [H, W, 3], got shape {tuple(image.shape)}')
        h, w = image.shape[:2]
        new_h, new_w = self.resized_shape(h, w)
        chw = image.permute(2, 0, 1)
        if (new_h, new_w) != (h, w):
            resized = F.interpolate(chw[None].float(), size=(new_h, new_w), mode='bilinear', align_corners=False)
            chw = resized[0].round().clamp(0, 255).to(image.dtype)
        p = self.meta['preprocess']
        x = chw[[2, 1, 0], ...] if p['bgr_to_rgb'] else chw
        x = x.float()
        if p['mean'] is not None:
            x = (x - torch.tensor(p['mean']).view(-1, 1, 1)) / torch.tensor(p['std']).view(-1, 1, 1)
        divisor = max(p['pad_size_divisor'], 1)
        pad_h, pad_w = math.ceil(new_h / divisor) * divisor - new_h, math.ceil(new_w / divisor) * divisor - new_w
        x = F.pad(x, (0, pad_w, 0, pad_h), 'constant', p['pad_value'])
        img_meta = dict(ori_shape=(h, w), img_shape=(new_h, new_w), scale_factor=(new_w / w, new_h / h),
                        pad_shape=tuple(x.shape[1:]))
        return x[None], img_meta

    # -- network -------------------------------------------------------------------------------------------
    def raw(self, inputs: Tensor) -> dict:
        """The exported network's outputs: ``{'features': [...], 'cls_scores': [...], 'bbox_preds': [...],
        ('score_factors': [...])}``, one tensor per level (features: two-stage only)."""
        layout = self.meta['outputs']
        outs = list(self.programs['network'](inputs))
        n_feat, levels = layout['features'], layout['levels']
        result = {'features': outs[:n_feat]}
        for i, name in enumerate(layout['head']):
            start = n_feat + i * levels
            result[name] = outs[start:start + levels]
        return result

    def roi_outputs(self, features: Sequence[Tensor], proposals: Tensor) -> Tuple[Tensor, Tensor]:
        """The exported RoI stage on ``proposals [K, 4]`` of image 0: ``(cls_score, bbox_pred)``."""
        rois = torch.cat([proposals.new_zeros(proposals.shape[0], 1), proposals], 1)
        feats = list(features)[:self.meta['outputs']['roi_features']]
        return self.programs['roi'](*feats, rois)

    # -- detections ----------------------------------------------------------------------------------------
    def predict(self, inputs: Tensor, img_meta: dict, rescale: bool = True) -> dict:
        """Detections of the one image in ``inputs``: ``{'bboxes', 'scores', 'labels'}`` (mmdet's
        ``pred_instances``; boxes in original image pixels when ``rescale``)."""
        from . import postprocess
        if inputs.shape[0] != 1:
            raise ValueError(f'the runtime runs one image at a time; got a batch of {inputs.shape[0]}')
        raw = self.raw(inputs)
        if not self.two_stage:
            return postprocess.dense_detections(self.spec, raw['cls_scores'], raw['bbox_preds'],
                                                raw.get('score_factors'), img_meta, rescale)
        proposals = postprocess.rpn_proposals(self.spec, raw['cls_scores'], raw['bbox_preds'], img_meta)
        if proposals.shape[0] == 0:  # mmdet: no RoIs, no detections
            return dict(bboxes=proposals.new_zeros(0, 4), scores=proposals.new_zeros(0),
                        labels=torch.zeros(0, dtype=torch.long))
        cls_score, bbox_pred = self.roi_outputs(raw['features'], proposals)
        return postprocess.rcnn_detections(self.spec, proposals, cls_score, bbox_pred, img_meta, rescale)

    def __call__(self, image: Tensor) -> dict:
        inputs, img_meta = self.preprocess(image)
        return self.predict(inputs, img_meta)

    def class_names(self, labels: Tensor) -> List[str]:
        names = self.classes or []
        return [names[i] if i < len(names) else str(i) for i in labels.tolist()]
