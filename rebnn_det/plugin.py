"""The mmdet plugin: importing this module registers every rebnn_det component in mmdet's registries (models,
hooks, the dataset, the checkpoint loader). Configs load it with
``custom_imports = dict(imports=['rebnn_det.plugin'], allow_failed_imports=False)``."""
from . import registry  # noqa: F401  (ReBNNConv, RSign, RPReLU in mmdet's MODELS)
from . import datasets, engine, evaluation, models  # noqa: F401
from .deploy import deploy_hook  # noqa: F401  (BinaryDeployHook)
