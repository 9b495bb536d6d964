"""ReActNet/Bi-Real basic block: every 3x3 convolution has its own shortcut."""
from typing import Optional

from mmcv.cnn import build_norm_layer
from torch import Tensor, nn

from ...ops import ReBNNConv, RPReLU


def build_downsample(in_channels: int, out_channels: int, stride: int, norm_cfg: dict) -> nn.Sequential:
    """Real-valued shortcut for a resolution/width change: AvgPool (stride) -> 1x1 conv -> BN (Bi-Real Net)."""
    layers = [nn.AvgPool2d(stride, stride, ceil_mode=True, count_include_pad=False) if stride > 1
              else nn.Identity(),
              nn.Conv2d(in_channels, out_channels, 1, bias=False),
              build_norm_layer(norm_cfg, out_channels)[1]]
    return nn.Sequential(*layers)


class ReActBasicBlock(nn.Module):
    """Two binary 3x3 sub-blocks, each ``RPReLU(BN(ReBNNConv(x)) + shortcut(x))``.

    ``ReBNNConv`` binarizes its own input (RSign by default), so each sub-block is the ReActNet sequence
    RSign -> binary 3x3 conv -> BN -> + shortcut -> RPReLU. With ``binary=False`` the convolutions are real
    (``nn.Conv2d``) and the topology is unchanged. Parameter names follow torchvision's BasicBlock
    (``conv1, bn1, conv2, bn2, downsample``) so real ResNet weights map onto it.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, binary: bool = True,
                 binary_conv_cfg: Optional[dict] = None, norm_cfg: dict = dict(type='BN')):
        super().__init__()
        conv_cfg = dict(binary_conv_cfg or {})

        def conv3x3(cin, cout, s):
            if binary:
                return ReBNNConv(cin, cout, 3, stride=s, padding=1, bias=False, **conv_cfg)
            return nn.Conv2d(cin, cout, 3, stride=s, padding=1, bias=False)

        self.conv1 = conv3x3(in_channels, out_channels, stride)
        self.bn1 = build_norm_layer(norm_cfg, out_channels)[1]
        self.act1 = RPReLU(out_channels)
        self.conv2 = conv3x3(out_channels, out_channels, 1)
        self.bn2 = build_norm_layer(norm_cfg, out_channels)[1]
        self.act2 = RPReLU(out_channels)
        self.downsample = (build_downsample(in_channels, out_channels, stride, norm_cfg)
                           if stride != 1 or in_channels != out_channels else None)

    def forward(self, x: Tensor) -> Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        x = self.act1(self.bn1(self.conv1(x)) + shortcut)
        return self.act2(self.bn2(self.conv2(x)) + x)
