"""NonFiniteGuardHook: a diverged run stops with an error naming the iteration and never writes a checkpoint."""
import math
from typing import Dict, Iterator, List, Tuple

import torch
from mmdet.registry import HOOKS
from mmengine.dist import all_reduce, get_world_size
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.runner import EpochBasedTrainLoop

from ...run_logs import last_checkpoint_named


class NonFiniteTrainingError(RuntimeError):
    """Training produced a NaN/Inf loss or weights (the run diverged)."""


def _named_float_tensors(obj, prefix: str = '') -> Iterator[Tuple[str, torch.Tensor]]:
    """Every floating-point tensor inside nested dicts/lists/tuples, with a dotted path as its name."""
    if isinstance(obj, torch.Tensor):
        if obj.is_floating_point():
            yield prefix, obj
    elif isinstance(obj, dict):
        for key, value in obj.items():
            yield from _named_float_tensors(value, f'{prefix}.{key}' if prefix else str(key))
    elif isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            yield from _named_float_tensors(value, f'{prefix}.{i}' if prefix else str(i))


def non_finite_names(named_tensors) -> List[str]:
    """Names of the tensors that hold a NaN or Inf.

    Fast path: one sum per tensor and a single device sync (a NaN/Inf element makes the sum non-finite); only a
    tensor whose sum is not finite gets the exact ``isfinite`` check, so huge-but-finite values whose sum
    overflows are not reported."""
    named = list(named_tensors)
    if not named:
        return []
    sums = [t.detach().sum() for _, t in named]
    finite = torch.isfinite(torch.stack([s.to(sums[0].device, torch.float32) for s in sums])).cpu().tolist()
    return [name for (name, t), ok in zip(named, finite) if not ok and not bool(torch.isfinite(t.detach()).all())]


@HOOKS.register_module()
class NonFiniteGuardHook(Hook):
    """Stops a diverged run with :class:`NonFiniteTrainingError` before a non-finite checkpoint can be written.

    * After every training iteration, a loss in the model's outputs (every ``*loss*`` entry of ``train_step``'s
      log variables) that is NaN/Inf counts as a bad step; ``max_consecutive`` bad steps in a row stop training.
      A bad step with finite weights is what mixed precision produces on purpose (``AmpOptimWrapper``'s dynamic
      loss scale skips that optimizer step), so the default tolerates a few.
    * A NaN/Inf in the model's parameters/buffers or in the optimizer state stops training at once (no later
      step can repair it). With ``check_weights=True`` (default) this is checked after every iteration; with
      ``False`` only at the end of each epoch.

    Why the checks run in ``after_train_iter``/``after_train_epoch`` (this hook has priority ``VERY_HIGH``, so it
    runs before mmengine's ``CheckpointHook``): mmengine 0.10.7's ``CheckpointHook`` deletes the oldest kept
    checkpoint (``max_keep_ckpts``) *before* it writes the new one, so refusing in ``before_save_checkpoint`` would
    come too late to keep the last good file. ``before_save_checkpoint`` still refuses a non-finite model or
    optimizer state (a last line for saves this hook did not see coming, e.g. an iteration-interval checkpoint
    with ``check_weights=False``); no non-finite file is written either way. Under DDP the flags are max-reduced
    over ranks so every rank stops at the same iteration.

    ``tools/train.py`` and the demo add this hook to every training config that does not list it
    (:func:`rebnn_det.apis.cli.with_training_safety_hooks`); list it in ``custom_hooks`` to change its arguments.
    """
    priority = 'VERY_HIGH'  # before the logger and checkpoint hooks see the iteration

    def __init__(self, max_consecutive: int = 3, check_weights: bool = True):
        if not isinstance(max_consecutive, int) or isinstance(max_consecutive, bool) or max_consecutive < 1:
            raise ValueError(f'max_consecutive must be an int >= 1, got {max_consecutive!r}')
        self.max_consecutive = max_consecutive
        self.check_weights = bool(check_weights)
        self.consecutive = 0

    @staticmethod
    def _state(runner) -> Iterator[Tuple[str, torch.Tensor]]:
        """The model's parameters/buffers by name, then the optimizer state named after its parameter
        (``optimizer[backbone.conv1.weight].exp_avg``)."""
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        yield from _named_float_tensors(model.state_dict())
        optimizer = getattr(runner.optim_wrapper, 'optimizer', None)
        if optimizer is None:  # OptimWrapperDict: several optimizers, named by their state_dict layout
            yield from _named_float_tensors(runner.optim_wrapper.state_dict(), 'optimizer')
            return
        names = {id(p): n for n, p in model.named_parameters()}
        for param, state in optimizer.state.items():
            yield from _named_float_tensors(state, f'optimizer[{names.get(id(param), "?")}]')

    @staticmethod
    def _losses(outputs) -> Dict[str, float]:
        if not isinstance(outputs, dict):
            return {}
        losses = {}
        for key, value in outputs.items():
            if 'loss' not in key:
                continue
            if isinstance(value, torch.Tensor):
                value = value.detach().float().sum().item() if value.numel() else 0.0
            if isinstance(value, (int, float)):
                losses[key] = float(value)
        return losses

    @staticmethod
    def _last_checkpoint(runner) -> str:
        named = last_checkpoint_named(runner.work_dir)
        return 'no checkpoint was written by this run' if named is None else f'the last checkpoint written is {named}'

    @staticmethod
    def _any_rank(*flags: bool) -> List[bool]:
        values = torch.tensor([float(f) for f in flags])
        if get_world_size() > 1:
            all_reduce(values, op='max')
        return [bool(v) for v in values]

    @staticmethod
    def _shown(names: List[str]) -> str:
        return ', '.join(names[:5]) + (f' and {len(names) - 5} more' if len(names) > 5 else '')

    def _raise(self, runner, where: str, what: List[str]) -> None:
        raise NonFiniteTrainingError(
            f'Training diverged at {where}: {"; ".join(what)}. Stopped before any checkpoint of this state was '
            f'written; {self._last_checkpoint(runner)}. Lower the learning rate (optim_wrapper.optimizer.lr), '
            'check the data, or add gradient clipping (optim_wrapper.clip_grad), then --resume or restart.')

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        bad_losses = {k: v for k, v in self._losses(outputs).items() if not math.isfinite(v)}
        bad_state = non_finite_names(self._state(runner)) if self.check_weights else []
        loss_bad, state_bad = self._any_rank(bool(bad_losses), bool(bad_state))
        self.consecutive = self.consecutive + 1 if loss_bad else 0
        if not state_bad and self.consecutive < self.max_consecutive:
            return
        where = f'iteration {runner.iter + 1} (epoch {runner.epoch + 1}, batch {batch_idx + 1}'
        where += f' of {len(runner.train_dataloader)})' if isinstance(runner.train_loop, EpochBasedTrainLoop) else ')'
        what = []
        if bad_losses:
            what.append('non-finite loss ' + ', '.join(f'{k}={v}' for k, v in sorted(bad_losses.items())))
        elif loss_bad:
            what.append('non-finite loss on another rank')
        if self.consecutive:
            what.append(f'{self.consecutive} consecutive step(s) with a non-finite loss '
                        f'(max_consecutive={self.max_consecutive})')
        if bad_state:
            what.append(f'non-finite model/optimizer state in {len(bad_state)} tensor(s): {self._shown(bad_state)}')
        elif state_bad:
            what.append('non-finite model/optimizer state on another rank')
        self._raise(runner, where, what)

    def after_train_epoch(self, runner) -> None:
        if self.check_weights:
            return  # checked after the epoch's last iteration already
        bad_state = non_finite_names(self._state(runner))
        if self._any_rank(bool(bad_state))[0]:
            self._raise(runner, f'the end of epoch {runner.epoch + 1} (iteration {runner.iter})',
                        [f'non-finite model/optimizer state in {len(bad_state)} tensor(s): {self._shown(bad_state)}'
                         if bad_state else 'non-finite model/optimizer state on another rank'])

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        bad = non_finite_names(_named_float_tensors(
            {k: checkpoint[k] for k in ('state_dict', 'optimizer') if k in checkpoint}))
        if bad:
            raise NonFiniteTrainingError(
                f'Refusing to save a checkpoint at iteration {runner.iter + 1} (epoch {runner.epoch + 1}): '
                f'{len(bad)} tensor(s) are NaN/Inf ({self._shown(bad)}). The run diverged; nothing was written.')
