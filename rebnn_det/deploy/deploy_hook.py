"""BinaryDeployHook: evaluate a trained binary detector in deploy mode (XNOR-popcount kernels).

Added by ``tools/test.py ... --deploy``. It runs at ``before_test``, i.e. after the runner has loaded the checkpoint
(``Runner.test`` calls ``load_or_resume`` before the test loop starts), and converts ``runner.model`` in place
with :func:`.convert.convert_to_deploy`. mmdet's own test flow is otherwise unchanged.
"""
from typing import Optional

from mmdet.registry import HOOKS
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from .convert import convert_to_deploy, deploy_layers
from .kernels import kernel_isa


@HOOKS.register_module()
class BinaryDeployHook(Hook):
    """Convert the model under test to deploy mode before the test loop.

    Args:
        fuse: fuse BN / shortcut add / RPReLU into the kernel epilogue (see :mod:`.convert`).
        isa: force a kernel path (``'avx512'``, ``'avx2'``, ``'portable'``, ``'reference'``); default
            ``$REBNN_KERNEL_ISA`` or the best the CPU runs.
    """
    priority = 'VERY_LOW'

    def __init__(self, fuse: bool = True, isa: Optional[str] = None):
        self.fuse = fuse
        self.isa = isa

    def before_test(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        path = kernel_isa(self.isa)  # fails early on an ISA this machine cannot run
        convert_to_deploy(model, fuse=self.fuse, isa=self.isa)
        runner.logger.info(f'BinaryDeployHook: {len(deploy_layers(model))} binary convolutions run on the '
                           f'XNOR-popcount kernels (path {path!r}, fuse={self.fuse})')
