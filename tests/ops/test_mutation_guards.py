"""ReBNNConv / RPReLU / binarizer details the numeric tests do not pin: parameter shapes and defaults, the
constructor's pass-through arguments, padding with a constant under dilation and groups, strict state-dict
loading, the text of every error and of the module's repr."""
import pytest
import torch
import torch.nn.functional as F

from rebnn_det.ops import ReBNNConv, RPReLU, RSign
from rebnn_det.ops.binarize import weight_binarizer


def test_rprelu_and_rsign_parameter_shapes_and_default_slope():
    m = RPReLU(3)
    assert m.shift_in.shape == m.shift_out.shape == (1, 3, 1, 1)
    assert m.slope.shape == (3, ) and m.slope.tolist() == [0.25] * 3
    assert RSign(5).threshold.shape == (1, 5, 1, 1)


def test_weight_factors_of_a_real_weight_is_an_error():
    with pytest.raises(ValueError, match=r"^weight binarizer 'none' has no \(signs, scale\) factors$"):
        weight_binarizer('none').factors(torch.ones(1, 1, 1, 1))
    with pytest.raises(ValueError, match=r"^weight binarizer 'rebnn' needs the learnable alpha$"):
        weight_binarizer('rebnn').scale(torch.ones(1, 1, 1, 1))


def test_constructor_errors_name_the_argument():
    with pytest.raises(ValueError, match=r"^unknown weight_binarizer 'bad'; allowed: 'rebnn', 'xnor', 'none'$"):
        ReBNNConv(1, 1, 1, weight_binarizer='bad')
    with pytest.raises(ValueError, match=r"^unknown act_binarizer 'bad'; allowed: 'rsign', 'approxsign', 'none'$"):
        ReBNNConv(1, 1, 1, act_binarizer='bad')
    with pytest.raises(ValueError, match=r"^ReBNNConv supports padding_mode 'zeros' only \(got 'reflect'\); use "
                       r"pad_value to choose the padding constant$"):
        ReBNNConv(1, 1, 3, padding=1, padding_mode='reflect')
    with pytest.raises(ValueError, match=r"^ReBNNConv needs numeric padding, got 'same'$"):
        ReBNNConv(1, 1, 3, padding='same')


def test_bias_and_factory_kwargs_reach_conv2d_and_the_record_starts_empty():
    conv = ReBNNConv(2, 3, 1, bias=True, dtype=torch.float64)
    assert conv.bias is not None and conv.bias.shape == (3, )
    assert conv.weight.dtype == torch.float64 and conv.alpha.dtype == torch.float64
    assert ReBNNConv(2, 3, 1).bias is None
    assert conv.weight_hat_grad is None and conv._track_weight_hat_grad is False


@pytest.mark.parametrize('dilation, groups', [(2, 1), (1, 2), (2, 2)])
def test_constant_padding_keeps_dilation_and_groups(dilation, groups):
    torch.manual_seed(0)
    conv = ReBNNConv(4, 4, 3, padding=2, dilation=dilation, groups=groups, pad_value=-1.0,
                     act_binarizer='approxsign')
    x = torch.randn(1, 4, 5, 6)
    w_hat = conv.alpha.detach().view(-1, 1, 1, 1) * torch.where(conv.weight < 0, -1.0, 1.0)
    xb = F.pad(torch.where(x < 0, -1.0, 1.0), (2, 2, 2, 2), value=-1.0)
    expected = F.conv2d(xb, w_hat, None, 1, 0, dilation, groups)
    for mode in (conv.train, conv.eval):
        mode()
        assert torch.allclose(conv(x), expected, atol=1e-5)


def test_strict_loading_reports_missing_unexpected_and_mismatched_keys():
    conv = ReBNNConv(2, 3, 1)
    state = conv.state_dict()
    with pytest.raises(RuntimeError, match=r'Unexpected key\(s\) in state_dict: "bogus"'):
        conv.load_state_dict(dict(state, bogus=torch.ones(1)))
    with pytest.raises(RuntimeError, match=r'Missing key\(s\) in state_dict: "rsign.threshold"'):
        conv.load_state_dict({k: v for k, v in state.items() if k != 'rsign.threshold'})
    with pytest.raises(RuntimeError, match=r'Missing key\(s\) in state_dict: "weight"'):
        conv.load_state_dict({k: v for k, v in state.items() if k != 'weight'})
    with pytest.raises(RuntimeError, match=r'size mismatch for weight'):
        conv.load_state_dict(dict(state, weight=torch.ones(1, 1, 1, 1)))
    result = conv.load_state_dict({k: v for k, v in state.items() if k != 'rsign.threshold'}, strict=False)
    assert result.missing_keys == ['rsign.threshold'] and result.unexpected_keys == []


def test_repr_names_the_binarizers_and_a_padding_constant():
    assert ReBNNConv(3, 4, 3, padding=1, pad_value=-1).extra_repr() == (
        "3, 4, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), bias=False, "
        "weight_binarizer='rebnn', act_binarizer='rsign', pad_value=-1.0")
    assert ReBNNConv(3, 4, 1, weight_binarizer='xnor', act_binarizer='none').extra_repr() == (
        "3, 4, kernel_size=(1, 1), stride=(1, 1), bias=False, weight_binarizer='xnor', act_binarizer='none'")
