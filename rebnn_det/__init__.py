"""rebnn_det: ReBNN binary detectors for MMDetection 3.x. Importing it registers every component in mmdet.

The arithmetic (:mod:`rebnn_det.ops`), the file helpers and the packed-format readers need only torch: where mmdet
is not installed, ``import rebnn_det.ops`` still works and nothing is registered (a config that names a rebnn_det
component then fails in mmdet's registry, which is not there either).
"""
import importlib.util

from . import ops  # noqa: F401  (no mmdet dependency)

__version__ = '0.1.0'

if importlib.util.find_spec('mmdet') is not None:
    from . import registry  # noqa: F401  (ReBNNConv, RSign, RPReLU in mmdet's MODELS)
    from . import datasets, deploy, engine, models  # noqa: F401
