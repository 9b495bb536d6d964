"""BinaryFPN: mmdet's FPN with 1-bit lateral, output and extra convolutions."""
import warnings
from typing import Optional, Sequence, Tuple

from mmdet.models.necks import FPN
from mmdet.registry import MODELS
from torch import Tensor

from ...ops import reset_binary_alphas
from ...ops.binarize import check_choice
from ..layers import BinaryConvBlock, check_block_cfg


@MODELS.register_module()
class BinaryFPN(FPN):
    """mmdet ``FPN`` (same arguments, same outputs) whose convolutions are :class:`BinaryConvBlock`.

    Args (beyond FPN's):
        binary_parts: which convolutions are binary: any of ``'lateral'`` (1x1 laterals), ``'fpn'`` (3x3 output
            convs) and ``'extra'`` (extra levels from ``add_extra_convs``); the others stay real ConvModules.
        binary_cfg: arguments of every binary block, as for the binary heads: ``weight_binarizer``,
            ``act_binarizer``, ``pad_value`` (of ReBNNConv), ``norm_cfg`` (the norm after each binary conv, which
            restores the scale a binary conv loses; default BN), ``shortcut`` (a parameter-free shortcut, default
            True), ``act_cfg`` (default none) -- see :class:`BinaryConvBlock`.

    The flat ``weight_binarizer`` / ``act_binarizer`` / ``pad_value`` / ``binary_norm_cfg`` / ``shortcut``
    arguments of earlier versions are still read (into ``binary_cfg``, with a ``DeprecationWarning``), so
    configs and packed files written with them keep working.
    """
    PARTS = ('lateral', 'fpn', 'extra')
    LEGACY_KEYS = dict(weight_binarizer='weight_binarizer', act_binarizer='act_binarizer', pad_value='pad_value',
                       binary_norm_cfg='norm_cfg', shortcut='shortcut')

    def __init__(self, in_channels: Sequence[int], out_channels: int, num_outs: int,
                 binary_parts: Sequence[str] = PARTS, binary_cfg: Optional[dict] = None, **kwargs):
        if isinstance(binary_parts, str):
            binary_parts = (binary_parts, )
        for part in binary_parts:
            check_choice('BinaryFPN binary part', part, self.PARTS)
        block_cfg = check_block_cfg(binary_cfg)
        legacy = {key: kwargs.pop(key) for key in list(kwargs) if key in self.LEGACY_KEYS}
        if legacy:
            warnings.warn(f'BinaryFPN: {", ".join(f"{k}=" for k in legacy)} are read as binary_cfg=dict('
                          f'{", ".join(f"{self.LEGACY_KEYS[k]}=..." for k in legacy)}); write them there',
                          DeprecationWarning)
            for key, value in legacy.items():
                if self.LEGACY_KEYS[key] in block_cfg:
                    raise ValueError(f'BinaryFPN: {key} is given twice (also in binary_cfg)')
                block_cfg[self.LEGACY_KEYS[key]] = value
        super().__init__(list(in_channels), out_channels, num_outs, **kwargs)
        self.binary_parts = tuple(binary_parts)
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
