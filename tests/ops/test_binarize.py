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


def test_binarizer_objects_answer_bits_scale_and_factors():
    from rebnn_det.ops import act_binarizer, binary_act_choices, binary_weight_choices, weight_binarizer
    rebnn, xnor, real = weight_binarizer('rebnn'), weight_binarizer('xnor'), weight_binarizer('none')
    assert (rebnn.bits, rebnn.learnable_scale, rebnn.binary) == (1, True, True)
    assert (xnor.bits, xnor.learnable_scale, xnor.binary) == (1, False, True)
    assert (real.bits, real.learnable_scale, real.binary) == (32, False, False)
    assert binary_weight_choices() == ('rebnn', 'xnor') and binary_act_choices() == ('rsign', 'approxsign')
    assert [(a.name, a.bits, a.learnable_threshold) for a in map(act_binarizer, ('rsign', 'approxsign', 'none'))] \
        == [('rsign', 1, True), ('approxsign', 1, False), ('none', 32, False)]
    w = torch.tensor([[0.5, -1.5, 0.0], [-0.2, -0.4, 0.3]])
    alpha = torch.tensor([2.0, 3.0])
    signs, scale = rebnn.factors(w, alpha)
    assert signs.tolist() == [[1, -1, 1], [-1, -1, 1]] and scale is alpha
    # xnor: mean |w| per output row: (0.5 + 1.5 + 0) / 3 and (0.2 + 0.4 + 0.3) / 3
    assert torch.allclose(xnor.scale(w), torch.tensor([2.0 / 3, 0.3]))
    assert rebnn(w, alpha).tolist() == [[2, -2, 2], [-3, -3, 3]]
    assert torch.equal(real(w), w)
    with pytest.raises(ValueError, match=r"^unknown weight_binarizer 'bnn'; allowed: 'rebnn', 'xnor', 'none'$"):
        weight_binarizer('bnn')
    with pytest.raises(ValueError, match=r"^unknown act_binarizer 'sign'; allowed: 'rsign', 'approxsign', 'none'$"):
        act_binarizer('sign')


@pytest.mark.parametrize('weight, act, binary_w, binary_a', [
    ('rebnn', 'rsign', True, True), ('xnor', 'approxsign', True, True), ('none', 'rsign', False, True),
    ('rebnn', 'none', True, False)])
def test_layer_answers_what_it_is(weight, act, binary_w, binary_a):
    from rebnn_det.ops import ReBNNConv
    conv = ReBNNConv(3, 2, 3, weight_binarizer=weight, act_binarizer=act)
    assert (conv.binary_weights, conv.binary_activations, conv.is_w1a1) == (binary_w, binary_a, binary_w and binary_a)
    assert (conv.weight_binarizer, conv.act_binarizer) == (weight, act)
    assert (conv.alpha is not None) == (weight == 'rebnn') and (conv.rsign is not None) == (act == 'rsign')
    if not binary_w:
        with pytest.raises(ValueError, match="has no \\(signs, scale\\) factors"):
            conv.scale()
        return
    with torch.no_grad():
        conv.weight.copy_(torch.arange(-27.0, 27.0).view(2, 3, 3, 3) / 10)
        if conv.alpha is not None:
            conv.alpha.copy_(torch.tensor([0.5, 7.0]))
    expected = torch.tensor([0.5, 7.0]) if weight == 'rebnn' else conv.weight.abs().flatten(1).mean(1)
    assert torch.equal(conv.scale(), expected) and not conv.scale().requires_grad


def test_ops_import_without_mmdet_mmengine_or_mmcv():
    import subprocess
    import sys
    code = ('import sys\n'
            'for name in ("mmdet", "mmengine", "mmcv"):\n'
            '    sys.modules[name] = None  # unimportable\n'
            'import torch\n'
            'from rebnn_det.ops import ReBNNConv, weight_binarizer\n'
            'conv = ReBNNConv(4, 4, 3, padding=1).eval()\n'
            'print(tuple(conv(torch.randn(1, 4, 5, 5)).shape), weight_binarizer("xnor").bits)\n'
            'print(sorted(m for m in sys.modules if m.split(".")[0] in ("mmdet", "mmengine", "mmcv")\n'
            '             and sys.modules[m] is not None))\n')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split('\n')[:2] == ['(1, 4, 5, 5) 1', '[]']
