"""ReBNNHook: trains the binary layers of any mmdet model with the ReBNN rule and logs weight oscillation."""
from typing import Dict, Optional, Union

from mmdet.registry import HOOKS
from mmengine.dist import all_reduce, get_world_size
from mmengine.hooks import Hook, LoggerHook
from mmengine.model import is_model_wrapper
from mmengine.optim import AmpOptimWrapper, OptimWrapperDict

from ...ops import binary_weight_layers
from ..rebnn_regularizer import LayerStats, ReBNNRegularizer, check_rule_settings

SUMMARY_KEYS = ('flip', 'gamma', 'loss_r')  # model-wide values, logged as train/rebnn_<key>


@HOOKS.register_module()
class ReBNNHook(Hook):
    """Adds ``L_R = sum (gamma_i/2) ||w_i - alpha_i b_i||^2`` to training and logs sign oscillation.

    ``custom_hooks = [dict(type='ReBNNHook')]`` is all a config needs. The arithmetic lives in
    :class:`~rebnn_det.engine.ReBNNRegularizer`, installed as step pre/post hooks on the runner's optimizer (see
    its docstring for why this is exact under ``accumulative_counts``, AMP and DDP).

    Args:
        gamma: ``'adaptive'`` (paper Eq. 11, default), a constant (the authors' grid 2e-4, 1e-4, 5e-5, 1e-5),
            or 0 (learnable alpha only: statistics without a reconstruction term).
        start_iter / warmup_iters: optimizer steps before the term applies / of its linear ramp.
        log_per_layer: also write ``rebnn/<layer>/{flip,gamma,loss_r}`` (means over each logger interval) to the
            vis backends -- ``scalars.json``, TensorBoard -- but not to the text log, which stays readable.
        oscillation_interval: iterations per oscillation window; ``None`` = one window per epoch (for an
            iteration-based loop, which has a single "epoch", set it).

    Model-wide values go through the message hub every optimizer step (so the text log at the logger interval,
    ``scalars.json`` and TensorBoard show them): ``rebnn_flip`` (fraction of latent weights whose sign flipped in
    this step), ``rebnn_gamma`` (mean gamma), ``rebnn_loss_r`` (``L_R``); at the end of each window, to the text
    log (one line) and the vis backends: ``rebnn_osc_flip_ratio`` (mean per-step flip ratio),
    ``rebnn_osc_flipped`` (flipped at least once) and ``rebnn_osc_oscillated`` (flipped at least twice).
    The hook logs only what it computed: when an optimizer step is skipped (non-finite gradients or weights, which
    the logger is told about, or an update AMP's scaler skipped), the model-wide ``rebnn_*`` values are removed
    from the message hub until a step completes again, so no stale value is logged as current.
    The hook's state (gamma, previous signs, flip counters) is saved in checkpoints under ``'rebnn_hook'``.
    """
    priority = 'NORMAL'

    def __init__(self, gamma: Union[str, float] = 'adaptive', start_iter: int = 0, warmup_iters: int = 0,
                 log_per_layer: bool = True, oscillation_interval: Optional[int] = None):
        self.gamma, self.start_iter, self.warmup_iters = check_rule_settings(gamma, start_iter, warmup_iters)
        if oscillation_interval is not None and oscillation_interval < 1:
            raise ValueError(f'oscillation_interval must be None or >= 1, got {oscillation_interval}')
        self.log_per_layer = log_per_layer
        self.oscillation_interval = oscillation_interval
        self.regularizer: Optional[ReBNNRegularizer] = None
        self._loaded_state: Optional[dict] = None
        self._logged_step = -1
        self._layer_sums: Dict[str, LayerStats] = {}
        self._layer_count, self._log_interval = 0, 50
        self._window_first_iter = 1  # 1-based iteration that opened the current oscillation window

    def before_train(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        layers = binary_weight_layers(model)
        if not layers:
            raise RuntimeError(
                'ReBNNHook found no binary-weight layer in the model (weight_binarizer "rebnn" or "xnor"); '
                'use a binary backbone/neck (e.g. ReBNNResNet, BinaryFPN) or remove ReBNNHook from custom_hooks')
        optim_wrapper = runner.optim_wrapper
        if isinstance(optim_wrapper, OptimWrapperDict):
            raise NotImplementedError('ReBNNHook supports a single optimizer (OptimWrapper/AmpOptimWrapper), '
                                      f'got OptimWrapperDict with {list(optim_wrapper.keys())}')
        grad_scale = (lambda: float(optim_wrapper.loss_scaler.get_scale())) \
            if isinstance(optim_wrapper, AmpOptimWrapper) else None
        distributed_mean = (lambda t: all_reduce(t, op='mean')) if get_world_size() > 1 else None
        self.regularizer = ReBNNRegularizer(layers, self.gamma, self.start_iter, self.warmup_iters, grad_scale,
                                            distributed_mean, report=runner.logger.warning)
        # the step count last logged: a later count means the regularizer completed a step (when AMP skips the
        # first updates, no step has completed and nothing may be logged: last_summary is still empty)
        self._logged_step = self.regularizer.num_steps
        self._window_first_iter = runner.iter + 1
        if self._loaded_state is not None:
            skipped = self.regularizer.load_state_dict(self._loaded_state)
            if skipped:
                runner.logger.warning(f'ReBNNHook: no saved state for {len(skipped)} layer(s) (e.g. {skipped[0]}); '
                                      'they start with fresh gamma and sign history')
            self._window_first_iter = self._loaded_state.get('window_first_iter', self._window_first_iter)
            self._logged_step = self.regularizer.num_steps
            self._loaded_state = None
        self.regularizer.attach(optim_wrapper.optimizer)
        logger_hooks = [h for h in runner.hooks if isinstance(h, LoggerHook)]
        self._log_interval = logger_hooks[0].interval if logger_hooks else self._log_interval
        kinds = sorted({m.weight_binarizer for _, m in layers})
        runner.logger.info(f'ReBNNHook: gamma={self.gamma!r} on {len(self.regularizer.rebnn_layers)} rebnn layers; '
                           f'oscillation statistics on {len(layers)} binary layers ({"/".join(kinds)})')

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        reg = self.regularizer
        if runner.optim_wrapper.should_update():  # an optimizer step was due in this iteration
            reg.discard_weight_hat_grads()  # also when AMP skipped the update
            if reg.num_steps != self._logged_step:  # ... and the regularizer completed it: log what it computed
                self._logged_step = reg.num_steps
                for key in SUMMARY_KEYS:
                    runner.message_hub.update_scalar(f'train/rebnn_{key}', reg.last_summary[key])
                if self.log_per_layer:
                    for name, stats in reg.last_stats.items():
                        old = self._layer_sums.get(name)
                        self._layer_sums[name] = stats if old is None else LayerStats(
                            *(a + b for a, b in zip(old, stats)))
                    self._layer_count += 1
            else:  # skipped (non-finite values, or AMP's scaler): no current value exists, log none
                for key in SUMMARY_KEYS:
                    runner.message_hub.log_scalars.pop(f'train/rebnn_{key}', None)
        if self.log_per_layer and self._layer_count and self.every_n_train_iters(runner, self._log_interval):
            self._write_layer_stats(runner)
        if self.oscillation_interval is not None and self.every_n_train_iters(runner, self.oscillation_interval):
            self._log_window(runner, f'iterations {self._window_first_iter}-{runner.iter + 1}', runner.iter + 1)

    def _write_layer_stats(self, runner) -> None:
        """Per-layer means over the logger interval, straight to the vis backends (scalars.json, TensorBoard)."""
        scalars = {}
        for name, sums in self._layer_sums.items():
            scalars[f'rebnn/{name}/flip'] = sums.flip / self._layer_count
            if name in self.regularizer.rebnn_layers:
                scalars[f'rebnn/{name}/gamma'] = sums.gamma / self._layer_count
                scalars[f'rebnn/{name}/loss_r'] = sums.loss_r / self._layer_count
        runner.visualizer.add_scalars(scalars, step=runner.iter + 1)
        self._layer_sums, self._layer_count = {}, 0

    def after_train_epoch(self, runner) -> None:
        if self.oscillation_interval is None:
            self._log_window(runner, f'epoch {runner.epoch + 1}', runner.iter)  # iterations done so far

    def _log_window(self, runner, label: str, step: int) -> None:
        window = self.regularizer.pop_window()
        self._window_first_iter = step + 1  # step = iterations done: the next one (1-based) opens the next window
        if window['steps'] == 0:
            runner.logger.warning(f'ReBNN oscillation over {label}: no completed optimizer step, nothing measured')
            return
        # straight to the vis backends: the window can close after the last logged iteration of the run
        runner.visualizer.add_scalars(
            {f'rebnn_osc_{k}': window[k] for k in ('flip_ratio', 'flipped', 'oscillated', 'gamma')}, step=step)
        runner.logger.info(f'ReBNN oscillation over {label} ({window["steps"]} steps): mean flip ratio/step '
                           f'{window["flip_ratio"]:.3e}, flipped >=1x {window["flipped"]:.2%}, '
                           f'oscillated (>=2 flips) {window["oscillated"]:.2%}, mean gamma {window["gamma"]:.3e}')

    def after_train(self, runner) -> None:
        if self.regularizer is not None:
            self.regularizer.detach()

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if self.regularizer is not None:
            checkpoint['rebnn_hook'] = dict(self.regularizer.state_dict(), window_first_iter=self._window_first_iter)

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        state = checkpoint.get('rebnn_hook')
        # Only --resume continues the gamma/sign history; load_from (fine-tuning, stage 2) starts it afresh.
        # mmengine calls this hook for both and exposes the difference only as Runner._resume.
        if state is None or not getattr(runner, '_resume', True):
            return
        if self.regularizer is None:
            self._loaded_state = state  # applied in before_train, once the layers are known
        else:
            self.regularizer.load_state_dict(state)
