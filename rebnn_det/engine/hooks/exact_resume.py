"""ExactResumeHook: every random draw of training is a function of (seed, position), so a resumed run continues
exactly like an uninterrupted one."""
import random
from typing import Optional

import numpy as np
import torch
from mmdet.registry import HOOKS
from mmengine.hooks import Hook
from mmengine.runner import EpochBasedTrainLoop

# Stream names keep the seeds of training steps and of data samples apart.
STEP_STREAM, SAMPLE_STREAM = 1, 2


def derive_seed(*keys: int) -> int:
    """A 64-bit seed from integer keys (``numpy.random.SeedSequence``: well-mixed, and different
    keys give independent streams)."""
    words = np.random.SeedSequence([int(k) % 2**64 for k in keys]).generate_state(2, dtype=np.uint32)
    return int(words[0]) | (int(words[1]) << 32)


def seed_all(seed: int) -> None:
    """Seed Python's ``random``, numpy's global RNG and torch (CPU and every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed & 0xFFFFFFFF)
    torch.manual_seed(seed)


class SeededSampleFetch:
    """Installed as ``dataset.__getitems__`` (torch's map-style fetcher calls it with the indices of one batch,
    in the worker or, with ``num_workers=0``, in the main process): loads each sample with Python/numpy/torch
    seeded from ``(seed, epoch, index)`` and restores the caller's random state afterwards.

    The augmentation of a sample therefore depends only on the seed, the epoch and its index -- not on which
    worker loads it, how many workers there are, whether they persist across epochs, or what the process drew
    before. ``epoch`` is a shared-memory tensor that the main process updates before each epoch's first index
    is sent to the workers (persistent workers see the update).
    """

    def __init__(self, dataset, seed: int, epoch: torch.Tensor):
        self.dataset, self.seed, self.epoch = dataset, seed, epoch
        own = type(dataset).__dict__.get('__getitems__')
        self._class_getitems = own  # a dataset class with its own batched fetch keeps it (called per index)

    def _load(self, index):
        if self._class_getitems is not None:
            return self._class_getitems(self.dataset, [index])[0]
        return self.dataset[index]

    def __call__(self, indices):
        samples = []
        for index in indices:
            state = random.getstate(), np.random.get_state(), torch.get_rng_state()
            try:
                seed_all(derive_seed(SAMPLE_STREAM, self.seed, int(self.epoch), int(index)))
                samples.append(self._load(index))
            finally:
                random.setstate(state[0])
                np.random.set_state(state[1])
                torch.set_rng_state(state[2])
        return samples


@HOOKS.register_module()
class ExactResumeHook(Hook):
    """Makes ``--resume`` continue exactly like an uninterrupted run (epoch-based training, checkpoints at epoch
    ends).

    mmengine seeds the processes once, at the start of a run. The random state then depends on everything that
    ran before -- model initialisation, validation, the resume itself -- and the data workers' generators (set
    once by ``worker_init_fn``; with ``persistent_workers`` they continue across epochs) are not in checkpoints.
    This hook instead makes every random draw a function of a position in training:

    * before each training iteration the main process (RPN/RoI samplers, dropout, any torch/numpy/Python draw in
      the model or hooks) is seeded from ``(seed, iteration, rank)``;
    * each training sample is loaded with its own seed ``(seed, epoch, index)`` (:class:`SeededSampleFetch`) in
      whichever process loads it, so data augmentation is the same with 0 or N workers, persistent or not;
    * the sampler's seed and this seed are saved in the checkpoint under ``'exact_resume'`` and restored on
      resume (mmengine rebuilds the sampler with a fresh seed when ``randomness.seed`` is None). mmengine's
      ``DefaultSampler`` orders each epoch by ``seed + epoch`` already.

    Not exact: an iteration-based loop (its ``InfiniteSampler`` restarts its index stream on resume; only the
    per-iteration seeding applies), and a resume from a checkpoint written mid-epoch (mmengine's
    ``EpochBasedTrainLoop`` restarts that epoch). CUDA kernels may add their own non-determinism
    (``randomness.deterministic``).

    ``tools/train.py`` and the demo add this hook to every training config that does not list it
    (:func:`rebnn_det.apis.cli.with_training_safety_hooks`).
    """
    priority = 'VERY_HIGH'  # seed before any other hook's before_train_iter

    def __init__(self):
        self.seed: Optional[int] = None
        self._sampler_seed: Optional[int] = None
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()

    @staticmethod
    def _sampler(runner):
        loader = runner.train_dataloader
        for sampler in (getattr(loader, 'sampler', None), getattr(getattr(loader, 'batch_sampler', None),
                                                                  'sampler', None)):
            if hasattr(sampler, 'seed') and hasattr(sampler, 'set_epoch'):
                return sampler
        return None

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        if not getattr(runner, '_resume', False):
            return  # load_from (fine-tuning) starts a new run with this run's seed
        state = checkpoint.get('exact_resume')
        if state is None:
            runner.logger.warning(
                'The resumed checkpoint has no exact_resume state (it was saved without ExactResumeHook): the '
                'random streams of the resumed run differ from those of an uninterrupted run.')
            return
        self.seed = int(state['seed'])
        self._sampler_seed = state.get('sampler_seed')

    def before_train(self, runner) -> None:
        if self.seed is None:
            self.seed = int(runner.seed)
        sampler = self._sampler(runner)
        if sampler is not None and self._sampler_seed is not None:
            sampler.seed = int(self._sampler_seed)
        if not isinstance(runner.train_loop, EpochBasedTrainLoop):
            runner.logger.warning(
                f'ExactResumeHook: {type(runner.train_loop).__name__} is not epoch-based, so only the training '
                'steps are seeded by position; the data order and augmentation restart on resume.')
            return
        dataset = runner.train_dataloader.dataset
        dataset.__getitems__ = SeededSampleFetch(dataset, self.seed, self._epoch)

    def before_train_epoch(self, runner) -> None:
        self._epoch.fill_(runner.epoch)

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        seed_all(derive_seed(STEP_STREAM, self.seed, runner.iter, runner.rank))

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        sampler = self._sampler(runner)
        checkpoint['exact_resume'] = dict(seed=self.seed, sampler_seed=None if sampler is None else sampler.seed)
