"""BinaryRetinaHead: mmdet's RetinaHead with 1-bit stacked cls/reg convs."""
from typing import Optional

from mmdet.models.dense_heads import RetinaHead
from mmdet.registry import MODELS

from .binary_towers import BinaryTowersMixin


@MODELS.register_module()
class BinaryRetinaHead(BinaryTowersMixin, RetinaHead):
    """mmdet ``RetinaHead`` (same arguments and outputs) whose ``stacked_convs`` 3x3 convs of the classification
    and regression towers are :class:`~rebnn_det.models.layers.BinaryConvBlock`: ``ReLU(BN(ReBNNConv(x)) + x)``
    (the ReLU of the ConvModule each replaces). The two 3x3 prediction convs (``retina_cls``, ``retina_reg``) stay
    real: they output the logits and box deltas (see :class:`BinaryRPNHead` for why prediction layers stay real).

    Args (beyond RetinaHead's):
        binary_cfg: arguments of every block (see :class:`BinaryRPNHead`); ``norm_cfg`` defaults to BN, which
            deploy mode runs inside the binary kernel's epilogue (the head's own ``norm_cfg`` is not used by them).
    """

    def __init__(self, num_classes: int, in_channels: int, binary_cfg: Optional[dict] = None, **kwargs):
        super().__init__(num_classes, in_channels, **kwargs)
        self.binarize_towers(binary_cfg)
