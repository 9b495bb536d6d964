"""BinaryFCNMaskHead: mmdet's FCNMaskHead with 1-bit 3x3 convolutions."""
from typing import Optional

from mmdet.models.roi_heads.mask_heads import FCNMaskHead
from mmdet.registry import MODELS

from ...ops import reset_binary_alphas
from ..layers import binarize_conv_tower, check_block_cfg


@MODELS.register_module()
class BinaryFCNMaskHead(FCNMaskHead):
    """mmdet ``FCNMaskHead`` (same arguments, same outputs) whose stacked 3x3 convs are :class:`BinaryConvBlock` s
    (1-bit weights and activations, BN, a parameter-free shortcut, the ConvModule's ReLU kept); the deconv upsample
    and the 1x1 mask logits conv stay real (the last layer, as in every binary detector).

    Args (beyond FCNMaskHead's):
        binary_cfg: arguments of every block, as for the binary dense heads (``weight_binarizer``,
            ``act_binarizer``, ``pad_value``, ``norm_cfg``, ``shortcut``, ``act_cfg``).
    """

    def __init__(self, *args, binary_cfg: Optional[dict] = None, **kwargs):
        check_block_cfg(binary_cfg)  # fail before building
        super().__init__(*args, **kwargs)
        binarize_conv_tower(self.convs, binary_cfg)

    def init_weights(self) -> None:
        super().init_weights()
        reset_binary_alphas(self)
