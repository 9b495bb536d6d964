"""Checked loading of a backbone's ``init_cfg=dict(type='Pretrained', checkpoint=..., prefix=...)``.

mmengine's ``PretrainedInit`` loads non-strictly: a checkpoint of another width, another layout or a wrong
``prefix`` leaves tensors at their random initialisation with a log line at most. A binary backbone loaded that
way trains from scratch without saying so. :func:`load_pretrained_backbone` loads the same file (through the
checked, data-only checkpoint loader mmengine's ``CheckpointLoader`` has for local paths once
:mod:`rebnn_det.plugin` is imported) and fits it to the module exactly:

* every tensor of the module must be in the file with its shape, and the file (under ``prefix``) must hold
  nothing else -- :class:`PretrainedMismatchError` names the missing, unexpected and mis-shaped keys (BN's
  ``num_batches_tracked`` may be absent, as in torchvision's checkpoints: BatchNorm fills it in);
* two exceptions: ``alpha`` may be absent (a W32A1 or real checkpoint has none): it is derived from the loaded
  weight (channel mean ``|w|``); and for a checkpoint of a **real-valued** network (e.g.
  ``tools/convert_real_resnet.py``'s output), holding none of the RSign ``threshold`` / RPReLU
  ``shift_in``/``slope``/``shift_out`` parameters, those start at their defaults. The log says how many. A file
  that holds some of them must hold all of them.
"""
from typing import Dict, List

from torch import nn

from ...ops import RPReLU, RSign
from ...ops.binary_layer import BinaryLayerMixin


class PretrainedMismatchError(ValueError):
    """A pretrained checkpoint that does not fit the backbone it initialises."""


def binary_only_keys(module: nn.Module) -> List[str]:
    """The state-dict keys of ``module`` a real-valued network has no counterpart for: every ``alpha`` of a binary
    layer and the parameters of every RSign / RPReLU."""
    keys = []
    for name, sub in module.named_modules():
        prefix = f'{name}.' if name else ''
        if isinstance(sub, (RSign, RPReLU)):
            keys += [prefix + k for k, _ in sub.named_parameters(recurse=False)]
        elif isinstance(sub, BinaryLayerMixin) and getattr(sub, 'alpha', None) is not None:
            keys.append(prefix + 'alpha')
    return keys


def _listing(keys: List[str], limit: int = 8) -> str:
    shown = ', '.join(keys[:limit])
    return f'{len(keys)} ({shown}{", ..." if len(keys) > limit else ""})'


def fit_pretrained_state(module: nn.Module, state: Dict, source: str) -> List[str]:
    """Check ``state`` against ``module`` (the rules of the module docstring) and load it strictly. Returns the
    binary-only keys the file did not hold (alpha: derived from the loaded weights; RSign/RPReLU of a real-valued
    checkpoint: left at their defaults), else ``[]``."""
    expected = module.state_dict()
    binary_only = binary_only_keys(module)
    # alpha is derived from the loaded weight whenever it is absent (a real or a W32A1 checkpoint); RSign/RPReLU
    # parameters only when the file holds none of them (a real-valued checkpoint)
    defaults = [k for k in binary_only if k.endswith('alpha') and k not in state]
    activations = [k for k in binary_only if not k.endswith('alpha')]
    if not any(k in state for k in activations):
        defaults += activations
    # BN's step counter is absent from older checkpoints (torchvision's ResNets): BatchNorm itself fills it in
    missing = [k for k in expected if k not in state and k not in defaults and not k.endswith('num_batches_tracked')]
    unexpected = [k for k in state if k not in expected]
    shapes = [f'{k}: file {tuple(state[k].shape)} vs backbone {tuple(expected[k].shape)}'
              for k in expected if k in state and hasattr(state[k], 'shape') and state[k].shape != expected[k].shape]
    if missing or unexpected or shapes:
        parts = [f'missing keys {_listing(missing)}' if missing else '',
                 f'unexpected keys {_listing(unexpected)}' if unexpected else '',
                 f'shape mismatches {_listing(shapes, 4)}' if shapes else '']
        raise PretrainedMismatchError(
            f'{source} does not fit the backbone {type(module).__name__}: ' + '; '.join(p for p in parts if p) +
            ". Check init_cfg's prefix (e.g. 'backbone.' for a classifier or detector checkpoint) and that the "
            'checkpoint was trained with the same depth and widths (base_channels, stem_channels).')
    # alpha is derived from the loaded weight by the layer itself; RSign/RPReLU keep their initial values
    module.load_state_dict(state, strict=not defaults)
    return defaults


def load_pretrained_backbone(module: nn.Module, init_cfg: dict) -> List[str]:
    """Load ``init_cfg`` (``type='Pretrained'``, ``checkpoint``, optional ``prefix`` and ``map_location``) into
    ``module`` with :func:`fit_pretrained_state`; returns the keys left at their defaults."""
    from mmengine.logging import print_log
    from mmengine.runner.checkpoint import _load_checkpoint, _load_checkpoint_with_prefix
    unknown = sorted(set(init_cfg) - {'type', 'checkpoint', 'prefix', 'map_location'})
    if unknown or 'checkpoint' not in init_cfg:
        raise ValueError(f"init_cfg=dict(type='Pretrained', checkpoint=..., prefix=..., map_location=...) expected "
                         f'(the allowed keys); unknown keys {unknown}' + ('' if 'checkpoint' in init_cfg
                                                                          else ', no checkpoint'))
    checkpoint, prefix = init_cfg['checkpoint'], init_cfg.get('prefix')
    map_location = init_cfg.get('map_location', 'cpu')
    source = f'pretrained checkpoint {checkpoint!r}' + (f' (prefix {prefix!r})' if prefix else '')
    if prefix:
        try:
            state = _load_checkpoint_with_prefix(prefix, checkpoint, map_location=map_location)
        except AssertionError as err:  # mmengine asserts the prefix is present
            raise PretrainedMismatchError(f'{source}: no key starts with {prefix!r} ({err})') from None
    else:
        state = _load_checkpoint(checkpoint, map_location=map_location, logger='silent')
        if isinstance(state, dict) and isinstance(state.get('state_dict'), dict):
            state = state['state_dict']
    defaults = fit_pretrained_state(module, dict(state), source)
    note = (f'; {len(defaults)} binary-only parameters not in the file (alpha: derived from the weights; RSign, '
            'RPReLU: defaults)' if defaults else ', every tensor checked')
    print_log(f'{type(module).__name__}: loaded {source}{note}', logger='current')
    return defaults
