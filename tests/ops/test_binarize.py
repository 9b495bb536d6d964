import pytest
import torch

from rebnn_det.ops import (approx_sign, binarize_weight_rebnn, binarize_weight_xnor, channel_mean_abs, hard_sign,
                           sign_ste)
from rebnn_det.ops.binarize import check_choice


def test_hard_sign_maps_zero_to_plus_one():
    x = torch.tensor([-2.0, -1e-6, 0.0, 1e-6, 3.0])
    assert hard_sign(x).tolist() == [-1.0, -1.0, 1.0, 1.0, 1.0]


def test_approx_sign_forward_and_piecewise_gradient():
    x = torch.tensor([-1.5, -1.0, -0.5, -0.25, 0.0, 0.25, 0.75, 1.0, 2.0], requires_grad=True)
    y = approx_sign(x)
    assert y.tolist() == [-1, -1, -1, -1, 1, 1, 1, 1, 1]
    y.backward(torch.full_like(x, 3.0))
    # 2 + 2x on [-1, 0), 2 - 2x on [0, 1), 0 outside -- times the incoming gradient 3
    expected = [0, 0, 3 * (2 - 1.0), 3 * (2 - 0.5), 3 * 2, 3 * (2 - 0.5), 3 * (2 - 1.5), 0, 0]
    assert x.grad.tolist() == pytest.approx(expected)


def test_sign_ste_clips_gradient_outside_unit_interval():
    w = torch.tensor([-2.0, -1.0, -0.3, 0.0, 1.0, 1.01], requires_grad=True)
    sign_ste(w).backward(torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0, 6.0]))
    assert w.grad.tolist() == [0.0, 2.0, 3.0, 4.0, 5.0, 0.0]


def test_rebnn_weight_gradients_match_eq3():
    w = torch.tensor([[0.5, -0.2, 1.5], [-0.1, 0.3, -0.9]], requires_grad=True)
    alpha = torch.tensor([0.4, 0.1], requires_grad=True)
    g = torch.tensor([[1.0, 2.0, 3.0], [-1.0, 0.5, 2.0]])
    w_hat = binarize_weight_rebnn(w, alpha)
    assert w_hat.flatten().tolist() == pytest.approx([0.4, -0.4, 0.4, -0.1, 0.1, -0.1])
    (w_hat * g).sum().backward()
    # dL/dw = alpha * g * 1{|w| <= 1}
    assert w.grad.flatten().tolist() == pytest.approx([0.4, 0.8, 0.0, -0.1, 0.05, 0.2])
    # dL/dalpha = sum_j g_ij * sign(w_ij)
    assert alpha.grad.tolist() == pytest.approx([1.0 - 2.0 + 3.0, 1.0 + 0.5 - 2.0])


def test_xnor_weight_uses_detached_mean_abs_scale():
    w = torch.tensor([[0.5, -0.1], [2.0, -1.0]], requires_grad=True)
    w_hat = binarize_weight_xnor(w)
    assert w_hat.flatten().tolist() == pytest.approx([0.3, -0.3, 1.5, -1.5])
    w_hat.sum().backward()
    assert w.grad.flatten().tolist() == pytest.approx([0.3, 0.3, 0.0, 1.5])


def test_channel_mean_abs_per_output_channel():
    w = torch.tensor([[[[1.0, -3.0]]], [[[0.5, 0.5]]]])
    assert channel_mean_abs(w).tolist() == [2.0, 0.5]


def test_check_choice_names_allowed_values():
    with pytest.raises(ValueError, match="unknown weight_binarizer 'bnn'; allowed: 'rebnn', 'xnor'"):
        check_choice('weight_binarizer', 'bnn', ('rebnn', 'xnor'))
