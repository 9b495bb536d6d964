from .checked_load import CheckedLoadHook, CheckpointMismatchError
from .exact_resume import ExactResumeHook
from .nonfinite_guard import NonFiniteGuardHook, NonFiniteTrainingError
from .rebnn_hook import ReBNNHook
from .safe_checkpoint import SafeCheckpointHook

__all__ = ['CheckedLoadHook', 'CheckpointMismatchError', 'ExactResumeHook', 'NonFiniteGuardHook',
           'NonFiniteTrainingError', 'ReBNNHook', 'SafeCheckpointHook']
