"""tools/export_pt2.py: the trained tiny Faster R-CNN exported to a .pt2, run in a fresh process where mmdet, mmcv
and mmengine cannot be imported, gives the raw outputs and the detections of ``tools/test.py --deploy`` on the
embedded val images; and a .pt2 is data: what is not a rebnn_det archive is refused before anything runs."""
import copy
import json
import os.path as osp
import pickle
import subprocess
import sys
import zipfile

import pytest
import torch

from rebnn_det.apis import run as run_tool
from rebnn_det.apis import test_config as tool_test_config
from rebnn_det.deploy import kernels
from rebnn_det.deploy.pt2_runtime import META_FILE, Pt2FileError, load_pt2
from tests.helpers import clear_visualizers

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
pytestmark = pytest.mark.skipif(not kernels.extension_available(), reason='needs the compiled kernels')

# runs the .pt2 with mmdet / mmcv / mmengine unimportable (and checks none was imported)
RUN_WITHOUT_MMDET = '''
import importlib.abc, sys
BLOCKED = ('mmdet', 'mmcv', 'mmengine')
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in BLOCKED:
            raise ImportError(f'{name} is made unimportable by this test')
sys.meta_path.insert(0, Block())
import torch
from rebnn_det.deploy.pt2_runtime import load_pt2
pt2, images_file, out_file = sys.argv[1:4]
detector = load_pt2(pt2)
images = torch.load(images_file, weights_only=True)
results = []
with torch.no_grad():
    for image in images:
        inputs, img_meta = detector.preprocess(image)
        raw = detector.raw(inputs)
        results.append(dict(inputs=inputs, raw=raw, det=detector.predict(inputs, img_meta)))
torch.save(results, out_file)
loaded = sorted(m for m in sys.modules if m.split('.')[0] in BLOCKED)
assert not loaded, loaded
print('ran without', ', '.join(BLOCKED))
'''


@pytest.fixture(scope='module')
def exported(tiny_trained_detector, tmp_path_factory):
    """(config file, checkpoint, .pt2 written by tools/export_pt2.py)."""
    tmp = tmp_path_factory.mktemp('pt2')
    cfg_file = str(tmp / 'tiny.py')
    tiny_trained_detector.cfg.dump(cfg_file)
    out = str(tmp / 'tiny.pt2')
    res = subprocess.run([sys.executable, 'tools/export_pt2.py', cfg_file, tiny_trained_detector.checkpoint, out,
                          '--shape', '96', '96'], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.startswith(f'wrote {out} (')
    return cfg_file, tiny_trained_detector.checkpoint, out


def _val_images(cfg_file):
    """The val images as the test pipeline loads them (uint8 BGR [H, W, 3], before its resize), and their ids."""
    import mmcv
    from mmengine.config import Config
    from mmdet.registry import DATASETS
    cfg = Config.fromfile(cfg_file)
    dataset = DATASETS.build(copy.deepcopy(cfg.test_dataloader.dataset))
    infos = [dataset.get_data_info(i) for i in range(len(dataset))]
    return [torch.from_numpy(mmcv.imread(info['img_path'])) for info in infos], [info['img_id'] for info in infos]


def test_pt2_without_mmdet_equals_tools_test_deploy(exported, tmp_path):
    cfg_file, checkpoint, pt2 = exported
    dump = str(tmp_path / 'dets.pkl')
    clear_visualizers()
    run_tool(tool_test_config([cfg_file, checkpoint, '--deploy', '--work-dir', str(tmp_path / 'work'), '--out', dump,
                               '--cfg-options', 'test_dataloader.batch_size=1']), mode='test')
    with open(dump, 'rb') as f:
        expected = {r['img_id']: r['pred_instances'] for r in pickle.load(f)}
    images, ids = _val_images(cfg_file)
    torch.save(images, str(tmp_path / 'images.pt'))
    res = subprocess.run([sys.executable, '-c', RUN_WITHOUT_MMDET, pt2, str(tmp_path / 'images.pt'),
                          str(tmp_path / 'out.pt')], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.strip().endswith('ran without mmdet, mmcv, mmengine')
    results = torch.load(str(tmp_path / 'out.pt'), weights_only=True)
    assert len(results) == len(ids) == 16
    assert sum(len(expected[i]['labels']) for i in ids) > 0
    for img_id, got in zip(ids, results):
        for key in ('bboxes', 'scores', 'labels'):
            assert torch.equal(got['det'][key], expected[img_id][key]), (img_id, key)
    _raw_outputs_equal_deploy_mode(cfg_file, checkpoint, images[0], results[0])


def _raw_outputs_equal_deploy_mode(cfg_file, checkpoint, image, got):
    """The subprocess's preprocessed input and raw outputs equal the deploy-mode model's on mmdet's own
    preprocessing of the same image."""
    from mmengine.runner import load_checkpoint

    from rebnn_det.deploy.convert import convert_to_deploy
    from rebnn_det.deploy.export import build_detector
    from rebnn_det.deploy.pt2_export import NetworkOutputs
    model = build_detector(cfg_file)
    load_checkpoint(model, checkpoint, map_location='cpu', logger='silent')
    model = convert_to_deploy(model)
    data = model.data_preprocessor(dict(inputs=[image.permute(2, 0, 1).contiguous()], data_samples=None), False)
    assert torch.equal(got['inputs'], data['inputs'])
    with torch.no_grad():
        outs = NetworkOutputs(model)(data['inputs'])
    flat = got['raw']['features'] + got['raw']['cls_scores'] + got['raw']['bbox_preds']
    assert len(flat) == len(outs) == 5 + 5 + 5  # 5 FPN levels (the RoI stage reads 4), RPN scores, RPN boxes
    for a, b in zip(flat, outs):
        assert torch.equal(a, b)


def test_archive_holds_packed_weights_and_plain_metadata(exported):
    _, _, pt2 = exported
    with zipfile.ZipFile(pt2) as z:
        names = z.namelist()
        sizes = {i.filename: i.file_size for i in z.infolist()}
        meta_name = next(n for n in names if n.endswith('extra/' + META_FILE))
        meta = json.loads(z.read(meta_name))
    assert meta['format'] == 'rebnn_det.pt2' and meta['version'] == 1 and meta['postprocess']['type'] == 'faster_rcnn'
    assert meta['outputs'] == dict(features=5, levels=5, head=['cls_scores', 'bbox_preds'], roi_features=4)
    assert meta['preprocess']['resize'] == dict(scale=[96, 96], keep_ratio=True) and meta['dynamic']
    assert all(z_size == 0 for n, z_size in sizes.items() if '/sample_inputs/' in n)  # no pickled example inputs
    assert {n.split('/')[0] for n in names} == {'tiny'}  # the root folder is named after the file
    detector = load_pt2(pt2)
    buffers = dict(detector.programs['network'].named_buffers())
    packed = {k: v for k, v in buffers.items() if k.endswith('kernel_weight')}
    assert len(packed) == 16 + 8 and all(v.dtype == torch.int64 for v in packed.values())
    assert not any(k.endswith('packed_weight') for k in buffers)  # the signs are stored once
    # the float convolutions that remain
    params = dict(detector.programs['network'].named_parameters())
    real_convs = sorted(k for k, v in params.items() if k.endswith('.weight') and v.dim() == 4)
    assert real_convs == ['backbone.conv1.weight', 'backbone.layer2.0.downsample.1.weight',
                          'backbone.layer3.0.downsample.1.weight', 'backbone.layer4.0.downsample.1.weight',
                          'head.rpn_cls.weight', 'head.rpn_conv.weight',  # the tiny config keeps a real RPN conv
                          'head.rpn_reg.weight']
    assert not any(k.startswith('roi_head') for k in buffers) and not any(k.startswith('roi_head') for k in params)


def _rewrite(src, dst, change, entry='extra/' + META_FILE, add=None, more=None):
    """Copy the archive ``src`` to ``dst`` with ``change(bytes)`` applied to ``entry`` (None: dropped), the
    ``more`` ``{entry: change}`` too, and ``add`` ``{entry: bytes}`` written in."""
    changes = {entry: change, **(more or {})}
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, 'w') as zout:
        root = zin.namelist()[0].split('/')[0]
        for item in zin.infolist():
            data = zin.read(item.filename)
            name = item.filename[len(root) + 1:]
            if name in changes:
                data = changes[name](data)
                if data is None:
                    continue
            zout.writestr(item, data)
        for name, data in (add or {}).items():
            zout.writestr(f'{root}/{name}', data)
    return dst


def _edit_json(change):
    def edit(data):
        obj = json.loads(data)
        change(obj)
        return json.dumps(obj).encode()
    return edit


def _set_first(key, value):
    """Replace the first ``key`` found in a JSON tree by ``value``."""
    def change(obj):
        stack = [obj]
        while stack:
            node = stack.pop()
            if isinstance(node, dict):
                if key in node:
                    node[key] = value
                    return
                stack.extend(node.values())
            elif isinstance(node, list):
                stack.extend(node)
        raise AssertionError(f'no {key!r} in the JSON')
    return change


@pytest.mark.parametrize('change, message', [
    (lambda data: None, r"has no extra/rebnn_det\.json: not exported by tools/export_pt2\.py"),
    (lambda data: b'{not json', r"extra/rebnn_det\.json is not valid JSON"),
    (lambda data: data.replace(b'"rebnn_det.pt2"', b'"other"'), r"lacks the 'rebnn_det\.pt2' format marker"),
    (lambda data: data.replace(b'"version": 1', b'"version": 7'),
     r"has format version 7; this rebnn_det reads version 1"),
    (lambda data: data.replace(b'"faster_rcnn"', b'"fcos"'),
     r"unexpected entry '.*roi.*' \(a rebnn_det \.pt2 holds the programs \['network'\]"),
    (lambda data: data.replace(b'"outputs":', b'"outputz":'), r"extra/rebnn_det\.json has no 'outputs' dict"),
])
def test_a_file_that_is_not_a_good_archive_is_refused(exported, tmp_path, change, message):
    bad = _rewrite(exported[2], str(tmp_path / 'bad.pt2'), change)
    with pytest.raises(Pt2FileError, match=message):
        load_pt2(bad)


def test_not_a_zip_and_missing_file(tmp_path):
    path = tmp_path / 'x.pt2'
    path.write_bytes(b'not a zip')
    with pytest.raises(Pt2FileError, match=r"is not a \.pt2 archive \(not a zip file\)"):
        load_pt2(str(path))
    with pytest.raises(FileNotFoundError, match=r"\.pt2 file .*nope\.pt2' does not exist"):
        load_pt2(str(tmp_path / 'nope.pt2'))


def _guard_that_touches(marker):
    return f"L['inputs'].size()[2] > 0 and __import__('pathlib').Path({str(marker)!r}).touch() is None"


def test_torch_executes_a_tampered_guard_and_load_pt2_refuses_it(exported, tmp_path):
    """The threat is real: torch's own reader ``exec``-s a program's guard code when the program runs. The
    same file is refused by load_pt2 before torch reads it, and the code never runs."""
    from torch.export.pt2_archive._package import load_pt2 as load_archive
    from torch._export.serde.serialize import serialize_torch_artifact
    marker = tmp_path / 'pwned'
    example = serialize_torch_artifact(((torch.zeros(1, 3, 96, 96), ), {}))  # torch runs guards given examples
    bad = _rewrite(exported[2], str(tmp_path / 'bad.pt2'),
                   _edit_json(lambda m: m['guards_code'].append(_guard_that_touches(marker))),
                   entry='models/network.json', more={'data/sample_inputs/network.pt': lambda data: example})
    with pytest.raises(Pt2FileError, match=r"program 'network': guard \"L\['inputs'\]\.size\(\)\[2\] > 0 and "
                                           r"__import__.*which is not a shape comparison"):
        load_pt2(bad)
    assert not marker.exists()
    network = load_archive(bad).exported_programs['network'].module()
    network(torch.zeros(1, 3, 96, 96))
    assert marker.exists()


@pytest.mark.parametrize('entry, change, add, message', [
    ('models/network.json', _edit_json(_set_first('expr_str', "().__class__.__base__.__subclasses__()")), None,
     r"symbolic size '\(\)\.__class__.*is not sympy integer arithmetic"),
    ('models/network.json', _edit_json(_set_first('expr_str', "Mul(Integer(2), Symbol('s35', evaluate=True))")), None,
     r"symbolic size .*keyword\(arg='evaluate'.*is not sympy integer arithmetic"),
    ('models/network.json', _edit_json(_set_first('target', 'builtins.eval')), None,
     r"program 'network' calls 'builtins\.eval'; a rebnn_det \.pt2 calls only aten, prims, rebnn operators"),
    ('models/network.json', _edit_json(_set_first('target', '_operator.call')), None, r"calls '_operator\.call'"),
    ('models/network.json', _edit_json(_set_first('target', 'torch.ops.aten.conv2d.__call__.__globals__')), None,
     r"calls 'torch\.ops\.aten\.conv2d\.__call__\.__globals__'"),
    ('models/network.json', _edit_json(_set_first('custom_obj_values', {'x': {}})), None,
     r"holds custom objects \(\['x'\]\); a rebnn_det \.pt2 holds none"),
    ('models/network.json',  # a key that would break out of the message string torch writes around the guard
     _edit_json(lambda m: m['guards_code'].append('''L['x" + str(__import__("os")) + "'].size()[0] > 0''')),
     None, r"guard .* which is not a shape comparison"),
    ('data/weights/network_weights_config.json', _edit_json(_set_first('use_pickle', True)), None,
     r"network weights entry '[a-z0-9_.]+' is stored pickled \(a \.pt2 loaded by rebnn_det holds raw "
     r"tensor payloads only\)"),
    ('data/constants/network_constants_config.json',
     _edit_json(lambda c: c['config'].update(x=dict(path_name='opaque_obj_0', use_pickle=False))), None,
     r"network constants entry 'x' points at 'opaque_obj_0', not a tensor_<n> tensor payload"),
    ('data/sample_inputs/network.pt', lambda data: b'pickled', None,
     r"data/sample_inputs/network\.pt is not empty"),
    ('models/roi.json', lambda data: None, None, r"holds programs \['network'\]; expected \['network', 'roi'\]"),
    ('archive_version', lambda data: data, {'data/aotinductor/model.so': b'ELF'},
     r"unexpected entry 'data/aotinductor/model\.so'"),
])
def test_a_tampered_archive_is_refused_before_torch_reads_it(exported, tmp_path, entry, change, add, message):
    bad = _rewrite(exported[2], str(tmp_path / 'bad.pt2'), change, entry=entry, add=add)
    with pytest.raises(Pt2FileError, match=message):
        load_pt2(bad)


def test_sympy_and_guard_grammar_accepts_what_torch_writes():
    from rebnn_det.deploy.pt2_checks import check_guard, check_sym_expr
    check_sym_expr('x', "Add(FloorDiv(Add(Mul(Integer(32), Symbol('s35', positive=True, integer=True)), "
                        "Integer(-1)), Integer(64)), Integer(1))")
    check_sym_expr('x', 's35 + 2*s38 - 1')
    check_guard('x', "2*(((-1) + L['inputs'].size()[2]) // 8) < 1 + (((-1) + L['inputs'].size()[2]) // 4)",
                ['inputs'])
    check_guard('x', "math.floor(L['inputs'].size()[3] / 2) == torch.sym_max(L['inputs'].size()[3], 2)", ['inputs'])
    for bad in ("L['other'].size()[2] > 0", "L['inputs'].size(0) > 0", "L['inputs'].data_ptr() > 0",
                "L['inputs'].size()[2] > open('x')", "torch.load('x')", "math.__dict__"):
        with pytest.raises(Pt2FileError, match='which is not a shape comparison'):
            check_guard('x', bad, ['inputs'])


def test_a_graph_calling_another_operator_is_refused(tmp_path):
    """Only aten / prims / rebnn operators run: an archive whose graph calls anything else is refused."""
    from torch.export import export
    from torch.export.pt2_archive._package import package_pt2

    from rebnn_det.deploy.pt2_runtime import FORMAT, FORMAT_VERSION

    @torch.library.custom_op('rebnn_test_other::double', mutates_args=())
    def double(x: torch.Tensor) -> torch.Tensor:
        return x * 2

    @double.register_fake
    def _(x):
        return torch.empty_like(x)

    class Net(torch.nn.Module):
        def forward(self, x):
            return double(x)

    meta = dict(format=FORMAT, version=FORMAT_VERSION, input_shape=[4, 4], preprocess={}, outputs={},
                postprocess=dict(type='fcos'))
    path = str(tmp_path / 'other.pt2')
    package_pt2(path, exported_programs={'network': export(Net(), (torch.ones(1, 4), ))},
                extra_files={META_FILE: json.dumps(meta)})
    with pytest.raises(Pt2FileError, match=r"program 'network' calls 'torch\.ops\.rebnn_test_other\.double\.default'; "
                                           r"a rebnn_det \.pt2 calls only aten, prims, rebnn operators"):
        load_pt2(path)


def test_export_refuses_an_existing_output_and_a_bad_shape(exported, tmp_path):
    from rebnn_det.deploy.pt2_export import export_pt2
    cfg_file, checkpoint, pt2 = exported
    with pytest.raises(FileExistsError, match=r"tiny\.pt2' already exists; pass force=True \(--force\)"):
        export_pt2(cfg_file, checkpoint, pt2)
    with pytest.raises(ValueError, match=r"input_shape \(100, 96\) must be a multiple of the size divisor 32"):
        export_pt2(cfg_file, checkpoint, str(tmp_path / 'a.pt2'), (100, 96))
    with pytest.raises(ValueError, match=r"a dynamic export needs input_shape >= 96 px per side"):
        export_pt2(cfg_file, checkpoint, str(tmp_path / 'b.pt2'), (64, 96))
    assert not osp.exists(tmp_path / 'a.pt2') and not osp.exists(tmp_path / 'b.pt2')


def test_a_test_pipeline_the_runtime_does_not_reproduce_is_refused(tiny_trained_detector):
    import copy

    from rebnn_det.deploy.pt2_export import _preprocess_meta
    cfg = copy.deepcopy(tiny_trained_detector.cfg)
    model = type('Detector', (), {'data_preprocessor': None})()
    pipeline = cfg.test_dataloader.dataset.pipeline
    pipeline.insert(1, dict(type='RandomFlip', prob=0.5))
    with pytest.raises(ValueError, match=r"test pipeline step 'RandomFlip' is not reproduced by the \.pt2 runtime; "
                                         r"supported: \['LoadImageFromFile', 'LoadAnnotations', 'PackDetInputs', "
                                         r"'Resize'\]"):
        _preprocess_meta(cfg, model)
    pipeline.pop(1)
    next(s for s in pipeline if s['type'] == 'Resize')['interpolation'] = 'nearest'
    with pytest.raises(ValueError, match=r"reproduces Resize\(scale, keep_ratio\) only"):
        _preprocess_meta(cfg, model)
