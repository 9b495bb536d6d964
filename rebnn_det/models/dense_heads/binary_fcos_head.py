"""BinaryFCOSHead: mmdet's FCOSHead with 1-bit stacked cls/reg convs."""
from typing import Optional

from mmdet.models.dense_heads import FCOSHead
from mmdet.registry import MODELS

from .binary_towers import BinaryTowersMixin


@MODELS.register_module()
class BinaryFCOSHead(BinaryTowersMixin, FCOSHead):
    """mmdet ``FCOSHead`` (same arguments and outputs) whose ``stacked_convs`` 3x3 convs of the classification
    and regression towers are :class:`~rebnn_det.models.layers.BinaryConvBlock`: ``ReLU(BN(ReBNNConv(x)) + x)``.
    The prediction convs (``conv_cls``, ``conv_reg``, ``conv_centerness``) stay real (see
    :class:`BinaryRPNHead`). ``dcn_on_last_conv`` is not supported (no binary deformable conv).

    Args (beyond FCOSHead's):
        binary_cfg: arguments of every block (see :class:`BinaryRPNHead`); the blocks' ``norm_cfg`` defaults to
            BN, not the head's GroupNorm: deploy mode runs BN (per-channel, running statistics) inside the binary
            kernel's epilogue; GN needs statistics over the whole output first.
    """

    def __init__(self, num_classes: int, in_channels: int, binary_cfg: Optional[dict] = None, **kwargs):
        if kwargs.get('dcn_on_last_conv', False):
            raise ValueError('BinaryFCOSHead does not support dcn_on_last_conv=True (no binary deformable conv); '
                             'use FCOSHead for a DCN tower')
        super().__init__(num_classes, in_channels, **kwargs)
        self.binarize_towers(binary_cfg)
