"""BinaryShared2FCBBoxHead: mmdet's Shared2FCBBoxHead with 1-bit shared FC layers."""
from typing import Optional

from mmdet.models.roi_heads.bbox_heads import Shared2FCBBoxHead
from mmdet.registry import MODELS
from torch import nn

from ..layers.binary_linear_block import BinaryLinearBlock, check_linear_block_cfg


@MODELS.register_module()
class BinaryShared2FCBBoxHead(Shared2FCBBoxHead):
    """mmdet ``Shared2FCBBoxHead`` (same arguments, same outputs) whose two shared FC layers (``fc6``: ``C * 7 * 7
    -> fc_out_channels``, ``fc7``: ``fc_out_channels -> fc_out_channels``) are :class:`BinaryLinearBlock` s: 1-bit
    weights (``alpha`` per output feature) and 1-bit inputs, a BN1d, and an identity shortcut on ``fc7``. The
    prediction layers ``fc_cls`` / ``fc_reg`` stay real (the last layer, as in every binary detector). Works
    wherever mmdet takes a ``Shared2FCBBoxHead`` (Faster R-CNN, each stage of Cascade R-CNN, Mask R-CNN).

    Args (beyond Shared2FCBBoxHead's):
        binary_cfg: arguments of every block: ``weight_binarizer``, ``act_binarizer`` (of ReBNNLinear),
            ``norm_cfg`` (default ``dict(type='BN1d')``), ``shortcut`` (default True).
    """

    def __init__(self, *args, binary_cfg: Optional[dict] = None, **kwargs):
        cfg = check_linear_block_cfg(binary_cfg)  # fail before building
        super().__init__(*args, **kwargs)
        for i, fc in enumerate(self.shared_fcs):
            self.shared_fcs[i] = BinaryLinearBlock.like(fc, **cfg)
        # mmdet's Xavier init of 'shared_fcs' would also reach the BN's 1-d weight: the binary layers are
        # initialised in init_weights instead
        for init in self.init_cfg if isinstance(self.init_cfg, list) else []:
            override = init.get('override') if isinstance(init, dict) else None
            if isinstance(override, list):
                init['override'] = [o for o in override if o.get('name') != 'shared_fcs']

    def init_weights(self) -> None:
        super().init_weights()
        for block in self.shared_fcs:
            nn.init.xavier_uniform_(block.fc.weight)  # what mmdet gives its shared FCs
            if block.fc.bias is not None:
                nn.init.zeros_(block.fc.bias)
            block.fc.reset_alpha()
