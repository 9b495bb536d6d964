"""ReBNNHook's wiring and logs: which layers it takes (through a model wrapper, without real-weight convs), the
DDP mean it hands the regularizer, per-layer means over the logger interval, window labels (also across a
resume and per epoch), what it saves, loads and detaches."""
import glob
import json
import os.path as osp
import uuid
from types import SimpleNamespace

import pytest
import torch
from mmengine.hooks import Hook
from mmengine.logging import MessageHub
from mmengine.model import BaseModel
from mmengine.optim import OptimWrapper, OptimWrapperDict
from mmengine.registry import HOOKS, MODEL_WRAPPERS
from mmengine.runner import Runner
from torch import nn

import rebnn_det.engine.hooks.rebnn_hook as rebnn_hook_module
from rebnn_det.engine import ReBNNHook, ReBNNRegularizer
from rebnn_det.ops import ReBNNConv


class Net(BaseModel):

    def __init__(self, extra_real_conv=False, extra_xnor_conv=False):
        super().__init__()
        torch.manual_seed(0)
        self.conv = ReBNNConv(3, 4, 3, padding=1)
        self.real = ReBNNConv(4, 4, 1, weight_binarizer='none') if extra_real_conv else None
        self.xnor = ReBNNConv(4, 4, 1, weight_binarizer='xnor') if extra_xnor_conv else None
        self.head = nn.Linear(4, 2)

    def forward(self, inputs, targets=None, mode='tensor'):
        feat = self.conv(inputs)
        if self.real is not None:
            feat = self.real(feat)
        out = self.head(feat.mean((2, 3)))
        return dict(loss=((out - targets)**2).mean()) if mode == 'loss' else out


class Data(torch.utils.data.Dataset):

    def __init__(self, n=16):
        g = torch.Generator().manual_seed(1)
        self.x, self.y = torch.randn(n, 3, 6, 6, generator=g), torch.randn(n, 2, generator=g)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return dict(inputs=self.x[i], targets=self.y[i])


@HOOKS.register_module(force=True)
class RecordReBNNStats(Hook):
    """Runs after ReBNNHook (lower priority): keeps the regularizer's per-step stats of every iteration."""
    priority = 'LOW'

    def __init__(self):
        self.stats = []

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        hook = next(h for h in runner.hooks if isinstance(h, ReBNNHook))
        self.stats.append(hook.regularizer.last_stats['conv'])


def make_runner(work_dir, iters=4, by_epoch=False, interval=1, hook=None, resume=False, load_from=None,
                checkpoint_interval=100):
    train_cfg = dict(by_epoch=True, max_epochs=1) if by_epoch else dict(by_epoch=False, max_iters=iters)
    return Runner(
        model=Net(), work_dir=str(work_dir),
        train_dataloader=dict(dataset=Data(), batch_size=4, num_workers=0,
                              sampler=dict(type='DefaultSampler', shuffle=False),
                              collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.5, momentum=0.9)), train_cfg=train_cfg,
        custom_hooks=[hook or dict(type='ReBNNHook', oscillation_interval=2), dict(type='RecordReBNNStats')],
        default_hooks=dict(logger=dict(type='LoggerHook', interval=interval),
                           checkpoint=dict(type='CheckpointHook', interval=checkpoint_interval, by_epoch=False)),
        resume=resume, load_from=load_from, default_scope='mmdet', randomness=dict(seed=0),
        experiment_name=f'run_{uuid.uuid4().hex[:12]}')


def text_log(work_dir):
    return open(glob.glob(osp.join(str(work_dir), '*', '*.log'))[0]).read()


def scalars(work_dir):
    return [json.loads(line) for line in open(glob.glob(osp.join(str(work_dir), '*', 'vis_data',
                                                                 'scalars.json'))[0])]


def test_per_layer_values_are_means_over_the_logger_interval(tmp_path):
    runner = make_runner(tmp_path, iters=4, interval=2)
    runner.train()
    stats = next(h for h in runner.hooks if isinstance(h, RecordReBNNStats)).stats
    assert len(stats) == 4 and any(s.gamma > 0 for s in stats) and any(s.loss_r > 0 for s in stats)
    rows = [r for r in scalars(tmp_path) if 'rebnn/conv/flip' in r]
    assert [r['step'] for r in rows] == [2, 4]
    for row, pair in zip(rows, (stats[:2], stats[2:])):
        for key in ('flip', 'gamma', 'loss_r'):
            assert row[f'rebnn/conv/{key}'] == pytest.approx(sum(getattr(s, key) for s in pair) / 2, rel=1e-6)
    text = text_log(tmp_path)
    assert ("ReBNNHook: gamma='adaptive' on 1 rebnn layers; oscillation statistics on 1 binary layers (rebnn)"
            in text)
    assert 'ReBNN oscillation over iterations 1-2 (2 steps)' in text
    reg = next(h for h in runner.hooks if isinstance(h, ReBNNHook)).regularizer
    assert reg._handles == [] and runner.model.conv._track_weight_hat_grad is False  # detached after training


def test_windows_per_epoch_when_no_interval_is_set(tmp_path):
    runner = make_runner(tmp_path, by_epoch=True, hook=dict(type='ReBNNHook'))
    runner.train()
    text = text_log(tmp_path)
    assert 'ReBNN oscillation over epoch 1 (4 steps)' in text and 'over iterations' not in text
    runner = make_runner(tmp_path / 'b', by_epoch=True, hook=dict(type='ReBNNHook', oscillation_interval=2))
    runner.train()
    text = text_log(tmp_path / 'b')
    assert 'over iterations 1-2 (2 steps)' in text and 'over iterations 3-4 (2 steps)' in text
    assert 'oscillation over epoch' not in text


def test_resumed_window_keeps_its_first_iteration(tmp_path):
    hook = dict(type='ReBNNHook', oscillation_interval=4)
    first = make_runner(tmp_path, iters=2, hook=hook, checkpoint_interval=2)
    first.train()
    ckpt = torch.load(osp.join(tmp_path, 'iter_2.pth'), weights_only=False)
    assert ckpt['rebnn_hook']['window_first_iter'] == 1
    resumed = make_runner(tmp_path, iters=4, hook=hook, resume=True, load_from=osp.join(tmp_path, 'iter_2.pth'))
    resumed.train()
    assert 'ReBNN oscillation over iterations 1-4 (4 steps)' in text_log(tmp_path)


class Logger:

    def __init__(self):
        self.warnings, self.infos = [], []

    def warning(self, msg):
        self.warnings.append(msg)

    def info(self, msg):
        self.infos.append(msg)


@MODEL_WRAPPERS.register_module(force=True)
class PlainWrapper(nn.Module):
    """A registered model wrapper (what MMDistributedDataParallel is to mmengine) without a process group."""

    def __init__(self, module):
        super().__init__()
        self.module = module


def fake_runner(model, optim_wrapper=None):
    optim_wrapper = optim_wrapper or OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1))
    return SimpleNamespace(model=model, optim_wrapper=optim_wrapper, logger=Logger(), hooks=[], iter=0)


def test_layers_are_found_through_a_model_wrapper_and_real_convs_are_left_out():
    hook = ReBNNHook()
    runner = fake_runner(PlainWrapper(Net(extra_real_conv=True)))
    hook.before_train(runner)
    assert list(hook.regularizer.layers) == ['conv']
    assert hook.regularizer.distributed_mean is None and hook.regularizer.grad_scale is None
    assert hook._log_interval == 50  # no LoggerHook: per-layer means every 50 iterations
    runner = fake_runner(Net(extra_xnor_conv=True))
    ReBNNHook().before_train(runner)
    assert runner.logger.infos == ["ReBNNHook: gamma='adaptive' on 1 rebnn layers; oscillation statistics on 2 "
                                   "binary layers (rebnn/xnor)"]


def test_ddp_gets_a_mean_all_reduce(monkeypatch):
    calls = []
    monkeypatch.setattr(rebnn_hook_module, 'get_world_size', lambda: 2)
    monkeypatch.setattr(rebnn_hook_module, 'all_reduce', lambda t, op: calls.append((t, op)))
    hook = ReBNNHook()
    hook.before_train(fake_runner(Net()))
    flat = torch.arange(3.0)
    hook.regularizer.distributed_mean(flat)
    assert len(calls) == 1 and calls[0][0] is flat and calls[0][1] == 'mean'


def test_settings_and_errors_reach_the_user():
    hook = ReBNNHook(gamma=1e-4, start_iter=3, warmup_iters=2)
    assert (hook.gamma, hook.start_iter, hook.warmup_iters) == (1e-4, 3, 2)
    default = ReBNNHook()
    assert (default.gamma, default.start_iter, default.warmup_iters) == ('adaptive', 0, 0)
    with pytest.raises(RuntimeError, match=r'^ReBNNHook found no binary-weight layer in the model '
                       r'\(weight_binarizer "rebnn" or "xnor"\); use a binary backbone/neck \(e.g. ReBNNResNet, '
                       r'BinaryFPN\) or remove ReBNNHook from custom_hooks$'):
        ReBNNHook().before_train(fake_runner(nn.Sequential(nn.Conv2d(1, 1, 1))))
    model = Net()
    wrappers = OptimWrapperDict(a=OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1)))
    with pytest.raises(NotImplementedError, match=r"^ReBNNHook supports a single optimizer \(OptimWrapper/"
                       r"AmpOptimWrapper\), got OptimWrapperDict with \['a'\]$"):
        ReBNNHook().before_train(fake_runner(model, wrappers))


def test_loading_state_before_and_after_before_train():
    source = Net()
    reg = ReBNNRegularizer([('conv', source.conv)], gamma=0.25)
    reg.num_steps = 5
    state = dict(reg.state_dict(), window_first_iter=3)
    # loaded before the layers are known, applied in before_train; a layer without saved state is reported
    hook = ReBNNHook()
    hook.after_load_checkpoint(SimpleNamespace(), {'rebnn_hook': dict(state, layers={})})  # no _resume: resume
    runner = fake_runner(Net())
    runner.iter = 7
    hook.before_train(runner)
    assert runner.logger.warnings == ['ReBNNHook: no saved state for 1 layer(s) (e.g. conv); they start with fresh '
                                      'gamma and sign history']
    assert hook._loaded_state is None and hook.regularizer.num_steps == 5 and hook._window_first_iter == 3
    # a resumed run whose first update AMP skips logs nothing (the regularizer completed no step since loading)
    hub = MessageHub.get_instance(f'hub_{uuid.uuid4().hex[:8]}')
    hub.update_scalar('train/rebnn_flip', 0.5)
    runner.message_hub = hub
    runner.optim_wrapper.should_update = lambda: True
    hook.after_train_iter(runner, 0)
    assert 'train/rebnn_flip' not in hub.log_scalars
    # a checkpoint of an older version without window_first_iter: the window starts at the resumed iteration
    hook = ReBNNHook()
    hook.after_load_checkpoint(SimpleNamespace(_resume=True),
                               {'rebnn_hook': {k: v for k, v in state.items() if k != 'window_first_iter'}})
    hook.before_train(runner)
    assert hook._window_first_iter == 8
    # loaded after before_train: straight into the regularizer
    hook = ReBNNHook()
    hook.before_train(fake_runner(Net()))
    hook.after_load_checkpoint(SimpleNamespace(_resume=True), {'rebnn_hook': state})
    assert hook.regularizer.num_steps == 5 and hook.regularizer.state['conv']['gamma'].tolist() == [0.25] * 4
    checkpoint = {}
    hook.before_save_checkpoint(None, checkpoint)
    assert checkpoint['rebnn_hook']['window_first_iter'] == 1 and checkpoint['rebnn_hook']['num_steps'] == 5
    hook.after_load_checkpoint(SimpleNamespace(_resume=False), {'rebnn_hook': dict(state, num_steps=9)})
    assert hook.regularizer.num_steps == 5  # load_from (not a resume) keeps this run's history
