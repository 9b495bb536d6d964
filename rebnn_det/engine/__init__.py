from .checkpoint import CheckpointReadError, load_from_trusted_local
from .hooks import ExactResumeHook, NonFiniteGuardHook, NonFiniteTrainingError, ReBNNHook
from .rebnn_regularizer import GAMMA_GRID, ReBNNRegularizer, check_gamma

__all__ = ['GAMMA_GRID', 'CheckpointReadError', 'ExactResumeHook', 'NonFiniteGuardHook', 'NonFiniteTrainingError',
           'ReBNNHook', 'ReBNNRegularizer', 'check_gamma', 'load_from_trusted_local']
