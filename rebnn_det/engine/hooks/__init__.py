from .exact_resume import ExactResumeHook
from .nonfinite_guard import NonFiniteGuardHook, NonFiniteTrainingError
from .rebnn_hook import ReBNNHook

__all__ = ['ExactResumeHook', 'NonFiniteGuardHook', 'NonFiniteTrainingError', 'ReBNNHook']
