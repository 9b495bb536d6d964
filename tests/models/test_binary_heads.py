"""Binary conv towers in mmdet's RPN, RetinaNet and FCOS heads: same outputs' shapes as the real heads, binary
operands, the block arithmetic, real prediction layers, gradients, and loss/predict through a detector."""
import pytest
import torch
import torch.nn.functional as F
from mmdet.models.dense_heads import FCOSHead, RetinaHead, RPNHead
from mmdet.registry import MODELS
from mmdet.testing import demo_mm_inputs
from mmengine.config import Config
from torch import nn

from rebnn_det.models import BinaryConvBlock, BinaryFCOSHead, BinaryRetinaHead, BinaryRPNHead
from rebnn_det.ops import RPReLU, named_binary_convs
from tests.helpers import assert_operands_binary, record_binary_operands

C = 16  # channels of the tiny FPN levels fed to the heads


def levels(n=2, size=32):
    return [torch.randn(n, C, size // 2**i, size // 2**i) for i in range(5)]


HEADS = {
    'rpn': (RPNHead, dict(type='BinaryRPNHead', in_channels=C, feat_channels=C)),
    'rpn_2convs': (RPNHead, dict(type='BinaryRPNHead', in_channels=C, feat_channels=C, num_convs=2)),
    'retina': (RetinaHead, dict(type='BinaryRetinaHead', num_classes=3, in_channels=C, feat_channels=C,
                                stacked_convs=2)),
    'fcos': (FCOSHead, dict(type='BinaryFCOSHead', num_classes=3, in_channels=C, feat_channels=C, stacked_convs=2,
                            norm_cfg=dict(type='GN', num_groups=4, requires_grad=True))),
}


def real_counterpart(real_cls, cfg):
    cfg = dict(cfg)
    cfg.pop('type')
    return real_cls(**cfg)


@pytest.mark.parametrize('kind', HEADS)
def test_same_output_shapes_as_the_real_head_binary_operands_and_gradients(kind):
    real_cls, cfg = HEADS[kind]
    torch.manual_seed(0)
    head = MODELS.build(cfg)
    head.init_weights()
    x = levels()
    ref = real_counterpart(real_cls, cfg)(x)
    with record_binary_operands(head) as seen:
        out = head(x)
    assert [[o.shape for o in branch] for branch in out] == [[o.shape for o in branch] for branch in ref]
    assert_operands_binary(head, seen)
    sum(o.sum() for branch in out for o in branch).backward()
    binary = list(named_binary_convs(head))
    assert len(binary) == {'rpn': 1, 'rpn_2convs': 2, 'retina': 4, 'fcos': 4}[kind]
    for name, m in binary:
        assert m.weight.grad.abs().sum() > 0 and m.alpha.grad is not None, name
        assert torch.allclose(m.alpha, m.weight.abs().mean((1, 2, 3)))  # init_weights reset alpha


def test_towers_binary_prediction_layers_real():
    rpn = BinaryRPNHead(C, feat_channels=C)
    assert isinstance(rpn.rpn_conv, BinaryConvBlock) and rpn.rpn_conv.has_shortcut and rpn.rpn_conv.act is None
    assert type(rpn.rpn_cls) is nn.Conv2d and type(rpn.rpn_reg) is nn.Conv2d
    rpn2 = BinaryRPNHead(C, feat_channels=C, num_convs=2)
    assert [type(b.act) for b in rpn2.rpn_conv] == [nn.ReLU, nn.ReLU]  # the ReLU of each ConvModule it replaced
    retina = BinaryRetinaHead(3, C, feat_channels=C, stacked_convs=2)
    assert all(isinstance(b, BinaryConvBlock) and type(b.act) is nn.ReLU
               for b in (*retina.cls_convs, *retina.reg_convs))
    assert type(retina.retina_cls) is nn.Conv2d and type(retina.retina_reg) is nn.Conv2d
    fcos = BinaryFCOSHead(3, C, feat_channels=C, stacked_convs=2, norm_cfg=dict(type='GN', num_groups=4))
    assert all(isinstance(b.bn, nn.BatchNorm2d) for b in (*fcos.cls_convs, *fcos.reg_convs))
    assert all(type(m) is nn.Conv2d for m in (fcos.conv_cls, fcos.conv_reg, fcos.conv_centerness))


def test_block_arithmetic_in_the_rpn():
    """rpn_conv(x) = BN(conv(sign(x - threshold), alpha * sign(w))) + x, then the RPNHead's ReLU."""
    torch.manual_seed(0)
    head = BinaryRPNHead(C, feat_channels=C)
    head.init_weights()
    block = head.rpn_conv
    with torch.no_grad():
        block.conv.rsign.threshold.uniform_(-0.5, 0.5)
        block.bn.running_mean.uniform_(-1, 1)
        block.bn.running_var.uniform_(0.5, 2)
    head.eval()
    x = torch.randn(1, C, 8, 8)
    xb = torch.where(x - block.conv.rsign.threshold < 0, -1.0, 1.0)
    wb = block.conv.alpha.view(-1, 1, 1, 1) * torch.where(block.conv.weight < 0, -1.0, 1.0)
    y = F.batch_norm(F.conv2d(xb, wb, padding=1), block.bn.running_mean, block.bn.running_var, block.bn.weight,
                     block.bn.bias, eps=block.bn.eps) + x
    cls, reg = head.forward_single(x)
    assert torch.allclose(cls, head.rpn_cls(F.relu(y)), atol=1e-5)
    assert torch.allclose(reg, head.rpn_reg(F.relu(y)), atol=1e-5)


def test_rprelu_activation_and_bad_arguments():
    head = BinaryRetinaHead(3, C, feat_channels=C, stacked_convs=1, binary_cfg=dict(act_cfg=dict(type='RPReLU')))
    assert isinstance(head.cls_convs[0].act, RPReLU) and head.cls_convs[0].act.slope.numel() == C
    with pytest.raises(ValueError, match=r"unknown binary_cfg key\(s\) \['norm'\]; allowed: weight_binarizer"):
        BinaryRPNHead(C, feat_channels=C, binary_cfg=dict(norm=dict(type='BN')))
    with pytest.raises(ValueError, match='does not support dcn_on_last_conv=True'):
        BinaryFCOSHead(3, C, dcn_on_last_conv=True)
    xnor = BinaryRPNHead(C, feat_channels=C, binary_cfg=dict(weight_binarizer='xnor', act_binarizer='approxsign'))
    assert xnor.rpn_conv.conv.weight_binarizer == 'xnor' and xnor.rpn_conv.conv.alpha is None


def test_binary_rpn_learns_inside_faster_rcnn():
    cfg = Config.fromfile('configs/shapes/rebnn_faster_rcnn_shapes_binary_rpn.py')
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    packed = demo_mm_inputs(2, [(3, 64, 64), (3, 64, 64)], num_items=[3, 2], num_classes=6)
    data = model.data_preprocessor(packed, True)
    model.train()
    losses = model(**data, mode='loss')
    loss, _ = model.parse_losses(losses)
    loss.backward()
    conv = model.rpn_head.rpn_conv.conv
    assert 'rpn_head.rpn_conv.conv' in dict(named_binary_convs(model))
    assert conv.weight.grad.abs().sum() > 0 and conv.alpha.grad.abs().sum() > 0
    assert losses['loss_rpn_cls'][0] > 0  # the RPN losses go through the binary conv
