"""The packed detector file (``rebnn_det.packed``, format version 2): what it holds, how it is written and read.

A packed file is data: ``torch.save`` of a plain dict (only strings, numbers, lists/tuples/dicts and tensors), read
with ``torch.load(weights_only=True)``; nothing in it is ever executed (see :mod:`.embedded_config`)::

    format          'rebnn_det.packed'
    format_version  2 (version 1, written before 2026-12, stored the config as mmengine's Python text: still read,
                    as literals only)
    config          the mmengine config the model is rebuilt from, as a dict of plain values
    binary_layers   {module name: {'packed': int64 [C_out, kh, kw, words],   # sign bits, see packing.py
                                   'alpha':  float32 [C_out],              # the per-output-channel scale
                                   'layer':  {in_channels, out_channels, kernel_size, stride, padding, dilation,
                                              groups, weight_binarizer, act_binarizer, pad_value, bias}}}
    state_dict      every other tensor of the model's state dict, real-valued (RSign thresholds, BN, stem,
                    shortcuts, heads ...); with ``half`` the tensors listed in ``half_keys`` are float16
    half            bool; half_keys: the keys stored as float16
    meta            {'dataset_meta', 'source_checkpoint', 'rebnn_det_version', 'torch_version', ...}

Binary layers are the :class:`~rebnn_det.ops.ReBNNConv` modules whose ``weight_binarizer`` is ``'rebnn'`` or
``'xnor'``. Their latent fp32 weights are not stored: only ``sign(w)`` as bits, in the one packed format of
:mod:`rebnn_det.deploy.packing` (64-bit words stored as ``torch.int64``; input channel ``c`` of a group is bit
``c % 64``, least significant first, of word ``c // 64``; bit 1 means ``sign = -1``, ``sign(0) = +1``; the tail bits
of the last word are 0; the channel axis moved last). With ``groups > 1`` the packed axis is the ``C_in / groups``
input channels of each group, exactly the weight's second axis. ``alpha`` is the learnt scale for ``'rebnn'`` and
the channel mean ``|w|`` computed at export for ``'xnor'`` (what the XNOR binarizer computes every forward), in
float32 in every case.

``--half``: the weight matrices of the real-valued convolutions and linear layers (stem, downsample shortcuts,
RPN/RoI/dense heads: almost all real-valued bytes) are rounded to float16 (relative error <= 2**-11; a tensor with
values beyond float16's range stays float32 and is left out of ``half_keys``). Per-channel vectors stay float32:
``alpha``, RSign thresholds, BN parameters and running statistics, biases, RPReLU (few bytes, and they sit right
before a sign, where rounding would flip activations). On load every tensor is cast back to float32, so a
``--half`` file reproduces the fp32 model up to the rounding of those weights (which still moves some activations
across a sign threshold downstream: predictions are close, not identical); a full-precision file reproduces the
exported model exactly.
Nothing here imports mmdet or mmengine.
"""
import os.path as osp
import pickle
import zipfile
from typing import Dict, Optional

import torch
from torch import Tensor, nn

from ..fileio import atomic_write
from ..ops import (BinaryLayerMixin, ReBNNLinear, binary_weight_choices, binary_weight_layers,
                   channel_mean_abs, weight_binarizer)
from .embedded_config import ConfigDataError, embedded_config_data
from .packing import num_words, pack_conv_weight, pack_signs_last, unpack_conv_weight, unpack_signs_last

FORMAT = 'rebnn_det.packed'
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
LAYER_FIELDS = ('in_channels', 'out_channels', 'kernel_size', 'stride', 'padding', 'dilation', 'groups',
                'weight_binarizer', 'act_binarizer', 'pad_value', 'bias')  # a conv's record
LINEAR_FIELDS = ('kind', 'in_features', 'out_features', 'weight_binarizer', 'act_binarizer', 'bias')
FP16_MAX = float(torch.finfo(torch.float16).max)


class PackedFileError(ValueError):
    """A packed file that cannot be read or does not fit the model it is loaded into."""


def layer_record(layer: nn.Module) -> dict:
    """The geometry and binarizers of a binary conv or linear layer, stored with its bits and validated on load
    (a linear layer's record says ``kind='linear'``; a record without ``kind`` is a conv's)."""
    if isinstance(layer, ReBNNLinear):
        return dict(kind='linear', in_features=layer.in_features, out_features=layer.out_features,
                    weight_binarizer=layer.weight_binarizer, act_binarizer=layer.act_binarizer,
                    bias=layer.bias is not None)
    conv = layer
    return dict(in_channels=conv.in_channels, out_channels=conv.out_channels, kernel_size=list(conv.kernel_size),
                stride=list(conv.stride), padding=list(conv.padding), dilation=list(conv.dilation),
                groups=conv.groups, weight_binarizer=conv.weight_binarizer, act_binarizer=conv.act_binarizer,
                pad_value=float(conv.pad_value), bias=conv.bias is not None)


def binary_layers(model: nn.Module) -> Dict[str, nn.Module]:
    """``name -> layer`` for every ReBNNConv / ReBNNLinear of ``model`` whose weights are binary."""
    return dict(binary_weight_layers(model))


def record_fields(record: dict) -> tuple:
    """The fields a layer record of its kind holds."""
    return LINEAR_FIELDS if record.get('kind') == 'linear' else LAYER_FIELDS


def packed_shape(record: dict) -> tuple:
    """The shape of the packed bits a layer record describes: ``[C_out, kh, kw, words]`` for a conv,
    ``[out_features, words]`` for a linear layer (``words`` = 64-bit words of one output's input signs)."""
    if record.get('kind') == 'linear':
        return record['out_features'], num_words(record['in_features'])
    return (record['out_channels'], *record['kernel_size'], num_words(record['in_channels'] // record['groups']))


def _geometry_fields(record: dict) -> tuple:
    if record.get('kind') == 'linear':
        return 'in_features', 'out_features'
    return 'in_channels', 'out_channels', 'groups', 'kernel_size'


def unpack_weight(packed: Tensor, record: dict) -> Tensor:
    """The ``-1 / +1`` weight of a layer record from its packed bits."""
    if record.get('kind') == 'linear':
        return unpack_signs_last(packed, record['in_features'])
    return unpack_conv_weight(packed, record['in_channels'] // record['groups'])


def half_candidates(model: nn.Module) -> set:
    """State-dict keys ``half`` stores in float16: the weight matrices of the real-valued convolutions and linear
    layers (stem, shortcuts, heads: the bulk of a detector's real parameters). Per-channel vectors (BN parameters
    and running statistics, biases, RPReLU, ``alpha``, RSign thresholds) stay float32: they are a small fraction
    of the bytes and they sit right before a sign, where rounding flips activations."""
    keys = set()
    for name, m in model.named_modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)) and not (isinstance(m, BinaryLayerMixin) and m.binary_weights):
            keys.add(f'{name}.weight' if name else 'weight')
    return keys


@torch.no_grad()
def pack_model(model: nn.Module, half: bool = False) -> dict:
    """The ``binary_layers``, ``state_dict``, ``half`` and ``half_keys`` entries of a packed file for ``model``.

    Raises ``ValueError`` when the model has no binary layer (nothing to pack: export the fp32 checkpoint).
    """
    layers = binary_layers(model)
    if not layers:
        raise ValueError(f'{type(model).__name__} has no binary layer (no ReBNNConv with weight_binarizer '
                         f"{' or '.join(map(repr, binary_weight_choices()))}): nothing to pack; a real-valued "
                         'model is deployed from its ordinary checkpoint')
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    packed_layers = {}
    for name, layer in layers.items():
        weight = state.pop(name + '.weight').float()
        learnt = state.pop(name + '.alpha', None)  # the scale of a learnable-scale binarizer
        alpha = layer.weight_quantizer.scale(weight, None if learnt is None else learnt.float().clone())
        packed = pack_signs_last(weight) if weight.dim() == 2 else pack_conv_weight(weight)
        packed_layers[name] = dict(packed=packed, alpha=alpha.contiguous(), layer=layer_record(layer))
    half_keys = []
    if half:
        candidates = half_candidates(model)
        for key, value in state.items():
            if (key in candidates and value.dtype == torch.float32
                    and (value.numel() == 0 or value.abs().max().item() <= FP16_MAX)):
                state[key] = value.half()
                half_keys.append(key)
    return dict(binary_layers=packed_layers, state_dict=state, half=bool(half), half_keys=half_keys)


def _xnor_latent(signs: Tensor, alpha: Tensor, window: int = 4) -> Tensor:
    """Latent weights with the signs ``signs`` whose channel mean ``|w|``, as the XNOR binarizer recomputes it every
    forward (:func:`~rebnn_det.ops.channel_mean_abs`, a float32 sum divided by ``n``), is exactly ``alpha``.

    Equal magnitudes cannot do it in general (a float32 sum of ``n`` equal values rounds, and ``alpha`` can fall
    between the reachable means). Instead every magnitude is an integer multiple ``k_j q`` of one power of two
    ``q`` chosen so that ``K = sum_j k_j`` lies in ``[2**23, 2**24)``: every partial sum is then exact in float32
    whatever the summation order, the mean is ``fl(q K / n)`` and ``K`` (the ``k_j`` differ by at most 1, so the
    magnitudes are ``alpha`` to ~``n / 2**23`` relative) is picked among the integers next to ``alpha n / q`` to
    make it ``alpha``. Channels with ``alpha = 0`` get zeros (``w_hat = 0`` as before); a channel no ``K`` in the
    window fits keeps the nearest mean found (not observed on ResNet-18 shapes)."""
    c_out = signs.shape[0]
    n = signs[0].numel()
    flat = signs.reshape(c_out, n)
    a64 = alpha.double()
    positive = a64 > 0
    exponent = torch.floor(torch.log2(torch.where(positive, a64 * n, torch.ones_like(a64)))) - 23
    q = torch.pow(2.0, exponent)
    ideal = torch.round(a64 * n / q).long()
    index = torch.arange(n)
    best, best_err = None, None
    for dk in sorted(range(-window, window + 1), key=abs):
        total = (ideal + dk).clamp(max=2**24 - 1)
        base, extra = total // n, total % n
        k = base.view(-1, 1) + (index.view(1, -1) < extra.view(-1, 1)).long()
        mags = (k.double() * q.view(-1, 1)).float()  # k < 2**24 times a power of two: exact in float32
        mags = torch.where(positive.view(-1, 1), mags, torch.zeros_like(mags))
        err = (channel_mean_abs(mags) - alpha).abs()
        if best is None:
            best, best_err = mags, err
        else:
            better = err < best_err
            best = torch.where(better.view(-1, 1), mags, best)
            best_err = torch.where(better, err, best_err)
        if not best_err.any():
            break
    return (flat * best).view_as(signs)


def unpack_state_dict(payload: dict) -> Dict[str, Tensor]:
    """The float32 state dict of the model the file was exported from, with latent weights rebuilt so the
    fp32-simulated forward is the original one: ``'rebnn'`` layers get ``weight = sign(w)`` (±1) and their
    ``alpha`` (``alpha * sign(±1)`` is the original ``w_hat``, bit for bit); ``'xnor'`` layers get latent
    weights with the original signs and magnitudes ~``alpha`` whose float32 mean ``|w|`` (what the binarizer
    recomputes) is exactly ``alpha`` (:func:`_xnor_latent`)."""
    state = {k: (v.float() if v.dtype == torch.float16 else v) for k, v in payload['state_dict'].items()}
    for name, entry in payload['binary_layers'].items():
        layer = entry['layer']
        signs = unpack_weight(entry['packed'], layer)
        alpha = entry['alpha'].float()
        if weight_binarizer(layer['weight_binarizer']).learnable_scale:
            state[name + '.weight'] = signs
            state[name + '.alpha'] = alpha.clone()
        else:
            state[name + '.weight'] = _xnor_latent(signs, alpha)
    return state


def check_layers_match(payload: dict, model: nn.Module, path: str) -> None:
    """Raise :class:`PackedFileError` naming the layer and the field when the binary layers of the file and of
    ``model`` (built from a config) differ: a layer binary on one side only, or another geometry/binarizer."""
    modules = dict(model.named_modules())
    in_model = binary_layers(model)
    for name, entry in payload['binary_layers'].items():
        m = modules.get(name)
        if m is None:
            raise PackedFileError(f'{path}: binary layer {name!r} of the file does not exist in the model built '
                                  'from the config (config and weights do not match)')
        if name not in in_model:
            what = (f"a {type(m).__name__} with weight_binarizer={m.weight_binarizer!r}"
                    if isinstance(m, BinaryLayerMixin) else f'a real {type(m).__name__}')
            raise PackedFileError(f'{path}: layer {name!r} is binary in the file but {what} in the config '
                                  '(config and weights do not match)')
        expected = layer_record(in_model[name])
        for field in ('kind', ) + record_fields(expected):
            if entry['layer'].get(field) != expected.get(field):
                raise PackedFileError(f'{path}: layer {name!r} has {field}={entry["layer"].get(field)!r} in the '
                                      f'file but {expected.get(field)!r} in the config (config and weights do not '
                                      'match)')
        # (the bits and alpha were checked against this record when the file was read: read_packed_file)
    missing = sorted(set(in_model) - set(payload['binary_layers']))
    if missing:
        raise PackedFileError(f'{path}: the config has binary layers the file lacks: {", ".join(missing[:5])}'
                              f'{" ..." if len(missing) > 5 else ""} (config and weights do not match)')


def check_state_matches(state: Dict[str, Tensor], model: nn.Module, path: str) -> None:
    """Raise :class:`PackedFileError` on missing/unexpected keys or shape differences of the real-valued part."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise PackedFileError(f'{path}: config and weights do not match: the model built from the config expects '
                              f'{len(missing)} tensors the file lacks ({", ".join(missing[:4])}'
                              f'{" ..." if len(missing) > 4 else ""}) and the file holds {len(unexpected)} it does '
                              f'not know ({", ".join(unexpected[:4])}{" ..." if len(unexpected) > 4 else ""})')
    for key, value in state.items():
        if tuple(value.shape) != tuple(expected[key].shape):
            raise PackedFileError(f'{path}: tensor {key!r} has shape {tuple(value.shape)} in the file but '
                                  f'{tuple(expected[key].shape)} in the model built from the config (config and '
                                  'weights do not match)')


# ---- the file itself ----------------------------------------------------------------------------------------------
def write_packed_file(payload: dict, out: str, force: bool = False) -> str:
    """``torch.save`` ``payload`` (with the format marker) to ``out`` through a unique temporary file in the same
    directory (:func:`~rebnn_det.fileio.atomic_write`): a reader never sees half a file. Without ``force`` the
    file is created exclusively -- an ``out`` that exists, or appears while the file is written (another
    exporter), is a ``FileExistsError`` and is left as it is; with ``force`` it is replaced. Returns ``out``."""
    out = osp.abspath(osp.expanduser(out))
    if osp.isdir(out):
        raise IsADirectoryError(f'output {out!r} is a directory; give a file name (e.g. {out}/model.packed.pth)')
    if osp.exists(out) and not force:
        raise FileExistsError(f'output {out!r} already exists; pass force=True (--force) to overwrite it')
    directory = osp.dirname(out)
    if not osp.isdir(directory):
        raise FileNotFoundError(f'output directory {directory!r} does not exist')
    payload = dict(format=FORMAT, format_version=FORMAT_VERSION, **payload)
    try:
        atomic_write(out, lambda f: torch.save(payload, f), replace=force)
    except FileExistsError as err:
        raise FileExistsError(f'output {out!r} appeared while it was being written (another export?); it was '
                              'left as it is: pass force=True (--force) to overwrite it') from err
    return out


def _pickle_member(path: str) -> Optional[bytes]:
    """The pickle record of a torch zip file, or None when ``path`` is not a readable zip archive."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if n.endswith('/data.pkl') or n == 'data.pkl']
            return archive.read(names[0]) if names else None
    except (zipfile.BadZipFile, OSError, KeyError, IndexError):
        return None


def is_packed_file(path: str) -> bool:
    """True when ``path`` is a torch zip file carrying the packed-format marker (reads the small pickle record
    only, not the tensors). A truncated packed file is not recognised (its zip directory is lost)."""
    if not osp.isfile(path):
        return False
    record = _pickle_member(path)
    return record is not None and FORMAT.encode() in record


def read_packed_file(path: str, map_location='cpu') -> dict:
    """Load and validate a packed file; every failure is a :class:`PackedFileError` naming ``path`` and what is
    wrong (missing, truncated/corrupt, foreign file, newer format version, missing entries)."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'packed file {path!r} does not exist')
    with open(path, 'rb') as f:
        head = f.read(4)
    record = _pickle_member(path)
    if record is None:
        if head == b'PK\x03\x04':
            raise PackedFileError(f'{path}: truncated or corrupt file (a zip/torch archive whose directory cannot '
                                  'be read); export it again')
        raise PackedFileError(f'{path}: not a rebnn_det packed file (not a torch zip archive at all)')
    if FORMAT.encode() not in record:
        raise PackedFileError(f'{path}: not a rebnn_det packed file (a torch file without the {FORMAT!r} marker, '
                              'e.g. an ordinary checkpoint: export it with tools/export_binary.py CONFIG CHECKPOINT '
                              'OUT, or load it as a normal checkpoint)')
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        raise PackedFileError(f'{path}: holds objects a packed file never contains (only tensors, numbers, strings '
                              f'and containers are read; {err})') from err
    except Exception as err:  # a damaged tensor record, a cut-off pickle ...
        raise PackedFileError(f'{path}: truncated or corrupt packed file ({type(err).__name__}: {err})') from err
    if not isinstance(payload, dict) or payload.get('format') != FORMAT:
        raise PackedFileError(f'{path}: not a rebnn_det packed file (no format={FORMAT!r} entry)')
    version = payload.get('format_version')
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise PackedFileError(f'{path}: invalid format_version {version!r}')
    if version > FORMAT_VERSION:
        raise PackedFileError(f'{path}: written in packed format version {version}, newer than this rebnn_det '
                              f'reads (up to {FORMAT_VERSION}); upgrade rebnn_det to load it')
    for key in ('config', 'binary_layers', 'state_dict'):
        if key not in payload:
            raise PackedFileError(f'{path}: packed file lacks its {key!r} entry (corrupt file)')
    try:
        payload['config'] = embedded_config_data(payload['config'], version)
    except ConfigDataError as err:
        hint = (' Files of format version 1 stored the config as Python text; re-export it with '
                'tools/export_binary.py CONFIG CHECKPOINT OUT (version 2 stores the config as data).'
                if version == 1 else '')
        raise PackedFileError(f'{path}: {err}; the file was not loaded.{hint}') from err
    _check_entries(payload, path)
    return payload


def _check_entries(payload: dict, path: str) -> None:
    """The structure of the ``binary_layers`` / ``state_dict`` entries, each layer's bits and alpha against its own
    record, and every float tensor finite (a NaN or infinite alpha, threshold or BN statistic is corruption)."""
    layers, state = payload['binary_layers'], payload['state_dict']
    if not isinstance(layers, dict) or not isinstance(state, dict):
        raise PackedFileError(f'{path}: binary_layers and state_dict must be dicts (corrupt file)')
    tensors = {}
    for name, entry in layers.items():
        if not (isinstance(entry, dict) and isinstance(entry.get('layer'), dict)
                and isinstance(entry.get('packed'), Tensor) and isinstance(entry.get('alpha'), Tensor)):
            raise PackedFileError(f'{path}: binary layer {name!r} lacks its packed bits, alpha or layer record '
                                  '(corrupt file)')
        record = entry['layer']
        missing = [f for f in record_fields(record) if f not in record]
        if missing:
            raise PackedFileError(f'{path}: the record of binary layer {name!r} lacks {", ".join(missing)} '
                                  '(corrupt file)')
        if record['weight_binarizer'] not in binary_weight_choices():
            raise PackedFileError(f'{path}: binary layer {name!r} has weight_binarizer='
                                  f'{record["weight_binarizer"]!r}; a packed layer is one of '
                                  f'{list(binary_weight_choices())} (corrupt file)')
        if entry['packed'].dtype != torch.int64 or entry['alpha'].dtype != torch.float32:
            raise PackedFileError(f'{path}: binary layer {name!r} holds packed bits of dtype {entry["packed"].dtype}'
                                  f' and alpha of dtype {entry["alpha"].dtype}; the format stores int64 and float32 '
                                  '(corrupt file)')
        if record.get('kind') == 'linear':
            geometry = [record['in_features'], record['out_features']]
            valid = all(type(v) is int and v > 0 for v in geometry)
        else:
            geometry = [record[f] for f in ('in_channels', 'out_channels', 'groups')] + list(
                record['kernel_size'] if isinstance(record['kernel_size'], (list, tuple)) else [None])
            valid = (len(geometry) == 5 and all(type(v) is int and v > 0 for v in geometry)
                     and not record['in_channels'] % record['groups'])
        if not valid:
            raise PackedFileError(f'{path}: the record of binary layer {name!r} has an invalid geometry '
                                  f'({", ".join(f"{k}={record[k]!r}" for k in _geometry_fields(record))}) '
                                  '(corrupt file)')
        shape = packed_shape(record)
        c_out = shape[0]
        if tuple(entry['packed'].shape) != shape or tuple(entry['alpha'].shape) != (c_out, ):
            raise PackedFileError(f'{path}: binary layer {name!r} holds packed bits {tuple(entry["packed"].shape)} '
                                  f'and alpha {tuple(entry["alpha"].shape)}; its own record needs {shape} and '
                                  f'({c_out},) (corrupt file)')
        tensors[f'{name}.alpha'] = entry['alpha']
    for key, value in state.items():
        if not isinstance(value, Tensor):
            raise PackedFileError(f'{path}: state_dict entry {key!r} is a {type(value).__name__}, not a tensor '
                                  '(corrupt file)')
        tensors[key] = value
    for key, value in tensors.items():
        if value.is_floating_point() and value.numel() and not bool(torch.isfinite(value).all()):
            raise PackedFileError(f'{path}: tensor {key!r} holds NaN or infinite values (corrupt file); export the '
                                  'checkpoint again')


def load_packed_state(model: nn.Module, payload: dict, path: str) -> nn.Module:
    """Load a checked payload (:func:`read_packed_file`) into ``model``: its binary layers and every tensor must fit
    (:func:`check_layers_match`, :func:`check_state_matches`), then a strict ``load_state_dict``;
    ``dataset_meta`` is restored when stored. The one way every reader puts a packed file into a model."""
    check_layers_match(payload, model, path)
    state = unpack_state_dict(payload)
    check_state_matches(state, model, path)
    model.load_state_dict(state, strict=True)
    meta = payload.get('meta')
    dataset_meta = meta.get('dataset_meta') if isinstance(meta, dict) else None
    if dataset_meta is not None:
        model.dataset_meta = dataset_meta
    return model
