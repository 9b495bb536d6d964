"""Local checkpoint loading for mmengine 0.10.7 under torch >= 2.6.

torch 2.6 made ``torch.load(weights_only=True)`` the default; mmengine 0.10.7 calls ``torch.load`` without the
argument, so its own checkpoints (which hold the message hub's history buffers, numpy scalars and config
objects) fail to load or resume. Importing :mod:`rebnn_det` registers :func:`load_local_checkpoint` for local
paths in mmengine's ``CheckpointLoader``: it loads full checkpoints as mmengine did under torch < 2.6. Only load
checkpoints you trust (the same rule as for any pickle); URLs and other schemes keep mmengine's loaders.
"""
import os.path as osp

import torch
from mmengine.runner.checkpoint import CheckpointLoader


def load_local_checkpoint(filename: str, map_location=None):
    """Load a local checkpoint file with ``weights_only=False``; a missing file names the path."""
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'checkpoint file {filename!r} does not exist')
    return torch.load(filename, map_location=map_location, weights_only=False)


CheckpointLoader.register_scheme(prefixes='', loader=load_local_checkpoint, force=True)
