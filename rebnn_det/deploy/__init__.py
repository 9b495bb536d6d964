"""Inference side of rebnn_det: the packed 1-bit format, export/load of detectors, the packed binary conv that
runs XNOR-popcount kernels, and the model summary (bits, memory, BOPs/FLOPs). No training code (never imports
:mod:`rebnn_det.engine`).

The names below are imported on first use (PEP 562), so ``import rebnn_det.deploy.kernels`` and the other
torch-only modules (the custom ops, the ``.pt2`` runtime) load without mmdet; the mmdet-facing ones
(:func:`convert_to_deploy`, :func:`build_detector`, ...) import mmdet when first used.
"""
import importlib

_EXPORTS = {
    'convert': ['convert_to_deploy'],
    'deploy_hook': ['BinaryDeployHook'],
    'export': ['PackedFileError', 'build_detector', 'export_binary', 'export_model', 'is_packed_file', 'load_packed',
               'read_packed_checkpoint'],
    'kernels': ['available_isas', 'binary_conv2d', 'binary_conv_counts', 'kernel_isa'],
    'packed_conv': ['PackedBinaryConv'],
    'packed_linear': ['PackedBinaryLinear'],
    'packing': ['WORD_BITS', 'num_words', 'pack_activations', 'pack_conv_weight', 'pack_signs_last',
                'unpack_conv_weight', 'unpack_signs_last'],
    'summary': ['ModelSummary', 'format_summary', 'model_summary'],
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_MODULE_OF)


def __getattr__(name: str):
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
    value = getattr(importlib.import_module(f'{__name__}.{module}'), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
