from .rebnn_hook import ReBNNHook

__all__ = ['ReBNNHook']
