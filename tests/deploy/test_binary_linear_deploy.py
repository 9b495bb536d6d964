"""The binary GEMM (XNOR-popcount over packed features, the 1x1 conv kernel with RoIs as pixels): counts bit-exact
against a float reference on every ISA path this CPU runs; the binary RoI head in deploy mode bit-identical to the
simulated head; its packed export and reload exact."""
import copy

import pytest
import torch
import torch.nn.functional as F

from rebnn_det.deploy import PackedBinaryLinear, convert_to_deploy, kernels
from rebnn_det.deploy.packing import pack_signs_last
from rebnn_det.ops import ReBNNLinear

PATHS = list(kernels.available_isas())


@pytest.mark.parametrize('isa', PATHS)
@pytest.mark.parametrize('n, k, o', [(1, 64, 8), (5, 100, 24), (64, 65, 9), (130, 784, 33), (200, 1024, 64),
                                     (211, 128, 16)])  # 211: prime, rows of 100 and a row of 11 (two kernel calls)
def test_gemm_counts_and_output_exact(isa, n, k, o):
    torch.manual_seed(n + k + o)
    x, thr, w = torch.randn(n, k), torch.randn(k) * 0.1, torch.randn(o, k)
    weight = kernels.linear_weight(pack_signs_last(w), k)
    reference = F.linear(torch.where(x - thr < 0, -1.0, 1.0), torch.where(w < 0, -1.0, 1.0))  # exact integers
    assert torch.equal(kernels.binary_linear_counts(x, thr, weight, isa=isa), reference.int())
    scale, shift, res = torch.rand(o), torch.randn(o), torch.randn(n, o)
    bn = torch.rand(o) + 0.5, torch.randn(o)
    got = kernels.binary_linear(x, thr, weight, scale, shift, bn, res, isa=isa)
    expected = torch.addcmul(bn[1], reference * scale + shift, bn[0]) + res  # each step rounded once, in order
    assert torch.equal(got, kernels.fma32(reference * scale + shift, bn[0], bn[1]) + res)
    torch.testing.assert_close(got, expected)


@pytest.mark.parametrize('n, calls', [(1000, [(0, 10, 100)]), (150, [(0, 2, 75)]), (64, [(0, 1, 64)]),
                                      (211, [(0, 2, 100), (200, 1, 11)]), (1, [(0, 1, 1)]), (40, [(0, 1, 40)]),
                                      (400, [(0, 4, 100)]), (50, [(0, 1, 50)]), (202, [(0, 2, 101)])])
def test_gemm_rows_divide_the_rois_when_they_can(n, calls):
    assert kernels.GEMM_ROW == 100 and kernels.gemm_rows(n) == calls


def test_gemm_argument_errors():
    weight = kernels.linear_weight(pack_signs_last(torch.randn(4, 10)), 10)
    with pytest.raises(ValueError, match=r'binary_linear expects \[N, in_features\] features, got shape \(2, 10, 1\)'):
        kernels.binary_linear(torch.randn(2, 10, 1), None, weight, torch.ones(4))
    for fn in (kernels.binary_linear, kernels.binary_linear_counts):
        with pytest.raises(ValueError, match='^input has 9 features; the weight has 10$'):
            fn(torch.randn(2, 9), None, weight, torch.ones(4)) if fn is kernels.binary_linear else fn(
                torch.randn(2, 9), None, weight)
    with pytest.raises(ValueError, match="'fast'"):  # the path is passed on (an unknown one is an error)
        kernels.binary_linear(torch.randn(2, 10), None, weight, torch.ones(4), isa='fast')
    with pytest.raises(ValueError, match="'fast'"):
        kernels.binary_linear_counts(torch.randn(2, 10), None, weight, isa='fast')
    with pytest.raises(ValueError, match=r'residual has shape \(2, 3\); the output is \(2, 4\)'):
        kernels.binary_linear(torch.randn(2, 10), None, weight, torch.ones(4), residual=torch.randn(2, 3))
    with pytest.raises(ValueError, match=r'packed linear weight must be int64 \[out_features, words\]'):
        kernels.linear_weight(torch.zeros(4, 1, 1, 1, dtype=torch.int64), 10)
    with pytest.raises(ValueError, match='only a ReBNNLinear with binary weights'):
        PackedBinaryLinear.from_linear(ReBNNLinear(4, 4, weight_binarizer='none'))


def _trained_looking_head():
    from mmdet.registry import MODELS
    torch.manual_seed(0)
    head = MODELS.build(dict(type='BinaryShared2FCBBoxHead', in_channels=16, fc_out_channels=64, roi_feat_size=7,
                             num_classes=3))
    head.init_weights()
    head.train()
    for _ in range(3):
        head(torch.randn(50, 16, 7, 7))  # BN running statistics
    with torch.no_grad():
        for block in head.shared_fcs:
            block.fc.rsign.threshold.normal_(0, 0.1)
            block.fc.alpha.mul_(1 + torch.rand_like(block.fc.alpha))
    return head.eval()


@pytest.mark.parametrize('isa', PATHS)
def test_binary_roi_head_deploy_is_bit_identical(isa):
    head = _trained_looking_head()
    deployed = convert_to_deploy(copy.deepcopy(head), isa=isa)
    assert [type(b).__name__ for b in deployed.shared_fcs] == ['FusedBinaryLinearBlock'] * 2
    for n in (1, 63, 64, 130):
        x = torch.randn(n, 16, 7, 7)
        with torch.no_grad():
            for a, b in zip(head(x), deployed(x)):
                assert torch.equal(a, b), (isa, n)


def test_binary_roi_head_packs_its_fcs_as_bits_and_reloads_exactly(tmp_path):
    from rebnn_det.deploy.packed_file import pack_model, unpack_state_dict
    head = _trained_looking_head()
    payload = pack_model(head)
    entry = payload['binary_layers']['shared_fcs.0.fc']
    assert entry['layer'] == dict(kind='linear', in_features=784, out_features=64, weight_binarizer='rebnn',
                                  act_binarizer='rsign', bias=False)
    assert entry['packed'].shape == (64, 13) and entry['packed'].dtype == torch.int64  # ceil(784 / 64) words
    assert 'shared_fcs.0.fc.weight' not in payload['state_dict']
    state = unpack_state_dict(payload)
    reloaded = copy.deepcopy(head)
    reloaded.load_state_dict(state)
    x = torch.randn(20, 16, 7, 7)
    with torch.no_grad():
        for a, b in zip(head(x), reloaded(x)):
            assert torch.equal(a, b)


def test_whole_detector_with_binary_roi_head_detects_the_same_in_deploy_mode():
    import os.path as osp

    from mmdet.testing import demo_mm_inputs
    from mmengine.config import Config

    from rebnn_det.deploy import build_detector
    from rebnn_det.deploy.convert import deploy_layers
    root = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    cfg = Config.fromfile(osp.join(root, 'configs', 'shapes', 'rebnn_faster_rcnn_shapes_binary_roi.py'))
    torch.manual_seed(0)
    model = build_detector(cfg)
    model.init_weights()
    packed = demo_mm_inputs(2, [(3, 96, 128), (3, 128, 96)], num_items=[3, 2], num_classes=6)
    model.train()
    with torch.no_grad():  # BN running statistics of a model that has seen data
        for _ in range(2):
            model(**model.data_preprocessor(packed, True), mode='loss')
    model.eval()
    deployed = convert_to_deploy(copy.deepcopy(model))
    assert {'roi_head.bbox_head.shared_fcs.0', 'roi_head.bbox_head.shared_fcs.1'} <= {
        n.rsplit('.fc', 1)[0] for n in deploy_layers(deployed)}
    with torch.no_grad():
        data = model.data_preprocessor(packed, False)
        a = model(**data, mode='predict')
        b = deployed(**copy.deepcopy(data), mode='predict')
    assert sum(len(r.pred_instances) for r in a) > 0
    for x, y in zip(a, b):
        assert torch.equal(x.pred_instances.bboxes, y.pred_instances.bboxes)
        assert torch.equal(x.pred_instances.scores, y.pred_instances.scores)
        assert torch.equal(x.pred_instances.labels, y.pred_instances.labels)
