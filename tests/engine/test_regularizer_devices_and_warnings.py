"""Where the regularizer keeps its state and where its warnings point. The ``meta`` device stands in for an
accelerator (no data; a tensor made on the wrong device shows in its ``.device``): the per-channel state lives on
the device of the layer's weights, also after loading a CPU checkpoint; a skipped step's warning names the line
that stepped the optimizer, not a line inside rebnn_det or torch."""
import sys

import pytest
import torch

from rebnn_det.engine import ReBNNRegularizer
from rebnn_det.ops import ReBNNConv

META = torch.device('meta')
# device and dtype of each per-layer state tensor when the layer's weights are on META
STATE_ON_META = dict(gamma=(META, torch.float32), grad_absmax=(META, torch.float32), prev_sign=(META, torch.bool),
                     flip_count=(META, torch.int16))


def layers(device):
    with torch.device(device):
        return [('a', ReBNNConv(4, 3, 3)), ('x', ReBNNConv(4, 2, 1, weight_binarizer='xnor'))]


@pytest.mark.parametrize('gamma', ['adaptive', 0.5])
def test_state_lives_on_the_weights_device(gamma):
    reg = ReBNNRegularizer(layers(META), gamma)
    for name, st in reg.state.items():
        assert {k: (v.device, v.dtype) for k, v in st.items()} == STATE_ON_META, name
        assert st['gamma'].shape == st['grad_absmax'].shape == (reg.layers[name].out_channels, )


def test_loading_a_cpu_state_puts_it_on_the_weights_device_and_dtype():
    cpu = ReBNNRegularizer(layers('cpu'), 'adaptive')
    saved = cpu.state_dict()
    saved['layers']['a']['gamma'] = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    saved['layers']['a']['flip_count'] = saved['layers']['a']['flip_count'].long()
    reg = ReBNNRegularizer(layers(META), 'adaptive')
    assert reg.load_state_dict(saved) == []
    for st in reg.state.values():
        assert {k: (v.device, v.dtype) for k, v in st.items()} == STATE_ON_META


def test_skip_warning_points_at_the_optimizer_step_line():
    (_, layer), = layers('cpu')[:1]
    reg = ReBNNRegularizer([('a', layer)], 'adaptive')
    opt = torch.optim.SGD(layer.parameters(), lr=0.1)
    reg.attach(opt)
    (layer(torch.randn(1, 4, 5, 5)).sum() * float('nan')).backward()
    with pytest.warns(RuntimeWarning, match='non-finite gradient') as record:
        line = sys._getframe().f_lineno + 1
        opt.step()
    assert [(w.filename, w.lineno) for w in record] == [(__file__, line)]
