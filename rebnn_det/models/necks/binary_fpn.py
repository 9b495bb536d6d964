"""BinaryFPN: mmdet's FPN with 1-bit lateral, output and extra convolutions."""
from typing import Sequence, Tuple

from mmdet.models.necks import FPN
from mmdet.registry import MODELS
from torch import Tensor

from ...ops import reset_binary_alphas
from ...ops.binarize import check_choice
from ..layers import BinaryConvBlock


@MODELS.register_module()
class BinaryFPN(FPN):
    """mmdet ``FPN`` (same arguments, same outputs) whose convolutions are :class:`BinaryConvBlock`.

    Args (beyond FPN's):
        binary_parts: which convolutions are binary: any of ``'lateral'`` (1x1 laterals), ``'fpn'`` (3x3 output
            convs) and ``'extra'`` (extra levels from ``add_extra_convs``); the others stay real ConvModules.
        weight_binarizer / act_binarizer / pad_value: passed to every ReBNNConv.
        binary_norm_cfg: norm layer after each binary conv (it restores the scale a binary conv loses).
        shortcut: give each binary conv a parameter-free shortcut (see :class:`BinaryConvBlock`).
    """
    PARTS = ('lateral', 'fpn', 'extra')

    def __init__(self, in_channels: Sequence[int], out_channels: int, num_outs: int,
                 binary_parts: Sequence[str] = PARTS, weight_binarizer: str = 'rebnn',
                 act_binarizer: str = 'rsign', pad_value: float = 0.0, binary_norm_cfg: dict = dict(type='BN'),
                 shortcut: bool = True, **kwargs):
        if isinstance(binary_parts, str):
            binary_parts = (binary_parts, )
        for part in binary_parts:
            check_choice('BinaryFPN binary part', part, self.PARTS)
        super().__init__(list(in_channels), out_channels, num_outs, **kwargs)
        self.binary_parts = tuple(binary_parts)
        block_cfg = dict(norm_cfg=binary_norm_cfg, shortcut=shortcut, weight_binarizer=weight_binarizer,
                         act_binarizer=act_binarizer, pad_value=pad_value)
        if 'lateral' in binary_parts:
            for i, m in enumerate(self.lateral_convs):
                self.lateral_convs[i] = BinaryConvBlock.like(m.conv, **block_cfg)
        num_fpn = self.backbone_end_level - self.start_level
        for i, m in enumerate(self.fpn_convs):
            if ('fpn' if i < num_fpn else 'extra') in binary_parts:
                self.fpn_convs[i] = BinaryConvBlock.like(m.conv, **block_cfg)

    def init_weights(self) -> None:
        super().init_weights()
        reset_binary_alphas(self)

    def forward(self, inputs: Tuple[Tensor]) -> tuple:
        got = [x.shape[1] for x in inputs]
        if got != list(self.in_channels):
            raise ValueError(f'BinaryFPN was built for in_channels {list(self.in_channels)} but got feature maps '
                             f'with {got} channels; set neck.in_channels to the backbone\'s out channels')
        return super().forward(inputs)
