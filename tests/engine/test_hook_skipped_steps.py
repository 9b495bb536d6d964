"""ReBNNHook when mixed precision skips an update: the skipped iteration's dL/dw_hat must not reach the next step.

AMP's GradScaler that finds an inf gradient does not call ``optimizer.step()``, so the regularizer's step pre hook
(which reads and clears the recorded ``dL/dw_hat``) never runs for that iteration. ReBNNHook clears the record
after every iteration that was due to update; without that, the next clean step's gamma would be computed from
the sum of both iterations' ``dL/dw_hat``.
"""
import uuid

import torch
from mmengine.model import BaseModel
from mmengine.optim import AmpOptimWrapper, OptimWrapper
from mmengine.registry import OPTIM_WRAPPERS
from mmengine.runner import Runner
from torch import nn

from rebnn_det.engine import ReBNNHook
from rebnn_det.ops import ReBNNConv

SCALE = 2.0**10


@OPTIM_WRAPPERS.register_module(force=True)
class CpuGradScalerOptimWrapper(AmpOptimWrapper):
    """mmengine's AmpOptimWrapper (backward with the scaled loss, ``GradScaler.step`` + ``update``) with
    ``torch.amp.GradScaler('cpu')``: AmpOptimWrapper itself refuses to start without an accelerator."""

    def __init__(self, loss_scale: float = SCALE, **kwargs):
        OptimWrapper.__init__(self, **kwargs)
        self._scale_update_param = None
        self.loss_scaler = torch.amp.GradScaler('cpu', init_scale=loss_scale)
        self.cast_dtype = None

    def optim_context(self, model):
        return OptimWrapper.optim_context(self, model)  # no autocast: float32 arithmetic, exact comparisons


class PoisonableNet(BaseModel):
    """One ReBNN 3x3 conv and a real linear head. A batch whose ``poison`` flag is set gets an inf gradient on
    the head's bias only (what an fp16 overflow in another layer looks like): the loss and the conv's dL/dw_hat
    stay finite, the GradScaler finds the inf and skips the update."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = ReBNNConv(3, 4, 3, padding=1)
        self.head = nn.Linear(4, 2)

    def forward(self, inputs, targets=None, poison=None, mode='tensor'):
        bias = self.head.bias * 1.0
        if poison is not None and bool(poison.any()):
            bias.register_hook(lambda g: torch.full_like(g, float('inf')))
        out = nn.functional.linear(self.conv(inputs).mean((2, 3)), self.head.weight, bias)
        if mode == 'loss':
            return dict(loss=((out - targets)**2).mean())
        return out


def batches(n_batches, poisoned=()):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(8, 3, 6, 6, generator=g)
    y = torch.randn(8, 2, generator=g)
    data = []  # batch 0 of the run is (x[:4], y[:4]), batch 1 is (x[4:], y[4:]): both runs see the same clean batch
    for b in range(n_batches):
        src = slice(0, 4) if b in poisoned else slice(4, 8)
        data += [dict(inputs=x[src][i], targets=y[src][i], poison=b in poisoned) for i in range(4)]
    return data


class ListData(torch.utils.data.Dataset):

    def __init__(self, items):
        self.items = items

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def run(work_dir, data, wrapper='CpuGradScalerOptimWrapper'):
    runner = Runner(
        model=PoisonableNet(), work_dir=str(work_dir),
        train_dataloader=dict(dataset=ListData(data), batch_size=4, num_workers=0,
                              sampler=dict(type='DefaultSampler', shuffle=False),
                              collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(type=wrapper, optimizer=dict(type='SGD', lr=2.0, momentum=0.9)),
        train_cfg=dict(by_epoch=False, max_iters=len(data) // 4),
        custom_hooks=[dict(type='ReBNNHook', gamma='adaptive', oscillation_interval=1)],
        default_hooks=dict(logger=dict(type='LoggerHook', interval=1)),
        default_scope='mmdet', randomness=dict(seed=0), experiment_name=f'run_{uuid.uuid4().hex[:12]}')
    runner.train()
    hook = next(h for h in runner.hooks if isinstance(h, ReBNNHook))
    return runner, hook.regularizer


def clean_step_weight_hat_grad(data):
    """dL/dw_hat of the clean batch at the initial weights, by autograd through an explicit w_hat leaf."""
    model = PoisonableNet()
    conv = model.conv
    w_hat = (conv.alpha.detach().view(-1, 1, 1, 1) * torch.where(conv.weight < 0, -1.0, 1.0)).requires_grad_()
    x = torch.stack([d['inputs'] for d in data])
    y = torch.stack([d['targets'] for d in data])
    feat = nn.functional.conv2d(conv.binarize_input(x), w_hat, None, 1, 1).mean((2, 3))
    loss = ((model.head(feat) - y)**2).mean()
    loss.backward()
    return w_hat.grad


def test_amp_skipped_step_leaves_no_weight_hat_grad_for_the_next_step(tmp_path):
    skipped_runner, skipped = run(tmp_path / 'skipped', batches(2, poisoned={0}))
    scaler = skipped_runner.optim_wrapper.loss_scaler
    assert scaler.get_scale() == SCALE / 2  # the scaler found the inf once (backoff 0.5), then grew nothing yet
    # the pre hook never ran for the skipped update: one completed step, nothing the regularizer saw as skipped
    assert skipped.num_steps == 1 and skipped.num_skipped == 0
    assert skipped.layers['conv'].weight_hat_grad is None

    clean_runner, clean = run(tmp_path / 'clean', batches(1))  # the clean batch alone, same initial model
    assert clean.num_steps == 1

    g_hat = clean_step_weight_hat_grad(batches(1))
    expected_absmax = g_hat.abs().flatten(1).amax(1)
    # max_j |dL/dw_hat_ij| of the clean step only (the loss scales are powers of 2: the division is exact)
    assert torch.allclose(skipped.state['conv']['grad_absmax'], expected_absmax, rtol=1e-6, atol=0)
    assert torch.equal(skipped.state['conv']['grad_absmax'], clean.state['conv']['grad_absmax'])
    # gamma^1 = (flip fraction of the clean step) * that max, channel by channel
    w0 = PoisonableNet().conv.weight.detach()
    w1 = skipped_runner.model.conv.weight.detach()
    flips = ((w1 >= 0) != (w0 >= 0)).flatten(1).float().mean(1)
    assert flips.gt(0).any()  # the clean step flipped signs: gamma is not trivially 0
    assert torch.allclose(skipped.state['conv']['gamma'], flips * expected_absmax, rtol=1e-6, atol=0)
    assert torch.equal(skipped.state['conv']['gamma'], clean.state['conv']['gamma'])
    assert torch.equal(w1, clean_runner.model.conv.weight.detach())


def test_every_skipped_update_is_discarded_not_only_the_first(tmp_path):
    """Two skipped updates in a row, then a clean one: still only the clean step's dL/dw_hat."""
    skipped_runner, skipped = run(tmp_path / 'skipped', batches(3, poisoned={0, 1}))
    assert skipped_runner.optim_wrapper.loss_scaler.get_scale() == SCALE / 4
    _, clean = run(tmp_path / 'clean', batches(1))
    assert skipped.num_steps == clean.num_steps == 1
    for key in ('grad_absmax', 'gamma', 'prev_sign'):
        assert torch.equal(skipped.state['conv'][key], clean.state['conv'][key]), key
