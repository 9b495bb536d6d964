"""Packed export and exact reload (rebnn_det.deploy.export / packed_file): predictions and mAP unchanged, only
what inference needs in the file, every shipped config, and a clear error for each bad input."""
import copy
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config

from rebnn_det.deploy import (PackedFileError, build_detector, export_binary, export_model, is_packed_file, load_packed,
                              read_packed_checkpoint)
from rebnn_det.deploy.packed_file import FORMAT, read_packed_file
from rebnn_det.ops import named_binary_convs

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _evaluate(models, cfg):
    """Run every model over cfg's test set: (per-model list of predicted instances, per-model COCO metrics)."""
    from mmengine.evaluator import Evaluator
    from mmengine.runner import Runner
    loader = Runner.build_dataloader(copy.deepcopy(cfg.test_dataloader))
    evaluators = [Evaluator(copy.deepcopy(cfg.test_evaluator)) for _ in models]
    preds = [[] for _ in models]
    for ev in evaluators:
        ev.dataset_meta = loader.dataset.metainfo
    with torch.no_grad():
        for batch in loader:
            for model, ev, out in zip(models, evaluators, preds):
                results = model.test_step(copy.deepcopy(batch))
                out.extend(r.pred_instances for r in results)
                ev.process(results, copy.deepcopy(batch))
    return preds, [ev.evaluate(len(loader.dataset)) for ev in evaluators]


def _trained_model(det):
    from mmengine.runner import load_checkpoint
    model = build_detector(det.cfg)
    load_checkpoint(model, det.checkpoint, map_location='cpu', strict=True, logger='silent')
    return model.eval()


@pytest.fixture(scope='module')
def packed(tiny_trained_detector, tmp_path_factory):
    out = str(tmp_path_factory.mktemp('packed') / 'tiny.packed.pth')
    export_binary(tiny_trained_detector.cfg, tiny_trained_detector.checkpoint, out)
    return out


def test_reload_gives_identical_predictions_and_map(tiny_trained_detector, packed):
    original = _trained_model(tiny_trained_detector)
    reloaded = load_packed(packed)  # rebuilt from the file alone
    assert not reloaded.training
    assert reloaded.dataset_meta['classes'] == tuple(torch.load(tiny_trained_detector.checkpoint, weights_only=False)[
        'meta']['dataset_meta']['classes'])
    (pred_a, pred_b), (map_a, map_b) = _evaluate([original, reloaded], tiny_trained_detector.cfg)
    assert sum(len(p) for p in pred_a) > 0
    for a, b in zip(pred_a, pred_b):
        assert torch.equal(a.labels, b.labels)
        torch.testing.assert_close(a.bboxes, b.bboxes, rtol=1e-5, atol=1e-4)
        torch.testing.assert_close(a.scores, b.scores, rtol=1e-5, atol=1e-6)
    assert map_a['coco/bbox_mAP'] > 0
    assert map_a == map_b  # every printed digit of every COCO number


def test_runner_tests_a_packed_file_as_load_from(tiny_trained_detector, packed, tmp_path):
    """tools/test.py CONFIG PACKED_FILE: mmengine's checkpoint loading reads packed files (rebnn_det.engine's
    local loader calls read_packed_checkpoint), with the same COCO numbers as the fp32 checkpoint."""
    from mmengine.runner import Runner
    metrics = []
    for i, ckpt in enumerate([tiny_trained_detector.checkpoint, packed]):
        cfg = copy.deepcopy(tiny_trained_detector.cfg)
        cfg.update(load_from=ckpt, work_dir=str(tmp_path / str(i)))
        metrics.append(Runner.from_cfg(cfg).test())
    assert metrics[0]['coco/bbox_mAP'] > 0 and metrics[0] == metrics[1]


def test_file_holds_bits_alpha_and_real_parts_only(tiny_trained_detector, packed):
    model = _trained_model(tiny_trained_detector)
    payload = read_packed_file(packed)
    assert payload['format'] == FORMAT and payload['format_version'] == 2
    convs = dict(named_binary_convs(model))
    assert set(payload['binary_layers']) == set(convs) and len(convs) == 16 + 4 + 4  # backbone, FPN lateral/output
    for name, conv in convs.items():
        entry = payload['binary_layers'][name]
        assert entry['packed'].dtype == torch.int64 and entry['alpha'].dtype == torch.float32
        assert torch.equal(entry['alpha'], conv.alpha.detach())
        assert entry['layer']['in_channels'] == conv.in_channels and entry['layer']['weight_binarizer'] == 'rebnn'
        assert name + '.weight' not in payload['state_dict'] and name + '.alpha' not in payload['state_dict']
        assert torch.equal(payload['state_dict'][name + '.rsign.threshold'], conv.rsign.threshold.detach())
    expected_real = {k for k in model.state_dict() if not any(k in (n + '.weight', n + '.alpha') for n in convs)}
    assert set(payload['state_dict']) == expected_real
    assert set(payload) == {'format', 'format_version', 'config', 'binary_layers', 'state_dict', 'half',
                            'half_keys', 'meta'}  # no optimizer, no message hub, no latent weights
    assert payload['meta']['source_checkpoint'] == osp.basename(tiny_trained_detector.checkpoint)
    # the checkpoint view mmengine's loaders get: latent weights are the signs, alpha as trained
    ckpt = read_packed_checkpoint(packed)
    name, conv = next(iter(convs.items()))
    assert torch.equal(ckpt['state_dict'][name + '.weight'], torch.where(conv.weight < 0, -1.0, 1.0).detach())
    assert ckpt['meta']['packed']['format_version'] == 2
    assert is_packed_file(packed) and not is_packed_file(tiny_trained_detector.checkpoint)


def test_half_rounds_real_parts_only(tiny_trained_detector, packed, tmp_path):
    out = export_binary(tiny_trained_detector.cfg, tiny_trained_detector.checkpoint, str(tmp_path / 'h.pth'),
                        half=True)
    payload = read_packed_file(out)
    full = read_packed_file(packed)
    assert payload['half'] and os.path.getsize(out) < os.path.getsize(packed)
    halved = {'backbone.conv1.weight', 'rpn_head.rpn_conv.weight', 'roi_head.bbox_head.shared_fcs.0.weight',
              'backbone.layer2.0.downsample.1.weight', 'roi_head.bbox_head.fc_cls.weight'}
    assert halved <= set(payload['half_keys'])
    for key, value in payload['state_dict'].items():
        if key in payload['half_keys']:  # the weights of real convs and linears
            assert key.endswith('.weight') and value.dim() >= 2 and value.dtype == torch.float16
            assert torch.equal(value, full['state_dict'][key].half())
        elif value.is_floating_point():  # BN, biases, RPReLU, RSign thresholds: float32 as exported
            assert value.dtype == torch.float32 and torch.equal(value, full['state_dict'][key])
    for entry in payload['binary_layers'].values():
        assert entry['alpha'].dtype == torch.float32
    reloaded = load_packed(out)
    assert not any(v.dtype == torch.float16 for v in reloaded.state_dict().values())  # runs in float32
    _, (full_map, half_map) = _evaluate([load_packed(packed), reloaded], tiny_trained_detector.cfg)
    # fp16 rounding of the real parts (rel. 2**-11) moves some activations across a sign threshold: close mAP
    assert half_map['coco/bbox_mAP'] > 0
    assert abs(half_map['coco/bbox_mAP'] - full_map['coco/bbox_mAP']) <= 0.02, (half_map, full_map)


def test_no_overwrite_without_force(tiny_trained_detector, packed, tmp_path):
    out = tmp_path / 'x.pth'
    out.write_bytes(b'keep me')
    with pytest.raises(FileExistsError, match=r"x\.pth' already exists; pass force=True \(--force\)"):
        export_binary(tiny_trained_detector.cfg, tiny_trained_detector.checkpoint, str(out))
    assert out.read_bytes() == b'keep me'
    export_binary(tiny_trained_detector.cfg, tiny_trained_detector.checkpoint, str(out), force=True)
    assert is_packed_file(str(out)) and os.listdir(tmp_path) == ['x.pth']  # no temporary file left behind


def test_written_file_gets_the_usual_permissions(tiny_trained_detector, tmp_path):
    """Written through a private temporary file, the result is still an ordinary file (0666 less the umask)."""
    old = os.umask(0o022)
    try:
        out = export_binary(tiny_trained_detector.cfg, tiny_trained_detector.checkpoint, str(tmp_path / 'm.packed'))
    finally:
        os.umask(old)
    assert os.stat(out).st_mode & 0o777 == 0o644


def test_truncated_foreign_and_newer_files(tiny_trained_detector, packed, tmp_path):
    data = open(packed, 'rb').read()
    cut = tmp_path / 'cut.pth'
    cut.write_bytes(data[:len(data) // 2])
    with pytest.raises(PackedFileError, match=r'cut\.pth: truncated or corrupt'):
        load_packed(str(cut))
    noise = tmp_path / 'noise.bin'
    noise.write_bytes(os.urandom(4096))
    with pytest.raises(PackedFileError, match=r'noise\.bin: not a rebnn_det packed file \(not a torch zip'):
        load_packed(str(noise))
    with pytest.raises(PackedFileError, match=r"not a rebnn_det packed file \(a torch file without the "
                                              r"'rebnn_det.packed' marker, e.g. an ordinary checkpoint"):
        read_packed_checkpoint(tiny_trained_detector.checkpoint)
    payload = torch.load(packed, weights_only=True)
    payload['format_version'] = 3
    torch.save(payload, tmp_path / 'v3.pth')
    with pytest.raises(PackedFileError, match=r'v3\.pth: written in packed format version 3, newer than this '
                                              r'rebnn_det reads \(up to 2\); upgrade rebnn_det'):
        load_packed(str(tmp_path / 'v3.pth'))
    with pytest.raises(FileNotFoundError, match="packed file 'nope.pth' does not exist"):
        load_packed('nope.pth')
    assert not is_packed_file(str(cut)) and not is_packed_file(str(noise))


def test_config_weights_mismatch(tiny_trained_detector, packed):
    wider = copy.deepcopy(tiny_trained_detector.cfg)
    wider.model.backbone.update(base_channels=32, stem_channels=32)
    wider.model.neck.in_channels = [32, 64, 128, 256]
    with pytest.raises(PackedFileError, match=r"layer 'backbone\.layer1\.0\.conv1' has in_channels=16 in the file "
                                              r'but 32 in the config'):
        load_packed(packed, cfg=wider)
    real_stage = copy.deepcopy(tiny_trained_detector.cfg)
    real_stage.model.backbone.binary_stages = (False, True, True, True)
    with pytest.raises(PackedFileError, match=r"layer 'backbone\.layer1\.0\.conv1' is binary in the file but a real "
                                              r'Conv2d in the config'):
        load_packed(packed, cfg=real_stage)
    w32 = copy.deepcopy(tiny_trained_detector.cfg)
    w32.model.neck.binary_cfg = dict(weight_binarizer='none')
    with pytest.raises(PackedFileError, match=r"binary in the file but a ReBNNConv with weight_binarizer='none'"):
        load_packed(packed, cfg=w32)
    classes = copy.deepcopy(tiny_trained_detector.cfg)
    classes.model.roi_head.bbox_head.num_classes = 3
    with pytest.raises(PackedFileError, match=r"tensor 'roi_head\.bbox_head\.fc_cls\.weight' has shape \(7, 64\) in "
                                              r'the file but \(4, 64\)'):
        load_packed(packed, cfg=classes)
    with pytest.raises(ValueError, match='does not fit config'):
        export_binary(wider, tiny_trained_detector.checkpoint, packed + '.other')


def test_model_without_binary_layer_is_an_error(tmp_path):
    cfg = Config.fromfile(osp.join(ROOT, 'configs', 'shapes', 'real_faster_rcnn_shapes.py'))
    with pytest.raises(ValueError, match='has no binary layer .* nothing to pack'):
        export_model(build_detector(cfg), cfg, str(tmp_path / 'real.pth'))
    assert not os.listdir(tmp_path)


def _w_hat(model):
    return {n: m.binarize_weight().detach() for n, m in named_binary_convs(model) if m.weight_binarizer != 'none'}


@pytest.mark.parametrize('config', [
    'rebnn_faster_rcnn.py', 'rebnn_cascade_rcnn.py', 'rebnn_mask_rcnn.py', 'rebnn_retinanet.py', 'rebnn_fcos.py',
    'xnor_faster_rcnn.py', 'shapes/rebnn_faster_rcnn_shapes.py', 'shapes/xnor_faster_rcnn_shapes.py',
    'shapes/rebnn_faster_rcnn_shapes_stage2_w1a1.py'])
def test_every_shipped_config_round_trips_exactly(config, tmp_path):
    cfg = Config.fromfile(osp.join(ROOT, 'configs', config))
    model = build_detector(cfg)
    torch.manual_seed(0)
    with torch.no_grad():  # trained-looking values: latent weights away from the init, alpha not mean|w|
        for _, m in named_binary_convs(model):
            m.weight.mul_(torch.rand_like(m.weight) * 3)
            if m.alpha is not None:
                m.alpha.mul_(1 + torch.rand_like(m.alpha))
            if m.rsign is not None:
                m.rsign.threshold.normal_(0, 0.1)
    out = export_model(model, cfg, str(tmp_path / 'm.pth'))
    reloaded = load_packed(out)
    before, after = _w_hat(model), _w_hat(reloaded)
    assert before and before.keys() == after.keys()
    for name in before:  # the weights every binary conv computes with: bit for bit ('xnor' recomputes mean|w|)
        assert torch.equal(before[name], after[name]), name
    latent = {n + '.weight' for n in before}
    for key, value in model.state_dict().items():
        if key not in latent:
            assert torch.equal(value, reloaded.state_dict()[key]), key
    if not config.startswith('shapes/'):
        return  # the COCO-size forwards are slow on 2 cores; equal weights already make them equal
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        for a, b in zip(model.eval().extract_feat(x), reloaded.extract_feat(x)):
            assert torch.equal(a, b)


def test_export_tool_command_line(tiny_trained_detector, tmp_path):
    cfg_path = str(tmp_path / 'tiny.py')
    tiny_trained_detector.cfg.dump(cfg_path)
    out = str(tmp_path / 'tiny.packed.pth')
    cmd = [sys.executable, 'tools/export_binary.py', cfg_path, tiny_trained_detector.checkpoint, out]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f'wrote {out}' in proc.stdout and is_packed_file(out)
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and 'already exists; pass force=True (--force)' in proc.stderr
    proc = subprocess.run(cmd + ['--half', '--force'], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and read_packed_file(out)['half']
