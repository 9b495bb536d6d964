"""A packed file is data: nothing in it is executed on load, and every reader -- ``load_packed``, mmengine's
``load_from`` (rebnn_det's checkpoint loader), ``tools/test.py`` plain and ``--deploy`` -- refuses a tampered or
mismatched file with the same error."""
import copy
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.runner.checkpoint import CheckpointLoader

from rebnn_det.apis import run as run_tool
from rebnn_det.apis import test_config as tool_test_config
from rebnn_det.deploy import PackedFileError, export_binary, load_packed
from rebnn_det.deploy.embedded_config import ConfigDataError, check_config_names, config_from_text
from rebnn_det.deploy.packed_file import read_packed_file
from tests.helpers import clear_visualizers

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


@pytest.fixture(scope='module')
def packed(tiny_trained_detector, tmp_path_factory):
    out = str(tmp_path_factory.mktemp('trust') / 'tiny.packed.pth')
    export_binary(tiny_trained_detector.cfg, tiny_trained_detector.checkpoint, out)
    return out


@pytest.fixture(scope='module')
def cfg_file(tiny_trained_detector, tmp_path_factory):
    path = str(tmp_path_factory.mktemp('trust_cfg') / 'tiny.py')
    tiny_trained_detector.cfg.dump(path)
    return path


def _tampered(packed, tmp_path, name, change):
    payload = torch.load(packed, weights_only=True)
    change(payload)
    out = str(tmp_path / name)
    torch.save(payload, out)
    return out


def _as_version_1(payload):
    """What today's main wrote before format version 2: the config as mmengine's Python text."""
    payload['format_version'] = 1
    payload['config'] = Config(payload['config']).pretty_text


def test_config_is_stored_as_data(packed):
    payload = torch.load(packed, weights_only=True)
    assert payload['format_version'] == 2 and isinstance(payload['config'], dict)
    assert payload['config']['model']['type'] == 'FasterRCNN'


def test_version_1_file_still_loads_identically(packed, tmp_path):
    v1 = _tampered(packed, tmp_path, 'v1.pth', _as_version_1)
    a, b = load_packed(packed), load_packed(v1)
    assert read_packed_file(v1)['config']['model'] == read_packed_file(packed)['config']['model']
    for (k, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(x, y), k


def test_code_in_a_version_1_config_is_refused_and_never_runs(packed, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    def inject(payload):
        _as_version_1(payload)
        payload['config'] = "_x = __import__('os').system('touch PWNED')\n" + payload['config']
    evil = _tampered(packed, tmp_path, 'evil.pth', inject)
    message = (r"evil\.pth: its embedded config has a call to \"__import__\('os'\)\.system\" at line 1 .*"
               r'nothing in a packed file is executed\); the file was not loaded\. Files of format version 1 stored '
               r'the config as Python text; re-export it with tools/export_binary\.py')
    with pytest.raises(PackedFileError, match=message):
        load_packed(evil)
    with pytest.raises(PackedFileError, match=message):
        CheckpointLoader.load_checkpoint(evil)  # mmengine's load_from / tools/test.py read it this way
    assert not (tmp_path / 'PWNED').exists()


@pytest.mark.parametrize('text, what', [
    ('import os\nmodel = dict()', 'has a Import statement at line 1'),
    ('model = dict(type=os.system)', "has the expression 'os.system' at line 1"),
    ('model = dict(**other)', "a call to 'dict' at line 1"),
    ('model = [x for x in ()]', 'has the expression'),
    ('model = (lambda: 0)()', 'a call to'),
    ('model = dict(a=1 + 2)', "the expression '1 + 2'"),
    ('model = dict(', 'not valid Python syntax'),
])
def test_text_reader_takes_literals_only(text, what):
    with pytest.raises(ConfigDataError, match=what.replace('(', r'\(').replace(')', r'\)').replace('+', r'\+')):
        config_from_text(text)


def test_text_reader_reads_what_pretty_text_writes():
    cfg = Config.fromfile(osp.join(ROOT, 'configs', 'rebnn_mask_rcnn.py'))
    assert config_from_text(cfg.pretty_text) == Config.fromstring(cfg.pretty_text, '.py').to_dict()
    assert config_from_text("a = -1.5\nb = (1, 'x', None, True)\nc = {'k': [dict(t=+2)]}") == dict(
        a=-1.5, b=(1, 'x', None, True), c={'k': [dict(t=2)]})


@pytest.mark.parametrize('where, entry, message', [
    (('model', 'backbone'), dict(type='os.system', command='touch PWNED'),
     r"model\.backbone\.type='os\.system', which is not a component registered"),
    (('model', 'test_cfg', 'rcnn', 'nms'), dict(type="__import__('os').system('touch PWNED')"),
     r"model\.test_cfg\.rcnn\.nms\.type=\"__import__"),
    (('model', 'neck'), dict(type='evil.FPN'), r"model\.neck\.type='evil\.FPN'"),
    (('model', 'neck'), dict(type='FPN', _scope_='evil'), r"model\.neck\._scope_='evil', which is not a loaded "
                                                          r'registry scope'),
    (('model', 'neck'), dict(type=3), r"model\.neck\.type=3, not a component name"),
])
def test_names_that_would_import_or_evaluate_are_refused(packed, tmp_path, monkeypatch, where, entry, message):
    monkeypatch.chdir(tmp_path)

    def inject(payload):
        node = payload['config']
        for key in where[:-1]:
            node = node[key]
        node[where[-1]] = entry
    evil = _tampered(packed, tmp_path, 'evil.pth', inject)
    with pytest.raises(PackedFileError, match=message):
        load_packed(evil)
    with pytest.raises(PackedFileError, match=message):
        CheckpointLoader.load_checkpoint(evil)
    assert not (tmp_path / 'PWNED').exists()


def test_arguments_that_a_component_evaluates_take_documented_values_only():
    check_config_names(dict(model=dict(type='CameraMotionCompensation', warp_mode='cv2.MOTION_AFFINE')))
    with pytest.raises(ConfigDataError, match=r"model\.warp_mode=\"__import__\('os'\)\.getcwd\(\)\"; "
                                              r'CameraMotionCompensation evaluates it as Python'):
        check_config_names(dict(model=dict(type='CameraMotionCompensation', warp_mode="__import__('os').getcwd()")))


def test_default_scope_must_be_loaded():
    with pytest.raises(ConfigDataError, match=r"default_scope='evil', which is not a loaded registry scope "
                                              r"\(loaded: \[.*'mmdet'.*\]\)"):
        check_config_names(dict(default_scope='evil', model=dict(type='FasterRCNN')))
    check_config_names(dict(default_scope='mmdet', model=dict(type='mmdet.FasterRCNN', nms=dict(type='nms'))))


def _cut_bits(payload):
    name = next(iter(payload['binary_layers']))
    entry = payload['binary_layers'][name]
    entry['packed'] = entry['packed'][:-1].clone()


def _stride(payload):
    payload['binary_layers']['backbone.layer1.0.conv1']['layer']['stride'] = [2, 2]


def _binarizer(payload):
    payload['binary_layers']['backbone.layer1.0.conv1']['layer']['weight_binarizer'] = 'xnor'


def _extra_layer(payload):
    payload['binary_layers']['backbone.layer9.conv'] = copy.deepcopy(
        payload['binary_layers']['backbone.layer1.0.conv1'])


def _nan_alpha(payload):
    payload['binary_layers']['backbone.layer1.0.conv1']['alpha'][0] = float('nan')


def _bad_config(payload):
    _as_version_1(payload)
    payload['config'] = payload['config'][:len(payload['config']) // 2]


TAMPERED = [
    (_cut_bits, r"binary layer 'backbone\.layer1\.0\.conv1' holds packed bits \(15, 3, 3, 1\) and alpha \(16,\); "
                r'its own record needs \(16, 3, 3, 1\)'),
    (_stride, r"layer 'backbone\.layer1\.0\.conv1' has stride=\[2, 2\] in the file but \[1, 1\] in the config"),
    (_binarizer, r"layer 'backbone\.layer1\.0\.conv1' has weight_binarizer='xnor' in the file but 'rebnn'"),
    (_extra_layer, r"binary layer 'backbone\.layer9\.conv' of the file does not exist in the model"),
    (_nan_alpha, r"tensor 'backbone\.layer1\.0\.conv1\.alpha' holds NaN or infinite values"),
    (_bad_config, r'its embedded config is not valid Python syntax'),
]


@pytest.mark.parametrize('change, message', TAMPERED, ids=[c.__name__ for c, _ in TAMPERED])
def test_tampered_file_is_refused_by_every_reader(packed, cfg_file, tmp_path, change, message):
    bad = _tampered(packed, tmp_path, 'bad.pth', change)
    with pytest.raises(PackedFileError, match=message):
        load_packed(bad)
    with pytest.raises(PackedFileError, match=message):
        load_packed(bad, cfg=Config.fromfile(cfg_file))
    for extra in ([], ['--deploy']):
        clear_visualizers()  # one runner per process, as tools/test.py runs
        with pytest.raises(PackedFileError, match=message):
            run_tool(tool_test_config([cfg_file, bad, '--work-dir', str(tmp_path / 'work')] + extra), mode='test')


def test_file_of_another_config_is_refused_by_tools_test(packed, tiny_trained_detector, tmp_path):
    other = copy.deepcopy(tiny_trained_detector.cfg)
    other.model.rpn_head.type = 'BinaryRPNHead'  # the binary-RPN twin: a binary conv the file lacks
    path = str(tmp_path / 'other.py')
    other.dump(path)
    message = r'the config has binary layers the file lacks: rpn_head\.rpn_conv'
    for extra in ([], ['--deploy']):
        clear_visualizers()  # one runner per process, as tools/test.py runs
        with pytest.raises(PackedFileError, match=message):
            run_tool(tool_test_config([path, packed, '--work-dir', str(tmp_path / 'work')] + extra), mode='test')
    with pytest.raises(PackedFileError, match=message):
        load_packed(packed, cfg=other)


def test_tools_test_evaluates_a_good_packed_file_like_its_checkpoint(packed, cfg_file, tiny_trained_detector,
                                                                      tmp_path):
    from rebnn_det.apis.cli import build_runner
    metrics = []
    for i, ckpt in enumerate([tiny_trained_detector.checkpoint, packed, packed]):
        args = [cfg_file, ckpt, '--work-dir', str(tmp_path / str(i))] + (['--deploy'] if i == 2 else [])
        clear_visualizers()
        metrics.append(build_runner(tool_test_config(args), mode='test').test())
    assert metrics[0]['coco/bbox_mAP'] > 0 and metrics[0] == metrics[1] == metrics[2]
