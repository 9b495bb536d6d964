import pytest
import torch
from mmcv.cnn import ConvModule
from mmdet.models.necks import FPN
from mmdet.registry import MODELS

from rebnn_det.models import BinaryConvBlock, BinaryFPN, channel_shortcut
from rebnn_det.ops import named_binary_convs
from tests.helpers import assert_operands_binary, record_binary_operands

IN = [8, 16, 32, 64]


def feats(n=2, size=64):
    return [torch.randn(n, c, size // 2**i, size // 2**i) for i, c in enumerate(IN)]


@pytest.mark.parametrize('kw', [dict(num_outs=5), dict(num_outs=5, start_level=1, add_extra_convs='on_input'),
                                dict(num_outs=6, add_extra_convs='on_output', relu_before_extra_convs=True)])
def test_same_outputs_as_mmdet_fpn(kw):
    torch.manual_seed(0)
    x = feats()
    ref = FPN(IN, 16, **kw)(x)
    neck = MODELS.build(dict(type='BinaryFPN', in_channels=IN, out_channels=16, **kw))
    with record_binary_operands(neck) as seen:
        out = neck(x)
    assert [o.shape for o in out] == [o.shape for o in ref]
    assert_operands_binary(neck, seen)


def test_binary_parts_selectable():
    neck = BinaryFPN(IN, 16, 5, add_extra_convs='on_input', binary_parts=('lateral', ))
    assert all(isinstance(m, BinaryConvBlock) for m in neck.lateral_convs)
    assert all(isinstance(m, ConvModule) for m in neck.fpn_convs)
    neck = BinaryFPN(IN, 16, 5, add_extra_convs='on_input', binary_parts=('extra', ))
    assert [type(m).__name__ for m in neck.fpn_convs] == ['ConvModule'] * 4 + ['BinaryConvBlock']
    assert len(list(named_binary_convs(neck))) == 1


def test_init_weights_resets_alpha_after_xavier():
    neck = BinaryFPN(IN, 16, 4)
    neck.init_weights()
    for _, m in named_binary_convs(neck):
        assert torch.allclose(m.alpha, m.weight.abs().mean((1, 2, 3)))


def test_channel_shortcut_repeat_and_group_mean():
    x = torch.arange(4.0).view(1, 4, 1, 1)
    assert channel_shortcut(x, 8).flatten().tolist() == [0, 1, 2, 3, 0, 1, 2, 3]
    assert channel_shortcut(x, 2).flatten().tolist() == [0.5, 2.5]
    assert channel_shortcut(x, 4) is x
    assert not BinaryConvBlock(6, 4, 1).has_shortcut


def test_bad_arguments():
    with pytest.raises(ValueError, match="allowed: 'lateral', 'fpn', 'extra'"):
        BinaryFPN(IN, 16, 4, binary_parts=('head', ))
    neck = BinaryFPN(IN, 16, 4)
    with pytest.raises(ValueError, match=r'built for in_channels \[8, 16, 32, 64\] but got .* \[8, 16, 32, 32\]'):
        neck([torch.randn(1, c, 8, 8) for c in (8, 16, 32, 32)])


def test_binary_cfg_is_the_block_style_and_flat_arguments_still_read():
    import pytest
    neck = BinaryFPN([8, 16], 8, 2, binary_cfg=dict(weight_binarizer='xnor', pad_value=1, shortcut=False))
    block = neck.lateral_convs[0]
    assert block.conv.weight_binarizer == 'xnor' and block.conv.pad_value == 1.0 and not block.has_shortcut
    with pytest.warns(DeprecationWarning, match=r'BinaryFPN: weight_binarizer=, binary_norm_cfg= are read as '
                                                r'binary_cfg=dict\(weight_binarizer=\.\.\., norm_cfg=\.\.\.\)'):
        old = BinaryFPN([8, 16], 8, 2, weight_binarizer='none', binary_norm_cfg=dict(type='BN', eps=1e-3))
    assert old.lateral_convs[0].conv.weight_binarizer == 'none' and old.lateral_convs[0].bn.eps == 1e-3
    with pytest.raises(ValueError, match=r"unknown binary_cfg key\(s\) \['binarizer'\]"):
        BinaryFPN([8, 16], 8, 2, binary_cfg=dict(binarizer='xnor'))
    with pytest.raises(ValueError, match='BinaryFPN: pad_value is given twice'):
        BinaryFPN([8, 16], 8, 2, binary_cfg=dict(pad_value=1), pad_value=-1)
