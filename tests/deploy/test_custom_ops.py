"""The kernels as PyTorch custom operators (torch.ops.rebnn.*): schemas, fake implementations (torch.library.opcheck),
and deploy models under torch.compile and torch.export with unchanged results."""
import copy

import pytest
import torch
from torch.export import Dim, export

from rebnn_det.deploy import custom_ops, kernels
from rebnn_det.deploy.convert import convert_to_deploy
from rebnn_det.deploy.packing import pack_conv_weight
from rebnn_det.deploy.pt2_export import NetworkOutputs, RoIOutputs
from tests.deploy.test_detector_plumbing import _detector

pytestmark = pytest.mark.skipif(not kernels.extension_available(), reason='needs the compiled kernels')
OPS = torch.ops.rebnn


def _conv_case(c_in=70, c_out=24, k=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, c_in, 9, 11, generator=g)
    weight = kernels.prepare_weight(pack_conv_weight(torch.randn(c_out, c_in, k, k, generator=g)), c_in)
    threshold = torch.randn(c_in, generator=g) * 0.1
    return x, threshold, weight, torch.rand(c_out, generator=g) + 0.5


def test_every_operator_is_registered_with_its_schema():
    assert set(custom_ops.OPERATORS) == {'pack_padded', 'conv_counts', 'binary_conv', 'max_pool2d_channels_last',
                                         'roi_align_levels'}
    schema = str(OPS.binary_conv.default._schema)
    assert schema.startswith('rebnn::binary_conv(Tensor? x, Tensor? threshold, Tensor weight, Tensor? tap_sum, ')
    assert schema.endswith('bool out_nchw=False, bool relu=False) -> (Tensor, Tensor)')
    assert str(OPS.roi_align_levels.default._schema) == (
        'rebnn::roi_align_levels(Tensor[] feats, float[] spatial_scales, Tensor rois, Tensor level, int out_h, '
        'int out_w, int sampling_ratio, bool aligned) -> Tensor')
    with pytest.raises(ValueError, match=r"^unknown rebnn operator 'conv'; the operators are pack_padded, "):
        custom_ops.operator('conv')
    assert custom_ops.operator('binary_conv') is OPS.binary_conv


@pytest.mark.parametrize('pad_value', [0.0, 1.0, -1.0])
def test_opcheck_pack_and_counts(pad_value):
    x, threshold, weight, _ = _conv_case()
    torch.library.opcheck(OPS.pack_padded.default, (x, threshold, 1, 2, pad_value, 'auto'))
    torch.library.opcheck(OPS.conv_counts.default, (x, threshold, weight.kernel, weight.tap_sum, 24, 3, 3, 2, 1, 1,
                                                    1, pad_value, 'auto'))


@pytest.mark.parametrize('options', [
    dict(),
    dict(out_nchw=True, relu=True),
    dict(pack_next=True, next_pad_h=1, next_pad_w=1, next_pad_value=-1.0),
])
def test_opcheck_binary_conv(options):
    x, threshold, weight, scale = _conv_case()
    g = torch.Generator().manual_seed(1)
    epilogue = dict(bias=torch.randn(24, generator=g), bn_scale=torch.rand(24, generator=g),
                    bn_shift=torch.randn(24, generator=g), residual=torch.randn(2, 12, 9, 11, generator=g),
                    act_in=torch.randn(24, generator=g), act_slope=torch.rand(24, generator=g),
                    act_out=torch.randn(24, generator=g))
    args = (x, threshold, weight.kernel, weight.tap_sum, 24, 3, 3, 1, 1, 1, 1, 0.0, scale)
    torch.library.opcheck(OPS.binary_conv.default, args, dict(epilogue, **options))
    y, bits = OPS.binary_conv(*args, **options)
    assert y.is_contiguous(memory_format=torch.contiguous_format if options.get('out_nchw') else torch.channels_last)
    assert bits.shape == ((2, 11, 13, 1) if options.get('pack_next') else (0, )) and bits.dtype == torch.int64


def test_opcheck_binary_conv_on_a_packed_input():
    x, threshold, weight, scale = _conv_case()
    packed = OPS.pack_padded(x, threshold, 1, 1, 1.0)
    torch.library.opcheck(OPS.binary_conv.default, (None, threshold, weight.kernel, weight.tap_sum, 24, 3, 3, 2, 2, 1,
                                                    1, 1.0, scale), dict(packed_input=packed, in_channels=70))


def test_opcheck_max_pool_and_roi_align():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 5, 15, 18, generator=g)
    torch.library.opcheck(OPS.max_pool2d_channels_last.default, (x, 3, 3, 2, 2, 1, 1),
                          dict(bn_scale=torch.rand(5, generator=g), bn_shift=torch.randn(5, generator=g), relu=True))
    feats = [torch.randn(1, 8, 20, 24, generator=g), torch.randn(1, 8, 10, 12, generator=g)]
    rois = torch.tensor([[0, 1., 2., 30., 40.], [0, 5., 5., 60., 70.], [0, 0., 0., 3., 3.]])
    torch.library.opcheck(OPS.roi_align_levels.default,
                          (feats, [0.25, 0.125], rois, torch.tensor([0, 1, 0]), 7, 7, 0, True))


def test_an_unforced_path_stays_auto_in_a_traced_graph(monkeypatch):
    """A graph traced on this machine picks the kernel path where it runs ('auto'); a forced one is kept."""
    x, threshold, weight, scale = _conv_case()
    monkeypatch.delenv(kernels.ISA_ENV, raising=False)

    def conv(inp):
        return kernels.binary_conv2d(inp, threshold, weight, scale, padding=1)

    isa_args = [n.args[20] for n in torch.fx.experimental.proxy_tensor.make_fx(conv)(x).graph.nodes
                if n.op == 'call_function' and n.target is OPS.binary_conv.default]
    assert isa_args == ['auto']
    monkeypatch.setenv(kernels.ISA_ENV, 'portable')
    isa_args = [n.args[20] for n in torch.fx.experimental.proxy_tensor.make_fx(conv)(x).graph.nodes
                if n.op == 'call_function' and n.target is OPS.binary_conv.default]
    assert isa_args == ['portable']


def _outputs_equal(a, b):
    a, b = torch.utils._pytree.tree_leaves(a), torch.utils._pytree.tree_leaves(b)
    return len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b))


@pytest.fixture(scope='module')
def deploy_faster_rcnn():
    return convert_to_deploy(_detector('rebnn_faster_rcnn_binary_roi.py'))


@pytest.fixture(scope='module')
def deploy_fcos():
    return convert_to_deploy(_detector('rebnn_fcos_binary_head.py'))


@pytest.mark.parametrize('name', ['deploy_faster_rcnn', 'deploy_fcos'])
def test_torch_compile_whole_network_one_graph_bit_identical(name, request):
    """Dynamo traces the deploy network in one graph (fullgraph: no break at the kernels) and AOTAutograd runs it
    through the fake kernels: the outputs equal eager deploy mode bit for bit."""
    net = NetworkOutputs(request.getfixturevalue(name)).eval()
    x = torch.randn(1, 3, 96, 128, generator=torch.Generator().manual_seed(4))
    torch._dynamo.reset()
    with torch.no_grad():
        compiled = torch.compile(net, backend='aot_eager', fullgraph=True)
        assert _outputs_equal(compiled(x), net(x))


def test_torch_compile_inductor_runs_the_kernels_as_extern_calls(deploy_fcos):
    """Inductor keeps each rebnn operator as one call of the CPU kernel; it rewrites the real-valued ops around it
    (BN, adds: not bit-preserving in general), so the outputs agree to float rounding, not bit for bit."""
    backbone = copy.deepcopy(deploy_fcos.backbone).eval()
    x = torch.randn(1, 3, 96, 128, generator=torch.Generator().manual_seed(5))
    torch._dynamo.reset()
    with torch.no_grad():
        ref = backbone(x)
        got = torch.compile(backbone, backend='inductor')(x)
    assert len(got) == len(ref)
    for a, b in zip(ref, got):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-4)


def test_export_network_dynamic_shapes_identical(deploy_fcos):
    net = NetworkOutputs(deploy_fcos).eval()
    x = torch.randn(1, 3, 160, 224, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():  # from 5 x 32 = 160 px, FCOS's stride-128 level has >= 2 rows (size 1 would specialize)
        ep = export(net, (x, ), dynamic_shapes={'inputs': {2: 32 * Dim('h', min=5, max=64),
                                                           3: 32 * Dim('w', min=5, max=64)}})
        targets = {n.target for n in ep.graph.nodes if n.op == 'call_function'}
        assert OPS.binary_conv.default in targets and OPS.max_pool2d_channels_last.default in targets
        for shape in ((160, 224), (256, 160)):
            x = torch.randn(1, 3, *shape, generator=torch.Generator().manual_seed(shape[0]))
            assert _outputs_equal(ep.module()(x), net(x))


def test_export_roi_stage_dynamic_rois_identical(deploy_faster_rcnn):
    net = NetworkOutputs(deploy_faster_rcnn).eval()
    roi = RoIOutputs(deploy_faster_rcnn).eval()
    x = torch.randn(1, 3, 128, 160, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        feats = net(x)[:4]
        rois = torch.tensor([[0, 3., 4., 100., 90.], [0, 10., 20., 150., 120.]])
        dyn = tuple({2: Dim.DYNAMIC, 3: Dim.DYNAMIC} for _ in feats) + ({0: Dim.DYNAMIC}, )
        ep = export(roi, (*feats, rois), dynamic_shapes={'feats_and_rois': dyn})
        assert OPS.roi_align_levels.default in {n.target for n in ep.graph.nodes if n.op == 'call_function'}
        more = torch.tensor([[0, 1., 1., 20., 30.], [0, 0., 0., 159., 127.], [0, 50., 40., 52., 41.]])
        for r in (rois, torch.cat([rois, more])):
            assert _outputs_equal(ep.module()(*feats, r), roi(*feats, r))
