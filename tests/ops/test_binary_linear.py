"""ReBNNLinear: the binary linear layer computes with alpha * sign(w) and sign(x - beta), its gradients are the
conv's rules, and its eval form (scale * (signs @ signs^T)) is exact."""
import pytest
import torch
import torch.nn.functional as F

from rebnn_det.ops import ReBNNLinear


def test_forward_is_sign_input_times_alpha_sign_weight():
    layer = ReBNNLinear(3, 2, bias=True)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[0.5, -0.2, 0.0], [-1.5, 0.3, 0.4]]))
        layer.alpha.copy_(torch.tensor([2.0, 0.5]))
        layer.rsign.threshold.copy_(torch.tensor([[0.1, -1.0, 0.0]]))
        layer.bias.copy_(torch.tensor([0.25, -1.0]))
    x = torch.tensor([[0.0, -0.5, 3.0]])  # x - beta = [-0.1, 0.5, 3.0] -> signs [-1, +1, +1]
    # row 0: 2 * (-1*1 + 1*-1 + 1*1) + 0.25 = -1.75; row 1: 0.5 * (-1*-1 + 1*1 + 1*1) - 1 = 0.5
    assert layer(x).tolist() == [[-1.75, 0.5]]
    assert layer.eval()(x).tolist() == [[-1.75, 0.5]]
    assert layer.rsign.threshold.shape == (1, 3) and layer.alpha.shape == (2, )


def test_gradients_are_the_clipped_ste_and_alpha_rules():
    layer = ReBNNLinear(3, 1, bias=False, act_binarizer='none')
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[0.5, -2.0, 0.1]]))
        layer.alpha.copy_(torch.tensor([3.0]))
    x = torch.tensor([[1.0, 2.0, -4.0]])
    assert layer.bias is None
    layer(x).sum().backward()
    # dL/dw_hat = x; dL/dw = alpha * x * 1{|w| <= 1}; dL/dalpha = sum x * sign(w)
    assert layer.weight.grad.tolist() == [[3.0, 0.0, -12.0]]
    assert layer.alpha.grad.tolist() == [1.0 * 1 + 2.0 * -1 + -4.0 * 1]


def test_eval_form_is_exact_and_equals_training_form():
    torch.manual_seed(0)
    layer = ReBNNLinear(300, 17)
    x = torch.randn(9, 300)
    with torch.no_grad():
        train = layer(x)
        layer.eval()
        assert layer.scales_output()
        signs = torch.where(x - layer.rsign.threshold < 0, -1.0, 1.0)
        w = torch.where(layer.weight < 0, -1.0, 1.0)
        assert torch.equal(layer(x), F.linear(signs, w) * layer.alpha + layer.bias)
        torch.testing.assert_close(layer(x), train)


@pytest.mark.parametrize('weight, act', [('xnor', 'approxsign'), ('none', 'rsign'), ('rebnn', 'none')])
def test_binarizer_choices(weight, act):
    layer = ReBNNLinear(4, 3, weight_binarizer=weight, act_binarizer=act)
    assert (layer.binary_weights, layer.binary_activations) == (weight != 'none', act != 'none')
    assert (layer.alpha is None) == (weight != 'rebnn') and (layer.rsign is None) == (act != 'rsign')
    assert f"bias=True, weight_binarizer='{weight}', act_binarizer='{act}'" in repr(layer)
    with pytest.raises(ValueError, match=r"^unknown weight_binarizer 'bad'; allowed: 'rebnn', 'xnor', 'none'$"):
        ReBNNLinear(4, 3, weight_binarizer='bad')


def test_without_bias_and_with_factory_kwargs():
    layer = ReBNNLinear(4, 3, bias=False, act_binarizer='none').eval()
    x = torch.randn(2, 4)
    assert torch.equal(layer(x), F.linear(x, torch.where(layer.weight < 0, -1.0, 1.0)) * layer.alpha)
    assert ReBNNLinear(4, 3, dtype=torch.float64).weight.dtype == torch.float64


def test_alpha_is_derived_when_a_checkpoint_has_none():
    real = torch.nn.Linear(4, 2)
    layer = ReBNNLinear(4, 2)
    layer.load_state_dict(real.state_dict(), strict=False)
    assert torch.allclose(layer.alpha, real.weight.abs().mean(1))
