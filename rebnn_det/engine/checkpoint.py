"""Local checkpoint loading for mmengine 0.10.7 under torch >= 2.6: trusted files, clear errors.

torch 2.6 made ``torch.load(weights_only=True)`` the default; mmengine 0.10.7 calls ``torch.load`` without the
argument, so its own checkpoints (which hold the message hub's history buffers, numpy scalars and config
objects) fail to load or resume. Importing :mod:`rebnn_det` therefore registers
:func:`load_from_trusted_local` as the loader of local paths (the empty prefix) in mmengine's
``CheckpointLoader``, for the whole process: every ``load_from``, ``--resume`` and ``load_checkpoint`` of a local
file goes through it. URLs and other schemes keep mmengine's loaders.

Trust assumption: a local checkpoint is unpickled with ``weights_only=False``, exactly as mmengine did under
torch < 2.6, so it can run arbitrary code while loading. Only load checkpoints you (or your own runs) wrote, or
got from a source you trust -- the same rule as for any pickle.
"""
import os.path as osp
import pickle
import zipfile

import torch
from mmengine.runner.checkpoint import CheckpointLoader


class CheckpointReadError(RuntimeError):
    """A checkpoint file exists but cannot be read (empty, truncated, corrupt or not a torch file)."""


def _describe(filename: str, err: Exception) -> str:
    """What is wrong with a checkpoint file that ``torch.load`` refused, in words."""
    size, text = osp.getsize(filename), str(err)
    damaged = ('It was probably cut off or damaged while being written or copied (a killed run, a full disk, an '
               'incomplete download): use another checkpoint (an earlier epoch_*.pth) or copy it again.')
    if size == 0:
        what = f'the file is empty (0 bytes). {damaged}'
    elif isinstance(err, EOFError) or 'failed finding central directory' in text or 'truncated' in text:
        what = f'the file ends early ({size} bytes): it is truncated. {damaged}'
    elif isinstance(err, (pickle.UnpicklingError, zipfile.BadZipFile)) or 'PytorchStreamReader' in text:
        what = f'it is not a readable torch checkpoint ({size} bytes): it is corrupt or another format. {damaged}'
    elif isinstance(err, (AttributeError, ImportError)):
        what = ('it stores an object whose class cannot be imported in this environment (install or import the '
                'code that wrote it)')
    else:
        what = 'torch.load failed'
    return f'checkpoint {filename!r} cannot be read: {what} [{type(err).__name__}: {err}]'


def _is_packed_file(filename: str) -> bool:
    try:  # lazy: deploy never imports engine, engine may import deploy (and importing it here would be a cycle)
        from ..deploy.export import is_packed_file
    except ModuleNotFoundError as err:  # a checkout without the packed format: no file can be a packed one
        if err.name != __package__.rsplit('.', 1)[0] + '.deploy.export':
            raise
        return False
    return is_packed_file(filename)


def load_from_trusted_local(filename: str, map_location=None):
    """Load a local checkpoint file you trust (``weights_only=False``; see the module docstring).

    A packed 1-bit file (:mod:`rebnn_det.deploy`) is read as the mmengine checkpoint dict it describes, so
    ``tools/test.py CONFIG PACKED_FILE`` evaluates it. A missing file is a ``FileNotFoundError`` and an unreadable
    one a :class:`CheckpointReadError`, both naming the path and what is wrong.
    """
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        what = 'is a directory, not a checkpoint file' if osp.isdir(filename) else 'does not exist'
        raise FileNotFoundError(f'checkpoint file {filename!r} {what}')
    if _is_packed_file(filename):
        from ..deploy.export import read_packed_checkpoint
        return read_packed_checkpoint(filename, map_location=map_location)
    try:
        return torch.load(filename, map_location=map_location, weights_only=False)
    except (EOFError, pickle.UnpicklingError, zipfile.BadZipFile, RuntimeError, ValueError, AttributeError,
            ImportError, IndexError, KeyError, TypeError) as err:
        raise CheckpointReadError(_describe(filename, err)) from err


CheckpointLoader.register_scheme(prefixes='', loader=load_from_trusted_local, force=True)
