"""Learnable activation pieces of the ReActNet block used by ReBNN: RSign and RPReLU."""
import torch
from torch import Tensor, nn

from .binarize import approx_sign


class RSign(nn.Module):
    """ReActNet's RSign: ``sign(x - beta_c)`` with a learnable threshold ``beta`` per channel.

    Gradients: ``dL/dx = dL/dy * ApproxSign'(x - beta)``, ``dL/dbeta_c = -sum dL/dy * ApproxSign'(x - beta)``.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.threshold = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return approx_sign(x - self.threshold)


class RPReLU(nn.Module):
    """ReActNet's RPReLU: ``y = PReLU_a(x - gamma) + zeta``, all three learnable per channel."""

    def __init__(self, channels: int, init_slope: float = 0.25):
        super().__init__()
        self.shift_in = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.slope = nn.Parameter(torch.full((channels, ), init_slope))
        self.shift_out = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return torch.nn.functional.prelu(x - self.shift_in, self.slope) + self.shift_out
