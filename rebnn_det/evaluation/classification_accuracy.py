"""ClassificationAccuracy: top-k accuracy of :class:`~rebnn_det.models.BackboneClassifier` predictions."""
from typing import Sequence

import torch
from mmdet.registry import METRICS
from mmengine.evaluator import BaseMetric


@METRICS.register_module()
class ClassificationAccuracy(BaseMetric):
    """``top{k} = 100 * (images whose label is among the k highest scores) / images``, for each ``k`` in ``topk``
    (logged as ``accuracy/top1`` ...). Reads the ``pred_score`` and ``gt_label`` of each prediction."""
    default_prefix = 'accuracy'

    def __init__(self, topk: Sequence[int] = (1, ), collect_device: str = 'cpu', prefix=None):
        super().__init__(collect_device=collect_device, prefix=prefix)
        topk = tuple(topk)
        if not topk or any(not isinstance(k, int) or k < 1 for k in topk):
            raise ValueError(f'topk must be ints >= 1, got {topk!r}')
        self.topk = topk

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for pred in data_samples:
            if pred.get('gt_label') is None:
                raise ValueError('ClassificationAccuracy needs the label of every image (gt_label)')
            score = pred['pred_score']
            if max(self.topk) > score.numel():
                raise ValueError(f'ClassificationAccuracy: topk {self.topk} needs at least {max(self.topk)} classes, '
                                 f'the model scores {score.numel()}')
            self.results.append((score.topk(max(self.topk)).indices.cpu(), int(pred['gt_label'])))

    def compute_metrics(self, results: list) -> dict:
        if not results:
            raise ValueError('ClassificationAccuracy: no predictions to evaluate (an empty dataset?)')
        top = torch.stack([r[0] for r in results])
        labels = torch.tensor([r[1] for r in results])
        hits = top == labels[:, None]
        return {f'top{k}': float(hits[:, :k].any(dim=1).float().mean() * 100) for k in self.topk}
