"""Inference side of rebnn_det: the packed 1-bit format, export/load of detectors, the packed binary conv that
runs XNOR-popcount kernels, and the model summary (bits, memory, BOPs/FLOPs). No training code (never imports
:mod:`rebnn_det.engine`)."""
from .convert import convert_to_deploy
from .deploy_hook import BinaryDeployHook
from .export import (PackedFileError, build_detector, export_binary, export_model, is_packed_file, load_packed,
                     read_packed_checkpoint)
from .kernels import available_isas, binary_conv2d, binary_conv_counts, kernel_isa
from .packed_conv import PackedBinaryConv
from .packed_linear import PackedBinaryLinear
from .packing import (WORD_BITS, num_words, pack_activations, pack_conv_weight, pack_signs_last, unpack_conv_weight,
                      unpack_signs_last)
from .summary import ModelSummary, format_summary, model_summary

__all__ = ['WORD_BITS', 'BinaryDeployHook', 'ModelSummary', 'PackedBinaryConv', 'PackedBinaryLinear', 'PackedFileError',
           'available_isas', 'binary_conv2d', 'binary_conv_counts', 'build_detector', 'convert_to_deploy',
           'export_binary', 'export_model', 'format_summary', 'is_packed_file', 'kernel_isa', 'load_packed',
           'model_summary', 'num_words', 'pack_activations', 'pack_conv_weight', 'pack_signs_last',
           'read_packed_checkpoint', 'unpack_conv_weight', 'unpack_signs_last']
