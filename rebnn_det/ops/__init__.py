"""The arithmetic of ReBNN: binarizers, the binary convolution and the ReActNet activations (no mmdet imports)."""
from .activations import RPReLU, RSign
from .binarize import (ACT_BINARIZERS, PAD_VALUES, WEIGHT_BINARIZERS, ActBinarizer, WeightBinarizer, act_binarizer,
                       approx_sign, binarize_weight_rebnn, binarize_weight_xnor, binary_act_choices,
                       binary_weight_choices, channel_mean_abs, check_pad_value, hard_sign, per_channel, scale_signs,
                       sign_bit, sign_ste, weight_binarizer)
from .binary_conv import ReBNNConv, named_binary_convs, reset_binary_alphas
from .binary_layer import BinaryLayerMixin, binary_weight_layers
from .binary_linear import ReBNNLinear

__all__ = [
    'ACT_BINARIZERS', 'ActBinarizer', 'BinaryLayerMixin', 'PAD_VALUES', 'RPReLU', 'RSign', 'ReBNNConv', 'ReBNNLinear',
    'WEIGHT_BINARIZERS', 'WeightBinarizer', 'act_binarizer', 'approx_sign', 'binarize_weight_rebnn',
    'binarize_weight_xnor', 'binary_act_choices', 'binary_weight_choices', 'binary_weight_layers',
    'channel_mean_abs', 'check_pad_value', 'hard_sign', 'named_binary_convs', 'per_channel', 'reset_binary_alphas',
    'scale_signs', 'sign_bit', 'sign_ste', 'weight_binarizer'
]
