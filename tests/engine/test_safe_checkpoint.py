"""SafeCheckpointHook: a process killed while it writes a checkpoint leaves the previous checkpoint intact and
resumable (mmengine's CheckpointHook leaves a truncated file and, with max_keep_ckpts, has already deleted the
previous one); tools/train.py uses it; --resume finds the newest complete checkpoint."""
import os
import os.path as osp
import subprocess
import sys
import textwrap

import pytest
import torch

from rebnn_det.apis import with_training_safety_hooks
from rebnn_det.engine import is_complete_checkpoint, latest_checkpoint, load_local_checkpoint
from tests.helpers import one_weight_runner

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

TRAIN = textwrap.dedent('''
    import os, os.path as osp, signal, sys
    import rebnn_det.plugin
    from mmengine.fileio.backends import local_backend
    from rebnn_det.engine.hooks import safe_checkpoint
    from tests.helpers import one_weight_runner

    work_dir, hook, epochs, kill_at = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]

    def half_then_kill(write_half):
        """Write the first half of the checkpoint's bytes where the backend writes them, then SIGKILL."""
        def put(*args):
            path = str(args[-1])
            obj = args[-2]
            if osp.basename(path) == kill_at:
                write_half(path, obj[:len(obj) // 2])
                os.kill(os.getpid(), signal.SIGKILL)
            return original(*args)
        return put

    if hook == 'SafeCheckpointHook':
        original_atomic = safe_checkpoint.atomic_write
        def atomic(path, write, replace=True):
            if osp.basename(path) == kill_at:
                class Half:
                    def __init__(self, f): self.f = f
                    def write(self, data):
                        self.f.write(data[:len(data) // 2]); self.f.flush(); os.kill(os.getpid(), signal.SIGKILL)
                return original_atomic(path, lambda f: write(Half(f)), replace)
            return original_atomic(path, write, replace)
        safe_checkpoint.atomic_write = atomic
    else:
        original = local_backend.LocalBackend.put
        def write_half(path, data):
            with open(path, 'wb') as f:
                f.write(data)
        local_backend.LocalBackend.put = half_then_kill(write_half)

    resume = osp.isfile(osp.join(work_dir, 'last_checkpoint'))
    runner = one_weight_runner(work_dir, epochs, experiment_name='kill', resume=resume,
                               default_hooks=dict(checkpoint=dict(type=hook, interval=1, max_keep_ckpts=1)))
    runner.train()
    print('finished', float(runner.model.w))
''')


def _train(work_dir, hook, epochs, kill_at='-'):
    return subprocess.run([sys.executable, '-c', TRAIN, str(work_dir), hook, str(epochs), kill_at], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, env=dict(os.environ, OMP_NUM_THREADS='1'))


def test_kill_during_save_keeps_the_previous_checkpoint_and_resumes(tmp_path):
    work = tmp_path / 'safe'
    proc = _train(work, 'SafeCheckpointHook', 3, kill_at='epoch_2.pth')
    assert proc.returncode == -9, proc.stderr[-2000:]  # SIGKILL during the second save
    assert not (work / 'epoch_2.pth').exists()
    assert is_complete_checkpoint(str(work / 'epoch_1.pth'))
    assert load_local_checkpoint(str(work / 'epoch_1.pth'))['meta']['epoch'] == 1
    assert (work / 'last_checkpoint').read_text() == str(work / 'epoch_1.pth')
    leftovers = [n for n in os.listdir(work) if n.endswith('.tmp')]
    assert len(leftovers) == 1 and leftovers[0].startswith('.epoch_2.pth.')  # only SIGKILL leaves it
    proc = _train(work, 'SafeCheckpointHook', 3)  # resumes from epoch_1 and finishes
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert 'resumed epoch: 1, iter: 2' in proc.stdout + proc.stderr
    assert sorted(n for n in os.listdir(work) if n.endswith('.pth')) == ['epoch_3.pth']  # max_keep_ckpts=1
    uninterrupted = tmp_path / 'whole'
    proc = _train(uninterrupted, 'SafeCheckpointHook', 3)
    assert proc.returncode == 0
    a = load_local_checkpoint(str(work / 'epoch_3.pth'))['state_dict']['w']
    b = load_local_checkpoint(str(uninterrupted / 'epoch_3.pth'))['state_dict']['w']
    assert torch.equal(a, b)


def test_mmengine_checkpoint_hook_loses_both_files_when_killed_during_save(tmp_path):
    """What SafeCheckpointHook prevents (and what tools/train.py did before it): mmengine deletes the previous
    checkpoint first, then writes the new one in place."""
    work = tmp_path / 'plain'
    proc = _train(work, 'CheckpointHook', 3, kill_at='epoch_2.pth')
    assert proc.returncode == -9, proc.stderr[-2000:]
    assert not (work / 'epoch_1.pth').exists()
    assert (work / 'epoch_2.pth').exists() and not is_complete_checkpoint(str(work / 'epoch_2.pth'))


def test_old_checkpoint_is_removed_only_after_the_new_one_is_written(tmp_path):
    events = []
    from rebnn_det.engine.hooks import safe_checkpoint
    original_put, original_remove = safe_checkpoint.AtomicLocalBackend.put, safe_checkpoint.AtomicLocalBackend.remove

    def put(self, obj, path):
        events.append(('write', osp.basename(str(path))))
        original_put(self, obj, path)

    def remove(self, path):
        events.append(('remove', osp.basename(str(path))))
        original_remove(self, path)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(safe_checkpoint.AtomicLocalBackend, 'put', put)
        mp.setattr(safe_checkpoint.AtomicLocalBackend, 'remove', remove)
        one_weight_runner(str(tmp_path), 3, default_hooks=dict(
            checkpoint=dict(type='SafeCheckpointHook', interval=1, max_keep_ckpts=1))).train()
    assert events == [('write', 'epoch_1.pth'), ('write', 'epoch_2.pth'), ('remove', 'epoch_1.pth'),
                      ('write', 'epoch_3.pth'), ('remove', 'epoch_2.pth')]


def test_tools_train_uses_the_safe_checkpoint_hook():
    from mmengine.config import Config
    shapes = osp.join(ROOT, 'configs', 'shapes', 'rebnn_faster_rcnn_shapes.py')
    cfg = with_training_safety_hooks(Config.fromfile(shapes))
    assert cfg.default_hooks.checkpoint.type == 'SafeCheckpointHook'
    custom = Config(dict(default_hooks=dict(checkpoint=dict(type='MyCheckpointHook'))))
    assert with_training_safety_hooks(custom).default_hooks.checkpoint.type == 'MyCheckpointHook'


def _ckpt(path, epoch):
    torch.save(dict(meta=dict(epoch=epoch, iter=epoch), state_dict=dict(w=torch.ones(1)), optimizer={},
                    message_hub={}), path)


def test_latest_checkpoint_without_a_usable_last_checkpoint(tmp_path):
    assert latest_checkpoint(str(tmp_path)) == (None, 'it has no last_checkpoint file and no complete epoch_N.pth / '
                                                      'iter_N.pth')
    _ckpt(tmp_path / 'epoch_1.pth', 1)
    _ckpt(tmp_path / 'epoch_2.pth', 2)
    os.utime(tmp_path / 'epoch_1.pth', (1, 1))
    (tmp_path / 'epoch_3.pth').write_bytes((tmp_path / 'epoch_2.pth').read_bytes()[:300])  # cut off
    latest, note = latest_checkpoint(str(tmp_path))
    assert latest == str(tmp_path / 'epoch_2.pth')
    assert note == f"it has no last_checkpoint file; resuming from the newest complete checkpoint '{latest}'"
    (tmp_path / 'last_checkpoint').write_text('')
    assert latest_checkpoint(str(tmp_path))[1].startswith('its last_checkpoint file is empty; resuming from')
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'epoch_3.pth'))
    assert latest_checkpoint(str(tmp_path)) == (latest, f"its last_checkpoint names '{tmp_path / 'epoch_3.pth'}', "
                                                        'which is truncated (cut off while it was written); resuming '
                                                        f"from the newest complete checkpoint '{latest}'")
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'epoch_1.pth'))
    assert latest_checkpoint(str(tmp_path)) == (str(tmp_path / 'epoch_1.pth'), None)  # as mmengine names it
