"""RoI feature extraction on all cores for deploy mode: mmdet's ``SingleRoIExtractor`` with its mmcv ``RoIAlign``
layers replaced by one threaded call of the compiled ``roi_align_levels`` (``csrc/roi_align.cpp``).

mmcv's CPU RoIAlign runs on one thread, one level at a time, and reads its input as a raw NCHW buffer (so the
neck's channels-last outputs had to be copied first). ``roi_align_levels`` pools every RoI from its own level in
one pass threaded over RoIs, reads any strides (channels-last fastest: channels are the inner loop) and evaluates
each output with the same float operations in the same order as mmcv (see the .cpp), so the RoI features -- and
the detections -- are bit-identical to the simulated model's. The RoI-to-level mapping, ``roi_scale_factor`` and
the zero-RoI case are mmdet's own code (``map_roi_levels`` / ``roi_rescale`` of the wrapped extractor).
"""
from typing import List, Optional, Sequence

import torch
from mmcv.ops import RoIAlign
from mmdet.models.roi_heads.roi_extractors import SingleRoIExtractor
from torch import Tensor, nn

from .kernels import _load_extension


def roi_align_levels(feats: Sequence[Tensor], spatial_scales: Sequence[float], rois: Tensor, levels: Tensor,
                     output_size, sampling_ratio: int = 0, aligned: bool = True) -> Tensor:
    """Average RoIAlign of RoI ``k`` (``rois[k] = (batch index, x1, y1, x2, y2)``) on ``feats[levels[k]]`` ->
    ``[K, C, out_h, out_w]``; equal to mmcv's ``roi_align(feats[l], rois, output_size, spatial_scales[l],
    sampling_ratio, 'avg', aligned)`` row by row. Needs the compiled extension."""
    ext = _load_extension()
    if ext is None:
        raise RuntimeError('roi_align_levels needs the compiled extension rebnn_det._C (not importable here)')
    out_h, out_w = (output_size, output_size) if isinstance(output_size, int) else tuple(output_size)
    return torch.ops.rebnn.roi_align_levels(list(feats), [float(s) for s in spatial_scales], rois,
                                            levels.to(torch.int64), out_h, out_w, int(sampling_ratio), bool(aligned))


def _roi_align_settings(layers: nn.ModuleList) -> Optional[dict]:
    """The shared settings of mmcv ``RoIAlign`` layers when one ``roi_align_levels`` call can replace them all
    (average pooling, torchvision off, one output size / sampling ratio / alignment), else None."""
    if not layers or not all(type(m) is RoIAlign for m in layers):
        return None
    first = layers[0]
    same = all(tuple(m.output_size) == tuple(first.output_size) and m.sampling_ratio == first.sampling_ratio
               and m.aligned == first.aligned for m in layers)
    if not same or any(m.pool_mode != 'avg' or m.use_torchvision for m in layers):
        return None
    return dict(output_size=tuple(first.output_size), sampling_ratio=int(first.sampling_ratio),
                aligned=bool(first.aligned), spatial_scales=[float(m.spatial_scale) for m in layers])


class ParallelRoIExtractor(nn.Module):
    """Deploy form of an mmdet ``SingleRoIExtractor`` (same call, same output): the RoIs are mapped to levels by the
    wrapped extractor's ``map_roi_levels`` and pooled by one threaded ``roi_align_levels`` call. Inference only
    (float32 CPU features)."""

    def __init__(self, extractor: nn.Module):
        super().__init__()
        settings = _roi_align_settings(extractor.roi_layers)
        if settings is None:
            raise ValueError('ParallelRoIExtractor replaces only mmcv RoIAlign layers with average pooling and one '
                             'output size / sampling_ratio / aligned setting (check applies() first)')
        self.extractor = extractor
        self.settings = settings
        self.out_channels = extractor.out_channels

    @classmethod
    def applies(cls, module: nn.Module) -> bool:
        return (isinstance(module, SingleRoIExtractor) and type(module).forward is SingleRoIExtractor.forward
                and _load_extension() is not None and _roi_align_settings(module.roi_layers) is not None)

    @property
    def roi_layers(self) -> nn.ModuleList:
        return self.extractor.roi_layers

    @property
    def featmap_strides(self) -> List[int]:
        return self.extractor.featmap_strides

    @property
    def num_inputs(self) -> int:  # mmdet's RoI heads pass x[:num_inputs]
        return self.extractor.num_inputs

    def forward(self, feats, rois: Tensor, roi_scale_factor: Optional[float] = None) -> Tensor:
        s = self.settings
        rois = rois.type_as(feats[0])
        num_levels = len(feats)
        if num_levels != len(s['spatial_scales']):
            raise ValueError(f'{num_levels} feature levels given; the RoI extractor has '
                             f'{len(s["spatial_scales"])} RoIAlign layers (strides {self.featmap_strides})')
        if feats[0].dtype != torch.float32 or feats[0].device.type != 'cpu':
            return self.extractor(feats, rois, roi_scale_factor)  # the kernel is float32 CPU only
        if num_levels == 1:  # mmdet: one level, no level mapping and no rescaling
            levels = rois.new_zeros(rois.size(0), dtype=torch.int64)
        else:
            levels = self.extractor.map_roi_levels(rois, num_levels)
            if roi_scale_factor is not None:
                rois = self.extractor.roi_rescale(rois, roi_scale_factor)
        return roi_align_levels(feats, s['spatial_scales'], rois, levels, s['output_size'], s['sampling_ratio'],
                                s['aligned'])
