"""The ReBNN rule on a binary linear layer: the same hand-computed updates as the conv's (gamma per output row,
the reconstruction gradient on w and alpha, the adaptive gamma from the row's flip fraction)."""
import pytest
import torch

from rebnn_det.engine import ReBNNRegularizer
from rebnn_det.ops import ReBNNLinear, binary_weight_layers
from tests.engine.test_rebnn_regularizer import C, W0, X, hand_step, sgn


def make_linear():
    layer = ReBNNLinear(4, 2, bias=False, act_binarizer='none')
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(W0))
    layer.reset_alpha()
    return layer


def step(layer, reg, lr):
    opt = torch.optim.SGD(layer.parameters(), lr=lr)
    reg.attach(opt)
    opt.zero_grad()
    (layer(torch.tensor([X])).flatten() * torch.tensor(C)).sum().backward()
    opt.step()


def current(layer):
    return layer.weight.detach().tolist(), layer.alpha.detach().tolist()


@pytest.mark.parametrize('gamma', [0.5, 0])
def test_constant_gamma_one_step_exact(gamma):
    layer = make_linear()
    w, a = current(layer)
    assert a == pytest.approx([(0.3 + 0.05 + 0.6 + 0.4) / 4, (0.2 + 0.7 + 0.5 + 1.5) / 4])  # row means |w|
    step(layer, ReBNNRegularizer([('fc', layer)], gamma=gamma), lr=0.1)
    exp_w, exp_a, _ = hand_step(w, a, [gamma, gamma], 0.1)
    got_w, got_a = current(layer)
    assert sum(got_w, []) == pytest.approx(sum(exp_w, []), abs=1e-6)
    assert got_a == pytest.approx(exp_a, abs=1e-6)


def test_adaptive_gamma_per_output_row():
    layer = make_linear()
    w0, a0 = current(layer)
    reg = ReBNNRegularizer([('fc', layer)], gamma='adaptive')
    step(layer, reg, 0.1)
    w1, a1, gmax0 = hand_step(w0, a0, [0, 0], 0.1)
    flips = [sum(sgn(w1[o][i]) != sgn(w0[o][i]) for i in range(4)) / 4 for o in range(2)]
    gamma1 = [flips[o] * gmax0[o] for o in range(2)]
    assert flips == [0.25, 0.0] and reg.state['fc']['gamma'].tolist() == pytest.approx(gamma1)
    step(layer, reg, 0.1)
    w2, a2, _ = hand_step(w1, a1, gamma1, 0.1)
    got_w, got_a = current(layer)
    assert sum(got_w, []) == pytest.approx(sum(w2, []), abs=1e-6) and got_a == pytest.approx(a2, abs=1e-6)
    flipped = sum(sgn(w2[o][i]) != sgn(w1[o][i]) for o in range(2) for i in range(4))
    assert reg.last_stats['fc'].flip == pytest.approx(flipped / 8)
    assert reg.last_stats['fc'].gamma == pytest.approx(sum(reg.state['fc']['gamma'].tolist()) / 2)


def test_binary_roi_head_layers_are_regularized_like_convs():
    from mmdet.registry import MODELS
    head = MODELS.build(dict(type='BinaryShared2FCBBoxHead', in_channels=4, fc_out_channels=8, roi_feat_size=2,
                             num_classes=2))
    names = [n for n, _ in binary_weight_layers(head)]
    assert names == ['shared_fcs.0.fc', 'shared_fcs.1.fc']
    reg = ReBNNRegularizer(binary_weight_layers(head), gamma='adaptive')
    assert reg.rebnn_layers == names and reg.state['shared_fcs.0.fc']['gamma'].shape == (8, )
