"""The regularizer's dL/dw_hat under DDP and AMP, in one process: every layer's record goes through one
``distributed_mean`` call (concatenated in layer order), comes back to the right layer, and is divided by the loss
scale afterwards. The other rank is simulated by a fixed vector; numbers by hand (1x1 convs, real inputs)."""
import pytest
import torch

from rebnn_det.engine import ReBNNRegularizer
from rebnn_det.ops import ReBNNConv

XA, CA = [1.0, -2.0, 0.5, 3.0], [1.0, -0.5]  # layer a: 4 -> 2 channels, L_a = sum_o CA_o * y_o
XB, CB = [2.0, -1.0, 0.25], [0.5, 2.0, -1.5]  # layer b: 3 -> 3 channels


XC, CC = [1.5, -0.5], [-1.0, 3.0]  # layer c: 2 -> 2 channels


def layers():
    torch.manual_seed(0)
    a = ReBNNConv(4, 2, 1, act_binarizer='none')
    b = ReBNNConv(3, 3, 1, act_binarizer='none')
    c = ReBNNConv(2, 2, 1, act_binarizer='none')
    return a, b, c


def loss(a, b, c, scale):
    ya = a(torch.tensor(XA).view(1, 4, 1, 1)).flatten()
    yb = b(torch.tensor(XB).view(1, 3, 1, 1)).flatten()
    yc = c(torch.tensor(XC).view(1, 2, 1, 1)).flatten()
    return scale * ((ya * torch.tensor(CA)).sum() + (yb * torch.tensor(CB)).sum() + (yc * torch.tensor(CC)).sum())


@pytest.mark.parametrize('scale', [1.0, 2.0, 8.0])
def test_weight_hat_grads_are_averaged_across_ranks_per_layer_then_unscaled(scale):
    a, b, c = layers()
    # dL/dw_hat of a 1x1 conv with real inputs: C_o * x_i
    g_a = [[CA[o] * XA[i] for i in range(4)] for o in range(2)]
    g_b = [[CB[o] * XB[i] for i in range(3)] for o in range(3)]
    g_c = [[CC[o] * XC[i] for i in range(2)] for o in range(2)]
    other = [0.1 * k - 0.7 for k in range(8 + 9 + 4)]  # the other rank's unscaled dL/dw_hat, a, b then c
    calls = []

    def mean(flat):
        calls.append(flat.clone())
        flat.copy_((flat + scale * torch.tensor(other)) / 2)

    reg = ReBNNRegularizer([('a', a), ('b', b), ('c', c)], 'adaptive', grad_scale=lambda: scale,
                           distributed_mean=mean)
    opt = torch.optim.SGD([p for m in (a, b, c) for p in m.parameters()], lr=1e-3)
    reg.attach(opt)
    opt.zero_grad()
    loss(a, b, c, scale).backward()
    opt.step()
    assert len(calls) == 1  # one collective for all layers
    assert calls[0].tolist() == pytest.approx([scale * v for v in sum(g_a, []) + sum(g_b, []) + sum(g_c, [])])
    avg_a = [[(g_a[o][i] + other[4 * o + i]) / 2 for i in range(4)] for o in range(2)]
    avg_b = [[(g_b[o][i] + other[8 + 3 * o + i]) / 2 for i in range(3)] for o in range(3)]
    assert reg.state['a']['grad_absmax'].tolist() == pytest.approx([max(map(abs, r)) for r in avg_a])
    avg_c = [[(g_c[o][i] + other[17 + 2 * o + i]) / 2 for i in range(2)] for o in range(2)]
    assert reg.state['b']['grad_absmax'].tolist() == pytest.approx([max(map(abs, r)) for r in avg_b])
    assert reg.state['c']['grad_absmax'].tolist() == pytest.approx([max(map(abs, r)) for r in avg_c])
    assert a.weight_hat_grad is None and b.weight_hat_grad is None and c.weight_hat_grad is None


def test_without_distributed_mean_or_scale_the_record_is_used_as_is():
    a, b, c = layers()
    reg = ReBNNRegularizer([('a', a), ('b', b), ('c', c)], 'adaptive')
    opt = torch.optim.SGD([p for m in (a, b, c) for p in m.parameters()], lr=1e-3)
    reg.attach(opt)
    opt.zero_grad()
    loss(a, b, c, 1.0).backward()
    opt.step()
    assert reg.state['a']['grad_absmax'].tolist() == pytest.approx([3.0, 1.5])  # max_i |C_o x_i|
    assert reg.state['b']['grad_absmax'].tolist() == pytest.approx([1.0, 4.0, 3.0])
    assert reg.state['c']['grad_absmax'].tolist() == pytest.approx([1.5, 4.5])
