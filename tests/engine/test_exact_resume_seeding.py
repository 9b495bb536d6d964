"""ExactResumeHook piece by piece, without training: which seed each random stream gets, what the checkpoint
holds, and what a resume restores (the end-to-end bit-identical resume is test_exact_resume.py)."""
import random
from types import SimpleNamespace

import numpy as np
import torch
from mmengine.runner import EpochBasedTrainLoop, IterBasedTrainLoop

from rebnn_det.engine.hooks.exact_resume import (SAMPLE_STREAM, STEP_STREAM, ExactResumeHook, SeededSampleFetch,
                                                 derive_seed, seed_all)


def words(*keys):
    return np.random.SeedSequence(list(keys)).generate_state(2, dtype=np.uint32).tolist()


def test_derive_seed_is_both_seedsequence_words_low_then_high():
    low, high = words(1, 7, 3)
    assert derive_seed(1, 7, 3) == low + high * 2**32
    assert derive_seed(1, 7, 3) == derive_seed(1, 7, 3)
    assert len({derive_seed(1, 7, 3), derive_seed(1, 3, 7), derive_seed(2, 7, 3)}) == 3
    # keys are taken modulo 2**64: negative and huge keys are valid and map like their residue
    assert derive_seed(-1) == derive_seed(2**64 - 1)
    assert derive_seed(2**64 + 5) == derive_seed(5)
    low, high = words(2**64 - 1)
    assert derive_seed(-1) == low + high * 2**32


def test_seed_all_seeds_python_numpy_and_torch():
    seed = 2**40 + 12345  # numpy takes the low 32 bits
    seed_all(seed)
    got = (random.random(), float(np.random.rand()), float(torch.rand(())))
    expected = (random.Random(seed).random(), float(np.random.RandomState(seed & 0xFFFFFFFF).rand()),
                float(torch.rand((), generator=torch.Generator().manual_seed(seed))))
    assert got == expected


class Sampler:

    def __init__(self, seed):
        self.seed = seed

    def set_epoch(self, epoch):
        pass


class Logger:

    def __init__(self):
        self.warnings = []

    def warning(self, msg):
        self.warnings.append(msg)


def fake_runner(loop=EpochBasedTrainLoop, seed=11, sampler=None, batch_sampler=None, resume=True, **kw):
    dataset = SimpleNamespace()
    loader = SimpleNamespace(sampler=sampler, batch_sampler=batch_sampler, dataset=dataset)
    return SimpleNamespace(seed=seed, train_dataloader=loader, train_loop=object.__new__(loop), logger=Logger(),
                           _resume=resume, iter=0, epoch=0, rank=0, **kw)


def test_before_train_iter_seeds_from_seed_iteration_and_rank():
    hook = ExactResumeHook()
    hook.seed = 11
    hook.before_train_iter(SimpleNamespace(iter=5, rank=1), 0)
    got = float(torch.rand(()))
    expected_seed = derive_seed(STEP_STREAM, 11, 5, 1)
    assert got == float(torch.rand((), generator=torch.Generator().manual_seed(expected_seed)))
    assert random.random() == random.Random(expected_seed).random()


def test_before_train_installs_per_sample_seeding_and_keeps_the_run_seed():
    hook = ExactResumeHook()
    runner = fake_runner(seed=11, sampler=Sampler(3))
    hook.before_train(runner)
    assert hook.seed == 11
    fetch = runner.train_dataloader.dataset.__getitems__
    assert isinstance(fetch, SeededSampleFetch) and fetch.seed == 11 and fetch.epoch is hook._epoch
    assert runner.train_dataloader.sampler.seed == 3  # no resumed sampler seed: untouched
    assert runner.logger.warnings == []
    hook.before_train_epoch(SimpleNamespace(epoch=4))
    assert int(hook._epoch) == 4


def test_iteration_based_loop_only_seeds_steps_and_warns():
    hook = ExactResumeHook()
    runner = fake_runner(loop=IterBasedTrainLoop, seed=5)
    hook.before_train(runner)
    assert hook.seed == 5
    assert not hasattr(runner.train_dataloader.dataset, '__getitems__')
    assert len(runner.logger.warnings) == 1
    assert 'IterBasedTrainLoop is not epoch-based' in runner.logger.warnings[0]


def test_checkpoint_holds_both_seeds_and_resume_restores_them():
    hook = ExactResumeHook()
    hook.before_train(fake_runner(seed=11, sampler=Sampler(3)))
    checkpoint = {}
    hook.before_save_checkpoint(fake_runner(sampler=Sampler(3)), checkpoint)
    assert checkpoint == {'exact_resume': dict(seed=11, sampler_seed=3)}
    # the sampler found through the batch sampler when the loader's own sampler has no seed
    checkpoint = {}
    hook.before_save_checkpoint(fake_runner(sampler=object(), batch_sampler=SimpleNamespace(sampler=Sampler(8))),
                                checkpoint)
    assert checkpoint['exact_resume'] == dict(seed=11, sampler_seed=8)
    checkpoint = {}
    hook.before_save_checkpoint(fake_runner(), checkpoint)  # no seeded sampler at all
    assert checkpoint['exact_resume'] == dict(seed=11, sampler_seed=None)

    resumed = ExactResumeHook()
    runner = fake_runner(seed=99, sampler=Sampler(42), resume=True)
    resumed.after_load_checkpoint(runner, {'exact_resume': dict(seed=11, sampler_seed=3)})
    resumed.before_train(runner)
    assert resumed.seed == 11 and runner.train_dataloader.sampler.seed == 3
    assert runner.train_dataloader.dataset.__getitems__.seed == 11
    # a resumed sampler seed reaches a sampler held by the batch sampler too
    resumed = ExactResumeHook()
    runner = fake_runner(seed=99, sampler=object(), batch_sampler=SimpleNamespace(sampler=Sampler(42)))
    resumed.after_load_checkpoint(runner, {'exact_resume': dict(seed=11, sampler_seed=3)})
    resumed.before_train(runner)
    assert runner.train_dataloader.batch_sampler.sampler.seed == 3


def test_load_from_keeps_this_runs_seeds_and_old_checkpoints_warn():
    hook = ExactResumeHook()
    runner = fake_runner(seed=99, sampler=Sampler(42), resume=False)  # load_from: fine-tuning, a new run
    hook.after_load_checkpoint(runner, {'exact_resume': dict(seed=11, sampler_seed=3)})
    hook.before_train(runner)
    assert hook.seed == 99 and runner.train_dataloader.sampler.seed == 42
    assert runner.logger.warnings == []
    hook = ExactResumeHook()
    runner = fake_runner(seed=99, sampler=Sampler(42), resume=True)
    hook.after_load_checkpoint(runner, {})
    assert len(runner.logger.warnings) == 1 and 'has no exact_resume state' in runner.logger.warnings[0]
    hook.before_train(runner)
    assert hook.seed == 99 and runner.train_dataloader.sampler.seed == 42


class BatchedDataset:
    """A dataset with its own ``__getitems__``: the seeded fetch calls it one index at a time."""

    def __init__(self):
        self.calls = []

    def __getitems__(self, indices):
        self.calls.append(list(indices))
        return [(i, random.random()) for i in indices]

    def __getitem__(self, i):
        raise AssertionError('the class __getitems__ must be used')


def test_seeded_fetch_uses_a_class_getitems_per_index_with_the_sample_seed():
    dataset = BatchedDataset()
    fetch = SeededSampleFetch(dataset, seed=7, epoch=torch.tensor(2))
    samples = fetch([3, 1])
    assert dataset.calls == [[3], [1]]
    assert samples == [(3, random.Random(derive_seed(SAMPLE_STREAM, 7, 2, 3)).random()),
                       (1, random.Random(derive_seed(SAMPLE_STREAM, 7, 2, 1)).random())]
