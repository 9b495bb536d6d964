"""The cached generation of the embedded shapes set: a split is generated once under a data root, then read by
mmdet's ``CocoDataset`` (rendering: :mod:`.shapes_render`; the COCO writer: :mod:`.shapes_coco`; the settings:
:mod:`.shapes_settings`).

Safe to start concurrently (DDP ranks, two experiments on one data root): :func:`ensure_shapes_split` lets one
process generate under an exclusive lock on ``root/.shapes_{split}.lock`` while the others wait, and every file
is written under a unique temporary name and moved into place, so no reader ever meets a half-written file. A
missing, unreadable (e.g. truncated) or stale json, or one whose images are missing, makes the split be
regenerated; a split made with other settings only while no other process reads it.
"""
import contextlib
import json
import os
import os.path as osp
from typing import Callable, Dict, Iterator, Optional

from ..fileio import exclusive_lock
from .shapes_coco import generate_shapes_split
from .shapes_settings import (ALL_SHAPE_CLASSES, DEFAULT_KNOBS, KNOB_DEFAULTS, LOOKALIKE_CLASSES, SHAPE_CLASSES,
                              VERSION, ShapesSettings, as_settings, check_shapes_knobs)

__all__ = ['ALL_SHAPE_CLASSES', 'KNOB_DEFAULTS', 'LOOKALIKE_CLASSES', 'SHAPE_CLASSES', 'ShapesInUseError',
           'ShapesSettings', 'check_shapes_knobs', 'ensure_shapes_split', 'generate_shapes_split']

_OTHER_SETTINGS = 'made with other settings'


def _why_regenerate(root: str, ann: str, wanted: dict) -> Optional[str]:
    """``None`` when ``ann`` is a complete split made with ``wanted`` settings, else the reason it is not."""
    try:
        with open(ann, 'rb') as f:
            coco = json.loads(f.read())
        info = coco['info']
        file_names = [img['file_name'] for img in coco['images']]
    except FileNotFoundError:
        return 'not generated yet'
    except (ValueError, KeyError, TypeError, OSError) as e:  # JSONDecodeError is a ValueError
        return f'unreadable ({type(e).__name__}: {e})'
    # knobs missing from a json were at their defaults (a json records only the knobs that differ)
    recorded = {k: info.get(k, DEFAULT_KNOBS.get(k)) for k in wanted} if isinstance(info, dict) else None
    if recorded != wanted:
        return f'{_OTHER_SETTINGS} ({recorded}, wanted {wanted})'
    if len(file_names) != wanted['num_images']:
        return f'lists {len(file_names)} images, wanted {wanted["num_images"]}'
    missing = [n for n in file_names if not osp.isfile(osp.join(root, n))]
    if missing:
        return f'{len(missing)} of its images are missing (first: {osp.join(root, missing[0])})'
    return None


class ShapesInUseError(RuntimeError):
    """The split exists with other settings and another process is reading it: regenerating would change its
    images under it."""


# ``data_root/.shapes_{split}.readers`` -> descriptor holding a shared lock for as long as this process lives: every
# process that uses a split (and its forked data workers) holds one, so a regeneration with other settings can
# tell that someone reads the split. The OS drops the locks of a process that ends.
_READER_LOCKS: Dict[str, int] = {}


def _hold_reader_lock(path: str) -> None:
    """Hold a shared lock on ``path`` for the rest of this process (waits while a regeneration holds it
    exclusively). Not available (no ``fcntl``, a read-only data root): nothing to hold -- and then no process can
    regenerate the split either."""
    if path in _READER_LOCKS:
        return
    try:
        import fcntl
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except (ImportError, OSError):
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
    except OSError:
        os.close(fd)
        return
    _READER_LOCKS[path] = fd


def _release_reader_lock(path: str) -> None:
    fd = _READER_LOCKS.pop(path, None)
    if fd is not None:
        os.close(fd)


@contextlib.contextmanager
def _no_other_readers(path: str, refuse: Callable[[], str]) -> Iterator[None]:
    """Hold ``path`` exclusively while the block rewrites the split, or raise :class:`ShapesInUseError` with the
    text ``refuse()`` when another process holds a reader lock (this process's own lock is let go first: a
    process that asks for other settings itself is not reading the old ones any more)."""
    _release_reader_lock(path)
    try:
        import fcntl
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except (ImportError, OSError):
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ShapesInUseError(refuse()) from None
        except OSError:  # no lock support on this file system: the generation lock's warning says so
            pass
        yield
    finally:
        os.close(fd)


def ensure_shapes_split(data_root: str, split: str, *settings, **fields) -> str:
    """Return ``data_root/annotations/instances_{split}.json``, generating the split first when it is missing,
    unreadable, made with other settings or missing images; this process then counts as a reader of the split.

    Safe for concurrent callers (DDP ranks, several experiments): the one that takes the lock on
    ``data_root/.shapes_{split}.lock`` generates, the others wait for it and then find the split complete. A
    split made with *other* settings (another seed, size, knobs) is regenerated only when no other process is
    reading it; otherwise :class:`ShapesInUseError` says so and nothing is written (give the dataset its own
    ``data_root``). Repairs with the same settings (a missing image, a truncated json) rewrite identical files
    and are always made. ``settings``: a :class:`~.shapes_settings.ShapesSettings` or its fields (checked)."""
    settings = as_settings(settings, fields)
    ann = osp.join(data_root, 'annotations', f'instances_{split}.json')
    readers = osp.join(data_root, f'.shapes_{split}.readers')
    wanted = settings.recorded(full=True)
    if osp.isdir(data_root) and _why_regenerate(data_root, ann, wanted) is None:
        _hold_reader_lock(readers)  # waits while a regeneration runs, so check again under it
        if _why_regenerate(data_root, ann, wanted) is None:
            return ann
    os.makedirs(data_root, exist_ok=True)
    with exclusive_lock(osp.join(data_root, f'.shapes_{split}.lock')):
        reason = _why_regenerate(data_root, ann, wanted)  # another process may have generated it meanwhile
        if reason is not None:
            other_settings = reason.startswith(_OTHER_SETTINGS) and f"'version': {VERSION}," in reason
            def refusal() -> str:
                return (f'{ann}: the {split!r} split there was {reason}, and another process is reading it: '
                        'regenerating it would change its images under that run. Give this dataset its own '
                        'data_root (e.g. data/shapes_seed1/), or wait until the other run ends.')

            with _no_other_readers(readers, refusal) if other_settings else contextlib.nullcontext():
                print(f'[rebnn_det] {ann}: {reason}; generating it', flush=True)
                _remove_stale_temporaries(data_root, split)
                generate_shapes_split(data_root, split, settings)
        _hold_reader_lock(readers)
    return ann


def _remove_stale_temporaries(root: str, split: str) -> None:
    """Temporary files left by a killed writer (only called under the split's lock: no live writer owns any)."""
    for folder, stem in ((osp.join(root, 'annotations'), f'.instances_{split}.json.'), (osp.join(root, split), '.')):
        if osp.isdir(folder):
            for name in os.listdir(folder):
                if name.startswith(stem) and name.endswith('.tmp'):
                    with contextlib.suppress(OSError):
                        os.remove(osp.join(folder, name))
