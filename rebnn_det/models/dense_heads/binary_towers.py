"""BinaryTowersMixin: the binary cls/reg conv towers shared by BinaryRetinaHead and BinaryFCOSHead."""
from typing import Optional

from ...ops import reset_binary_alphas
from ..layers import binarize_conv_tower


class BinaryTowersMixin:
    """For mmdet heads with ``cls_convs`` / ``reg_convs`` conv towers (``RetinaHead``, ``FCOSHead``): list it
    before the head class; call :meth:`binarize_towers` at the end of ``__init__``."""

    def binarize_towers(self, binary_cfg: Optional[dict]) -> None:
        """Every conv of both towers becomes a :class:`~rebnn_det.models.layers.BinaryConvBlock`."""
        binarize_conv_tower(self.cls_convs, binary_cfg)
        binarize_conv_tower(self.reg_convs, binary_cfg)

    def init_weights(self) -> None:
        """The head's own init, then ``alpha`` of every binary conv from its initialised weights (mean |w|)."""
        super().init_weights()
        reset_binary_alphas(self)
