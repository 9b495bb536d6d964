"""Where a detector's dense head is (one rule for the distillation and the .pt2 export)."""
from torch import nn


def dense_head(detector: nn.Module) -> nn.Module:
    """A detector's dense head: a two-stage detector's RPN, else the single-stage bbox head (the head whose class
    maps are distilled, and the network part the .pt2 export ends with)."""
    head = getattr(detector, 'rpn_head', None)
    head = head if head is not None else getattr(detector, 'bbox_head', None)
    if head is None:
        raise ValueError(f'{type(detector).__name__} has neither rpn_head nor bbox_head: expected a single-stage '
                         '(bbox_head) or two-stage (rpn_head + roi_head) mmdet detector')
    return head
