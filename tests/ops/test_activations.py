import pytest
import torch

from rebnn_det.ops import RPReLU, RSign


def test_rsign_threshold_forward_and_gradients():
    m = RSign(2)
    with torch.no_grad():
        m.threshold.copy_(torch.tensor([0.5, -0.25]).view(1, 2, 1, 1))
    x = torch.tensor([[[[0.25, 1.0]], [[-0.5, 0.0]]]], requires_grad=True)  # (1, 2, 1, 2)
    y = m(x)
    # x - beta = [-0.25, 0.5] and [-0.25, 0.25]
    assert y.flatten().tolist() == [-1, 1, -1, 1]
    y.backward(torch.ones_like(y))
    # ApproxSign'(u) = 2 - 2|u| for |u| < 1
    assert x.grad.flatten().tolist() == pytest.approx([1.5, 1.0, 1.5, 1.5])
    assert m.threshold.grad.flatten().tolist() == pytest.approx([-2.5, -3.0])


def test_rprelu_forward_and_gradients():
    m = RPReLU(1, init_slope=0.25)
    with torch.no_grad():
        m.shift_in.fill_(1.0)
        m.shift_out.fill_(-0.5)
    x = torch.tensor([[[[3.0, -1.0]]]], requires_grad=True)
    y = m(x)
    # u = x - 1 = [2, -2]; prelu -> [2, -0.5]; + (-0.5)
    assert y.flatten().tolist() == pytest.approx([1.5, -1.0])
    y.sum().backward()
    assert x.grad.flatten().tolist() == pytest.approx([1.0, 0.25])
    assert m.slope.grad.tolist() == pytest.approx([-2.0])
    assert m.shift_in.grad.item() == pytest.approx(-1.25)
    assert m.shift_out.grad.item() == pytest.approx(2.0)
