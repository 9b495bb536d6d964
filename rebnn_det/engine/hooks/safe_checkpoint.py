"""SafeCheckpointHook: mmengine's CheckpointHook whose checkpoints are written atomically and whose old checkpoints
are removed only after the new one is complete."""
import contextlib
import os.path as osp
from typing import Iterator

from mmdet.registry import HOOKS
from mmengine.fileio import LocalBackend, register_backend
from mmengine.hooks import CheckpointHook
from mmengine.utils import mkdir_or_exist

from ...fileio import atomic_write

ATOMIC_LOCAL_BACKEND = 'rebnn_atomic_local'


class AtomicLocalBackend(LocalBackend):
    """mmengine's local file backend, but ``put``/``put_text`` write through
    :func:`rebnn_det.fileio.atomic_write`: a file at its final name is always complete (mmengine's ``put`` opens the
    final path and writes into it, so a kill during a save leaves a truncated ``epoch_N.pth``)."""

    def put(self, obj: bytes, filepath) -> None:
        filepath = str(filepath)
        mkdir_or_exist(osp.dirname(filepath) or '.')
        atomic_write(filepath, lambda f: f.write(obj))

    def put_text(self, obj: str, filepath, encoding: str = 'utf-8') -> None:
        self.put(obj.encode(encoding), filepath)


register_backend(ATOMIC_LOCAL_BACKEND, AtomicLocalBackend, force=True)


class _RemovalsAfterSave:
    """Stands in for the hook's file backend during one save: ``remove``/``rmtree`` are recorded, everything else
    is the backend's own; :meth:`run` performs the recorded removals."""

    def __init__(self, backend):
        self._backend = backend
        self.pending = []

    def __getattr__(self, name):
        return getattr(self._backend, name)

    def remove(self, path) -> None:
        self.pending.append(('remove', path))

    def rmtree(self, path) -> None:
        self.pending.append(('rmtree', path))

    def run(self) -> None:
        for op, path in self.pending:
            getattr(self._backend, op)(path)
        self.pending.clear()


@HOOKS.register_module()
class SafeCheckpointHook(CheckpointHook):
    """``CheckpointHook`` (same arguments) that never leaves a checkpoint half-written at its final name and never
    loses the last good one:

    * checkpoints are written to a temporary file and renamed into place (:class:`AtomicLocalBackend`, the default
      ``backend_args`` for a local ``out_dir``), so a kill or a full disk during the save leaves the previous
      files as they were (plus, after a SIGKILL, a hidden ``.epoch_N.pth.<pid>.<random>.tmp``);
    * mmengine 0.10.7 deletes the oldest kept checkpoint (``max_keep_ckpts``) and the previous best one *before*
      it writes the new one; here those removals wait until the new checkpoint is complete and ``last_checkpoint``
      names it, and are dropped if the save fails.

    ``tools/train.py`` uses it in place of ``CheckpointHook`` (see :func:`rebnn_det.apis.with_training_safety_hooks`).
    """

    def __init__(self, *args, backend_args=None, file_client_args=None, out_dir=None, **kwargs):
        if backend_args is None and file_client_args is None and (out_dir is None or '://' not in str(out_dir)):
            backend_args = dict(backend=ATOMIC_LOCAL_BACKEND)
        super().__init__(*args, out_dir=out_dir, backend_args=backend_args, file_client_args=file_client_args,
                         **kwargs)

    @contextlib.contextmanager
    def _removals_after_save(self) -> Iterator[None]:
        backend = self.file_backend
        deferred = _RemovalsAfterSave(backend)
        self.file_backend = deferred
        try:
            yield
        finally:
            self.file_backend = backend
        deferred.run()  # reached only when the save completed

    def _save_checkpoint_with_step(self, runner, step, meta):
        with self._removals_after_save():
            super()._save_checkpoint_with_step(runner, step, meta)

    def _save_best_checkpoint(self, runner, metrics) -> None:
        with self._removals_after_save():
            super()._save_best_checkpoint(runner, metrics)
