"""Export a trained detector to one packed file (1 bit per binary weight) and rebuild it from that file alone.

API::

    export_binary('configs/x.py', 'epoch_24.pth', 'x.packed.pth', half=False, force=False)  # tools/export_binary.py
    export_model(model, cfg, out, half=False, force=False, meta=None)                        # an in-memory model
    model = load_packed('x.packed.pth')              # rebuilt mmdet model, eval mode, same predictions
    ckpt = read_packed_checkpoint('x.packed.pth')    # {'state_dict', 'meta'}: what mmengine's loaders return
    is_packed_file(path)                             # cheap check (reads no tensor)

The file format (bit order, word size, what is stored in which precision, what ``half`` changes) is documented in
:mod:`rebnn_det.deploy.packed_file`; the bit layout itself is the one of :mod:`rebnn_det.deploy.packing`.
Binary layers are found generically (every :class:`~rebnn_det.ops.ReBNNConv` with binary weights, wherever it is:
backbone, neck or head). The rebuilt latent weights make the fp32-simulated forward exactly the exported one
(see :func:`~rebnn_det.deploy.packed_file.unpack_state_dict`).
"""
import datetime
import os.path as osp
from typing import Optional, Union

import torch
from torch import nn

from ..checkpoint_formats import CheckpointFormat, register_format
from .embedded_config import plain_data
from .packed_file import (PackedFileError, is_packed_file, load_packed_state, pack_model, read_packed_file,
                          unpack_state_dict, write_packed_file)

__all__ = ['export_binary', 'export_model', 'load_packed', 'load_packed_into', 'read_packed_checkpoint',
           'is_packed_file', 'PackedFileError', 'build_detector']


def _as_config(cfg):
    from mmengine.config import Config
    if isinstance(cfg, Config):
        return cfg
    if isinstance(cfg, str):
        if not osp.isfile(cfg):
            raise FileNotFoundError(f'config file {cfg!r} does not exist')
        return Config.fromfile(cfg)
    if isinstance(cfg, dict):
        return Config(cfg)
    raise TypeError(f'expected a config path, an mmengine Config or a dict, got {type(cfg).__name__}')


def config_data(cfg) -> dict:
    """The Config as the plain dict a packed file stores (``mmengine.config.Config(data)`` rebuilds it; nothing
    in it is executed on load, see :mod:`.embedded_config`)."""
    return plain_data(_as_config(cfg).to_dict())


def build_detector(cfg) -> nn.Module:
    """Build ``cfg.model`` with mmdet's registry (scope ``cfg.default_scope`` or ``'mmdet'``), CPU, eval mode; the
    weights are left as built (load a checkpoint or packed file into it)."""
    from mmdet.registry import MODELS
    from mmengine.registry import DefaultScope

    from .. import models, registry  # noqa: F401  (the model components register in mmdet's MODELS)
    cfg = _as_config(cfg)
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope', 'mmdet')):
        model = MODELS.build(cfg.model)
    return model.eval()


def export_model(model: nn.Module, cfg, out: str, half: bool = False, force: bool = False,
                 meta: Optional[dict] = None) -> str:
    """Write ``model`` (built from ``cfg``) as a packed file ``out``; returns the absolute path written.

    ``meta`` entries (e.g. ``dataset_meta``) are stored in the file's ``meta``; ``model.dataset_meta`` is used
    when ``meta`` has none. Errors: no binary layer in ``model``; ``out`` exists and not ``force``.
    """
    from .. import __version__
    data = config_data(cfg)
    payload = pack_model(model, half=half)
    meta = dict(meta or {})
    if 'dataset_meta' not in meta and getattr(model, 'dataset_meta', None):
        meta['dataset_meta'] = model.dataset_meta
    meta.update(rebnn_det_version=__version__, torch_version=torch.__version__,
                exported=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'))
    payload.update(config=data, meta=plain_data(meta))
    return write_packed_file(payload, out, force=force)


def export_binary(config, checkpoint: str, out: str, half: bool = False, force: bool = False,
                  allow_partial: bool = False) -> str:
    """``tools/export_binary.py CONFIG CHECKPOINT OUT``: build the detector of ``config`` (path or Config), load
    ``checkpoint`` (read as data and checked by rebnn_det's checkpoint loader; every tensor must fit the config
    unless ``allow_partial``), write the packed file (created exclusively unless ``force``)."""
    from mmengine.runner import load_checkpoint
    cfg = _as_config(config)
    if not osp.isfile(checkpoint):
        raise FileNotFoundError(f'checkpoint {checkpoint!r} does not exist')
    if osp.exists(out) and not force:  # fail before the (slow) build and load
        raise FileExistsError(f'output {osp.abspath(out)!r} already exists; pass force=True (--force) to overwrite it')
    model = build_detector(cfg)
    try:
        loaded = load_checkpoint(model, checkpoint, map_location='cpu', strict=not allow_partial, logger='silent')
    except RuntimeError as err:
        if 'do not match exactly' not in str(err):
            raise
        raise ValueError(f'checkpoint {checkpoint!r} does not fit config {getattr(cfg, "filename", None)!r}: '
                         f'{err} -- pass allow_partial=True (--allow-partial) to export only what fits') from err
    ckpt_meta = loaded.get('meta', {}) if isinstance(loaded, dict) else {}
    meta = dict(source_checkpoint=osp.basename(checkpoint))
    if 'dataset_meta' in ckpt_meta:
        meta['dataset_meta'] = ckpt_meta['dataset_meta']
    return export_model(model, cfg, out, half=half, force=force, meta=meta)


def _payload_and_config(path: str, cfg):
    from mmengine.config import Config
    payload = read_packed_file(path)  # checks the embedded config too, also when ``cfg`` is given
    return payload, _as_config(Config(payload['config']) if cfg is None else cfg)


def read_packed_checkpoint(path: str, map_location=None) -> dict:
    """A packed file as an mmengine checkpoint dict ``{'state_dict': ..., 'meta': ...}`` (float32, the latent
    weights rebuilt as in :func:`~rebnn_det.deploy.packed_file.unpack_state_dict`), for mmengine's
    ``load_checkpoint`` / ``load_from``. ``meta['packed']`` describes the file (version, half, config dict).
    The file is checked as by every reader (:func:`~rebnn_det.deploy.packed_file.read_packed_file`); whether it
    fits a model is checked where the model is known (:func:`load_packed`, ``tools/test.py``)."""
    payload = read_packed_file(path)
    state = unpack_state_dict(payload)
    if map_location is not None:
        state = {k: v.to(map_location) for k, v in state.items()}
    meta = dict(payload.get('meta', {}))
    meta['packed'] = dict(format=payload['format'], format_version=payload['format_version'],
                          half=payload.get('half', False), config=payload['config'])
    return dict(state_dict=state, meta=meta)


def load_packed(path: str, cfg=None, device: Union[str, torch.device] = 'cpu') -> nn.Module:
    """Rebuild the detector of a packed file: its model from the embedded config (or ``cfg``, which must describe
    the same layers), every tensor loaded, in eval mode on ``device``; ``dataset_meta`` restored when stored.

    A config that does not fit the file (another width, a layer binary in one and real in the other, missing
    tensors) is a :class:`PackedFileError` naming the layer or tensor.
    """
    payload, cfg = _payload_and_config(path, cfg)
    model = load_packed_state(build_detector(cfg), payload, path)
    return model.to(device).eval()


def load_packed_into(model: nn.Module, path: str) -> nn.Module:
    """Put the packed file ``path`` into ``model`` (built from a config), checked as :func:`load_packed` checks it."""
    return load_packed_state(model, read_packed_file(path), path)


# every checkpoint reader of rebnn_det (load_from, tools/test.py, export) recognises packed files by content
register_format(CheckpointFormat(name='packed 1-bit', recognise=is_packed_file, read=read_packed_checkpoint,
                                 load_into=load_packed_into))
