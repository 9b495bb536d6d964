"""rebnn_det: ReBNN binary detectors for MMDetection 3.x. Importing it registers every component in mmdet."""
from . import ops  # noqa: F401  (no mmdet dependency)
from . import registry  # noqa: F401  (ReBNNConv, RSign, RPReLU in mmdet's MODELS)
from . import datasets, deploy, engine, models  # noqa: F401

__version__ = '0.1.0'
