"""Registers the plain-PyTorch layers of :mod:`rebnn_det.ops` in mmdet's MODELS registry."""
from mmdet.registry import MODELS

from .ops import ReBNNConv, RPReLU, RSign

for _cls in (ReBNNConv, RSign, RPReLU):
    MODELS.register_module(module=_cls)
