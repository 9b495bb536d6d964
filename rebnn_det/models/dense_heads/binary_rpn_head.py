"""BinaryRPNHead: mmdet's RPNHead with a 1-bit 3x3 conv."""
from typing import Optional, Tuple

from mmdet.models.dense_heads import RPNHead
from mmdet.registry import MODELS
import torch.nn.functional as F
from torch import Tensor, nn

from ...ops import reset_binary_alphas
from ..layers import binarize_conv_tower


@MODELS.register_module()
class BinaryRPNHead(RPNHead):
    """mmdet ``RPNHead`` (same arguments and outputs) whose shared 3x3 conv -- over all FPN levels, the RPN's
    compute -- is a :class:`~rebnn_det.models.layers.BinaryConvBlock`: ``BN(ReBNNConv(x)) + x``, followed by
    the RPNHead's ReLU. With ``num_convs > 1`` every conv is such a block (keeping its ConvModule's ReLU).

    The 1x1 objectness and box-delta convs stay real: they are the prediction layers (scores are thresholded,
    ranked and decoded into boxes; a binary last layer outputs ``alpha`` times an integer), and with ``A``
    anchors per position they cost ``5A / (9 * feat_channels)`` of the 3x3 conv's MACs (0.7 % for A=3, 256).

    Args (beyond RPNHead's):
        binary_cfg: arguments of every block: ``weight_binarizer``, ``act_binarizer``, ``pad_value`` (of
            ReBNNConv), ``norm_cfg`` (default BN), ``shortcut`` (default True), ``act_cfg``.
    """

    def __init__(self, in_channels: int, num_classes: int = 1, binary_cfg: Optional[dict] = None, **kwargs):
        super().__init__(in_channels, num_classes=num_classes, **kwargs)
        if isinstance(self.rpn_conv, nn.Sequential):
            binarize_conv_tower(self.rpn_conv, binary_cfg)
        else:
            tower = nn.ModuleList([self.rpn_conv])
            binarize_conv_tower(tower, binary_cfg)
            self.rpn_conv = tower[0]

    def init_weights(self) -> None:
        super().init_weights()  # Normal(std=0.01) on every Conv2d, ReBNNConv included
        reset_binary_alphas(self)  # alpha = mean|w| of the initialised weights

    def forward_single(self, x: Tensor) -> Tuple[Tensor, Tensor]:
        """RPNHead's: conv, ReLU, then the objectness and box convs. The ReLU is skipped where the conv block
        applies it itself (``ends_with_relu``: deploy mode fuses it into the binary conv's epilogue)."""
        x = self.rpn_conv(x)
        if not getattr(self.rpn_conv, 'ends_with_relu', False):
            x = F.relu(x)
        return self.rpn_cls(x), self.rpn_reg(x)
