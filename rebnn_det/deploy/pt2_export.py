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

``--aoti`` (``aoti=True``, FCOS-type detectors): the ``network`` program compiled ahead of time by AOTInductor into
a package (a shared library: run it only if you would run the exporter's binaries) with the settings of
:func:`aoti_metadata`; ``deploy_cpp/rebnn_detect.cpp`` loads it from C++ and prints the detections.
"""
import json
import os.path as osp
import shutil
import tempfile
import warnings
from typing import Callable, List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from ..models.detectors.heads import dense_head
from .pt2_runtime import FORMAT, FORMAT_VERSION, META_FILE

__all__ = ['export_pt2', 'export_detector_pt2', 'aoti_metadata', 'NetworkOutputs', 'RoIOutputs']


def _is_two_stage(detector: nn.Module) -> bool:
    return getattr(detector, 'rpn_head', None) is not None and getattr(detector, 'roi_head', None) is not None


class NetworkOutputs(nn.Module):
    """The traced part of the network: ``inputs -> (*features, *head outputs)`` as one flat tuple -- the features
    the RoI stage reads (two-stage only), then each of the dense head's outputs (score maps, box maps, and for
    FCOS the centerness maps) level by level. It holds the backbone, neck and dense head only (mmdet's
    ``extract_feat`` then the head), so the program stores no weight of the RoI stage."""

    def __init__(self, detector: nn.Module):
        super().__init__()
        self.backbone = detector.backbone
        self.neck = detector.neck if getattr(detector, 'with_neck', False) else None
        self.head = dense_head(detector)
        self.two_stage = _is_two_stage(detector)

    def forward(self, inputs: Tensor) -> Tuple[Tensor, ...]:
        feats = self.backbone(inputs)
        if self.neck is not None:
            feats = self.neck(feats)
        outs = self.head(feats)
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


# test-pipeline steps that change no pixel (loading, annotations, packing); Resize is read
PIPELINE_STEPS = ('LoadImageFromFile', 'LoadAnnotations', 'PackDetInputs')


def _preprocess_meta(cfg, detector: nn.Module) -> dict:
    """What the runtime needs to prepare an image as the test pipeline and data preprocessor do."""
    dp = detector.data_preprocessor
    mean = None if getattr(dp, 'mean', None) is None else [float(v) for v in dp.mean.reshape(-1)]
    std = None if getattr(dp, 'std', None) is None else [float(v) for v in dp.std.reshape(-1)]
    resize = None
    pipeline = (cfg.get('test_dataloader') or {}).get('dataset', {}).get('pipeline') or []
    for step in pipeline:
        kind = str(step.get('type')).split('.')[-1]
        if kind == 'Resize':
            if set(step) - {'type', 'scale', 'keep_ratio'}:
                raise ValueError(f'test pipeline Resize {dict(step)}: the runtime reproduces Resize(scale, keep_ratio) '
                                 f'only')
            resize = dict(scale=[int(v) for v in step['scale']], keep_ratio=bool(step.get('keep_ratio', False)))
        elif kind not in PIPELINE_STEPS:
            raise ValueError(f'test pipeline step {kind!r} is not reproduced by the .pt2 runtime; supported: '
                             f'{list(PIPELINE_STEPS) + ["Resize"]}')
    return dict(mean=mean, std=std, bgr_to_rgb=bool(getattr(dp, '_channel_conversion', False)),
                pad_size_divisor=int(getattr(dp, 'pad_size_divisor', 1)), pad_value=float(getattr(dp, 'pad_value', 0)),
                resize=resize)


def write_new(out: str, write: Callable[[str], None], force: bool) -> str:
    """``write(path)`` into a temporary folder next to ``out`` (torch names an archive's root folder after its
    file, so the file there has ``out``'s name), then :func:`~rebnn_det.fileio.atomic_write` of its bytes onto
    ``out`` (flushed, never half-written; unless ``force`` created exclusively: an ``out`` that appeared meanwhile
    is a FileExistsError and stays as it is)."""
    from ..fileio import atomic_write
    folder = osp.dirname(osp.abspath(out))
    if not osp.isdir(folder):
        raise FileNotFoundError(f'output folder {folder!r} does not exist')
    with tempfile.TemporaryDirectory(prefix=f'.{osp.basename(out)}.', dir=folder) as tmp_dir:
        tmp = osp.join(tmp_dir, osp.basename(out))
        write(tmp)
        with open(tmp, 'rb') as src:
            atomic_write(out, lambda f: shutil.copyfileobj(src, f), replace=force)
    return out


def _strip_for_shipping(ep) -> None:
    """What the runtime never reads stays out of the file: the (pickled) example inputs, and each node's Python
    stack trace (the exporting machine's source paths; about a third of the graph's JSON)."""
    try:
        ep.example_inputs = None
    except (AttributeError, ValueError, TypeError):
        ep._example_inputs = None
    for module in ep.graph_module.modules():
        if isinstance(module, torch.fx.GraphModule):
            for node in module.graph.nodes:
                node.meta.pop('stack_trace', None)


def export_detector_pt2(detector: nn.Module, cfg, out: str, input_shape: Sequence[int] = (800, 1216),
                        dynamic: bool = True, class_names: Optional[Sequence[str]] = None, force: bool = False,
                        aoti: bool = False) -> str:
    """Export an mmdet ``detector`` already in deploy mode (:func:`~rebnn_det.deploy.convert.convert_to_deploy`)
    to ``out`` (see the module docstring). ``input_shape`` ``(H, W)``: the example input (a multiple of the size
    divisor); ``dynamic``: other heights and widths accepted (multiples of the divisor). ``aoti``: write an
    AOTInductor package of the network instead (FCOS-type detectors; :func:`aoti_metadata`), which
    ``deploy_cpp/rebnn_detect`` runs."""
    from torch.export import Dim, export
    from torch.export.pt2_archive._package import package_pt2

    from .postprocess_spec import detector_spec
    if osp.exists(out) and not force:
        raise FileExistsError(f'output {osp.abspath(out)!r} already exists; pass force=True (--force) to overwrite it')
    detector = detector.eval()
    preprocess = _preprocess_meta(cfg, detector)
    divisor = max(preprocess['pad_size_divisor'], 1)
    h, w = (int(v) for v in input_shape)
    if h % divisor or w % divisor:
        raise ValueError(f'input_shape {(h, w)} must be a multiple of the size divisor {divisor} in both dimensions')
    if aoti:
        aoti_meta = aoti_metadata(detector_spec(detector), preprocess)  # refuses what the C++ program cannot run
    network = NetworkOutputs(detector).eval()
    example = torch.zeros(1, 3, h, w)
    dynamic_shapes = None
    if dynamic:  # from (coarsest stride + divisor) px up, every level has >= 2 rows and columns (a size-1 level
        # would be specialized by the tracer)
        blocks = max(dense_head(detector).prior_generator.strides)[0] // divisor + 1
        if h < blocks * divisor or w < blocks * divisor:
            raise ValueError(f'a dynamic export needs input_shape >= {blocks * divisor} px per side (the coarsest '
                             f'level must have >= 2 rows and columns); got {(h, w)} (or export with dynamic=False)')
        dh = Dim('h_blocks', min=blocks, max=4096 // divisor)
        dw = Dim('w_blocks', min=blocks, max=4096 // divisor)
        dynamic_shapes = {'inputs': {2: divisor * dh, 3: divisor * dw}}
    with torch.no_grad(), warnings.catch_warnings():
        # torch's own pytree code trips its deprecation of LeafSpec while exporting (nothing to act on here)
        warnings.filterwarnings('ignore', message=r'.*isinstance\(treespec, LeafSpec\)', category=FutureWarning)
        outs = network(example)
        programs = {'network': export(network, (example, ), dynamic_shapes=dynamic_shapes)}
        layout = _output_layout(detector, outs)
        if aoti:
            return write_new(out, lambda path: torch._inductor.aoti_compile_and_package(
                programs['network'], package_path=path, inductor_configs={'aot_inductor.metadata': aoti_meta}),
                force)
        if network.two_stage:
            feats = outs[:layout['features']][:detector.roi_head.bbox_roi_extractor.num_inputs]
            rois = torch.tensor([[0.0, 0.0, 0.0, w / 2, h / 2], [0.0, w / 4, h / 4, w - 1.0, h - 1.0]])
            roi_dynamic = tuple({2: Dim.DYNAMIC, 3: Dim.DYNAMIC} for _ in feats) + ({0: Dim.DYNAMIC}, )
            programs['roi'] = export(RoIOutputs(detector).eval(), (*feats, rois),
                                    dynamic_shapes={'feats_and_rois': roi_dynamic})
            layout['roi_features'] = len(feats)
    for ep in programs.values():
        _strip_for_shipping(ep)
    meta = dict(format=FORMAT, version=FORMAT_VERSION, input_shape=[h, w], dynamic=bool(dynamic),
                preprocess=preprocess, postprocess=detector_spec(detector), outputs=layout,
                classes=list(class_names) if class_names is not None else None)
    json.dumps(meta)  # plain data only (fails here, not in the runtime)

    def write(path):
        package_pt2(path, exported_programs=programs, extra_files={META_FILE: json.dumps(meta, indent=1)})

    return write_new(out, write, force)


def aoti_metadata(spec: dict, preprocess: dict) -> dict:
    """The settings ``deploy_cpp/rebnn_detect.cpp`` reads from an AOTInductor package, as the flat string map
    AOTInductor stores (``rebnn_det.<key>``: numbers as Python's ``repr``, lists comma-separated, flags 0/1). The
    C++ program runs an FCOSHead's post-processing with sigmoid scores and mmcv's one-pass batched NMS; anything
    else is refused here."""
    if spec.get('type') != 'fcos':
        raise ValueError(f"an AOTInductor package (--aoti) is written for FCOS-type detectors, which "
                         f"deploy_cpp/rebnn_detect runs; this detector's post-processing is {spec.get('type')!r} "
                         f"(export a .pt2 without --aoti and run it with rebnn_det.deploy.pt2_runtime)")
    cfg, gen, nms = spec['test_cfg'], spec['prior_generator'], spec['test_cfg']['nms']
    if not spec['use_sigmoid_cls'] or nms is None or nms.get('class_agnostic'):
        raise ValueError('--aoti: rebnn_detect needs sigmoid class scores and a class-aware NMS config')
    split_thr = nms.get('split_thr', 10000)
    if not 0 < cfg['nms_pre'] or cfg['nms_pre'] * len(gen['strides']) >= split_thr:
        raise ValueError(f"--aoti: rebnn_detect runs mmcv's one-pass batched_nms, which needs nms_pre > 0 and "
                         f"nms_pre x levels < split_thr ({cfg['nms_pre']} x {len(gen['strides'])}, {split_thr})")

    def text(value) -> str:
        if isinstance(value, (list, tuple)):
            return ','.join(text(v) for v in value)
        if isinstance(value, str):
            return value
        return str(int(value)) if isinstance(value, bool) else repr(value)

    resize = preprocess.get('resize')
    meta = dict(type='fcos', num_classes=spec['num_classes'], strides=[v for s in gen['strides'] for v in s],
                prior_offset=float(gen['offset']), clip_border=spec['bbox_coder']['clip_border'],
                score_thr=float(cfg['score_thr']), nms_pre=cfg['nms_pre'], min_bbox_size=float(cfg['min_bbox_size']),
                max_per_img=cfg['max_per_img'], iou_threshold=float(nms['iou_threshold']),
                nms_offset=int(nms.get('offset', 0)), nms_score_threshold=float(nms.get('score_threshold', 0)),
                nms_max_num=int(nms.get('max_num', -1)), resize_scale=resize['scale'] if resize else [],
                resize_keep_ratio=bool(resize and resize['keep_ratio']), bgr_to_rgb=preprocess['bgr_to_rgb'],
                mean=preprocess['mean'] or [], std=preprocess['std'] or [],
                pad_size_divisor=preprocess['pad_size_divisor'], pad_value=float(preprocess['pad_value']))
    return {f'rebnn_det.{k}': text(v) for k, v in meta.items()}


def _output_layout(detector: nn.Module, outs: Sequence[Tensor]) -> dict:
    """How the network's flat outputs split: ``features`` (two-stage), then ``head`` groups of ``levels``."""
    head = dense_head(detector)
    levels = len(head.prior_generator.strides)
    two_stage = _is_two_stage(detector)
    features = levels if two_stage else 0
    groups = (len(outs) - features) // levels
    if features + groups * levels != len(outs):
        raise ValueError(f'the network returned {len(outs)} tensors, not {features} features + k x {levels} levels')
    names = ['cls_scores', 'bbox_preds', 'score_factors'][:groups]
    return dict(features=features, levels=levels, head=names)


def export_pt2(config, checkpoint: str, out: str, input_shape: Sequence[int] = (800, 1216), dynamic: bool = True,
               force: bool = False, isa: Optional[str] = None, aoti: bool = False) -> str:
    """``tools/export_pt2.py CONFIG CKPT|PACKED OUT.pt2``: build ``config``'s detector, load ``checkpoint`` (an
    mmengine checkpoint or a packed 1-bit file; every tensor must fit), convert it to deploy mode and export it
    (:func:`export_detector_pt2`)."""
    from mmdet.utils import register_all_modules
    from mmengine.runner import load_checkpoint

    from .convert import convert_to_deploy
    # mmdet's own components (hooks, datasets, metrics, ...) registered: a packed file's embedded config is
    # checked against the registered names (deploy/embedded_config.py), and a standard config names them
    register_all_modules(init_default_scope=False)
    from .export import _as_config, build_detector
    cfg = _as_config(config)
    if not osp.isfile(checkpoint):
        raise FileNotFoundError(f'checkpoint {checkpoint!r} does not exist')
    model = build_detector(cfg)
    loaded = load_checkpoint(model, checkpoint, map_location='cpu', strict=True, logger='silent')
    meta = loaded.get('meta', {}) if isinstance(loaded, dict) else {}
    classes = (meta.get('dataset_meta') or {}).get('classes')
    model = convert_to_deploy(model, isa=isa)
    return export_detector_pt2(model, cfg, out, input_shape, dynamic, classes, force, aoti)
