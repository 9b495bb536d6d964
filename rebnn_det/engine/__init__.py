from .checkpoint import load_local_checkpoint
from .hooks import ReBNNHook
from .rebnn_regularizer import GAMMA_GRID, ReBNNRegularizer, check_gamma

__all__ = ['GAMMA_GRID', 'ReBNNHook', 'ReBNNRegularizer', 'check_gamma', 'load_local_checkpoint']
