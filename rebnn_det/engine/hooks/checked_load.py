"""CheckedLoadHook: load the weights a test evaluates, checked against the model (``tools/test.py``)."""
from mmdet.registry import HOOKS
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from ...checkpoint_formats import format_of


class CheckpointMismatchError(ValueError):
    """A checkpoint that does not fit the model built from the config."""


@HOOKS.register_module()
class CheckedLoadHook(Hook):
    """Load ``checkpoint`` into the model at ``before_run`` (``Runner.test`` then finds ``load_from`` unset).

    mmengine's ``load_from`` loads non-strictly: a checkpoint of another config is evaluated with a warning at most.
    Here, with ``strict=True`` (``tools/test.py``'s default), every tensor of the model must be in the file with its
    shape and the file must hold nothing else (:class:`CheckpointMismatchError` naming the tensors otherwise); a
    file of a registered format (a packed 1-bit file) is put into the model by its own checked loader
    (:func:`rebnn_det.deploy.packed_file.load_packed_state`, the same as ``load_packed``). ``strict=False``
    (``--allow-partial``) loads what fits, as mmengine does, and reports the rest. Either way the file itself is
    read by the checked loader of :mod:`rebnn_det.engine.checkpoint`.
    """
    priority = 'VERY_HIGH'

    def __init__(self, checkpoint: str, strict: bool = True):
        self.checkpoint = checkpoint
        self.strict = strict

    def before_run(self, runner) -> None:
        fmt = format_of(self.checkpoint)
        if self.strict and fmt is not None:
            model = runner.model.module if is_model_wrapper(runner.model) else runner.model
            fmt.load_into(model, self.checkpoint)
            runner.logger.info(f'Loaded {fmt.name} file {self.checkpoint} (checked against the model)')
            return
        try:
            runner.load_checkpoint(self.checkpoint, map_location='cpu', strict=self.strict)
        except RuntimeError as err:
            if not self.strict or 'do not match exactly' not in str(err):  # not a mismatch
                raise
            raise CheckpointMismatchError(
                f'checkpoint {self.checkpoint!r} does not fit the model built from the config: '
                f'{str(err).strip()} -- pass --allow-partial to load only what fits') from err
