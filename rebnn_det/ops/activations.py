"""Learnable activation pieces of the ReActNet block used by ReBNN: RSign and RPReLU."""
from typing import Optional

import torch
from torch import Tensor, nn

from .binarize import approx_sign


class RSign(nn.Module):
    """ReActNet's RSign: ``y = sign(x - threshold_c)``, a learnable ``threshold`` per channel (ReActNet's beta).

    Gradients: ``dL/dx = dL/dy * ApproxSign'(x - threshold)`` and
    ``dL/dthreshold_c = -sum dL/dy * ApproxSign'(x - threshold)`` (over the batch and positions of channel c).
    """

    def __init__(self, channels: int, ndim: Optional[int] = None):
        super().__init__()
        # the input's number of dimensions: 4 for a conv's (N, C, H, W) input (the default), 2 for (N, C) features
        ndim = 4 if ndim is None else ndim
        self.threshold = nn.Parameter(torch.zeros(1, channels, *([1] * (ndim - 2))))

    def forward(self, x: Tensor) -> Tensor:
        return approx_sign(x - self.threshold)


class RPReLU(nn.Module):
    """ReActNet's RPReLU: ``y = PReLU_slope(x - shift_in) + shift_out``; ``shift_in`` (ReActNet's gamma),
    ``slope`` and ``shift_out`` (ReActNet's zeta) learnable per channel, ``slope`` starting at ``init_slope``."""

    def __init__(self, channels: int, init_slope: float = 0.25):
        super().__init__()
        self.shift_in = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.slope = nn.Parameter(torch.full((channels, ), init_slope))
        self.shift_out = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return torch.nn.functional.prelu(x - self.shift_in, self.slope) + self.shift_out
