"""The ReBNN training rule as optimizer-step hooks (Xu et al. 2023, Sec. 3.2-3.3), independent of mmengine's
runner so it can be tested with a bare ``torch.optim`` optimizer.

Objective ``L = L_S + L_R`` with ``L_R = sum_layers sum_i (gamma_i / 2) ||w_i - alpha_i b_i||^2``, ``b = sign(w)``.
Its gradient is added to the one backpropagation produced (Eq. 8-9):
``dw_i += gamma_i (w_i - alpha_i b_i)`` and ``dalpha_i -= gamma_i sum_j (w_ij - alpha_i b_ij) b_ij``.
The balanced parameter (Eq. 11) is ``gamma_i^{t+1} = p_i * max_j |dL/dw_hat_ij^t|``, ``p_i`` the fraction of
channel ``i``'s latent weights whose sign flipped between steps ``t`` and ``t+1``.

Why optimizer-step hooks: ``torch.optim.Optimizer.register_step_pre_hook`` runs inside ``optimizer.step()``,
i.e. exactly once per parameter update, after gradient accumulation (``accumulative_counts``), after DDP has
averaged ``.grad`` across ranks and after AMP's ``GradScaler`` has unscaled it (and not at all when it found an
inf); gradient clipping has run too, so the reconstruction gradient itself is not clipped. The post hook sees the
updated weights, which gives the sign flips between ``t`` and ``t+1``. ``dL/dw_hat`` is not a parameter gradient:
ReBNNConv accumulates it during backward (``track_weight_hat_grad``); the pre hook divides it by the AMP loss
scale and averages it across ranks, so it matches ``.grad`` in all three settings.
"""
import math
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from ..caller_warning import warn_at_caller
from ..ops import BinaryLayerMixin, hard_sign, per_channel, scale_signs, sign_bit

GAMMA_GRID = (2e-4, 1e-4, 5e-5, 1e-5)  # the authors' constant-gamma grid


def check_gamma(gamma: Union[str, float]) -> Union[str, float]:
    """``'adaptive'`` or a constant ``>= 0``; anything else raises a ``ValueError`` naming the choices."""
    if isinstance(gamma, str):
        if gamma != 'adaptive':
            raise ValueError(f"gamma must be 'adaptive' or a number >= 0 (e.g. {GAMMA_GRID} or 0), got {gamma!r}")
        return gamma
    if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or not math.isfinite(gamma) or gamma < 0:
        raise ValueError(f"gamma must be 'adaptive' or a number >= 0 (e.g. {GAMMA_GRID} or 0), got {gamma!r}")
    return float(gamma)


def check_rule_settings(gamma: Union[str, float] = 'adaptive', start_iter: int = 0,
                        warmup_iters: int = 0) -> Tuple[Union[str, float], int, int]:
    """Validate the settings of the ReBNN rule (shared by :class:`ReBNNRegularizer` and ``ReBNNHook``):
    ``gamma`` as :func:`check_gamma`, ``start_iter`` and ``warmup_iters`` integers ``>= 0``."""
    for name, value in (('start_iter', start_iter), ('warmup_iters', warmup_iters)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f'{name} must be an integer >= 0, got {value!r}')
    return check_gamma(gamma), start_iter, warmup_iters


class LayerStats(NamedTuple):
    """One binary layer's numbers for one optimizer step."""
    flip: float  # fraction of the layer's latent weights whose sign flipped in the step
    gamma: float  # mean balanced parameter gamma_i over the layer's output channels (0 for 'xnor' layers)
    loss_r: float  # the layer's reconstruction loss sum_i (gamma_i / 2) ||w_i - alpha_i b_i||^2


def _all_finite(tensors: Sequence[Tensor]) -> bool:
    return not tensors or bool(torch.stack([torch.isfinite(t).all() for t in tensors]).all())


class ReBNNRegularizer:
    """Applies the ReBNN reconstruction gradient and balanced-parameter rule to binary layers.

    Args:
        layers: ``(name, ReBNNConv)`` pairs with binary weights. ``'rebnn'`` layers get the reconstruction term;
            ``'xnor'`` layers (no learnable alpha) only get oscillation statistics.
        gamma: ``'adaptive'`` (Eq. 11), or a constant (the authors' grid 2e-4 ... 1e-5), or 0 (learnable alpha
            only, no reconstruction term).
        start_iter: optimizer steps before the reconstruction term starts (gamma is still computed).
        warmup_iters: linear ramp of the applied gamma over this many steps after ``start_iter``.
        grad_scale: callable returning the current AMP loss scale (``None``: no scaling).
        distributed_mean: callable averaging a tensor in place across ranks (``None``: single process).
        report: callable given a message whenever a step is skipped (``None``: a RuntimeWarning shown at the
            caller's line, :func:`~rebnn_det.caller_warning.warn_at_caller`).

    A step whose gradients (``.grad`` of the binary weights and alphas, ``dL/dw_hat``) or binary weights are not
    all finite is skipped: no reconstruction gradient, gamma, sign history, statistics or step count change, and
    ``report`` is told. :attr:`num_steps` counts completed steps, :attr:`num_skipped` skipped ones.
    """

    def __init__(self, layers: Sequence[Tuple[str, BinaryLayerMixin]], gamma: Union[str, float] = 'adaptive',
                 start_iter: int = 0, warmup_iters: int = 0, grad_scale: Optional[Callable[[], float]] = None,
                 distributed_mean: Optional[Callable[[Tensor], None]] = None,
                 report: Optional[Callable[[str], None]] = None):
        self.gamma, self.start_iter, self.warmup_iters = check_rule_settings(gamma, start_iter, warmup_iters)
        self.layers: Dict[str, BinaryLayerMixin] = {}
        for name, layer in layers:
            if not layer.binary_weights:
                raise ValueError(f"layer {name!r} has real weights (weight_binarizer={layer.weight_binarizer!r})")
            self.layers[name] = layer
        if not self.layers:
            raise ValueError('no binary-weight layer to regularize')
        self.rebnn_layers = [n for n, m in self.layers.items() if m.weight_quantizer.learnable_scale]
        if self.gamma != 0 and not self.rebnn_layers:
            raise ValueError("gamma != 0 needs layers with weight_binarizer='rebnn' (a learnable alpha); "
                             'use gamma=0 for oscillation statistics only')
        self.grad_scale, self.distributed_mean = grad_scale, distributed_mean
        self.report = report or (lambda msg: warn_at_caller(msg, RuntimeWarning))
        self.num_steps = 0
        self.num_skipped = 0
        self.consecutive_skipped = 0
        self.state: Dict[str, Dict[str, Tensor]] = {}
        for name, layer in self.layers.items():
            w = layer.weight.detach()
            init_gamma = 0.0 if self.gamma == 'adaptive' else self.gamma
            self.state[name] = dict(
                gamma=torch.full((w.shape[0], ), init_gamma, dtype=torch.float32, device=w.device),
                grad_absmax=torch.zeros(w.shape[0], dtype=torch.float32, device=w.device),
                prev_sign=~sign_bit(w),  # True where sign(w) = +1
                flip_count=torch.zeros_like(w, dtype=torch.int16))
        self.window_steps = 0
        self.window_gamma_sum = 0.0
        self.last_stats: Optional[Dict[str, LayerStats]] = None  # per layer, of the last completed step
        self.last_summary: Dict[str, float] = {}  # summarize_last_step() of the last step
        self._skip_step = False
        self._loss_r: Dict[str, Tensor] = {}
        self._handles: List = []

    # ---- wiring ----------------------------------------------------------------------------------------------
    def attach(self, optimizer: torch.optim.Optimizer) -> None:
        """Install the pre/post step hooks on ``optimizer`` and start recording ``dL/dw_hat``."""
        self.detach()
        if self.gamma == 'adaptive':
            for name in self.rebnn_layers:
                self.layers[name].track_weight_hat_grad(True)
        self._handles = [optimizer.register_step_pre_hook(lambda *_: self.before_step()),
                         optimizer.register_step_post_hook(lambda *_: self.after_step())]

    def detach(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []
        for layer in self.layers.values():
            layer.track_weight_hat_grad(False)

    def discard_weight_hat_grads(self) -> None:
        """Forget the recorded ``dL/dw_hat`` (after an update, or an update AMP skipped)."""
        for name in self.rebnn_layers:
            self.layers[name].weight_hat_grad = None

    def applied_gamma_factor(self) -> float:
        """1 after warm-up, a linear ramp during it, 0 before ``start_iter``."""
        t = self.num_steps - self.start_iter
        if t < 0:
            return 0.0
        return 1.0 if self.warmup_iters == 0 else min(1.0, (t + 1) / self.warmup_iters)

    # ---- the rule --------------------------------------------------------------------------------------------
    def _gather_weight_hat_grads(self) -> Dict[str, Tensor]:
        with torch.no_grad():
            grads = {n: self.layers[n].weight_hat_grad for n in self.rebnn_layers
                     if self.layers[n].weight_hat_grad is not None}
            if grads and self.distributed_mean is not None:
                flat = torch.cat([g.flatten() for g in grads.values()])
                self.distributed_mean(flat)
                offset = 0
                for n, g in grads.items():
                    g.copy_(flat[offset:offset + g.numel()].view_as(g))
                    offset += g.numel()
            scale = self.grad_scale() if self.grad_scale is not None else None
            if scale is not None and scale != 1:
                for g in grads.values():
                    g.div_(scale)
            return grads

    def before_step(self) -> None:
        """Record ``max_j |dL/dw_hat_ij|`` and add the reconstruction gradient (Eq. 8-9) to ``.grad``."""
        with torch.no_grad():
            weight_hat_grads = self._gather_weight_hat_grads() if self.gamma == 'adaptive' else {}
            self.discard_weight_hat_grads()
            params = [p for n in self.rebnn_layers for p in (self.layers[n].weight, self.layers[n].alpha)]
            params += [m.weight for n, m in self.layers.items() if n not in self.rebnn_layers]
            tensors = list(weight_hat_grads.values()) + params + [p.grad for p in params if p.grad is not None]
            self._skip_step = not _all_finite(tensors)
            if self._skip_step:
                self._report_skip('gradient or binary weight')
                return
            factor = self.applied_gamma_factor()
            loss_r = {}
            for name in self.rebnn_layers:
                layer, st = self.layers[name], self.state[name]
                if name in weight_hat_grads:
                    st['grad_absmax'] = weight_hat_grads[name].abs().flatten(1).amax(1).float()
                w, alpha = layer.weight, layer.alpha
                b = hard_sign(w)
                residual = w - scale_signs(b, alpha)
                gamma = st['gamma'].to(w.dtype)
                loss_r[name] = (gamma * residual.flatten(1).pow(2).sum(1)).sum() / 2
                if factor == 0:
                    continue
                if w.grad is not None:
                    w.grad.add_(per_channel(gamma * factor, w) * residual)
                if alpha.grad is not None:
                    alpha.grad.sub_(gamma * factor * (residual * b).flatten(1).sum(1))
            self._loss_r = loss_r

    def _report_skip(self, what: str) -> None:
        self.num_skipped += 1
        self.consecutive_skipped += 1
        self.report(f'ReBNN: non-finite {what} at optimizer step {self.num_steps} ({self.consecutive_skipped} '
                    'consecutive); the ReBNN update, gamma, sign history and statistics skipped for this step')

    def after_step(self) -> None:
        """Count the sign flips of step ``t -> t+1`` and set ``gamma^{t+1} = p * max|dL/dw_hat^t|`` (Eq. 11)."""
        with torch.no_grad():
            if self._skip_step:
                self._skip_step = False
                return
            if not _all_finite([m.weight for m in self.layers.values()]):
                self._report_skip('binary weight after the update')
                return
            flips, gammas, losses = [], [], []
            for name, layer in self.layers.items():
                st = self.state[name]
                sign = ~sign_bit(layer.weight.detach())
                flipped = sign != st['prev_sign']
                if self.gamma == 'adaptive' and name in self.rebnn_layers:
                    st['gamma'] = flipped.flatten(1).float().mean(1) * st['grad_absmax']
                st['flip_count'].add_(flipped.to(torch.int16)).clamp_(max=torch.iinfo(torch.int16).max)
                st['prev_sign'] = sign
                flips.append(flipped.float().mean())
                gammas.append(st['gamma'].mean() if name in self.rebnn_layers else flips[-1].new_zeros(()))
                losses.append(self._loss_r.get(name, flips[-1].new_zeros(())).float())
            self.num_steps += 1
            self.consecutive_skipped = 0
            self.window_steps += 1
            rows = torch.stack([torch.stack(flips), torch.stack(gammas), torch.stack(losses)], 1).tolist()
            self.last_stats = {name: LayerStats(*row) for name, row in zip(self.layers, rows)}
            self.last_summary = self.summarize_last_step()
            self.window_gamma_sum += self.last_summary['gamma']

    # ---- statistics ------------------------------------------------------------------------------------------
    def summarize_last_step(self) -> Dict[str, float]:
        """Model-wide numbers of the last step: ``flip`` ratio (weighted by layer size), mean ``gamma``, total
        ``loss_r`` (L_R)."""
        sizes = {n: self.layers[n].weight.numel() for n in self.layers}
        total = sum(sizes.values())
        stats = self.last_stats
        return dict(flip=sum(stats[n].flip * sizes[n] for n in stats) / total,
                    gamma=sum(stats[n].gamma for n in self.rebnn_layers) / max(1, len(self.rebnn_layers)),
                    loss_r=sum(stats[n].loss_r for n in stats))

    def pop_window(self) -> Dict[str, float]:
        """Oscillation over the steps since the last call, then reset the window:
        ``flip_ratio`` (mean fraction of weights flipped per step), ``flipped`` (fraction flipped at least once),
        ``oscillated`` (fraction flipped at least twice, i.e. went back and forth) and ``gamma`` (the per-step
        ``summarize_last_step()['gamma']`` averaged over the window)."""
        with torch.no_grad():
            total = sum(self.state[n]['flip_count'].numel() for n in self.layers)
            counts = [self.state[n]['flip_count'] for n in self.layers]
            steps = max(1, self.window_steps)
            out = dict(flip_ratio=sum(float(c.sum()) for c in counts) / total / steps,
                       flipped=sum(float((c >= 1).sum()) for c in counts) / total,
                       oscillated=sum(float((c >= 2).sum()) for c in counts) / total,
                       gamma=self.window_gamma_sum / steps, steps=self.window_steps)
            for c in counts:
                c.zero_()
            self.window_steps, self.window_gamma_sum = 0, 0.0
            return out

    # ---- checkpointing ---------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return dict(num_steps=self.num_steps, window_steps=self.window_steps, window_gamma_sum=self.window_gamma_sum,
                    gamma=self.gamma,
                    layers={n: {k: v.detach().cpu().clone() for k, v in st.items()} for n, st in self.state.items()})

    def load_state_dict(self, state: dict) -> List[str]:
        """Restore a :meth:`state_dict`; returns the names of layers whose state was missing or mismatched."""
        self.num_steps = int(state.get('num_steps', 0))
        self.window_steps = int(state.get('window_steps', 0))
        self.window_gamma_sum = float(state.get('window_gamma_sum', 0.0))
        skipped = []
        for name, st in self.state.items():
            saved = state.get('layers', {}).get(name)
            if saved is None or any(saved.get(k) is None or saved[k].shape != v.shape for k, v in st.items()):
                skipped.append(name)
                continue
            for k, v in st.items():
                st[k] = saved[k].to(device=v.device, dtype=v.dtype)
        return skipped
