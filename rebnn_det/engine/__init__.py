from .checkpoint import (CheckpointReadError, check_checkpoint, check_resumable, is_complete_checkpoint,
                         latest_checkpoint, load_local_checkpoint)
from .hooks import (CheckedLoadHook, CheckpointMismatchError, ExactResumeHook, NonFiniteGuardHook,
                    NonFiniteTrainingError, ReBNNHook, SafeCheckpointHook)
from .rebnn_regularizer import GAMMA_GRID, ReBNNRegularizer, check_gamma

__all__ = ['GAMMA_GRID', 'CheckedLoadHook', 'CheckpointMismatchError', 'CheckpointReadError', 'ExactResumeHook',
           'NonFiniteGuardHook', 'NonFiniteTrainingError', 'ReBNNHook', 'ReBNNRegularizer', 'SafeCheckpointHook',
           'check_checkpoint', 'check_gamma', 'check_resumable', 'is_complete_checkpoint', 'latest_checkpoint',
           'load_local_checkpoint']
