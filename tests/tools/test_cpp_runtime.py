"""The C++ runtime: tools/build_cpp.py builds librebnn_ops.so and rebnn_detect with g++ against the installed
libtorch; rebnn_detect loads an AOTInductor package of tools/export_pt2.py --aoti and prints the detections of one
image, the same numbers as the Python post-processing of the same package's outputs."""
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch

from rebnn_det.deploy import kernels

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
pytestmark = pytest.mark.skipif(not kernels.extension_available(), reason='needs the compiled kernels')
H, W = 120, 170  # the image; the test resize (224, 160) makes it 158 x 224, padded to 160 x 224


@pytest.fixture(scope='module')
def built(tmp_path_factory):
    sys.path.insert(0, osp.join(ROOT, 'tools'))
    try:
        import build_cpp
    finally:
        sys.path.remove(osp.join(ROOT, 'tools'))
    return build_cpp.build(str(tmp_path_factory.mktemp('cpp')))


@pytest.fixture(scope='module')
def fcos_files(tmp_path_factory):
    """(config, packed file, .pt2, AOTInductor package, image.ppm, the image as uint8 BGR [H, W, 3])."""
    from mmengine.config import Config

    from rebnn_det.deploy.export import build_detector, export_model
    tmp = tmp_path_factory.mktemp('fcos_cpp')
    cfg = Config.fromfile(osp.join(ROOT, 'configs', 'rebnn_fcos_binary_head.py'))
    for step in cfg.test_dataloader.dataset.pipeline:
        if step['type'] == 'Resize':
            step['scale'] = (224, 160)
    torch.manual_seed(0)
    model = build_detector(cfg)
    model.init_weights()
    torch.nn.init.constant_(model.bbox_head.conv_cls.bias, -1.0)  # untrained scores above score_thr: detections
    config, packed = str(tmp / 'fcos.py'), str(tmp / 'fcos.packed.pth')
    cfg.dump(config)
    export_model(model, cfg, packed)
    outs = {}
    for name, extra in (('fcos.pt2', []), ('fcos_aoti.pt2', ['--aoti'])):
        outs[name] = str(tmp / name)
        res = subprocess.run([sys.executable, 'tools/export_pt2.py', config, packed, outs[name], '--shape', '160',
                              '224'] + extra, cwd=ROOT, capture_output=True, text=True)
        assert res.returncode == 0, res.stderr[-3000:]
    rgb = np.random.default_rng(0).integers(0, 256, size=(H, W, 3), dtype=np.uint8)
    ppm = str(tmp / 'image.ppm')
    with open(ppm, 'wb') as f:
        f.write(f'P6\n{W} {H}\n255\n'.encode() + rgb.tobytes())
    bgr = torch.from_numpy(rgb[:, :, ::-1].copy())
    return config, packed, outs['fcos.pt2'], outs['fcos_aoti.pt2'], ppm, bgr


def _run(program, *args):
    return subprocess.run([program, *args], capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS='2'))


def _parse(stdout):
    rows = [line.split() for line in stdout.splitlines()]
    labels = torch.tensor([int(r[0]) for r in rows], dtype=torch.long)
    values = torch.tensor([[float(v) for v in r[1:]] for r in rows], dtype=torch.float32).reshape(-1, 5)
    return labels, values[:, 0], values[:, 1:]


def test_rebnn_detect_prints_the_python_postprocessing_of_the_package(built, fcos_files):
    from rebnn_det.deploy import postprocess
    from rebnn_det.deploy.pt2_runtime import load_pt2
    _, _, pt2, aoti, ppm, bgr = fcos_files
    res = _run(built['program'], aoti, ppm)
    assert res.returncode == 0, res.stderr
    labels, scores, bboxes = _parse(res.stdout)
    assert len(labels) == 100  # max_per_img of the config: NMS and the cut are exercised

    exported = load_pt2(pt2)
    inputs, img_meta = exported.preprocess(bgr)
    assert tuple(inputs.shape) == (1, 3, 160, 224) and img_meta['img_shape'] == (158, 224)
    torch.set_num_threads(2)
    with torch.no_grad():
        outs = torch._inductor.aoti_load_package(aoti)(inputs)
    levels = len(outs) // 3
    expected = postprocess.dense_detections(exported.spec, list(outs[:levels]), list(outs[levels:2 * levels]),
                                            list(outs[2 * levels:]), img_meta)
    # printed with 9 significant digits: float32 read back exactly
    assert torch.equal(labels, expected['labels'])
    assert torch.equal(scores, expected['scores'])
    assert torch.equal(bboxes, expected['bboxes'])
    # and the eager .pt2 (torch.export, no inductor) finds the same detections up to inductor's rounding
    with torch.no_grad():
        eager = exported(bgr)
    assert torch.equal(labels, eager['labels'])
    torch.testing.assert_close(scores, eager['scores'], rtol=0, atol=1e-4)
    torch.testing.assert_close(bboxes, eager['bboxes'], rtol=0, atol=1e-2)


def test_rebnn_detect_errors(built, fcos_files, tmp_path):
    _, _, pt2, aoti, ppm, _ = fcos_files
    res = _run(built['program'])
    assert res.returncode == 2 and 'usage: ' in res.stderr and 'MODEL.pt2 IMAGE.ppm' in res.stderr
    bad = tmp_path / 'bad.ppm'
    bad.write_bytes(b'P5\n2 2\n255\n' + bytes(4))
    res = _run(built['program'], aoti, str(bad))
    assert res.returncode == 1 and 'expected a binary PPM (P6) with 8-bit samples' in res.stderr
    bad.write_bytes(b'P6\n4 4\n255\n' + bytes(10))
    res = _run(built['program'], aoti, str(bad))
    assert res.returncode == 1 and 'truncated pixel data' in res.stderr
    res = _run(built['program'], aoti, str(tmp_path / 'none.ppm'))
    assert res.returncode == 1 and 'cannot open image' in res.stderr
    res = _run(built['program'], pt2, ppm)  # a torch.export .pt2, not an AOTInductor package
    assert res.returncode == 1 and res.stderr.startswith('rebnn_detect: ')


def test_aoti_metadata_refuses_what_rebnn_detect_cannot_run():
    from rebnn_det.deploy.pt2_export import aoti_metadata
    fcos = dict(type='fcos', num_classes=3, use_sigmoid_cls=True,
                prior_generator=dict(type='MlvlPointGenerator', strides=[[8, 8], [16, 16]], offset=0.0),
                bbox_coder=dict(type='DistancePointBBoxCoder', clip_border=True),
                test_cfg=dict(nms_pre=1000, score_thr=0.05, min_bbox_size=0, max_per_img=100,
                              nms=dict(type='nms', iou_threshold=0.6)))
    pre = dict(mean=[1.5, 2.0, 3.0], std=[1.0, 1.0, 1.0], bgr_to_rgb=True, pad_size_divisor=32, pad_value=0.0,
               resize=dict(scale=[1333, 800], keep_ratio=True))
    meta = aoti_metadata(fcos, pre)
    assert meta['rebnn_det.type'] == 'fcos' and meta['rebnn_det.strides'] == '8,8,16,16'
    assert meta['rebnn_det.mean'] == '1.5,2.0,3.0' and meta['rebnn_det.resize_scale'] == '1333,800'
    assert meta['rebnn_det.bgr_to_rgb'] == '1' and meta['rebnn_det.iou_threshold'] == '0.6'
    assert meta['rebnn_det.nms_max_num'] == '-1' and meta['rebnn_det.score_thr'] == '0.05'
    with pytest.raises(ValueError, match=r"written for FCOS-type detectors.*post-processing is 'faster_rcnn'"):
        aoti_metadata(dict(type='faster_rcnn'), pre)
    with pytest.raises(ValueError, match='needs sigmoid class scores and a class-aware NMS config'):
        aoti_metadata(dict(fcos, test_cfg=dict(fcos['test_cfg'], nms=dict(fcos['test_cfg']['nms'],
                                                                          class_agnostic=True))), pre)
    with pytest.raises(ValueError, match=r'nms_pre x levels < split_thr \(6000 x 2, 10000\)'):
        aoti_metadata(dict(fcos, test_cfg=dict(fcos['test_cfg'], nms_pre=6000)), pre)
