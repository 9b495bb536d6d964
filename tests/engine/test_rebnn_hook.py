"""ReBNNHook inside mmengine's Runner: statistics in the logs, checkpoint/resume, errors."""
import glob
import json
import os.path as osp
import uuid

import pytest
import torch
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch import nn

from rebnn_det.engine import ReBNNHook
from rebnn_det.ops import ReBNNConv


class TinyBinaryNet(BaseModel):
    """Deterministic: no BN, no dropout; one binary 3x3 conv and a real head."""

    def __init__(self, binary=True):
        super().__init__()
        torch.manual_seed(0)
        if binary:
            self.conv = ReBNNConv(3, 4, 3, padding=1, weight_binarizer='rebnn' if binary is True else binary)
        else:
            self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.head = nn.Linear(4, 2)

    def forward(self, inputs, targets=None, mode='tensor'):
        out = self.head(self.conv(inputs).mean((2, 3)))
        if mode == 'loss':
            return dict(loss=((out - targets)**2).mean())
        return out


class ToyData(torch.utils.data.Dataset):

    def __init__(self, n=16):
        g = torch.Generator().manual_seed(1)
        self.x = torch.randn(n, 3, 6, 6, generator=g)
        self.y = torch.randn(n, 2, generator=g)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return dict(inputs=self.x[i], targets=self.y[i])


def make_runner(work_dir, max_iters, binary=True, resume=False, load_from=None, hook=None, lr=0.5, **kw):
    return Runner(
        model=TinyBinaryNet(binary), work_dir=str(work_dir),
        train_dataloader=dict(dataset=ToyData(), batch_size=4, num_workers=0,
                              sampler=dict(type='DefaultSampler', shuffle=False),
                              collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=lr, momentum=0.9)),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        custom_hooks=[hook or dict(type='ReBNNHook', gamma='adaptive', oscillation_interval=2)],
        default_hooks=dict(logger=dict(type='LoggerHook', interval=1),
                           checkpoint=dict(type='CheckpointHook', interval=2, by_epoch=False)),
        resume=resume, load_from=load_from, default_scope='mmdet', randomness=dict(seed=0),
        experiment_name=unique_name(), **kw)


def unique_name():
    """Runners made within one second would share mmengine's timestamp name, hence one visualizer (and one
    scalars.json): give each its own."""
    return f'run_{uuid.uuid4().hex[:12]}'


def test_stats_logged_to_message_hub_and_scalars_json(tmp_path):
    runner = make_runner(tmp_path, 4)
    runner.train()
    hub = runner.message_hub
    for key in ('train/rebnn_flip', 'train/rebnn_gamma', 'train/rebnn_loss_r'):
        assert key in hub.log_scalars, key
    records = [json.loads(line) for line in open(glob.glob(osp.join(tmp_path, '*', 'vis_data', 'scalars.json'))[0])]
    logged = [r for r in records if 'loss' in r]  # LoggerHook lines: model-wide values
    per_layer = [r for r in records if 'rebnn/conv/gamma' in r]  # per-layer lines, not in the text log
    windows = [r for r in records if 'rebnn_osc_oscillated' in r]
    assert [r['step'] for r in windows] == [2, 4]
    assert all(0 <= r['rebnn_osc_oscillated'] <= r['rebnn_osc_flipped'] <= 1 for r in windows)
    assert len(logged) == 4 and all('rebnn_flip' in r and 'rebnn/conv/gamma' not in r for r in logged)
    assert [r['step'] for r in per_layer] == [1, 2, 3, 4]
    assert all(set(r) == {'rebnn/conv/flip', 'rebnn/conv/gamma', 'rebnn/conv/loss_r', 'step'} for r in per_layer)
    text = open(glob.glob(osp.join(tmp_path, '*', '*.log'))[0]).read()
    assert 'rebnn_flip' in text and 'rebnn/conv' not in text
    assert 'ReBNN oscillation over iterations 3-4 (2 steps)' in text
    flips = [r['rebnn_flip'] for r in logged]
    assert [r['rebnn/conv/flip'] for r in per_layer] == pytest.approx(flips)  # one conv: same numbers
    hook = next(h for h in runner.hooks if isinstance(h, ReBNNHook))
    assert hook.regularizer.num_steps == 4
    # lr 0.5 with momentum makes weights flip: the adaptive gamma became positive somewhere
    assert any(r['rebnn_gamma'] > 0 for r in logged)


def test_resume_continues_identically(tmp_path):
    straight = make_runner(tmp_path / 'a', 4)
    straight.train()
    first = make_runner(tmp_path / 'b', 2)
    first.train()
    ckpt = torch.load(osp.join(tmp_path, 'b', 'iter_2.pth'), weights_only=False)
    assert set(ckpt['rebnn_hook']['layers']['conv']) == {'gamma', 'grad_absmax', 'prev_sign', 'flip_count'}
    resumed = make_runner(tmp_path / 'b', 4, resume=True, load_from=osp.join(tmp_path, 'b', 'iter_2.pth'))
    resumed.train()
    for (name, p1), (_, p2) in zip(straight.model.named_parameters(), resumed.model.named_parameters()):
        assert torch.allclose(p1, p2, atol=1e-6), name
    h1, h2 = (next(h for h in r.hooks if isinstance(h, ReBNNHook)).regularizer for r in (straight, resumed))
    assert h2.num_steps == 4
    for k, v in h1.state['conv'].items():
        assert torch.allclose(v.float(), h2.state['conv'][k].float()), k


def test_load_from_without_resume_starts_a_fresh_history(tmp_path):
    make_runner(tmp_path / 'a', 2).train()
    finetune = make_runner(tmp_path / 'b', 1, load_from=osp.join(tmp_path, 'a', 'iter_2.pth'))
    finetune.train()
    reg = next(h for h in finetune.hooks if isinstance(h, ReBNNHook)).regularizer
    assert reg.num_steps == 1


def test_hook_without_binary_layers_is_a_clear_error(tmp_path):
    runner = make_runner(tmp_path, 1, binary=False)
    with pytest.raises(RuntimeError, match='ReBNNHook found no binary-weight layer'):
        runner.train()


def test_xnor_model_gets_statistics_only(tmp_path):
    runner = make_runner(tmp_path / 'a', 2, binary='xnor')
    with pytest.raises(ValueError, match="gamma != 0 needs layers with weight_binarizer='rebnn'"):
        runner.train()
    runner = make_runner(tmp_path / 'b', 4, binary='xnor', hook=dict(type='ReBNNHook', gamma=0), lr=20)
    runner.train()
    reg = next(h for h in runner.hooks if isinstance(h, ReBNNHook)).regularizer
    assert reg.rebnn_layers == [] and reg.num_steps == 4
    flips = runner.message_hub.get_scalar('train/rebnn_flip').data[0][-4:]  # this run's 4 steps
    assert flips.max() > 0  # a large lr flips some signs
    assert runner.message_hub.get_scalar('train/rebnn_loss_r').current() == 0


def test_hook_argument_errors():
    with pytest.raises(ValueError, match="gamma must be 'adaptive'"):
        ReBNNHook(gamma='balanced')
    with pytest.raises(ValueError, match='oscillation_interval'):
        ReBNNHook(oscillation_interval=0)


def test_accumulative_counts_through_runner_matches_full_batch(tmp_path):
    full = make_runner(tmp_path / 'full', 2, hook=dict(type='ReBNNHook'))
    full.train()
    acc = Runner(
        model=TinyBinaryNet(), work_dir=str(tmp_path / 'acc'),
        train_dataloader=dict(dataset=ToyData(), batch_size=2, num_workers=0,
                              sampler=dict(type='DefaultSampler', shuffle=False),
                              collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.5, momentum=0.9), accumulative_counts=2),
        train_cfg=dict(by_epoch=False, max_iters=4), custom_hooks=[dict(type='ReBNNHook')],
        default_scope='mmdet', randomness=dict(seed=0), experiment_name=unique_name())
    acc.train()
    for (name, p1), (_, p2) in zip(full.model.named_parameters(), acc.model.named_parameters()):
        assert torch.allclose(p1, p2, atol=1e-6), name
    regs = [next(h for h in r.hooks if isinstance(h, ReBNNHook)).regularizer for r in (full, acc)]
    assert regs[0].num_steps == regs[1].num_steps == 2
    assert torch.allclose(regs[0].state['conv']['gamma'], regs[1].state['conv']['gamma'])


class ToyDataNaNFrom(ToyData):
    """Targets become NaN from sample ``start`` on: the loss, then the weights, diverge."""

    def __init__(self, start):
        super().__init__()
        self.y[start:] = float('nan')


def test_skipped_steps_log_nothing_stale(tmp_path):
    runner = Runner(
        model=TinyBinaryNet(), work_dir=str(tmp_path),
        train_dataloader=dict(dataset=ToyDataNaNFrom(8), batch_size=4, num_workers=0,
                              sampler=dict(type='DefaultSampler', shuffle=False),
                              collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.5, momentum=0.9)),
        train_cfg=dict(by_epoch=False, max_iters=4),
        custom_hooks=[dict(type='ReBNNHook', gamma='adaptive', oscillation_interval=2)],
        default_hooks=dict(logger=dict(type='LoggerHook', interval=1)),
        default_scope='mmdet', randomness=dict(seed=0), experiment_name=unique_name())
    runner.train()  # iterations 3 and 4 see NaN targets: the ReBNN update is skipped there
    reg = next(h for h in runner.hooks if isinstance(h, ReBNNHook)).regularizer
    assert reg.num_steps == 2 and reg.num_skipped == 2
    records = [json.loads(line) for line in open(glob.glob(osp.join(tmp_path, '*', 'vis_data', 'scalars.json'))[0])]
    logged = [r for r in records if 'loss' in r]
    assert [r['step'] for r in logged] == [1, 2, 3, 4]
    assert ['rebnn_flip' in r for r in logged] == [True, True, False, False]  # no stale value at 3 and 4
    assert all(not any(k.startswith('rebnn_') for k in r) for r in logged[2:])
    assert [r['step'] for r in records if 'rebnn/conv/flip' in r] == [1, 2]
    assert [r['step'] for r in records if 'rebnn_osc_flipped' in r] == [2]
    assert 'train/rebnn_flip' not in runner.message_hub.log_scalars
    text = open(glob.glob(osp.join(tmp_path, '*', '*.log'))[0]).read()
    assert 'non-finite gradient or binary weight at optimizer step 2 (1 consecutive)' in text
    assert 'non-finite gradient or binary weight at optimizer step 2 (2 consecutive)' in text
    assert 'ReBNN oscillation over iterations 3-4: no completed optimizer step, nothing measured' in text


def test_hook_trains_binary_head_convs_with_no_extra_setting(tmp_path):
    """The +RPN-binary shapes config as shipped (only the data shrunk): ReBNNHook regularizes the RPN conv."""
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'configs',
                                   'shapes', 'rebnn_faster_rcnn_shapes_binary_rpn.py'))
    root = str(tmp_path / 'shapes') + '/'
    cfg.merge_from_dict({
        'work_dir': str(tmp_path / 'work'), 'experiment_name': unique_name(), 'train_cfg.max_epochs': 1,
        'default_hooks.logger.interval': 1,
        'train_dataloader.batch_size': 2, 'train_dataloader.num_workers': 0,
        'train_dataloader.persistent_workers': False, 'train_dataloader.dataset.data_root': root,
        'train_dataloader.dataset.num_images': 4, 'train_dataloader.dataset.img_size': 64})
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.test_dataloader = cfg.test_cfg = cfg.test_evaluator = None
    assert [h['type'] for h in cfg.custom_hooks] == ['ReBNNHook']
    runner = Runner.from_cfg(cfg)
    runner.train()
    reg = next(h for h in runner.hooks if isinstance(h, ReBNNHook)).regularizer
    assert 'rpn_head.rpn_conv.conv' in reg.rebnn_layers  # gamma rule and reconstruction term included
    assert reg.num_steps == 2 and reg.last_stats['rpn_head.rpn_conv.conv'].flip >= 0
    assert reg.layers['rpn_head.rpn_conv.conv'].weight_hat_grad is None  # recorded, used, discarded
    assert reg.state['rpn_head.rpn_conv.conv']['grad_absmax'].gt(0).all()  # dL/dw_hat reached the RPN conv
    records = [json.loads(line) for line in open(glob.glob(osp.join(tmp_path, 'work', '*', 'vis_data',
                                                                    'scalars.json'))[0])]
    assert any('rebnn/rpn_head.rpn_conv.conv/gamma' in r for r in records)
