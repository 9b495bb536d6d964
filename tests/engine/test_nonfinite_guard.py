"""NonFiniteGuardHook on a one-weight model whose loss or weight turns NaN at chosen iterations: the error names
the iteration, tolerated AMP-style skipped steps, and the last good checkpoint surviving max_keep_ckpts=1."""
import math
import os.path as osp

import pytest
import torch
from mmengine.model import BaseModel
from mmengine.runner import Runner

from rebnn_det.engine import NonFiniteGuardHook, NonFiniteTrainingError
from rebnn_det.engine.hooks.nonfinite_guard import non_finite_names


class OneWeight(BaseModel):
    """loss = w * x. At the (1-based) iterations in ``nan_loss`` the loss is NaN with a zero gradient (what a skipped
    mixed-precision step looks like: the weights stay finite); at those in ``nan_grad`` the gradient is NaN, so
    SGD writes NaN into the weight."""

    def __init__(self, nan_loss=(), nan_grad=()):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(1))
        self.nan_loss, self.nan_grad, self.calls = set(nan_loss), set(nan_grad), 0

    def forward(self, x, mode='loss'):
        self.calls += 1
        loss = (self.w * x).sum()
        if self.calls in self.nan_loss:
            loss = loss * 0 + float('nan')  # d loss / d w = 0 * ... : the nan only reaches the logged value
            loss = loss.detach() + 0 * self.w.sum()
        if self.calls in self.nan_grad:
            loss = (self.w * float('nan')).sum()
        return dict(loss=loss)


def make_runner(tmp_path, model, iters=10, by_epoch=False, epochs=1, momentum=0.0, **guard):
    return Runner(
        model=model, work_dir=str(tmp_path), experiment_name=f'guard_{tmp_path.name}',
        train_dataloader=dict(dataset=[dict(x=torch.ones(1)) for _ in range(iters)], batch_size=1, num_workers=0,
                              sampler=dict(type='DefaultSampler', shuffle=False),
                              collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01, momentum=momentum)),
        train_cfg=dict(by_epoch=True, max_epochs=epochs),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=1, by_epoch=by_epoch, max_keep_ckpts=1),
                           logger=dict(type='LoggerHook', interval=1)),
        custom_hooks=[NonFiniteGuardHook(**guard)], default_scope='mmdet')


def test_nan_loss_stops_after_max_consecutive_bad_steps_and_names_the_iteration(tmp_path):
    # iterations 3-4 are skipped steps (tolerated: 2 < 3), 7-8-9 are three in a row: stop at iteration 9
    runner = make_runner(tmp_path, OneWeight(nan_loss=(3, 4, 7, 8, 9)), max_consecutive=3)
    with pytest.raises(NonFiniteTrainingError, match=r'Training diverged at iteration 9 \(epoch 1, batch 9 of 10\)'
                       r': non-finite loss loss=nan; 3 consecutive step\(s\) with a non-finite loss') as err:
        runner.train()
    assert 'the last checkpoint written is' in str(err.value) and 'iter_8.pth' in str(err.value)
    assert osp.isfile(tmp_path / 'iter_8.pth') and not osp.exists(tmp_path / 'iter_9.pth')


def test_nan_weights_stop_at_once(tmp_path):
    runner = make_runner(tmp_path, OneWeight(nan_grad=(5,)), momentum=0.9, max_consecutive=3)
    with pytest.raises(NonFiniteTrainingError, match=r'at iteration 5 .*non-finite model/optimizer state in 2 '
                       r'tensor\(s\): w, optimizer\[w\]\.momentum_buffer\.'):
        runner.train()
    good = torch.load(tmp_path / 'iter_4.pth', weights_only=False)
    assert math.isfinite(good['state_dict']['w'].item()) and not osp.exists(tmp_path / 'iter_5.pth')


def test_epoch_end_check_keeps_the_last_good_checkpoint(tmp_path):
    # per-iteration weight checks off, NaN losses tolerated: the check before the epoch-end checkpoint must stop
    # it. mmengine 0.10.7's CheckpointHook deletes the old file (max_keep_ckpts=1) *before* writing the new one.
    runner = make_runner(tmp_path, OneWeight(nan_grad=(5,)), iters=3, by_epoch=True, epochs=3, max_consecutive=100,
                         check_weights=False)
    with pytest.raises(NonFiniteTrainingError, match=r'Training diverged at the end of epoch 2 \(iteration 6\): '
                       r'non-finite model/optimizer state in 1 tensor\(s\): w.*last checkpoint written is '
                       r'.*epoch_1.pth'):
        runner.train()
    assert sorted(p.name for p in tmp_path.glob('*.pth')) == ['epoch_1.pth']
    assert open(tmp_path / 'last_checkpoint').read().strip().endswith('epoch_1.pth')
    assert torch.load(tmp_path / 'epoch_1.pth', weights_only=False)['state_dict']['w'].isfinite().all()


def test_a_non_finite_checkpoint_is_refused(tmp_path):
    runner = make_runner(tmp_path, OneWeight())
    bad = dict(state_dict=dict(w=torch.tensor([1.0, float('inf')])),
               optimizer=dict(state={0: dict(momentum_buffer=torch.tensor([float('nan')]))}))
    with pytest.raises(NonFiniteTrainingError, match=r'Refusing to save a checkpoint at iteration 1 \(epoch 1\): 2 '
                       r'tensor\(s\) are NaN/Inf \(state_dict.w, optimizer.state.0.momentum_buffer\)'):
        NonFiniteGuardHook().before_save_checkpoint(runner, bad)


def test_finite_run_is_untouched(tmp_path):
    runner = make_runner(tmp_path, OneWeight(nan_loss=(2,)), iters=4, max_consecutive=2)
    runner.train()
    assert torch.load(tmp_path / 'iter_4.pth', weights_only=False)['state_dict']['w'].item() == pytest.approx(
        1 - 0.01 * 3)  # three real SGD steps of -lr * x; the NaN step had a zero gradient


def test_non_finite_names_exact_for_huge_finite_values_and_mixed_dtypes():
    named = [('huge', torch.tensor([3e38, 3e38])), ('half', torch.tensor([1.0, float('inf')], dtype=torch.half)),
             ('nan', torch.tensor([float('nan')], dtype=torch.float64)), ('ok', torch.zeros(3))]
    assert non_finite_names(named) == ['half', 'nan']


def test_arguments_are_checked():
    with pytest.raises(ValueError, match='max_consecutive must be an int >= 1, got 0'):
        NonFiniteGuardHook(max_consecutive=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA device next to the CPU')
def test_non_finite_names_with_tensors_on_two_devices():
    """Model-parallel / offloaded tensors: the per-tensor sums are brought to one device before the single sync.
    (Runs only where a GPU is present; the CPU-only mutation run lists the two mutants it guards as survivors.)"""
    named = [('cpu_ok', torch.ones(3)), ('gpu_inf', torch.tensor([1.0, float('inf')], device='cuda')),
             ('gpu_ok', torch.zeros(2, device='cuda')), ('cpu_nan', torch.tensor([float('nan')]))]
    assert non_finite_names(named) == ['gpu_inf', 'cpu_nan']
