"""BinaryLinearBlock: ``BN(ReBNNLinear(x)) + shortcut(x)``, the binary replacement of a head's fully connected layer."""
from typing import Optional

from mmcv.cnn import build_norm_layer
from torch import Tensor, nn

from ...ops import ReBNNLinear
from ...ops.shortcut import channel_shortcut, shortcut_fits

LINEAR_BLOCK_CFG_KEYS = ('weight_binarizer', 'act_binarizer', 'norm_cfg', 'shortcut')


class BinaryLinearBlock(nn.Module):
    """A binary fully connected layer with a BatchNorm and a parameter-free shortcut: ``BN(ReBNNLinear(x)) +
    shortcut(x)`` (Bi-Real Net's "every binary layer gets a shortcut", for features instead of feature maps); the
    activation that follows in the head (mmdet's ReLU) is applied by the head, after the add.

    The shortcut is :func:`~rebnn_det.ops.shortcut.channel_shortcut` when the widths differ by an integer factor
    (identity for ``in == out``, as RoI heads' second FC), none otherwise (``has_shortcut`` False: the first FC,
    ``256 * 7 * 7 -> 1024``). The BN (``norm_cfg``, default ``BN1d``) restores the scale a binary layer loses and
    runs inside the binary GEMM's epilogue in deploy mode; ``norm_cfg=None`` leaves it out.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = False, norm_cfg: Optional[dict] =
                 dict(type='BN1d'), shortcut: bool = True, weight_binarizer: str = 'rebnn',
                 act_binarizer: str = 'rsign'):
        super().__init__()
        self.fc = ReBNNLinear(in_features, out_features, bias=bias, weight_binarizer=weight_binarizer,
                              act_binarizer=act_binarizer)
        self.bn = build_norm_layer(norm_cfg, out_features)[1] if norm_cfg is not None else None
        self.out_features = out_features
        self.has_shortcut = shortcut and shortcut_fits(in_features, out_features)

    @classmethod
    def like(cls, linear: nn.Linear, **kwargs) -> 'BinaryLinearBlock':
        """A block with the widths of ``linear`` (and its bias unless a BN follows)."""
        kwargs.setdefault('bias', linear.bias is not None and kwargs.get('norm_cfg', dict(type='BN1d')) is None)
        return cls(linear.in_features, linear.out_features, **kwargs)

    def forward(self, x: Tensor) -> Tensor:
        out = self.fc(x)
        if self.bn is not None:
            out = self.bn(out)
        return out + channel_shortcut(x, self.out_features) if self.has_shortcut else out


def check_linear_block_cfg(binary_cfg: Optional[dict]) -> dict:
    """A head's ``binary_cfg`` for its FC layers (``None`` = the defaults); an unknown key raises a ``ValueError``
    naming the allowed ones."""
    cfg = dict(binary_cfg or {})
    unknown = sorted(set(cfg) - set(LINEAR_BLOCK_CFG_KEYS))
    if unknown:
        raise ValueError(f'unknown binary_cfg key(s) {unknown}; allowed: {", ".join(LINEAR_BLOCK_CFG_KEYS)}')
    return cfg
