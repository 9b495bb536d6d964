"""The checkpoint loader's pieces, each pinned by its exact behaviour: the getattr it allows while unpickling,
the wording of every refusal, --resume's checks, SafeCheckpointHook's defaults and deferred removals, and
CheckedLoadHook on a stand-in runner."""
import os
import pickle

import pytest
import torch
from mmengine.logging import HistoryBuffer

from rebnn_det import checkpoint_formats
from rebnn_det.engine import CheckedLoadHook, CheckpointMismatchError, CheckpointReadError, SafeCheckpointHook
from rebnn_det.engine import checkpoint as ck
from rebnn_det.engine.hooks import safe_checkpoint


@pytest.mark.parametrize('name', ['min', 'max', 'mean', 'current'])
def test_statistics_methods_are_the_only_getattr(name, monkeypatch):
    monkeypatch.setattr(HistoryBuffer, '_statistics_methods', {})  # a fresh process: nothing registered yet
    assert ck._statistics_method(HistoryBuffer, name) is getattr(HistoryBuffer, name)


def test_getattr_refusals_name_the_call(monkeypatch):
    monkeypatch.setattr(HistoryBuffer, '_statistics_methods', {})
    for owner, name in ((HistoryBuffer, '__init__'), (os, 'system'), (HistoryBuffer, 3)):
        with pytest.raises(pickle.UnpicklingError, match=r'^getattr\(.*\) is not allowed in a checkpoint \(only '
                                                         r'the statistics methods of mmengine\.logging\.'
                                                         r'HistoryBuffer\)$'):
            ck._statistics_method(owner, name)


def test_registered_statistics_method_is_allowed(monkeypatch):
    def p90(self):
        return 0.9
    monkeypatch.setattr(HistoryBuffer, '_statistics_methods', {'p90': p90})
    monkeypatch.setattr(HistoryBuffer, 'p90', p90, raising=False)
    assert ck._statistics_method(HistoryBuffer, 'p90') is p90


@pytest.mark.parametrize('text, reason', [
    ('Weights only load failed.\nWeightsUnpickler error: Unsupported global: GLOBAL posix.system was not an '
     'allowed global\n\nCheck the documentation', 'Unsupported global: GLOBAL posix.system was not an allowed global'),
    ('Weights only load failed.\nWeightsUnpickler error: \n\ngetattr(x) is not allowed\n', 'getattr(x) is not allowed'),
    ('  first line\nsecond', 'first line'),
    ('Weights only load failed. In PyTorch 2.6 ...\n\n\nTrying to load unsupported GLOBAL posix.system whose module '
     'posix is blocked.\n\nCheck the documentation of torch.load', 'Trying to load unsupported GLOBAL posix.system '
     'whose module posix is blocked.'),
    ('Weights only load failed.\n\nCheck the documentation', 'Weights only load failed.'),
    ('', 'UnpicklingError'),
    ('Weights only load failed.\n\n' + 'b' * 400, 'b' * 300),
    ('WeightsUnpickler error: ' + 'a' * 400, 'a' * 300),
])
def test_unpickler_reason(text, reason):
    assert ck._unpickler_reason(pickle.UnpicklingError(text)) == reason


def test_not_data_refusal_lists_the_unsafe_globals_only(tmp_path):
    path = tmp_path / 'f.pth'
    torch.save(dict(state_dict=dict(w=torch.ones(1)), b=os.getpid, a=os.getcwd, meta=dict(seed=torch.ones(1))), path)
    err = ck._not_data_error(str(path), pickle.UnpicklingError('WeightsUnpickler error: refused'))
    assert str(err) == (f"checkpoint '{path}' was not loaded: it holds objects that are not plain data (posix.getcwd, "
                        'posix.getpid). Checkpoints are read as data only (tensors, numbers, strings, containers, '
                        'numpy arrays, mmengine HistoryBuffers), so nothing in a file can run code while it is '
                        'loaded. If you wrote this file yourself, save its state dicts instead of the objects. '
                        '[refused]')


def test_not_data_refusal_without_unsafe_globals_or_an_unreadable_list(tmp_path):
    plain = tmp_path / 'plain.pth'
    torch.save(dict(w=torch.ones(1)), plain)
    noise = tmp_path / 'noise.bin'
    noise.write_bytes(b'not a zip')
    for path in (plain, noise):  # nothing to name / the names cannot be listed: the refusal without a list
        err = ck._not_data_error(str(path), pickle.UnpicklingError('WeightsUnpickler error: refused'))
        assert str(err).startswith(f"checkpoint '{path}' was not loaded: it holds objects that are not plain data. "
                                   'Checkpoints are read as data only')


def test_the_refusal_quotes_what_torch_refused(tmp_path):
    path = tmp_path / 'evil.pth'
    torch.save(dict(state_dict=dict(w=torch.ones(1)), x=os.system), path)
    with pytest.raises(CheckpointReadError) as err:
        ck.load_local_checkpoint(str(path))
    assert str(err.value).endswith('[Trying to load unsupported GLOBAL posix.system whose module posix is blocked.]')


def test_weights_only_is_explicit_even_where_the_environment_turns_it_off(tmp_path, monkeypatch):
    monkeypatch.setenv('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', '1')  # torch's switch for calls that leave it unset
    path = tmp_path / 'evil.pth'
    torch.save(dict(state_dict=dict(w=torch.ones(1)), x=os.getcwd), path)
    with pytest.raises(CheckpointReadError, match=r'not plain data \(posix\.getcwd\)'):
        ck.load_local_checkpoint(str(path))


def test_describe_truncated_text():
    msg = ck._describe(__file__, RuntimeError('the archive is truncated'))
    assert 'it is truncated.' in msg and msg.endswith('[RuntimeError: the archive is truncated]')


@pytest.mark.parametrize('keys, listed', [(6, "['k0', 'k1', 'k2', 'k3', 'k4', 'k5'])"),
                                          (7, "['k0', 'k1', 'k2', 'k3', 'k4', 'k5'] ...)")])
def test_not_a_checkpoint_lists_at_most_six_keys(keys, listed):
    with pytest.raises(CheckpointReadError) as err:
        ck.check_checkpoint({f'k{i}': i for i in range(keys)}, 'f.pth')
    assert str(err.value) == ("'f.pth' is not a checkpoint: the torch file holds a dict without a 'state_dict' of "
                              f'tensors (its keys: {listed}')


def _ckpt(path, **entries):
    full = dict(meta=dict(epoch=2, iter=8), state_dict=dict(w=torch.ones(1)), optimizer={}, message_hub={})
    full.update(entries)
    torch.save({k: v for k, v in full.items() if v is not None}, path)
    return str(path)


@pytest.mark.parametrize('entries, lacks', [
    (dict(optimizer=None, message_hub=None), 'optimizer, message_hub'),
    (dict(meta=None), 'meta'),
    (dict(meta=dict(epoch=2)), "meta['epoch'] / meta['iter']"),
    (dict(meta=dict(iter=8)), "meta['epoch'] / meta['iter']"),
    (dict(meta=[2, 8]), "meta['epoch'] / meta['iter']"),
])
def test_check_resumable_names_what_is_missing(tmp_path, entries, lacks):
    path = _ckpt(tmp_path / 'c.pth', **entries)
    with pytest.raises(CheckpointReadError) as err:
        ck.check_resumable(path)
    assert str(err.value) == (f"--resume '{path}': not a checkpoint a training run can continue from: it lacks "
                              f'{lacks} (a checkpoint saved during training has meta, state_dict, optimizer, '
                              f"message_hub). To start a new run from its weights, set load_from='{path}' instead "
                              'of --resume.')


def test_check_resumable_accepts_a_training_checkpoint(tmp_path):
    assert ck.check_resumable(_ckpt(tmp_path / 'c.pth')) is None


def test_last_checkpoint_naming_a_missing_file(tmp_path):
    (tmp_path / 'last_checkpoint').write_text('/nowhere/epoch_3.pth')
    with pytest.raises(FileNotFoundError) as err:
        ck.latest_checkpoint(str(tmp_path))
    assert str(err.value) == (f"the last_checkpoint file of '{tmp_path}' names '/nowhere/epoch_3.pth', which does "
                              'not exist (moved or deleted); pass the checkpoint file to resume from')


@pytest.mark.parametrize('kwargs, backend', [
    (dict(), dict(backend='rebnn_atomic_local')),
    (dict(out_dir='/tmp/ckpts'), dict(backend='rebnn_atomic_local')),
    (dict(out_dir='s3://bucket/ckpts'), None),
    (dict(backend_args=dict(backend='local')), dict(backend='local')),
])
def test_safe_checkpoint_hook_writes_atomically_by_default(kwargs, backend):
    hook = SafeCheckpointHook(3, max_keep_ckpts=2, **kwargs)
    assert hook.backend_args == backend and hook.interval == 3 and hook.max_keep_ckpts == 2
    assert hook.out_dir == kwargs.get('out_dir')


def test_safe_checkpoint_hook_keeps_file_client_args():
    hook = SafeCheckpointHook(file_client_args=dict(backend='disk'))
    assert hook.backend_args is None and hook.file_client_args == dict(backend='disk')


def test_atomic_backend_creates_the_folder_and_writes_bytes_and_text(tmp_path):
    backend = safe_checkpoint.AtomicLocalBackend()
    backend.put(b'\x00\x01', str(tmp_path / 'new' / 'a.bin'))
    backend.put_text('αβ', tmp_path / 'b.txt')
    assert (tmp_path / 'new' / 'a.bin').read_bytes() == b'\x00\x01'
    assert (tmp_path / 'b.txt').read_bytes() == 'αβ'.encode('utf-8')
    assert sorted(os.listdir(tmp_path)) == ['b.txt', 'new']


def test_atomic_backend_writes_a_bare_file_name_into_the_current_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    safe_checkpoint.AtomicLocalBackend().put(b'x', 'c.pth')
    assert os.listdir(tmp_path) == ['c.pth']  # no other folder made


@pytest.mark.parametrize('fails', [False, True])
def test_best_checkpoint_removal_waits_for_the_new_one(tmp_path, monkeypatch, fails):
    from mmengine.hooks import CheckpointHook
    (tmp_path / 'best_old.pth').write_bytes(b'1')
    calls = []

    def save_best(self, runner, metrics):  # mmengine's order: remove the previous best, then save the new one
        self.file_backend.remove(str(tmp_path / 'best_old.pth'))
        calls.append((runner, metrics, os.listdir(tmp_path)))
        if fails:
            raise OSError('disk full')
    monkeypatch.setattr(CheckpointHook, '_save_best_checkpoint', save_best)
    hook = SafeCheckpointHook()
    hook.file_backend = safe_checkpoint.AtomicLocalBackend()
    if fails:
        with pytest.raises(OSError, match='disk full'):
            hook._save_best_checkpoint('runner', {'coco/bbox_mAP': 0.5})
    else:
        hook._save_best_checkpoint('runner', {'coco/bbox_mAP': 0.5})
    assert calls == [('runner', {'coco/bbox_mAP': 0.5}, ['best_old.pth'])]  # still there during the save
    assert os.listdir(tmp_path) == (['best_old.pth'] if fails else [])  # removed only after a complete save
    assert isinstance(hook.file_backend, safe_checkpoint.AtomicLocalBackend)


def test_removals_wait_for_run(tmp_path):
    (tmp_path / 'old.pth').write_bytes(b'1')
    (tmp_path / 'old_dir').mkdir()
    deferred = safe_checkpoint._RemovalsAfterSave(safe_checkpoint.AtomicLocalBackend())
    deferred.remove(str(tmp_path / 'old.pth'))
    deferred.rmtree(str(tmp_path / 'old_dir'))
    assert deferred.isfile(str(tmp_path / 'old.pth')) and sorted(os.listdir(tmp_path)) == ['old.pth', 'old_dir']
    deferred.run()
    assert os.listdir(tmp_path) == [] and deferred.pending == []


class _Logger:
    def __init__(self):
        self.lines = []

    def info(self, line):
        self.lines.append(line)


class _Runner:
    def __init__(self, model, error=None):
        self.model, self.logger, self.error, self.calls = model, _Logger(), error, []

    def load_checkpoint(self, path, map_location=None, strict=None):
        self.calls.append((path, map_location, strict))
        if self.error is not None:
            raise self.error


@pytest.mark.parametrize('strict', [True, False])
def test_checked_load_hook_loads_an_ordinary_checkpoint(strict):
    runner = _Runner(torch.nn.Linear(1, 1))
    CheckedLoadHook('c.pth', strict=strict).before_run(runner)
    assert runner.calls == [('c.pth', 'cpu', strict)]


def test_checked_load_hook_words_a_mismatch_and_passes_other_errors():
    runner = _Runner(torch.nn.Linear(1, 1), RuntimeError('The model and loaded state dict do not match exactly\n'
                                                         'size mismatch for w'))
    with pytest.raises(CheckpointMismatchError) as err:
        CheckedLoadHook('c.pth').before_run(runner)
    assert str(err.value) == ("checkpoint 'c.pth' does not fit the model built from the config: The model and loaded "
                              'state dict do not match exactly\nsize mismatch for w -- pass --allow-partial to load '
                              'only what fits')
    for strict, error in ((True, RuntimeError('disk error')),
                          (False, RuntimeError('The model and loaded state dict do not match exactly'))):
        with pytest.raises(RuntimeError) as err:
            CheckedLoadHook('c.pth', strict=strict).before_run(_Runner(torch.nn.Linear(1, 1), error))
        assert type(err.value) is RuntimeError


def test_checked_load_hook_puts_a_registered_format_into_the_unwrapped_model(monkeypatch):
    from mmengine.registry import MODEL_WRAPPERS

    class Wrapper(torch.nn.Module):  # what DDP looks like to is_model_wrapper
        def __init__(self, module):
            super().__init__()
            self.module = module
    monkeypatch.setitem(MODEL_WRAPPERS._module_dict, 'TestWrapper', Wrapper)
    loaded = []
    fmt = checkpoint_formats.CheckpointFormat('test', lambda p: p.endswith('.fmt'), None,
                                              lambda model, path: loaded.append((model, path)))
    monkeypatch.setattr(checkpoint_formats, '_FORMATS', [fmt])
    model = torch.nn.Linear(1, 1)
    runner = _Runner(Wrapper(model))
    CheckedLoadHook('m.fmt').before_run(runner)
    assert loaded == [(model, 'm.fmt')] and runner.calls == []
    assert runner.logger.lines == ['Loaded test file m.fmt (checked against the model)']
    CheckedLoadHook('m.fmt', strict=False).before_run(runner)  # --allow-partial: mmengine's non-strict load
    assert runner.calls == [('m.fmt', 'cpu', False)]
    plain = _Runner(model)  # not wrapped: the model itself
    CheckedLoadHook('m.fmt').before_run(plain)
    assert loaded[-1] == (model, 'm.fmt')
    assert CheckedLoadHook('x').priority == 'VERY_HIGH'
