"""Model summary: per layer what is binary, what it stores and what it computes; totals in bytes, BOPs and FLOPs.

Operation counts come from mmengine's jit-traced :class:`mmengine.analysis.FlopAnalyzer` (the counter behind
``get_model_complexity_info`` and mmdet's ``tools/analysis_tools/get_flops.py``), with its convention: **one
multiply-accumulate counts as one FLOP** (conv/linear MACs; eval-mode BN 2 per element; nearest upsampling 1 per
output element; element-wise adds, activations and the sign/threshold of RSign are not counted). The MACs of 1-bit
layers are then moved by module: the MACs of a :class:`~rebnn_det.ops.ReBNNConv` with binary weights **and**
binary activations (W1A1) are binary MACs, reported as BOPs (1 BOP = one 1-bit x 1-bit MAC, one bit pair of an
XNOR-popcount) and taken out of the FLOPs; every other MAC stays a FLOP (W1A32 and W32A1 layers included).
``OPs = BOPs / 64 + FLOPs`` (the Bi-Real Net / ReActNet convention).

Storage: a binary weight takes 1 bit; its per-output-channel ``alpha`` (also for ``'xnor'`` layers: the packed
file stores their scale), RSign thresholds, biases, BN parameters and running statistics and every other
real-valued parameter take 32 bits. The fp32 size counts 32 bits for every parameter and persistent float buffer
(what an fp32 ``state_dict`` holds for inference; integer buffers such as BN's ``num_batches_tracked`` are left out
of both sizes).

For a detector (an mmdet model with ``extract_feat``) the traced forward is ``extract_feat`` (backbone + neck:
exactly what mmdet's ``get_flops`` counts) followed by the dense heads (``rpn_head``, or the ``bbox_head`` of a
one-stage detector) on those features. The RoI heads run on a number of proposals, not on the image: their MACs
are counted at a stated count -- by default the test-time ``rpn.max_per_img`` proposals (1000 in mmdet's configs)
for each bbox head (every cascade stage) and ``rcnn.max_per_img`` detections for a mask head -- on RoI features
of their extractor's output size (RoIAlign itself and the post-processing are not MAC ops).
"""
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from ..ops import BinaryLayerMixin, ReBNNConv, RSign
from .packed_file import binary_layers, half_candidates

FLOAT_BITS = 32
BOPS_PER_OP = 64


@dataclass
class LayerSummary:
    """One layer: a module owning parameters or float buffers (a ReBNNConv together with its RSign)."""
    name: str
    kind: str
    weight_bits: int
    act_bits: int
    params: int
    fp32_bits: int
    packed_bits: int
    binary_macs: Optional[int] = 0  # None: not counted (RoI heads)
    float_macs: Optional[int] = 0

    @property
    def packed_bytes(self) -> float:
        return self.packed_bits / 8


@dataclass
class ModelSummary:
    layers: List[LayerSummary]
    input_shape: Tuple[int, int]
    other_float_macs: Dict[str, int] = field(default_factory=dict)  # part -> FLOPs of no layer row (upsample ...)
    traced: Sequence[str] = field(default_factory=list)  # top-level parts whose MACs are counted
    rois: Dict[str, int] = field(default_factory=dict)  # RoI head -> the number of RoIs its MACs are counted at

    @property
    def params(self) -> int:
        return sum(r.params for r in self.layers)

    @property
    def fp32_bytes(self) -> float:
        return sum(r.fp32_bits for r in self.layers) / 8

    @property
    def packed_bytes(self) -> float:
        return sum(r.packed_bits for r in self.layers) / 8

    @property
    def compression(self) -> float:
        return self.fp32_bytes / self.packed_bytes if self.packed_bytes else float('nan')

    @property
    def bops(self) -> int:
        return sum(r.binary_macs or 0 for r in self.layers)

    @property
    def flops(self) -> int:
        return sum(r.float_macs or 0 for r in self.layers) + sum(self.other_float_macs.values())

    @property
    def ops(self) -> float:
        return self.bops / BOPS_PER_OP + self.flops

    def part(self, *prefixes: str) -> 'ModelSummary':
        """The layers (and the FLOPs outside layers) of the parts ``prefixes``, e.g. ``'backbone', 'neck'``."""
        rows = [r for r in self.layers if any(r.name == p or r.name.startswith(p + '.') for p in prefixes)]
        other = {k: v for k, v in self.other_float_macs.items() if k in prefixes}
        rois = {k: v for k, v in self.rois.items() if any(k == p or k.startswith(p + '.') for p in prefixes)}
        return ModelSummary(rows, self.input_shape, other, [p for p in self.traced if p in prefixes], rois)


def is_binary_weight(m: nn.Module) -> bool:
    """A binary layer whose weights are stored as bits."""
    return isinstance(m, BinaryLayerMixin) and m.binary_weights


def is_w1a1(m: nn.Module) -> bool:
    """A binary layer whose MACs are BOPs: binary weights and binary activations."""
    return isinstance(m, BinaryLayerMixin) and m.is_w1a1


def _own_tensors(m: nn.Module) -> Tuple[int, int]:
    """``(parameters, parameters + persistent float buffers)`` held by ``m`` itself (a ReBNNConv: with its RSign)."""
    modules = list(m.modules()) if isinstance(m, BinaryLayerMixin) else [m]
    params = floats = 0
    for mod in modules:
        n = sum(p.numel() for p in mod._parameters.values() if p is not None)
        params += n
        floats += n + sum(b.numel() for k, b in mod._buffers.items()
                          if b is not None and b.is_floating_point() and k not in mod._non_persistent_buffers_set)
    return params, floats


def _layer_modules(model: nn.Module) -> Dict[str, nn.Module]:
    """``name -> module`` of the modules owning parameters/float buffers; a ReBNNConv's RSign is folded into it."""
    inside_binary = set()
    for name, m in model.named_modules():
        if isinstance(m, BinaryLayerMixin):
            inside_binary.update(f'{name}.{child}' if name else child for child, _ in m.named_modules() if child)
    return {name: m for name, m in model.named_modules()
            if name not in inside_binary and (isinstance(m, BinaryLayerMixin) or _own_tensors(m)[1])}


def _storage(m: nn.Module) -> Tuple[int, int, int]:
    """``(params, fp32 bits, packed bits)`` of one layer."""
    params, floats = _own_tensors(m)
    fp32_bits = FLOAT_BITS * floats
    if not is_binary_weight(m):
        return params, fp32_bits, fp32_bits
    weight = m.weight.numel()
    # a fixed-scale binarizer ('xnor'): its scale is stored in the packed file, not a parameter of the layer
    alpha_stored = 0 if m.weight_quantizer.learnable_scale else m.weight.shape[0]
    return params, fp32_bits, weight + FLOAT_BITS * (floats - weight + alpha_stored)


def _precision(m: nn.Module) -> Tuple[int, int]:
    """``(weight bits, activation bits)`` a layer computes with."""
    if isinstance(m, BinaryLayerMixin):
        return 1 if is_binary_weight(m) else 32, 1 if m.binary_activations else 32
    if isinstance(m, RSign):
        return 32, 1
    return 32, 32


def _exclusive(names: List[str], counts: Dict[str, int]) -> Dict[str, int]:
    """Counts of each named module minus those of the named modules nested in it (no MAC counted twice)."""
    out = {n: counts.get(n, 0) for n in names}
    by_depth = sorted(names, key=lambda n: -1 if n == '' else n.count('.'))
    for n in names:
        parents = [p for p in by_depth if p != n and (p == '' or n.startswith(p + '.'))]
        if parents:
            out[parents[-1]] -= counts.get(n, 0)
    return out


def is_detector(model: nn.Module) -> bool:
    return hasattr(model, 'extract_feat') and hasattr(model, 'backbone')


def dense_heads(detector: nn.Module) -> List[str]:
    """The heads traced at the input shape: ``rpn_head`` and ``bbox_head`` (one-stage detectors)."""
    return [h for h in ('rpn_head', 'bbox_head') if isinstance(getattr(detector, h, None), nn.Module)]


class _DetectorDenseForward(nn.Module):
    """``extract_feat`` + dense heads of an mmdet detector as one traceable forward."""

    def __init__(self, detector: nn.Module):
        super().__init__()
        self.detector = detector

    def forward(self, x):
        feats = self.detector.extract_feat(x)
        return (feats, ) + tuple(getattr(self.detector, h)(feats) for h in dense_heads(self.detector))


def roi_heads(detector: nn.Module, proposals: Optional[int] = None) -> List[Tuple[str, nn.Module, tuple]]:
    """``(name, head, input shape)`` of every RoI head to trace: each bbox head (every stage of a cascade) at
    ``proposals`` RoIs (default: the test-time ``rpn.max_per_img``), a mask head at ``rcnn.max_per_img`` RoIs."""
    roi = getattr(detector, 'roi_head', None)
    if not isinstance(roi, nn.Module):
        return []
    test_cfg = getattr(detector, 'test_cfg', None) or {}
    n_box = proposals or (test_cfg.get('rpn') or {}).get('max_per_img', 1000)
    n_mask = (test_cfg.get('rcnn') or {}).get('max_per_img', 100)
    out = []
    for kind, count in (('bbox', n_box), ('mask', n_mask)):
        heads, extractors = getattr(roi, f'{kind}_head', None), getattr(roi, f'{kind}_roi_extractor', None)
        if heads is None or extractors is None:
            continue
        pairs = (list(zip(heads, extractors)) if isinstance(heads, nn.ModuleList)
                 else [(heads, extractors)])
        for i, (head, extractor) in enumerate(pairs):
            size = extractor.roi_layers[0].output_size
            size = size if isinstance(size, (tuple, list)) else (size, size)
            name = f'roi_head.{kind}_head' + (f'.{i}' if isinstance(heads, nn.ModuleList) else '')
            out.append((name, head, (count, extractor.out_channels, *size)))
    return out


def count_macs(model: nn.Module, inputs: tuple, proposals: Optional[int] = None) -> Dict[str, int]:
    """mmengine's per-module counts (``FlopAnalyzer.by_module()``, names relative to ``model``; ``''`` = total)
    of ``model(*inputs)``, or of extract_feat + dense heads for a detector; eval mode, no gradients."""
    traced, prefix = (_DetectorDenseForward(model), 'detector.') if is_detector(model) else (model, '')
    counts = _by_module(traced, inputs, model)
    out = {name[len(prefix):]: v for name, v in counts.items() if name.startswith(prefix)}
    out[''] = counts['']
    for name, head, shape in roi_heads(model, proposals) if is_detector(model) else []:
        head_counts = _by_module(head, (torch.zeros(shape, device=inputs[0].device), ), head)
        out.update({f'{name}.{k}' if k else name: v for k, v in head_counts.items()})
        out['roi_head'] = out.get('roi_head', 0) + head_counts['']
        out[''] += head_counts['']
    return out


def _by_module(traced: nn.Module, inputs: tuple, owner: nn.Module) -> Dict[str, int]:
    """``FlopAnalyzer(traced, inputs).by_module()`` with ``owner`` in eval mode (restored after)."""
    from mmengine.analysis import FlopAnalyzer
    was_training = owner.training
    owner.eval()
    try:
        analyzer = FlopAnalyzer(traced, inputs)
        analyzer.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings('none')
        return analyzer.by_module()
    finally:
        owner.train(was_training)


MIN_SIDE, MAX_SIDE = 32, 4096  # a detector downsamples by 32; the model is run on a real image of the size


def check_input_shape(input_shape) -> Tuple[int, int]:
    """``(H, W)`` as ints, or a ``ValueError`` saying what is allowed."""
    values = list(input_shape) if isinstance(input_shape, (list, tuple)) else []
    if (len(values) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in values)
            or not all(MIN_SIDE <= v <= MAX_SIDE for v in values)):
        raise ValueError(f'input shape must be two integers H W, each from {MIN_SIDE} (a detector downsamples by '
                         f'32) to {MAX_SIDE} (the model is run on a zero image of that size), got '
                         f'{input_shape!r}')
    return values[0], values[1]


def model_summary(model: nn.Module, input_shape: Sequence[int] = (800, 1216), in_channels: int = 3,
                  proposals: Optional[int] = None) -> ModelSummary:
    """Per-layer and total storage and operation counts of ``model`` for one ``in_channels x H x W`` image
    (``input_shape`` = ``(H, W)``, each an integer in ``[MIN_SIDE, MAX_SIDE]``: the model runs on a real zero
    image of that size); a detector's RoI heads at ``proposals`` RoIs (default: its test-time
    ``rpn.max_per_img``; a mask head at ``rcnn.max_per_img``)."""
    h, w = check_input_shape(input_shape)
    param = next(model.parameters(), None)
    x = torch.zeros(1, in_channels, h, w, device=param.device if param is not None else 'cpu')
    macs = count_macs(model, (x, ), proposals)
    rois = {name: shape[0] for name, _, shape in roi_heads(model, proposals)} if is_detector(model) else {}
    traced_parts = ([p for p in ('backbone', 'neck', *dense_heads(model)) if isinstance(getattr(model, p, None),
                                                                                     nn.Module)]
                    + (['roi_head'] if rois else []) if is_detector(model) else [''])
    owners = _layer_modules(model)
    exclusive = _exclusive(list(owners), macs)
    rows, counted = [], {p: 0 for p in traced_parts}
    for name, m in owners.items():
        params, fp32_bits, packed_bits = _storage(m)
        weight_bits, act_bits = _precision(m)
        part = next((p for p in traced_parts if p == '' or name == p or name.startswith(p + '.')), None)
        if part is not None:
            value = exclusive[name]
            counted[part] += value
            binary, real = (value, 0) if is_w1a1(m) else (0, value)
        else:
            binary = real = None
        rows.append(LayerSummary(name or type(model).__name__, _kind(m), weight_bits, act_bits, params, fp32_bits,
                                 packed_bits, binary, real))
    other = {p: macs.get(p, 0) - counted[p] for p in traced_parts}
    outside = macs.get('', 0) - sum(macs.get(p, 0) for p in traced_parts)  # traced ops outside the parts
    if '' not in other and outside:
        other[''] = outside
    return ModelSummary(rows, (h, w), {k: v for k, v in other.items() if v}, traced_parts, rois)


def _kind(m: nn.Module) -> str:
    if isinstance(m, nn.Conv2d):
        kind = f'{"ReBNNConv" if isinstance(m, ReBNNConv) else "Conv2d"} {"x".join(map(str, m.kernel_size))}'
        return kind + (f' g{m.groups}' if m.groups > 1 else '')
    return type(m).__name__


def _fmt_count(n) -> str:
    if n is None:
        return '-'
    for unit, scale in (('G', 1e9), ('M', 1e6), ('K', 1e3)):
        if abs(n) >= scale:
            return f'{n / scale:.3f}{unit}'
    return f'{n:.0f}'


def _fmt_bytes(n: float) -> str:
    for unit, scale in (('MiB', 2**20), ('KiB', 2**10)):
        if n >= scale:
            return f'{n / scale:.2f} {unit}'
    return f'{n:.0f} B'


def format_summary(summary: ModelSummary, layers: bool = True) -> str:
    """The table ``tools/model_summary.py`` prints (per layer, then the totals)."""
    lines = []
    if layers:
        header = (f'{"layer":<46} {"kind":<16} {"W/A":>5} {"params":>9} {"bits":>11} {"bytes":>10} '
                  f'{"bin MACs":>10} {"float MACs":>10}')
        lines += [header, '-' * len(header)]
        for r in summary.layers:
            lines.append(f'{r.name[-46:]:<46} {r.kind[:16]:<16} {f"{r.weight_bits}/{r.act_bits}":>5} '
                         f'{r.params:>9} {r.packed_bits:>11} {_fmt_bytes(r.packed_bytes):>10} '
                         f'{_fmt_count(r.binary_macs):>10} {_fmt_count(r.float_macs):>10}')
        for part, value in summary.other_float_macs.items():
            label = f'({part or "model"}: ops outside layers, e.g. upsample)'
            lines.append(f'{label[-46:]:<46} {"":<16} {"":>5} {"":>9} {"":>11} {"":>10} {"":>10} '
                         f'{_fmt_count(value):>10}')
        lines.append('-' * len(header))
    h, w = summary.input_shape
    lines += [
        f'input 1x3x{h}x{w}; MACs counted in: {", ".join(summary.traced) or "-"} (other parts: storage only)'
        + (f'; RoI heads at {", ".join(f"{n} x{k}" for n, k in summary.rois.items())} RoIs' if summary.rois else ''),
        f'params        {summary.params:,}',
        f'fp32 size     {_fmt_bytes(summary.fp32_bytes)} ({summary.fp32_bytes:,.0f} B)',
        f'packed size   {_fmt_bytes(summary.packed_bytes)} ({summary.packed_bytes:,.0f} B: 1 bit per binary weight, '
        '32 per other value)',
        f'compression   {summary.compression:.2f}x',
        f'BOPs          {_fmt_count(summary.bops)} (1-bit x 1-bit MACs)',
        f'FLOPs         {_fmt_count(summary.flops)} (float MACs; mmengine convention: 1 MAC = 1 FLOP)',
        f'OPs           {_fmt_count(summary.ops)} (BOPs/64 + FLOPs)',
    ]
    return '\n'.join(lines)


def half_packed_bytes(model: nn.Module) -> float:
    """Counted size of a ``--half`` packed file of ``model``: binary weights 1 bit (plus their float32 scale), the
    real conv/linear weight matrices :func:`~.packed_file.half_candidates` stores in float16 16 bits, every other
    value (alpha, thresholds, BN, biases, RPReLU) 32 bits."""
    layers = binary_layers(model)
    halved = half_candidates(model)
    bits = sum(layer.weight.numel() + FLOAT_BITS * layer.weight.shape[0] for layer in layers.values())
    skip = {n + '.weight' for n in layers} | {n + '.alpha' for n in layers}
    for key, value in model.state_dict().items():
        if key not in skip and value.is_floating_point():
            bits += value.numel() * (16 if key in halved else FLOAT_BITS)
    return bits / 8
