"""The arithmetic of ReBNN: binarizers, the binary convolution and the ReActNet activations (no mmdet imports)."""
from .activations import RPReLU, RSign
from .binarize import (ACT_BINARIZERS, PAD_VALUES, WEIGHT_BINARIZERS, ActBinarizer, WeightBinarizer, act_binarizer,
                       approx_sign, binary_act_choices, binary_weight_choices, check_pad_value, weight_binarizer, binarize_weight_rebnn,
                       binarize_weight_xnor, channel_mean_abs, hard_sign, per_channel, scale_signs,
                       sign_bit, sign_ste)
from .binary_conv import ReBNNConv, named_binary_convs, reset_binary_alphas
from .binary_layer import BinaryLayerMixin, binary_weight_layers

__all__ = [
    'ACT_BINARIZERS', 'PAD_VALUES', 'WEIGHT_BINARIZERS', 'check_pad_value', 'approx_sign', 'binarize_weight_rebnn', 'binarize_weight_xnor',
    'channel_mean_abs', 'hard_sign', 'per_channel', 'scale_signs', 'sign_bit', 'sign_ste', 'RSign', 'RPReLU',
    'ReBNNConv', 'named_binary_convs', 'reset_binary_alphas', 'ActBinarizer', 'WeightBinarizer', 'act_binarizer',
    'weight_binarizer', 'binary_act_choices', 'binary_weight_choices', 'BinaryLayerMixin', 'binary_weight_layers'
]
