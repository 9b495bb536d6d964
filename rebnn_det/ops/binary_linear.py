"""ReBNNLinear: a 1-bit fully connected layer (binary weights and binary activations), an ``nn.Linear`` subclass."""
import torch.nn.functional as F
from torch import Tensor, nn

from .binarize import act_binarizer as act_binarizer_for
from .binarize import weight_binarizer as weight_binarizer_for
from .binary_layer import BinaryLayerMixin


class ReBNNLinear(BinaryLayerMixin, nn.Linear):
    """Binary linear layer ``y = B_a(x) @ w_hat^T + bias``: the paper's linear-layer case (its BERT experiments),
    with the binarizers of :class:`~rebnn_det.ops.ReBNNConv` -- ``w_hat_i = alpha_i * sign(w_i)`` per output
    feature ``i`` (Eq. 1; ``alpha`` learnable, initialised to the row mean ``|w_i|``), or ``'xnor'`` / ``'none'``;
    the input ``sign(x - beta)`` with a learnable threshold per input feature (``'rsign'``), ``sign(x)``
    (``'approxsign'``) or real (``'none'``). The ReBNN rule (:class:`~rebnn_det.engine.ReBNNRegularizer`) treats
    each output row as a conv's output channel: ``gamma_i``, flips and ``L_R`` per row.

    Args (beyond ``nn.Linear``'s ``in_features, out_features, bias``; ``bias`` defaults to True as nn.Linear's):
        weight_binarizer / act_binarizer: as :class:`~rebnn_det.ops.ReBNNConv`.

    In eval mode (:meth:`scales_output`) the output is ``scale * (B_a(x) @ sign(w)^T) + bias``: the ``{-1, +1}``
    product is an exact integer, so it rounds once per output like the deploy kernel's ``alpha * count``.
    Gradients: ``dL/dw = alpha * dL/dw_hat * 1{|w| <= 1}``, ``dL/dalpha_i = sum_j dL/dw_hat_ij * b_ij``.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, weight_binarizer: str = 'rebnn',
                 act_binarizer: str = 'rsign', **kwargs):
        weight_binarizer_for(weight_binarizer), act_binarizer_for(act_binarizer)  # fail before building
        super().__init__(in_features, out_features, bias, **kwargs)
        self._init_binarizers(weight_binarizer, act_binarizer, in_features, rsign_ndim=2)

    def forward(self, x: Tensor) -> Tensor:
        if self.scales_output():
            signs, scale = self.weight_quantizer.factors(self.weight, self.alpha)
            out = F.linear(self.binarize_input(x), signs) * scale
            return out if self.bias is None else out + self.bias
        return F.linear(self.binarize_input(x), self._tracked_weight_hat(), self.bias)

    def extra_repr(self) -> str:
        return super().extra_repr() + ', ' + self.binarizer_repr()
