import pytest
import torch
import torch.nn.functional as F

from rebnn_det.ops import ReBNNConv, named_binary_convs, reset_binary_alphas


def _conv(**kw):
    torch.manual_seed(0)
    return ReBNNConv(**kw)


def test_1x1_gradients_hand_computed():
    conv = ReBNNConv(2, 2, 1, act_binarizer='none')
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([0.5, -1.5, -0.2, 0.1]).view(2, 2, 1, 1))
    conv.reset_alpha()
    assert conv.alpha.tolist() == pytest.approx([1.0, 0.15])  # channel mean |w|
    x = torch.tensor([[[[2.0]], [[-1.0]]]], requires_grad=True)
    # w_hat = [[a0, -a0], [-a1, a1]] with a = [1.0, 0.15]
    y = conv(x)
    assert y.flatten().tolist() == pytest.approx([1.0 * 2 + (-1.0) * (-1), -0.15 * 2 + 0.15 * (-1)])
    c = torch.tensor([3.0, -2.0])
    (y.flatten() * c).sum().backward()
    # dL/dw_hat[o, i] = c_o * x_i = [[6, -3], [-4, 2]]
    g = [[6.0, -3.0], [-4.0, 2.0]]
    expected_w = [1.0 * g[0][0], 0.0, 0.15 * g[1][0], 0.15 * g[1][1]]  # |w01| = 1.5 > 1 -> clipped
    assert conv.weight.grad.flatten().tolist() == pytest.approx(expected_w)
    assert conv.alpha.grad.tolist() == pytest.approx([6.0 * 1 + (-3.0) * -1, -4.0 * -1 + 2.0 * 1])
    # dL/dx_i = sum_o c_o * w_hat[o, i]
    assert x.grad.flatten().tolist() == pytest.approx([3 * 1.0 - 2 * -0.15, 3 * -1.0 - 2 * 0.15])


def test_3x3_rsign_input_gradient_and_threshold():
    conv = ReBNNConv(1, 1, 3, act_binarizer='rsign')
    w = torch.tensor([0.2, -0.4, 0.6, -0.8, 1.0, 0.2, -0.2, 0.4, -0.6])
    with torch.no_grad():
        conv.weight.copy_(w.view(1, 1, 3, 3))
        conv.rsign.threshold.fill_(0.1)
    conv.reset_alpha()
    alpha = w.abs().mean().item()
    xs = torch.tensor([0.0, 0.3, -0.5, 1.2, 0.1, -2.0, 0.6, -0.05, 0.9])
    x = xs.view(1, 1, 3, 3).clone().requires_grad_()
    y = conv(x)
    signs = [1.0 if v - 0.1 >= 0 else -1.0 for v in xs.tolist()]
    wb = [alpha * (1.0 if v >= 0 else -1.0) for v in w.tolist()]
    assert y.item() == pytest.approx(sum(s * b for s, b in zip(signs, wb)))
    y.backward()
    slopes = [max(0.0, 2 - 2 * abs(v - 0.1)) for v in xs.tolist()]
    assert x.grad.flatten().tolist() == pytest.approx([b * s for b, s in zip(wb, slopes)])
    assert conv.rsign.threshold.grad.item() == pytest.approx(-sum(b * s for b, s in zip(wb, slopes)))


def test_forward_matches_conv2d_on_binarized_operands_with_stride_dilation_groups_bias():
    conv = _conv(in_channels=4, out_channels=6, kernel_size=3, stride=2, padding=2, dilation=2, groups=2,
                 bias=True, act_binarizer='approxsign')
    x = torch.randn(2, 4, 9, 9)
    b_w = torch.where(conv.weight < 0, -1.0, 1.0) * conv.alpha.view(-1, 1, 1, 1)
    b_x = torch.where(x < 0, -1.0, 1.0)
    expected = F.conv2d(b_x, b_w, conv.bias, 2, 2, 2, 2)
    assert torch.allclose(conv(x), expected, atol=1e-6)
    real = _conv(in_channels=4, out_channels=6, kernel_size=3, stride=2, padding=2, dilation=2, groups=2,
                 bias=True, weight_binarizer='none', act_binarizer='none')
    assert torch.allclose(real(x), F.conv2d(x, real.weight, real.bias, 2, 2, 2, 2), atol=1e-6)
    assert real.alpha is None and real.rsign is None


def test_xnor_has_no_learnable_alpha():
    conv = _conv(in_channels=2, out_channels=3, kernel_size=1, weight_binarizer='xnor')
    assert conv.alpha is None
    assert all(n != 'alpha' for n, _ in conv.named_parameters())
    w_hat = conv.binarize_weight()
    assert torch.allclose(w_hat.abs().flatten(1), conv.weight.abs().mean((1, 2, 3), keepdim=True).flatten(1)
                          .expand(3, 2))


def test_pad_value_minus_one_keeps_padding_binary():
    conv = ReBNNConv(1, 1, 3, padding=1, pad_value=-1.0, act_binarizer='approxsign')
    with torch.no_grad():
        conv.weight.fill_(0.5)
    conv.reset_alpha()
    y = conv(torch.ones(1, 1, 1, 1))
    assert y.item() == pytest.approx(0.5 * (1 - 8))
    conv.pad_value = 0.0
    assert conv(torch.ones(1, 1, 1, 1)).item() == pytest.approx(0.5)


def test_alpha_initialised_from_weights_and_derived_on_loading_real_checkpoint():
    conv = _conv(in_channels=2, out_channels=2, kernel_size=1)
    assert torch.allclose(conv.alpha, conv.weight.abs().mean((1, 2, 3)))
    w = torch.tensor([1.0, -3.0, 0.5, 0.5]).view(2, 2, 1, 1)
    result = conv.load_state_dict({'weight': w, 'rsign.threshold': torch.zeros(1, 2, 1, 1)})
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert conv.alpha.tolist() == [2.0, 0.5]
    conv.load_state_dict({'weight': w, 'alpha': torch.tensor([7.0, 8.0]),
                          'rsign.threshold': torch.zeros(1, 2, 1, 1)})
    assert conv.alpha.tolist() == [7.0, 8.0]  # a binary checkpoint keeps its trained alpha
    with torch.no_grad():
        conv.weight.mul_(2)
    reset_binary_alphas(torch.nn.Sequential(conv))
    assert conv.alpha.tolist() == [4.0, 1.0]


def test_weight_hat_grad_accumulates_across_backwards():
    conv = _conv(in_channels=1, out_channels=1, kernel_size=1, act_binarizer='none')
    conv.track_weight_hat_grad(True)
    x = torch.tensor([[[[2.0]]]])
    conv(x).sum().backward()
    conv(3 * x).sum().backward()
    assert conv.weight_hat_grad.item() == pytest.approx(2.0 + 6.0)
    conv.track_weight_hat_grad(False)
    assert conv.weight_hat_grad is None
    conv(x).sum().backward()
    assert conv.weight_hat_grad is None


def test_bad_arguments_name_allowed_values():
    with pytest.raises(ValueError, match="allowed: 'rebnn', 'xnor', 'none'"):
        ReBNNConv(1, 1, 1, weight_binarizer='binary')
    with pytest.raises(ValueError, match="allowed: 'rsign', 'approxsign', 'none'"):
        ReBNNConv(1, 1, 1, act_binarizer='ste')
    with pytest.raises(ValueError, match="padding_mode 'zeros' only"):
        ReBNNConv(1, 1, 3, padding=1, padding_mode='reflect')


def test_named_binary_convs_filters_by_binarizer():
    net = torch.nn.Sequential(ReBNNConv(1, 1, 1), ReBNNConv(1, 1, 1, weight_binarizer='xnor'),
                              torch.nn.Conv2d(1, 1, 1))
    assert [n for n, _ in named_binary_convs(net)] == ['0', '1']
    assert [n for n, _ in named_binary_convs(net, 'xnor')] == ['1']


def test_usable_through_mmcv_build_conv_layer_and_conv_module():
    from mmcv.cnn import ConvModule, build_conv_layer
    conv = build_conv_layer(dict(type='ReBNNConv', weight_binarizer='xnor'), 4, 8, 3, padding=1)
    assert isinstance(conv, ReBNNConv) and conv.weight_binarizer == 'xnor'
    torch.manual_seed(0)
    block = ConvModule(4, 8, 3, padding=1, conv_cfg=dict(type='ReBNNConv'), norm_cfg=dict(type='BN'))
    assert isinstance(block.conv, ReBNNConv) and block.conv.bias is None
    block.init_weights()
    assert torch.allclose(block.conv.alpha, block.conv.weight.abs().mean((1, 2, 3)))
    assert block(torch.randn(2, 4, 5, 5)).shape == (2, 8, 5, 5)


@pytest.mark.parametrize('weight_binarizer,act_binarizer', [('rebnn', 'rsign'), ('xnor', 'approxsign')])
@pytest.mark.parametrize('kwargs', [dict(padding=1), dict(padding=1, pad_value=-1.0, bias=True),
                                    dict(stride=2, padding=0, bias=True)], ids=['pad0', 'pad-1_bias', 's2_bias'])
def test_eval_output_is_alpha_times_sign_conv_bit_exactly(weight_binarizer, act_binarizer, kwargs):
    """Eval mode computes ``alpha * conv(B_a(x), sign(w)) (+ bias)``: the {-1, +1} conv is an exact integer and
    alpha scales it with one rounding (what the deploy kernels compute); training convolves with
    ``w_hat = alpha * sign(w)`` -- the same function up to float rounding."""
    torch.manual_seed(0)
    conv = ReBNNConv(19, 13, 3, weight_binarizer=weight_binarizer, act_binarizer=act_binarizer, **kwargs)
    with torch.no_grad():
        if conv.alpha is not None:
            conv.alpha.uniform_(0.1, 1.0)
        if conv.rsign is not None:
            conv.rsign.threshold.normal_(0, 0.3)
        if conv.bias is not None:
            conv.bias.normal_()
    x = torch.randn(2, 19, 9, 8) * 2
    with torch.no_grad():
        train_out = conv.train()(x)
        eval_out = conv.eval()(x)
        a = conv.binarize_input(x)
        if conv.pad_value != 0:
            a = F.pad(a, (1, 1, 1, 1), value=conv.pad_value)
        count = F.conv2d(a.double(), torch.where(conv.weight < 0, -1.0, 1.0).double(), None, conv.stride,
                         0 if conv.pad_value != 0 else conv.padding)
        alpha = conv.alpha if conv.alpha is not None else conv.weight.abs().flatten(1).mean(1)
        expected = count.float() * alpha.view(1, -1, 1, 1)
        if conv.bias is not None:
            expected = expected + conv.bias.view(1, -1, 1, 1)
    assert torch.equal(count, count.round())
    assert torch.equal(eval_out, expected)
    torch.testing.assert_close(eval_out, train_out, rtol=1e-5, atol=1e-5)
    # gradients still flow in eval mode (to x through ApproxSign, to alpha through the scale)
    conv.zero_grad()
    xg = x.clone().requires_grad_()
    conv(xg).square().sum().backward()
    assert xg.grad is not None and conv.weight.grad is not None
    if conv.alpha is not None:
        assert conv.alpha.grad is not None and conv.alpha.grad.abs().sum() > 0


def test_eval_with_weight_hat_grad_tracking_convolves_with_w_hat():
    conv = ReBNNConv(4, 3, 3, padding=1).eval()
    conv.track_weight_hat_grad()
    assert not conv.scales_output()
    conv(torch.randn(1, 4, 5, 5)).sum().backward()
    assert conv.weight_hat_grad is not None and conv.weight_hat_grad.shape == conv.weight.shape
    conv.track_weight_hat_grad(False)
    assert conv.scales_output() and not conv.train().scales_output()
    assert not ReBNNConv(4, 3, 3, weight_binarizer='none').eval().scales_output()


def test_validation_during_training_computes_what_test_and_deploy_compute():
    """ReBNNHook keeps dL/dw_hat tracking on for the whole run, and mmengine validates under no_grad: that
    forward must be the factored eval one (alpha * sign conv), or the mAP printed at the end of training differs
    from tools/test.py / deploy mode on the same checkpoint in the last digit."""
    torch.manual_seed(1)
    tracked = ReBNNConv(16, 8, 3, padding=1).eval()
    with torch.no_grad():
        tracked.alpha.uniform_(0.1, 1.0)
    plain = ReBNNConv(16, 8, 3, padding=1).eval()
    plain.load_state_dict(tracked.state_dict())
    tracked.track_weight_hat_grad()
    x = torch.randn(2, 16, 7, 7)
    with torch.no_grad():
        assert tracked.scales_output()
        assert torch.equal(tracked(x), plain(x))
    assert not tracked.scales_output()  # autograd on: the w_hat path, whose gradient hook the rule needs
