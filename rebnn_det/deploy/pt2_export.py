"""Export a detector's network with ``torch.export`` into one ``.pt2`` archive that runs with torch alone.

``tools/export_pt2.py CONFIG CKPT|PACKED OUT.pt2`` (:func:`export_pt2`): the detector is built, its weights loaded
(an mmengine checkpoint or a packed 1-bit file, read by the same checked loaders as everywhere else), converted to
deploy mode (:func:`~rebnn_det.deploy.convert.convert_to_deploy`: the packed weights and the ``torch.ops.rebnn.*``
kernels) and traced:

- program ``network``: the preprocessed image batch ``[1, 3, H, W]`` -> backbone, neck and the dense head up to its
  raw outputs (for a two-stage detector: the features the RoI stage reads, then the RPN's score and box maps);
  ``H`` and ``W`` dynamic (multiples of the size divisor) unless ``dynamic=False``;
- program ``roi`` (two-stage only): the features and ``rois [K, 5]`` (``K`` dynamic) -> RoI features (RoIAlign,
  ``torch.ops.rebnn.roi_align_levels``) -> the box head's ``cls_score [K, classes + 1]`` and ``bbox_pred``;
- ``extra/rebnn_det.json``: plain data -- the format marker and version, the preprocessing (mean, std, channel
  order, size divisor, the test resize), the post-processing settings (:mod:`.postprocess_spec`), class names and
  how the outputs are laid out.

The exported graphs hold only ``torch.ops.aten`` / ``torch.ops.rebnn`` operators and the deploy model's tensors:
the binary weights stay packed (int64 words, one bit per weight). Decoding, NMS and rescaling are
:mod:`.postprocess` (torch only), run by :mod:`.pt2_runtime`.
"""
import json
import os.path as osp
from typing import List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from .pt2_runtime import FORMAT, FORMAT_VERSION, META_FILE

__all__ = ['export_pt2', 'export_detector_pt2', 'NetworkOutputs', 'RoIOutputs']


def _dense_head(detector: nn.Module) -> nn.Module:
    head = getattr(detector, 'rpn_head', None) or getattr(detector, 'bbox_head', None)
    if head is None:
        raise ValueError(f'{type(detector).__name__} has neither rpn_head nor bbox_head; export_pt2 exports '
                         'single-stage (bbox_head) and two-stage (rpn_head + roi_head) mmdet detectors')
    return head


def _is_two_stage(detector: nn.Module) -> bool:
    return getattr(detector, 'rpn_head', None) is not None and getattr(detector, 'roi_head', None) is not None


class NetworkOutputs(nn.Module):
    """The traced part of the network: ``inputs -> (*features, *head outputs)`` as one flat tuple -- the features
    the RoI stage reads (two-stage only), then each of the dense head's outputs (score maps, box maps, and for
    FCOS the centerness maps) level by level."""

    def __init__(self, detector: nn.Module):
        super().__init__()
        self.detector = detector
        self.two_stage = _is_two_stage(detector)

    def forward(self, inputs: Tensor) -> Tuple[Tensor, ...]:
        feats = self.detector.extract_feat(inputs)
        outs = _dense_head(self.detector)(feats)  # not a submodule of its own: each weight has one name
        flat: List[Tensor] = list(feats) if self.two_stage else []
        for per_level in outs:
            flat.extend(per_level)
        return tuple(flat)


class RoIOutputs(nn.Module):
    """The RoI stage of a two-stage detector: ``(*features, rois) -> (cls_score, bbox_pred)`` (mmdet's
    ``StandardRoIHead._bbox_forward``: RoI extraction, shared head if any, box head)."""

    def __init__(self, detector: nn.Module):
        super().__init__()
        self.roi_head = detector.roi_head

    def forward(self, *feats_and_rois: Tensor) -> Tuple[Tensor, Tensor]:
        *feats, rois = feats_and_rois
        out = self.roi_head._bbox_forward(tuple(feats), rois)
        return out['cls_score'], out['bbox_pred']


def _preprocess_meta(cfg, detector: nn.Module) -> dict:
    """What the runtime needs to prepare an image as the test pipeline and data preprocessor do."""
    dp = detector.data_preprocessor
    mean = None if getattr(dp, 'mean', None) is None else [float(v) for v in dp.mean.reshape(-1)]
    std = None if getattr(dp, 'std', None) is None else [float(v) for v in dp.std.reshape(-1)]
    resize = None
    pipeline = (cfg.get('test_dataloader') or {}).get('dataset', {}).get('pipeline') or []
    for step in pipeline:
        if str(step.get('type')).split('.')[-1] == 'Resize':
            resize = dict(scale=[int(v) for v in step['scale']], keep_ratio=bool(step.get('keep_ratio', False)))
    return dict(mean=mean, std=std, bgr_to_rgb=bool(getattr(dp, '_channel_conversion', False)),
                pad_size_divisor=int(getattr(dp, 'pad_size_divisor', 1)), pad_value=float(getattr(dp, 'pad_value', 0)),
                resize=resize)


def _drop_example_inputs(ep) -> None:
    """A .pt2 need not carry the (pickled) example inputs: the runtime never reads them."""
    try:
        ep.example_inputs = None
    except (AttributeError, ValueError, TypeError):
        ep._example_inputs = None


def export_detector_pt2(detector: nn.Module, cfg, out: str, input_shape: Sequence[int] = (800, 1216),
                        dynamic: bool = True, class_names: Optional[Sequence[str]] = None, force: bool = False) -> str:
    """Export an mmdet ``detector`` already in deploy mode (:func:`~rebnn_det.deploy.convert.convert_to_deploy`)
    to ``out`` (see the module docstring). ``input_shape`` ``(H, W)``: the example input (a multiple of the size
    divisor); ``dynamic``: other heights and widths accepted (multiples of the divisor)."""
    from torch.export import Dim, export
    from torch.export.pt2_archive._package import package_pt2

    from .postprocess_spec import detector_spec
    from .pt2_runtime import write_new
    if osp.exists(out) and not force:
        raise FileExistsError(f'output {osp.abspath(out)!r} already exists; pass force=True (--force) to overwrite it')
    detector = detector.eval()
    preprocess = _preprocess_meta(cfg, detector)
    divisor = max(preprocess['pad_size_divisor'], 1)
    h, w = (int(v) for v in input_shape)
    if h % divisor or w % divisor:
        raise ValueError(f'input_shape {(h, w)} must be a multiple of the size divisor {divisor} in both dimensions')
    network = NetworkOutputs(detector).eval()
    example = torch.zeros(1, 3, h, w)
    dynamic_shapes = None
    if dynamic:  # from (coarsest stride + divisor) px up, every level has >= 2 rows and columns (a size-1 level
        # would be specialized by the tracer)
        blocks = max(_dense_head(detector).prior_generator.strides)[0] // divisor + 1
        if h < blocks * divisor or w < blocks * divisor:
            raise ValueError(f'a dynamic export needs input_shape >= {blocks * divisor} px per side (the coarsest '
                             f'level must have >= 2 rows and columns); got {(h, w)} (or export with dynamic=False)')
        dh = Dim('h_blocks', min=blocks, max=4096 // divisor)
        dw = Dim('w_blocks', min=blocks, max=4096 // divisor)
        dynamic_shapes = {'inputs': {2: divisor * dh, 3: divisor * dw}}
    with torch.no_grad():
        outs = network(example)
        programs = {'network': export(network, (example, ), dynamic_shapes=dynamic_shapes)}
        layout = _output_layout(detector, outs)
        if network.two_stage:
            feats = outs[:layout['features']][:detector.roi_head.bbox_roi_extractor.num_inputs]
            rois = torch.tensor([[0.0, 0.0, 0.0, w / 2, h / 2], [0.0, w / 4, h / 4, w - 1.0, h - 1.0]])
            roi_dynamic = tuple({2: Dim.DYNAMIC, 3: Dim.DYNAMIC} for _ in feats) + ({0: Dim.DYNAMIC}, )
            programs['roi'] = export(RoIOutputs(detector).eval(), (*feats, rois),
                                    dynamic_shapes={'feats_and_rois': roi_dynamic})
            layout['roi_features'] = len(feats)
    for ep in programs.values():
        _drop_example_inputs(ep)
    meta = dict(format=FORMAT, version=FORMAT_VERSION, input_shape=[h, w], dynamic=bool(dynamic),
                preprocess=preprocess, postprocess=detector_spec(detector), outputs=layout,
                classes=list(class_names) if class_names is not None else None)
    json.dumps(meta)  # plain data only (fails here, not in the runtime)

    def write(path):
        package_pt2(path, exported_programs=programs, extra_files={META_FILE: json.dumps(meta, indent=1)})

    return write_new(out, write, force)


def _output_layout(detector: nn.Module, outs: Sequence[Tensor]) -> dict:
    """How the network's flat outputs split: ``features`` (two-stage), then ``head`` groups of ``levels``."""
    head = _dense_head(detector)
    levels = len(head.prior_generator.strides)
    two_stage = _is_two_stage(detector)
    features = levels if two_stage else 0
    groups = (len(outs) - features) // levels
    if features + groups * levels != len(outs):
        raise ValueError(f'the network returned {len(outs)} tensors, not {features} features + k x {levels} levels')
    names = ['cls_scores', 'bbox_preds', 'score_factors'][:groups]
    return dict(features=features, levels=levels, head=names)


def export_pt2(config, checkpoint: str, out: str, input_shape: Sequence[int] = (800, 1216), dynamic: bool = True,
               force: bool = False, isa: Optional[str] = None) -> str:
    """``tools/export_pt2.py CONFIG CKPT|PACKED OUT.pt2``: build ``config``'s detector, load ``checkpoint`` (an
    mmengine checkpoint or a packed 1-bit file; every tensor must fit), convert it to deploy mode and export it
    (:func:`export_detector_pt2`)."""
    from mmengine.runner import load_checkpoint

    from .convert import convert_to_deploy
    from .export import _as_config, build_detector
    cfg = _as_config(config)
    if not osp.isfile(checkpoint):
        raise FileNotFoundError(f'checkpoint {checkpoint!r} does not exist')
    if osp.exists(out) and not force:
        raise FileExistsError(f'output {osp.abspath(out)!r} already exists; pass force=True (--force) to overwrite it')
    model = build_detector(cfg)
    loaded = load_checkpoint(model, checkpoint, map_location='cpu', strict=True, logger='silent')
    meta = loaded.get('meta', {}) if isinstance(loaded, dict) else {}
    classes = (meta.get('dataset_meta') or {}).get('classes')
    model = convert_to_deploy(model, isa=isa)
    return export_detector_pt2(model, cfg, out, input_shape, dynamic, classes, force)
