"""Checkpoints are data: a torch file that would run code while it is unpickled is refused (and nothing runs);
torch files that are not checkpoints are a clear error on every path (load, test, resume); tools/test.py and export
check that a checkpoint fits the config unless --allow-partial."""
import copy
import os
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.runner.checkpoint import CheckpointLoader

from rebnn_det.apis import resolve_resume
from rebnn_det.apis import run as run_tool
from rebnn_det.apis import test_config as tool_test_config
from rebnn_det.deploy import export_binary
from rebnn_det.engine import CheckpointMismatchError, CheckpointReadError, check_resumable
from tests.helpers import clear_visualizers


class RunsCode:
    """Unpickling this calls os.system: what a malicious checkpoint does."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return os.system, (f'touch {self.path}', )


def test_checkpoint_that_would_run_code_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / 'PWNED'
    path = tmp_path / 'evil.pth'
    torch.save(dict(state_dict=dict(w=torch.ones(1)), meta=dict(payload=RunsCode(marker))), path)
    with pytest.raises(CheckpointReadError, match=rf"checkpoint '{path}' was not loaded: it holds objects that are "
                                                  r'not plain data \(posix\.system\)\. Checkpoints are read as data '
                                                  r'only'):
        CheckpointLoader.load_checkpoint(str(path))
    assert not marker.exists()


def test_mmengine_data_in_checkpoints_loads(tmp_path):
    from mmengine.logging import HistoryBuffer
    buffer = HistoryBuffer()
    buffer.update(0.5)
    path = tmp_path / 'ok.pth'
    torch.save(dict(state_dict=dict(w=torch.ones(1)), message_hub=dict(log_scalars={'train/loss': buffer}),
                    meta=dict(seed=np.int64(3), arr=np.arange(3, dtype=np.float32), dt=np.dtype('float64'),
                              rng=np.random.RandomState(0).get_state())), path)
    ckpt = CheckpointLoader.load_checkpoint(str(path))
    assert ckpt['message_hub']['log_scalars']['train/loss'].current() == 0.5
    assert ckpt['meta']['seed'] == 3 and ckpt['meta']['arr'].tolist() == [0, 1, 2]
    assert ckpt['meta']['rng'][1].tolist() == np.random.RandomState(0).get_state()[1].tolist()


@pytest.mark.parametrize('obj, message', [
    ({'a': 1}, r"is not a checkpoint: the torch file holds a dict without a 'state_dict' of tensors \(its keys: "
               r"\['a'\]\)"),
    ([torch.ones(1)], r'is not a checkpoint: the torch file holds a list; a checkpoint is a dict'),
    ({'state_dict': {}}, r"is not a checkpoint: the torch file holds a dict without a 'state_dict' of tensors"),
    ({'state_dict': {'w': 1.0}}, r"is not a checkpoint: the torch file holds a dict without a 'state_dict'"),
])
def test_torch_file_that_is_not_a_checkpoint(tmp_path, obj, message):
    path = tmp_path / 'f.pth'
    torch.save(obj, path)
    with pytest.raises(CheckpointReadError, match=rf"'{path}' {message}"):
        CheckpointLoader.load_checkpoint(str(path))


def test_bare_state_dict_is_a_checkpoint(tmp_path):
    path = tmp_path / 'sd.pth'
    torch.save({'w': torch.ones(2)}, path)
    assert torch.equal(CheckpointLoader.load_checkpoint(str(path))['w'], torch.ones(2))


@pytest.fixture(scope='module')
def cfg_file(tiny_trained_detector, tmp_path_factory):
    path = str(tmp_path_factory.mktemp('ckpt_trust') / 'tiny.py')
    tiny_trained_detector.cfg.dump(path)
    return path


@pytest.mark.parametrize('obj', [{'a': 1}, [1, 2]], ids=['dict', 'list'])
def test_tools_test_and_resume_refuse_a_non_checkpoint(cfg_file, tmp_path, obj):
    path = str(tmp_path / 'f.pth')
    torch.save(obj, path)
    with pytest.raises(CheckpointReadError, match='is not a checkpoint'):
        run_tool(tool_test_config([cfg_file, path, '--work-dir', str(tmp_path / 'w')]), mode='test')
    cfg = copy.deepcopy(tool_test_config([cfg_file, path, '--work-dir', str(tmp_path / 'w')]))
    with pytest.raises(CheckpointReadError, match='is not a checkpoint'):
        resolve_resume(path, cfg)


def test_resume_needs_a_training_checkpoint(tiny_trained_detector, tmp_path):
    weights = tmp_path / 'weights.pth'
    torch.save(dict(state_dict=dict(w=torch.ones(1)), meta=dict(epoch=1)), weights)
    with pytest.raises(CheckpointReadError, match=rf"--resume '{weights}': not a checkpoint a training run can "
                                                  r'continue from: it lacks optimizer, message_hub .* set '
                                                  rf"load_from='{weights}' instead of --resume"):
        check_resumable(str(weights))
    check_resumable(tiny_trained_detector.checkpoint)  # what training saved


def test_tools_test_refuses_a_checkpoint_of_another_config_unless_allow_partial(tiny_trained_detector, cfg_file,
                                                                                 tmp_path):
    wider = copy.deepcopy(tiny_trained_detector.cfg)
    wider.model.roi_head.bbox_head.num_classes = 3
    path = str(tmp_path / 'other.py')
    wider.dump(path)
    args = [path, tiny_trained_detector.checkpoint, '--work-dir', str(tmp_path / 'w')]
    with pytest.raises(CheckpointMismatchError, match=r"(?s)does not fit the model built from the config: .*size "
                                                      r'mismatch for roi_head\.bbox_head\.fc_cls\.weight.* pass '
                                                      r'--allow-partial'):
        run_tool(tool_test_config(args), mode='test')
    from rebnn_det.apis.cli import build_runner
    clear_visualizers()
    metrics = build_runner(tool_test_config(args + ['--allow-partial']), mode='test').test()
    assert 'coco/bbox_mAP' in metrics


def test_export_refuses_a_checkpoint_of_another_config_unless_allow_partial(tiny_trained_detector, tmp_path):
    other = copy.deepcopy(tiny_trained_detector.cfg)
    other.model.roi_head.bbox_head.num_classes = 3
    out = str(tmp_path / 'o.packed.pth')
    with pytest.raises(ValueError, match=r'(?s)does not fit config .*size mismatch for roi_head.*--allow-partial'):
        export_binary(other, tiny_trained_detector.checkpoint, out)
    assert not osp.exists(out)
    export_binary(other, tiny_trained_detector.checkpoint, out, allow_partial=True)
    assert osp.isfile(out)
