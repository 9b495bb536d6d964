"""Checkpoint formats recognised by content, beside torch's ordinary checkpoints (plain Python, no imports).

The checkpoint loader of :mod:`rebnn_det.engine.checkpoint` (every ``load_from``, ``--resume``, ``tools/test.py``
and export of a local file) asks :func:`format_of` first; :mod:`rebnn_det.deploy` registers the packed 1-bit
format here, so training code never imports inference code and vice versa.
"""
from typing import Callable, List, NamedTuple, Optional


class CheckpointFormat(NamedTuple):
    """``recognise(path) -> bool`` (cheap, reads no tensor); ``read(path, map_location) -> {'state_dict', 'meta'}``
    (the file checked on its own); ``load_into(model, path)`` (the file checked against ``model`` and loaded
    strictly: the only way ``tools/test.py`` and the other strict readers put such a file into a model)."""
    name: str
    recognise: Callable[[str], bool]
    read: Callable[..., dict]
    load_into: Callable


_FORMATS: List[CheckpointFormat] = []


def register_format(fmt: CheckpointFormat) -> None:
    """Add (or replace, by name) a checkpoint format."""
    _FORMATS[:] = [f for f in _FORMATS if f.name != fmt.name] + [fmt]


def format_of(path: str) -> Optional[CheckpointFormat]:
    """The registered format ``path`` is in, or ``None`` for an ordinary torch checkpoint."""
    for fmt in _FORMATS:
        if fmt.recognise(path):
            return fmt
    return None
