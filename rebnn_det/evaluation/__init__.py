"""Metrics of the classification stage."""
from .classification_accuracy import ClassificationAccuracy

__all__ = ['ClassificationAccuracy']
