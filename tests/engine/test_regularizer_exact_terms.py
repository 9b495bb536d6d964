"""The ReBNN rule's numbers that the end-to-end tests leave loose: L_R itself, the warm-up factor inside both
gradient terms, sign(0) = +1 in the flip count, constant gamma, mixed rebnn/xnor layers, the oscillation window,
defaults, checkpoint state and the exact error messages. Hand-computed on 1x1 convs (plain SGD)."""
import warnings

import pytest
import torch

from rebnn_det.engine import ReBNNRegularizer
from rebnn_det.engine.rebnn_regularizer import check_rule_settings
from rebnn_det.ops import ReBNNConv

W0 = [[0.3, -0.05, 0.6, -0.4], [0.2, 0.7, -0.5, 1.5]]
X = [1.0, -2.0, 0.5, 3.0]
C = [1.0, -0.5]


def conv(weights=W0, binarizer='rebnn'):
    layer = ReBNNConv(len(weights[0]), len(weights), 1, act_binarizer='none', weight_binarizer=binarizer)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(weights).view(len(weights), -1, 1, 1))
    layer.reset_alpha()
    return layer


def step(layers, reg, lr=0.1, xs=X):
    opt = torch.optim.SGD([p for m in layers for p in m.parameters()], lr=lr)
    reg.attach(opt)
    opt.zero_grad()
    for m in layers:
        (m(torch.tensor(xs[:m.in_channels]).view(1, -1, 1, 1)).flatten()
         * torch.tensor(C + [0.25] * (m.out_channels - 2))).sum().backward()
    opt.step()
    return opt


def residuals(w, alpha):
    return [[w[o][i] - alpha[o] * (1.0 if w[o][i] >= 0 else -1.0) for i in range(len(w[o]))] for o in range(len(w))]


def test_loss_r_is_half_gamma_times_squared_residual_per_channel():
    layer = conv()
    alpha = layer.alpha.detach().tolist()
    reg = ReBNNRegularizer([('conv', layer)], gamma=0.5)
    step([layer], reg)
    r = residuals(W0, alpha)  # L_R of the weights before the step (what the step's gradient comes from)
    expected = sum(0.5 / 2 * sum(v * v for v in row) for row in r)
    assert expected > 0.1
    assert reg.last_stats['conv'].loss_r == pytest.approx(expected, rel=1e-6)
    assert reg.last_summary['loss_r'] == pytest.approx(expected, rel=1e-6)
    assert reg.state['conv']['gamma'].tolist() == [0.5, 0.5]  # a constant gamma is never replaced


def test_warmup_factor_scales_both_reconstruction_gradients():
    layer = conv()
    with torch.no_grad():  # alpha away from mean|w|, where the alpha term's sum_j r_ij b_ij would vanish
        layer.alpha.copy_(torch.tensor([0.2, 0.9]))
    w, alpha = W0, layer.alpha.detach().tolist()
    gamma, lr, factor = 0.5, 0.1, 0.5  # warmup_iters=2: step 0 applies (0 + 1) / 2 of gamma
    reg = ReBNNRegularizer([('conv', layer)], gamma=gamma, warmup_iters=2)
    step([layer], reg, lr)
    r = residuals(w, alpha)
    for o in range(2):
        b = [1.0 if v >= 0 else -1.0 for v in w[o]]
        g_hat = [C[o] * X[i] for i in range(4)]
        gw = [alpha[o] * g_hat[i] * (abs(w[o][i]) <= 1) + gamma * factor * r[o][i] for i in range(4)]
        ga = sum(g_hat[i] * b[i] for i in range(4)) - gamma * factor * sum(r[o][i] * b[i] for i in range(4))
        assert layer.weight[o].flatten().tolist() == pytest.approx([w[o][i] - lr * gw[i] for i in range(4)],
                                                                   abs=1e-7)
        assert layer.alpha[o].item() == pytest.approx(alpha[o] - lr * ga, abs=1e-7)


def test_loss_r_is_computed_for_every_layer_before_start_iter():
    a, b = conv(), conv([[0.1, -0.3, 0.2, 0.9], [-0.6, 0.4, 0.05, -0.2]])
    reg = ReBNNRegularizer([('a', a), ('b', b)], gamma=0.5, start_iter=5)  # factor 0: no gradient term yet
    step([a, b], reg)
    assert reg.last_stats['a'].loss_r > 0 and reg.last_stats['b'].loss_r > 0


def test_sign_of_zero_is_plus_one_in_the_flip_count():
    layer = conv([[0.0, -0.5, 0.5, 0.25], [0.0, 0.0, -0.1, 0.3]])
    reg = ReBNNRegularizer([('conv', layer)], 'adaptive')
    step([layer], reg, lr=0.0)  # nothing moves: a weight at exactly 0 did not flip
    assert reg.last_stats['conv'].flip == 0.0
    assert reg.state['conv']['prev_sign'].flatten().tolist() == [True, False, True, True, True, True, False, True]
    with torch.no_grad():
        layer.weight.view(2, 4)[0, 1] = 0.0  # -0.5 -> 0: sign -1 -> +1
    reg.before_step()
    reg.after_step()
    assert reg.last_stats['conv'].flip == pytest.approx(1 / 8)


def test_xnor_layers_count_flips_but_have_no_gamma():
    a, a2 = conv(), conv([[0.1, -0.3, 0.2, 0.9], [-0.6, 0.4, 0.05, -0.2]])
    x = conv([[0.5, -0.5, 0.5, -0.5], [1.0, 1.0, -1.0, 1.0]], binarizer='xnor')
    reg = ReBNNRegularizer([('a', a), ('x', x), ('a2', a2)], gamma=0.5)
    assert reg.rebnn_layers == ['a', 'a2']
    step([a, x, a2], reg)
    assert reg.last_stats['x'].gamma == 0.0 and reg.last_stats['x'].loss_r == 0.0
    assert reg.last_stats['a'].gamma == 0.5
    assert reg.last_summary['gamma'] == pytest.approx(0.5)  # mean over the two rebnn layers only
    # an xnor layer's non-finite weight skips the step too
    with torch.no_grad():
        x.weight.view(2, 4)[0, 0] = float('inf')
    with pytest.warns(RuntimeWarning, match=r'non-finite gradient or binary weight at optimizer step 1 \(1 '):
        reg.before_step()
    reg.after_step()
    assert reg.num_steps == 1 and reg.num_skipped == 1


def test_a_non_finite_alpha_gradient_alone_skips_the_step():
    layer = conv()
    reg = ReBNNRegularizer([('conv', layer)], gamma=0.5)  # constant gamma: no dL/dw_hat record to look at
    opt = torch.optim.SGD(layer.parameters(), lr=0.1)
    reg.attach(opt)
    opt.zero_grad()
    (layer(torch.tensor(X).view(1, 4, 1, 1)).flatten() * torch.tensor(C)).sum().backward()
    layer.alpha.grad[1] = float('nan')
    messages = []
    reg.report = messages.append
    opt.step()
    assert reg.num_skipped == 1 and reg.num_steps == 0
    assert messages[0].startswith('ReBNN: non-finite gradient or binary weight at optimizer step 0 (1 consecutive)')


def test_fresh_state_defaults_and_dtypes():
    assert check_rule_settings() == ('adaptive', 0, 0)
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        layer = ReBNNConv(4, 2, 1, act_binarizer='none')
        reg = ReBNNRegularizer([('conv', layer)])
    finally:
        torch.set_default_dtype(default)
    assert (reg.gamma, reg.start_iter, reg.warmup_iters) == ('adaptive', 0, 0)
    assert reg.last_stats is None and reg.last_summary == {}
    assert reg.num_steps == reg.num_skipped == reg.consecutive_skipped == 0
    st = reg.state['conv']
    assert st['gamma'].dtype == st['grad_absmax'].dtype == torch.float32  # whatever the default dtype
    assert st['flip_count'].dtype == torch.int16 and st['prev_sign'].dtype == torch.bool
    assert st['gamma'].tolist() == [0.0, 0.0] and st['grad_absmax'].tolist() == [0.0, 0.0]


def test_oscillation_window_of_one_step_and_the_next_window():
    layer = conv()
    reg = ReBNNRegularizer([('conv', layer)], gamma=0.5)
    step([layer], reg)  # w[0][1] = -0.05 crosses zero: one weight flipped once
    window = reg.pop_window()
    assert window == dict(flip_ratio=pytest.approx(1 / 8), flipped=1 / 8, oscillated=0.0, gamma=0.5, steps=1)
    step([layer], reg, lr=0.0)
    step([layer], reg, lr=0.0)
    window = reg.pop_window()  # the new window starts from zero: its own two steps only
    assert window == dict(flip_ratio=0.0, flipped=0.0, oscillated=0.0, gamma=0.5, steps=2)


def test_detach_stops_recording_and_attach_works_again():
    layer = conv()
    reg = ReBNNRegularizer([('conv', layer)], 'adaptive')
    opt = step([layer], reg)
    reg.detach()
    assert layer._track_weight_hat_grad is False
    opt.zero_grad()
    (layer(torch.tensor(X).view(1, 4, 1, 1)).sum()).backward()
    assert layer.weight_hat_grad is None
    opt.step()
    assert reg.num_steps == 1  # the hooks are gone
    reg.detach()  # twice is fine
    reg.attach(opt)
    opt.step()
    assert reg.num_steps == 2


def test_state_dict_round_trip_window_fields_and_defaults():
    layer = conv()
    reg = ReBNNRegularizer([('conv', layer)], gamma=0.5)
    step([layer], reg)
    step([layer], reg)
    state = reg.state_dict()
    assert (state['num_steps'], state['window_steps'], state['window_gamma_sum'], state['gamma']) == (2, 2, 1.0, 0.5)
    fresh = ReBNNRegularizer([('conv', conv())], gamma=0.5)
    assert fresh.load_state_dict(state) == []
    assert (fresh.num_steps, fresh.window_steps, fresh.window_gamma_sum) == (2, 2, 1.0)
    assert fresh.pop_window()['gamma'] == 0.5
    # a state without the counters (or without layers) restores zeros and reports every layer
    bare = ReBNNRegularizer([('conv', conv())], gamma=0.5)
    bare.num_steps, bare.window_steps, bare.window_gamma_sum = 7, 7, 7.0
    assert bare.load_state_dict({}) == ['conv']
    assert (bare.num_steps, bare.window_steps, bare.window_gamma_sum) == (0, 0, 0.0)
    # saved tensors come back in the regularizer's dtypes; a layer missing one key is reported, the next restored
    two = ReBNNRegularizer([('a', conv()), ('b', conv())], gamma=0.5)
    layers = {'a': {k: v for k, v in state['layers']['conv'].items() if k != 'flip_count'},
              'b': dict(state['layers']['conv'], gamma=torch.tensor([0.25, 0.75], dtype=torch.float64))}
    assert two.load_state_dict(dict(state, layers=layers)) == ['a']
    assert two.state['b']['gamma'].dtype == torch.float32 and two.state['b']['gamma'].tolist() == [0.25, 0.75]
    assert two.state['a']['gamma'].tolist() == [0.5, 0.5]


def test_error_messages_in_full():
    xnor = ReBNNConv(1, 1, 1, weight_binarizer='xnor')
    with pytest.raises(ValueError, match=r'^no binary-weight layer to regularize$'):
        ReBNNRegularizer([], 0)
    with pytest.raises(ValueError, match=r"^gamma != 0 needs layers with weight_binarizer='rebnn' \(a learnable "
                       r"alpha\); use gamma=0 for oscillation statistics only$"):
        ReBNNRegularizer([('x', xnor)], 0.5)
    layer = conv()
    reg = ReBNNRegularizer([('conv', layer)], 'adaptive')
    with torch.no_grad():
        layer.weight.view(2, 4)[0, 0] = float('nan')
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        reg.before_step()
    assert [str(w.message) for w in caught] == [
        'ReBNN: non-finite gradient or binary weight at optimizer step 0 (1 consecutive); the ReBNN update, gamma, '
        'sign history and statistics skipped for this step']
    assert caught[0].category is RuntimeWarning
