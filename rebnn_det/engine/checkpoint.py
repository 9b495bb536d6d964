"""Local checkpoint loading: checkpoints are read as data (nothing in them is executed), checked, and clear errors.

Importing :mod:`rebnn_det` registers :func:`load_local_checkpoint` as the loader of local paths (the empty
prefix) in mmengine's ``CheckpointLoader``, for the whole process: every ``load_from``, ``--resume``,
``init_cfg=dict(type='Pretrained', ...)``, ``tools/test.py`` and export of a local file goes through it. URLs and
other schemes keep mmengine's loaders.

* **Data only.** A checkpoint is read with ``torch.load(weights_only=True)``; the only classes it may hold beside
  tensors and containers are the plain-data ones mmengine and numpy put into checkpoints
  (:func:`checkpoint_data_classes`: mmengine's ``HistoryBuffer`` of the message hub, numpy arrays, scalars and
  dtypes). A file holding anything else (e.g. a pickled object whose reconstruction would run code) is refused
  with a :class:`CheckpointReadError` naming the classes, and nothing of it runs. (mmengine 0.10.7 itself calls
  ``torch.load`` with ``weights_only=False``.)
* **Checked.** What was read must be a checkpoint: a dict with a ``state_dict`` of tensors (mmengine's), or a dict
  of tensors (a bare state dict). :func:`check_resumable` also asks for what ``--resume`` needs.
* **Other formats** recognised by content (:mod:`rebnn_det.checkpoint_formats`; the packed 1-bit files of
  :mod:`rebnn_det.deploy`) are read by their own reader, which checks them the same way on every path.
"""
import os
import os.path as osp
import pickle
import re
import zipfile
from typing import Optional, Tuple

import torch
from mmengine.runner.checkpoint import CheckpointLoader

from ..checkpoint_formats import format_of
from ..run_logs import last_checkpoint_named


class CheckpointReadError(RuntimeError):
    """A checkpoint file exists but cannot be used: empty, truncated, corrupt, not a torch file, not a checkpoint,
    or holding objects that are not data."""


DAMAGED = ('It was probably cut off or damaged while being written or copied (a killed run, a full disk, an '
           'incomplete download): use another checkpoint (an earlier epoch_*.pth) or copy it again.')


def _describe(filename: str, err: Exception) -> str:
    """What is wrong with a checkpoint file that ``torch.load`` refused, in words."""
    size, text = osp.getsize(filename), str(err)
    if size == 0:
        what = f'the file is empty (0 bytes). {DAMAGED}'
    elif (isinstance(err, EOFError) or 'failed finding central directory' in text or 'truncated' in text
          or (isinstance(err, IndexError) and not zipfile.is_zipfile(filename))):  # a cut-off legacy pickle
        what = f'the file ends early ({size} bytes): it is truncated. {DAMAGED}'
    elif isinstance(err, (pickle.UnpicklingError, zipfile.BadZipFile)) or 'PytorchStreamReader' in text:
        what = f'it is not a readable torch checkpoint ({size} bytes): it is corrupt or another format. {DAMAGED}'
    elif isinstance(err, (AttributeError, ImportError)):
        what = ('it stores an object whose class cannot be imported in this environment (install or import the '
                'code that wrote it)')
    else:
        what = 'torch.load failed'
    return f'checkpoint {filename!r} cannot be read: {what} [{type(err).__name__}: {err}]'


def checkpoint_data_classes() -> list:
    """The classes besides tensors and containers that a checkpoint may hold, all plain data: mmengine's
    ``HistoryBuffer`` (the message hub's logged scalars) and what numpy pickles for arrays, scalars and dtypes."""
    import numpy as np
    from mmengine.logging import HistoryBuffer
    try:
        from numpy._core import multiarray
    except ImportError:  # numpy < 2
        from numpy.core import multiarray
    dtype_classes = [type(np.dtype(t)) for t in (np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8,
                                                 np.uint16, np.uint32, np.uint64, np.float16, np.float32,
                                                 np.float64, np.complex64, np.complex128, np.str_, np.object_)]
    return [HistoryBuffer, np.ndarray, np.dtype, multiarray._reconstruct, multiarray.scalar, *dtype_classes,
            (_statistics_method, 'builtins.getattr')]


def _statistics_method(owner, name: str):
    """What ``getattr`` may do while a checkpoint is unpickled: name a statistics method of mmengine's
    ``HistoryBuffer`` (a pickled buffer refers to its ``min``/``max``/``mean``/``current`` ... as
    ``getattr(HistoryBuffer, name)``). Any other use -- the way a malicious file reaches ``os.system`` from an
    allowed object -- is refused."""
    from mmengine.logging import HistoryBuffer
    builtin = ('min', 'max', 'mean', 'current')  # registered by the first HistoryBuffer() of a process
    known = isinstance(name, str) and (name in builtin or name in HistoryBuffer._statistics_methods)
    if owner is HistoryBuffer and known:
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(f'getattr({owner!r}, {name!r}) is not allowed in a checkpoint (only the statistics '
                                 'methods of mmengine.logging.HistoryBuffer)')


def _not_data_error(filename: str, err: Exception) -> CheckpointReadError:
    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(filename)
    except Exception:  # noqa: BLE001 -- only used to word the message
        names = []
    allowed = {c[1] if isinstance(c, tuple) else f'{c.__module__}.{c.__qualname__}' for c in checkpoint_data_classes()}
    names = sorted(n for n in names if n not in allowed)
    what = f' ({", ".join(names)})' if names else ''
    return CheckpointReadError(
        f'checkpoint {filename!r} was not loaded: it holds objects that are not plain data{what}. Checkpoints are '
        'read as data only (tensors, numbers, strings, containers, numpy arrays, mmengine HistoryBuffers), so '
        'nothing in a file can run code while it is loaded. If you wrote this file yourself, save its state '
        f'dicts instead of the objects. [{_unpickler_reason(err)}]')


def _unpickler_reason(err: Exception) -> str:
    """The part of torch's weights-only error that says what was refused (at most 300 characters): the line after
    ``WeightsUnpickler error:``, else the first paragraph that is not torch's general preamble or closing hint."""
    text = str(err)
    match = re.search(r'WeightsUnpickler error:\s*(\S[^\n]*)', text)
    if match:
        return match.group(1)[:300]
    paragraphs = [p.strip() for p in text.split('\n\n') if p.strip()]
    specific = [p for p in paragraphs if not p.startswith(('Weights only load failed', 'Check the documentation'))]
    return (specific or paragraphs or [type(err).__name__])[0].split('\n')[0][:300]


def check_checkpoint(obj, filename: str) -> dict:
    """``obj`` (what a torch file held) if it is a checkpoint -- a dict with a ``state_dict`` dict of tensors, or
    a non-empty dict of tensors -- else a :class:`CheckpointReadError` saying what the file holds instead."""
    if not isinstance(obj, dict):
        raise CheckpointReadError(f'{filename!r} is not a checkpoint: the torch file holds a {type(obj).__name__}; '
                                  "a checkpoint is a dict with a 'state_dict' of tensors (or a dict of tensors)")
    state = obj.get('state_dict', obj)
    tensors = isinstance(state, dict) and bool(state) and all(isinstance(v, torch.Tensor) for v in state.values())
    if not tensors:
        keys = sorted(map(str, obj))[:6]
        raise CheckpointReadError(f"{filename!r} is not a checkpoint: the torch file holds a dict without a "
                                  f"'state_dict' of tensors (its keys: {keys}{' ...' if len(obj) > 6 else ''})")
    return obj


def load_local_checkpoint(filename: str, map_location=None, mmap: bool = False) -> dict:
    """Load and check a local checkpoint (see the module docstring): a file of a registered format
    (:mod:`rebnn_det.checkpoint_formats`, e.g. a packed 1-bit file) through its reader, any other as a torch file
    read as data. A missing file is a ``FileNotFoundError``; an unreadable one, one that is not a checkpoint or
    holds objects that are not data a :class:`CheckpointReadError`, each naming the path and what is wrong.
    ``mmap=True`` maps the tensors instead of reading them (cheap checks of large files)."""
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        what = 'is a directory, not a checkpoint file' if osp.isdir(filename) else 'does not exist'
        raise FileNotFoundError(f'checkpoint file {filename!r} {what}')
    fmt = format_of(filename)
    if fmt is not None:
        return fmt.read(filename, map_location=map_location)
    try:
        with torch.serialization.safe_globals(checkpoint_data_classes()):
            obj = torch.load(filename, map_location=map_location, weights_only=True,
                             mmap=mmap and zipfile.is_zipfile(filename))
    except pickle.UnpicklingError as err:
        if 'Weights only load failed' in str(err) and osp.getsize(filename) and zipfile.is_zipfile(filename):
            raise _not_data_error(filename, err) from err
        raise CheckpointReadError(_describe(filename, err)) from err
    except (EOFError, zipfile.BadZipFile, RuntimeError, ValueError, AttributeError, ImportError, IndexError,
            KeyError, TypeError) as err:
        raise CheckpointReadError(_describe(filename, err)) from err
    return check_checkpoint(obj, filename)


RESUME_KEYS = ('meta', 'state_dict', 'optimizer', 'message_hub')


def check_resumable(filename: str) -> None:
    """Raise :class:`CheckpointReadError` unless ``filename`` is a checkpoint a training run saved and ``--resume``
    can continue: weights, optimizer state, message hub and ``meta`` with the epoch and iteration."""
    ckpt = load_local_checkpoint(filename, map_location='cpu', mmap=True)
    missing = [k for k in RESUME_KEYS if k not in ckpt]
    meta = ckpt.get('meta')
    if not missing and not (isinstance(meta, dict) and 'epoch' in meta and 'iter' in meta):
        missing = ["meta['epoch'] / meta['iter']"]
    if missing:
        raise CheckpointReadError(f'--resume {filename!r}: not a checkpoint a training run can continue from: it '
                                  f'lacks {", ".join(missing)} (a checkpoint saved during training has '
                                  f'{", ".join(RESUME_KEYS)}). To start a new run from its weights, set '
                                  f'load_from={filename!r} instead of --resume.')


def is_complete_checkpoint(filename: str) -> bool:
    """Whether ``filename`` is a whole torch zip file (its central directory, written last, is readable): a
    checkpoint cut off while it was written is not."""
    try:
        with zipfile.ZipFile(filename) as archive:
            return bool(archive.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


_CHECKPOINT_NAME = re.compile(r'(epoch|iter)_(\d+)\.pth')


def latest_checkpoint(work_dir: str) -> Tuple[Optional[str], Optional[str]]:
    """``(checkpoint, note)``: the checkpoint to resume in ``work_dir`` and, when it is not simply the one
    mmengine's ``last_checkpoint`` file names, why (``checkpoint`` is ``None`` when there is none).

    ``last_checkpoint`` naming a complete file: that file, no note. Missing, empty, or naming a truncated file:
    the newest complete ``epoch_N.pth`` / ``iter_N.pth`` of ``work_dir`` (latest modification, then highest N),
    with a note saying so. ``last_checkpoint`` naming a file that does not exist is a ``FileNotFoundError`` (it
    was moved or deleted: which state to continue from is the user's choice)."""
    named = last_checkpoint_named(work_dir)
    why = 'it has no last_checkpoint file'
    if named is not None:
        if not named:
            why = 'its last_checkpoint file is empty'
        elif not osp.isfile(named):
            raise FileNotFoundError(f'the last_checkpoint file of {work_dir!r} names {named!r}, which does not exist '
                                    '(moved or deleted); pass the checkpoint file to resume from')
        elif is_complete_checkpoint(named):
            return named, None
        else:
            why = f'its last_checkpoint names {named!r}, which is truncated (cut off while it was written)'
    candidates = []
    for name in os.listdir(work_dir):
        match = _CHECKPOINT_NAME.fullmatch(name)
        path = osp.join(work_dir, name)
        if match and is_complete_checkpoint(path):
            candidates.append((osp.getmtime(path), int(match.group(2)), path))
    if not candidates:
        return None, f'{why} and no complete epoch_N.pth / iter_N.pth'
    latest = max(candidates)[2]
    return latest, f'{why}; resuming from the newest complete checkpoint {latest!r}'


CheckpointLoader.register_scheme(prefixes='', loader=load_local_checkpoint, force=True)
