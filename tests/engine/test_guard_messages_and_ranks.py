"""NonFiniteGuardHook, the checkpoint loader and ExactResumeHook, piece by piece on fake runners: tensor naming,
the counters' start values, what another rank's flag says, the whole error texts."""
from types import SimpleNamespace

import pytest
import torch
from mmengine.optim import OptimWrapper, OptimWrapperDict
from mmengine.registry import MODEL_WRAPPERS
from mmengine.runner import EpochBasedTrainLoop, IterBasedTrainLoop
from torch import nn

import rebnn_det.engine.hooks.nonfinite_guard as guard_module
from rebnn_det.engine import CheckpointReadError, NonFiniteGuardHook, NonFiniteTrainingError
from rebnn_det.engine.checkpoint import _describe, load_local_checkpoint
from rebnn_det.engine.hooks.exact_resume import ExactResumeHook
from rebnn_det.engine.hooks.nonfinite_guard import _named_float_tensors

NAN = float('nan')


def test_nested_tensors_are_named_by_their_path_and_only_floats_count():
    obj = {'a': [torch.ones(1), (torch.zeros(1), torch.ones(1, dtype=torch.int64))], 'b': {'c': torch.ones(2)}}
    assert [n for n, _ in _named_float_tensors(obj)] == ['a.0', 'a.1.0', 'b.c']
    assert [n for n, _ in _named_float_tensors([torch.ones(1), [torch.ones(1)]])] == ['0', '1.0']
    assert [n for n, _ in _named_float_tensors((torch.ones(1), ), 'p')] == ['p.0']


@MODEL_WRAPPERS.register_module(force=True)
class GuardTestWrapper(nn.Module):

    def __init__(self, module):
        super().__init__()
        self.module = module


def fake_runner(tmp_path, model=None, optim_wrapper=None, loop=IterBasedTrainLoop, n_batches=10):
    model = model or nn.Linear(1, 1)
    inner = model.module if isinstance(model, GuardTestWrapper) else model
    optim_wrapper = optim_wrapper or OptimWrapper(torch.optim.SGD(inner.parameters(), lr=0.1, momentum=0.9))
    return SimpleNamespace(model=model, optim_wrapper=optim_wrapper, work_dir=str(tmp_path), iter=4, epoch=0,
                           train_dataloader=[None] * n_batches, train_loop=object.__new__(loop))


def test_defaults_and_argument_checks():
    assert NonFiniteGuardHook().max_consecutive == 3 and NonFiniteGuardHook().check_weights is True
    for bad in (True, 1.5, 0):
        with pytest.raises(ValueError, match=r'^max_consecutive must be an int >= 1, got '):
            NonFiniteGuardHook(max_consecutive=bad)
    assert NonFiniteGuardHook(max_consecutive=1).max_consecutive == 1


def test_first_bad_loss_counts_one_and_the_whole_message(tmp_path):
    hook = NonFiniteGuardHook(max_consecutive=2, check_weights=False)
    runner = fake_runner(tmp_path)
    hook.after_train_iter(runner, 3, outputs={'acc': 1.0, 'loss_b': torch.tensor(NAN), 'loss_e': torch.zeros(0)})
    assert hook.consecutive == 1  # the first one: tolerated
    with pytest.raises(NonFiniteTrainingError) as err:
        hook.after_train_iter(runner, 3, outputs={'loss_b': torch.tensor(NAN), 'loss_a': float('inf')})
    assert str(err.value) == (
        'Training diverged at iteration 5 (epoch 1, batch 4): non-finite loss loss_a=inf, loss_b=nan; 2 consecutive '
        'step(s) with a non-finite loss (max_consecutive=2). Stopped before any checkpoint of this state was '
        'written; no checkpoint was written by this run. Lower the learning rate (optim_wrapper.optimizer.lr), '
        'check the data, or add gradient clipping (optim_wrapper.clip_grad), then --resume or restart.')
    hook = NonFiniteGuardHook(max_consecutive=2)
    runner = fake_runner(tmp_path, loop=EpochBasedTrainLoop, n_batches=7)
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'iter_4.pth') + '\n')
    with torch.no_grad():
        runner.model.weight.fill_(NAN)
    with pytest.raises(NonFiniteTrainingError, match=r'^Training diverged at iteration 5 \(epoch 1, batch 4 of 7\): '
                       r'non-finite model/optimizer state in 1 tensor\(s\): weight\. .*the last checkpoint written '
                       r'is .*iter_4.pth\.'):
        hook.after_train_iter(runner, 3, outputs={})


def test_other_ranks_flags_are_reported_as_such(tmp_path, monkeypatch):
    reduced = []

    def all_reduce(values, op):
        reduced.append((values.tolist(), op))
        values.fill_(1.0)  # another rank had a bad loss and a bad state

    monkeypatch.setattr(guard_module, 'get_world_size', lambda: 2)
    monkeypatch.setattr(guard_module, 'all_reduce', all_reduce)
    hook = NonFiniteGuardHook(max_consecutive=1)
    with pytest.raises(NonFiniteTrainingError, match=r': non-finite loss on another rank; 1 consecutive step\(s\) '
                       r'with a non-finite loss \(max_consecutive=1\); non-finite model/optimizer state on another '
                       r'rank\. Stopped'):
        hook.after_train_iter(fake_runner(tmp_path), 0, outputs={'loss': torch.tensor(1.0)})
    assert reduced == [([0.0, 0.0], 'max')]
    hook = NonFiniteGuardHook(check_weights=False)
    with pytest.raises(NonFiniteTrainingError, match=r'^Training diverged at the end of epoch 1 \(iteration 4\): '
                       r'non-finite model/optimizer state on another rank\. Stopped'):
        hook.after_train_epoch(fake_runner(tmp_path))


def test_state_names_through_a_wrapper_and_for_several_optimizers(tmp_path):
    model = nn.Linear(1, 1)
    stray = torch.nn.Parameter(torch.ones(1))  # in the optimizer, not in the model
    opt = torch.optim.SGD([model.weight, model.bias, stray], lr=0.1, momentum=0.9)
    for p in (model.weight, model.bias, stray):
        p.grad = torch.ones_like(p)
    opt.step()
    opt.state[stray]['momentum_buffer'].fill_(NAN)
    runner = fake_runner(tmp_path, GuardTestWrapper(model), OptimWrapper(opt))
    names = [n for n, _ in NonFiniteGuardHook._state(runner)]
    assert names == ['weight', 'bias', 'optimizer[weight].momentum_buffer', 'optimizer[bias].momentum_buffer',
                     'optimizer[?].momentum_buffer']
    several = OptimWrapperDict(a=OptimWrapper(opt))
    runner = fake_runner(tmp_path, model, several)
    names = [n for n, _ in NonFiniteGuardHook._state(runner)]
    assert names[:2] == ['weight', 'bias'] and 'optimizer.a.state.2.momentum_buffer' in names
    with pytest.raises(NonFiniteTrainingError, match=r'tensor\(s\): optimizer\.a\.state\.2\.momentum_buffer\.'):
        NonFiniteGuardHook().after_train_iter(runner, 0, outputs={})


def test_shown_names_at_most_five():
    names = list('abcdefg')
    assert NonFiniteGuardHook._shown(names[:5]) == 'a, b, c, d, e'
    assert NonFiniteGuardHook._shown(names[:6]) == 'a, b, c, d, e and 1 more'
    assert NonFiniteGuardHook._shown(names) == 'a, b, c, d, e and 2 more'


DAMAGED = ('It was probably cut off or damaged while being written or copied (a killed run, a full disk, an '
           'incomplete download): use another checkpoint (an earlier epoch_*.pth) or copy it again.')


def test_describe_names_each_kind_of_failure(tmp_path):
    path = tmp_path / 'x.pth'
    path.write_bytes(b'')
    assert _describe(str(path), EOFError('eof')) == (
        f"checkpoint '{path}' cannot be read: the file is empty (0 bytes). {DAMAGED} [EOFError: eof]")
    path.write_bytes(b'12345')
    assert _describe(str(path), RuntimeError('PytorchStreamReader failed reading zip archive')) == (
        f"checkpoint '{path}' cannot be read: it is not a readable torch checkpoint (5 bytes): it is corrupt or "
        f"another format. {DAMAGED} [RuntimeError: PytorchStreamReader failed reading zip archive]")
    assert _describe(str(path), ImportError('no module x')) == (
        f"checkpoint '{path}' cannot be read: it stores an object whose class cannot be imported in this environment "
        "(install or import the code that wrote it) [ImportError: no module x]")
    assert _describe(str(path), KeyError('k')) == (
        f"checkpoint '{path}' cannot be read: torch.load failed [KeyError: 'k']")


def test_map_location_is_passed_to_torch_load(tmp_path):
    path = tmp_path / 'w.pth'
    torch.save({'w': torch.ones(2)}, path)
    seen = []
    ckpt = load_local_checkpoint(str(path), map_location=lambda storage, loc: seen.append(loc) or storage)
    assert seen == ['cpu'] and torch.equal(ckpt['w'], torch.ones(2))


def test_without_registered_formats_a_file_is_a_torch_checkpoint(tmp_path, monkeypatch):
    from rebnn_det import checkpoint_formats
    path = tmp_path / 'w.pth'
    torch.save({'w': torch.ones(1)}, path)
    monkeypatch.setattr(checkpoint_formats, '_FORMATS', [])  # nothing registered (rebnn_det.deploy not imported)
    assert load_local_checkpoint(str(path))['w'].item() == 1.0
    path.write_bytes(b'not a checkpoint at all' * 4)
    with pytest.raises(CheckpointReadError):
        load_local_checkpoint(str(path))


class Logger:

    def __init__(self):
        self.warnings = []

    def warning(self, msg):
        self.warnings.append(msg)


class Sampler:

    def __init__(self, seed):
        self.seed = seed

    def set_epoch(self, epoch):
        pass


def exact_runner(**kw):
    dataset = SimpleNamespace()
    loader = SimpleNamespace(sampler=kw.pop('sampler', Sampler(3)), batch_sampler=kw.pop('batch_sampler', None),
                             dataset=dataset)
    return SimpleNamespace(seed=11, train_dataloader=loader, train_loop=object.__new__(kw.pop('loop',
                                                                                             EpochBasedTrainLoop)),
                           logger=Logger(), **kw)


def test_exact_resume_messages_and_choices():
    hook = ExactResumeHook()
    runner = exact_runner()  # no _resume attribute: not a resume
    hook.after_load_checkpoint(runner, {'exact_resume': dict(seed=5, sampler_seed=6)})
    assert hook.seed is None
    hook.after_load_checkpoint(exact_runner(_resume=True), {})
    runner = exact_runner(_resume=True)
    hook.after_load_checkpoint(runner, {})
    assert runner.logger.warnings == [
        'The resumed checkpoint has no exact_resume state (it was saved without ExactResumeHook): the random streams '
        'of the resumed run differ from those of an uninterrupted run.']
    runner = exact_runner(loop=IterBasedTrainLoop)
    hook.before_train(runner)
    assert runner.logger.warnings == [
        'ExactResumeHook: IterBasedTrainLoop is not epoch-based, so only the training steps are seeded by position; '
        'the data order and augmentation restart on resume.']
    runner = exact_runner()
    hook.before_train(runner)
    assert runner.train_dataloader.dataset.__getitems__.dataset is runner.train_dataloader.dataset
    # a sampler needs both a seed and set_epoch
    only_seed = SimpleNamespace(seed=1)
    runner = exact_runner(sampler=only_seed, batch_sampler=SimpleNamespace(sampler=Sampler(8)))
    assert ExactResumeHook._sampler(runner) is runner.train_dataloader.batch_sampler.sampler
