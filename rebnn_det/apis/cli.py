"""The logic behind tools/train.py and tools/test.py: mmdet's command-line flags mapped onto an mmengine Config.

Kept in the package so tests reach it; the tools only parse ``sys.argv`` and call these functions.
"""
import argparse
import gc
import logging
import os
import os.path as osp
import re
import shutil
import sys
import warnings
from typing import List, Optional

import torch
from mmengine.config import Config, DictAction
from mmengine.device import is_cuda_available, is_mlu_available, is_musa_available, is_npu_available
from mmengine.dist import get_rank

from .data_check import check_data_paths


def _common_args(parser: argparse.ArgumentParser, with_checkpoint: bool = False) -> None:
    parser.add_argument('config', help='config file path')
    if with_checkpoint:
        parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='directory for logs and checkpoints (default: work_dirs/<config name>)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, e.g. train_cfg.max_epochs=2 (key=value pairs)')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none',
                        help='job launcher (dist_train.sh/dist_test.sh use pytorch via torchrun)')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def train_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description='Train an mmdet detector (with rebnn_det components)')
    _common_args(parser)
    parser.add_argument('--amp', action='store_true',
                        help='mixed precision (AmpOptimWrapper, dynamic loss scale); needs a GPU (CUDA/NPU/MLU/MUSA)')
    parser.add_argument('--auto-scale-lr', action='store_true', help='scale lr by total batch / base batch')
    parser.add_argument('--resume', nargs='?', type=str, const='auto',
                        help='resume from a checkpoint file, or from the latest checkpoint of a work dir; without a '
                             'path, from the latest one in this run\'s work dir (if it has none, a warning says '
                             'so and training starts from the beginning)')
    return parser


def test_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description='Test (and evaluate) an mmdet detector checkpoint')
    _common_args(parser, with_checkpoint=True)
    parser.add_argument('--out', help='dump the raw predictions to this .pkl file')
    parser.add_argument('--show-dir', help='write images with predicted boxes into <work_dir>/<timestamp>/SHOW_DIR')
    parser.add_argument('--score-thr', type=float, default=0.3, help='score threshold of drawn boxes')
    parser.add_argument('--deploy', action='store_true',
                        help='run binary convs with the XNOR-popcount kernel (adds BinaryDeployHook)')
    parser.add_argument('--allow-partial', action='store_true',
                        help='load a checkpoint that does not fit the config (missing/unexpected tensors are '
                             'reported and left at their initial values); by default every tensor must fit')
    return parser


def _base_cfg(args) -> Config:
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    if args.launcher == 'pytorch' and not torch.cuda.is_available():
        _cpu_ddp(cfg)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return cfg


def _cpu_ddp(cfg: Config) -> None:
    """DDP on a machine without CUDA: gloo, and DDP without ``device_ids`` (mmengine 0.10.7 assumes a GPU per
    rank: its pytorch launcher calls ``torch.cuda.set_device`` and its DDP wrapper passes ``device_ids``)."""
    cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})['backend'] = 'gloo'
    wrapper = cfg.get('model_wrapper_cfg') or dict(type='MMDistributedDataParallel', broadcast_buffers=False,
                                                    find_unused_parameters=cfg.get('find_unused_parameters', False))
    wrapper['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper


def amp_device_available() -> bool:
    """Whether mmengine's ``AmpOptimWrapper`` can run here: it asserts a CUDA, NPU, MLU or MUSA device (mmengine
    0.10.7 has no CPU autocast path)."""
    return is_cuda_available() or is_npu_available() or is_mlu_available() or is_musa_available()


AMP_NEEDS_GPU = ('mixed precision (--amp, AmpOptimWrapper) needs a GPU: mmengine 0.10.7 runs it with '
                 'torch.cuda.amp on a CUDA/NPU/MLU/MUSA device and this machine has none. Train without --amp '
                 '(and with optim_wrapper.type=OptimWrapper) on a CPU.')


def resolve_resume(resume: Optional[str], cfg: Config) -> None:
    """Set ``cfg.resume``/``cfg.load_from`` for ``--resume [FILE|DIR]``.

    * a file: resume from it;
    * a directory: resume from the checkpoint its ``last_checkpoint`` names -- or, when that file is missing,
      empty or names a truncated checkpoint, from the newest complete ``epoch_N.pth``/``iter_N.pth`` (a warning
      says which and why; :func:`~rebnn_det.engine.latest_checkpoint`);
    * no path (``'auto'``): the same for this run's work dir; if it has no checkpoint yet, warn and start a new
      run (from the config's ``load_from`` if it sets one) -- so a job script can always pass ``--resume``.
    The checkpoint must be one a training run saved (weights, optimizer, message hub, epoch/iteration:
    :func:`~rebnn_det.engine.check_resumable`). A missing path, a directory without checkpoints or a
    ``last_checkpoint`` naming a missing file is a ``FileNotFoundError`` naming it.
    """
    from ..engine import check_resumable, latest_checkpoint
    if resume is None:
        return
    if resume not in ('auto', ) and not osp.exists(resume):
        raise FileNotFoundError(f'--resume checkpoint {resume!r} does not exist (pass a checkpoint file or a work dir)')
    if resume != 'auto' and osp.isfile(resume):
        check_resumable(resume)
        cfg.resume, cfg.load_from = True, resume
        return
    directory = cfg.work_dir if resume == 'auto' else resume
    source = f'the work dir {cfg.work_dir!r}' if resume == 'auto' else f'the directory {resume!r}'
    latest, note = latest_checkpoint(directory) if osp.isdir(directory) else (None, 'it does not exist yet')
    if latest is None:
        if resume == 'auto':
            warnings.warn(f'--resume: no checkpoint to resume in {source} ({note}): training starts from the '
                          'beginning' + (f' (from load_from={cfg.load_from!r})' if cfg.get('load_from') else '') + '.')
            cfg.resume = False
            return
        raise FileNotFoundError(f'--resume {resume!r}: no checkpoint to resume in this directory ({note}); pass a '
                                'checkpoint file (.pth) or the work dir of a run that saved one')
    if note:
        warnings.warn(f'--resume: {source}: {note}')
    check_resumable(latest)
    cfg.resume, cfg.load_from = True, latest


def train_config(argv: Optional[List[str]] = None) -> Config:
    """The Config ``tools/train.py ARGS`` trains with."""
    args = train_parser().parse_args(argv)
    cfg = _base_cfg(args)
    if args.amp:
        if not amp_device_available():
            raise RuntimeError(AMP_NEEDS_GPU)
        wrapper_type = cfg.optim_wrapper.get('type', 'OptimWrapper')
        if wrapper_type not in ('OptimWrapper', 'AmpOptimWrapper'):
            raise ValueError(f'--amp needs optim_wrapper.type OptimWrapper or AmpOptimWrapper, got {wrapper_type}')
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    if args.auto_scale_lr:
        if 'auto_scale_lr' not in cfg or 'base_batch_size' not in cfg.auto_scale_lr:
            raise ValueError('--auto-scale-lr needs auto_scale_lr.base_batch_size in the config')
        cfg.auto_scale_lr.enable = True
    resolve_resume(args.resume, cfg)
    return cfg


def test_config(argv: Optional[List[str]] = None) -> Config:
    """The Config ``tools/test.py ARGS`` tests with."""
    args = test_parser().parse_args(argv)
    cfg = _base_cfg(args)
    if osp.isdir(args.checkpoint):
        raise FileNotFoundError(f'checkpoint {args.checkpoint!r} is a directory; pass a checkpoint file (e.g. '
                                f'{osp.join(args.checkpoint, "epoch_1.pth")}) or a packed file')
    if not osp.isfile(args.checkpoint):
        raise FileNotFoundError(f'checkpoint {args.checkpoint!r} does not exist')
    # the weights are loaded and checked against the model by CheckedLoadHook (mmengine's own load_from is
    # non-strict: a file that does not fit the config would be evaluated with a warning at most)
    cfg.load_from = None
    cfg.custom_hooks = list(cfg.get('custom_hooks') or []) + [
        dict(type='CheckedLoadHook', checkpoint=args.checkpoint, strict=not args.allow_partial)]
    if args.show_dir:
        vis = cfg.default_hooks.get('visualization')
        if vis is None:
            raise ValueError("--show-dir needs default_hooks.visualization (mmdet's DetVisualizationHook)")
        vis.update(draw=True, test_out_dir=args.show_dir, score_thr=args.score_thr)
    if args.out is not None:
        if not args.out.endswith(('.pkl', '.pickle')):
            raise ValueError(f'--out must be a .pkl/.pickle file, got {args.out!r}')
        evaluators = cfg.test_evaluator if isinstance(cfg.test_evaluator, list) else [cfg.test_evaluator]
        cfg.test_evaluator = list(evaluators) + [dict(type='DumpDetResults', out_file_path=args.out)]
    if args.deploy:
        cfg.custom_hooks = list(cfg.get('custom_hooks') or []) + [dict(type='BinaryDeployHook')]
    return cfg


TRAINING_SAFETY_HOOKS = ('NonFiniteGuardHook', 'ExactResumeHook')


def with_training_safety_hooks(cfg: Config) -> Config:
    """Append ``NonFiniteGuardHook`` (a diverged run stops with an error, no NaN checkpoint) and ``ExactResumeHook``
    (``--resume`` continues exactly) to ``cfg.custom_hooks`` unless the config lists them already (list one with
    your arguments to configure it), and make mmengine's ``CheckpointHook`` a ``SafeCheckpointHook`` (same
    arguments; atomic checkpoint writes, old checkpoints removed only after the new one is complete). Returns
    ``cfg``, changed in place."""
    hooks = list(cfg.get('custom_hooks') or [])
    listed = {str(h.get('type')).split('.')[-1] if isinstance(h, dict) else type(h).__name__ for h in hooks}
    cfg.custom_hooks = hooks + [dict(type=name) for name in TRAINING_SAFETY_HOOKS if name not in listed]
    checkpoint = (cfg.get('default_hooks') or {}).get('checkpoint')
    if isinstance(checkpoint, dict) and str(checkpoint.get('type')).split('.')[-1] == 'CheckpointHook':
        checkpoint['type'] = 'SafeCheckpointHook'
    return cfg


def _unused_log_dirs(work_dir: str, existing: set) -> List[str]:
    """Timestamp folders created in ``work_dir`` since ``existing`` was listed that hold only what mmengine writes
    when a runner starts (``<timestamp>.log`` and ``vis_data/config.py``): no logged scalars, no images."""
    unused = []
    for name in sorted(set(os.listdir(work_dir)) - existing) if osp.isdir(work_dir) else []:
        path = osp.join(work_dir, name)
        if not (osp.isdir(path) and re.fullmatch(r'\d{8}_\d{6}', name)):
            continue
        files = {osp.relpath(osp.join(d, f), path) for d, _, fs in os.walk(path) for f in fs}
        if files <= {f'{name}.log', osp.join('vis_data', 'config.py')}:
            unused.append(path)
    return unused


def build_runner(cfg: Config, check_data: bool = True, mode: str = 'train'):
    """Check the dataset paths the ``mode`` (``'train'`` or ``'test'``) reads, then build the runner the config
    asks for (mmengine's Runner by default). For training, the safety hooks are added
    (:func:`with_training_safety_hooks`) and a GPU-only ``AmpOptimWrapper`` on a CPU-only machine is a clear error.
    """
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner
    if mode not in ('train', 'test'):
        raise ValueError(f"mode must be 'train' or 'test', got {mode!r}")
    if check_data:
        check_data_paths(cfg, mode=mode)
    if mode == 'train':
        with_training_safety_hooks(cfg)
        if cfg.get('optim_wrapper', {}).get('type') == 'AmpOptimWrapper' and not amp_device_available():
            raise RuntimeError(AMP_NEEDS_GPU)
    if cfg.get('launcher') == 'pytorch' and not torch.cuda.is_available() and not torch.distributed.is_initialized():
        torch.distributed.init_process_group('gloo')  # before mmengine's init_dist, which needs CUDA
    return Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)


def reached_first_iteration(runner) -> bool:
    """Whether a runner started an iteration (training, validation or test): mmengine's ``IterTimerHook`` logs
    ``<mode>/data_time`` as each iteration begins, and ``RuntimeInfoHook`` records the training iteration. (Read
    from the message hub: ``runner.iter`` would build the train loop, which may be what failed.)"""
    if runner is None:
        return False
    hub = runner.message_hub
    return any(k.endswith('/data_time') for k in hub.log_scalars) or (hub.get_info('iter') or 0) > 0


def run(cfg: Config, mode: str) -> None:
    """Build the runner and train (``mode='train'``) or test (``'test'``). If that fails before the first
    iteration began (a failed start), the timestamp folder it created (only its start-up log and config copy
    inside) is removed, so failed starts leave no empty ``work_dir/<timestamp>/`` behind; the log of a run that
    reached an iteration (e.g. one that diverged) is always kept. Then the error is raised."""
    work_dir = osp.abspath(cfg.get('work_dir') or '.')
    existing = set(os.listdir(work_dir)) if osp.isdir(work_dir) else set()
    runner = None
    try:
        runner = build_runner(cfg, mode=mode)
        runner.train() if mode == 'train' else runner.test()
    except BaseException:
        if get_rank() == 0 and not reached_first_iteration(runner):
            for path in _unused_log_dirs(work_dir, existing):
                shutil.rmtree(path, ignore_errors=True)
        raise


def exit_after_distributed_run() -> None:
    """End a successful distributed (``--launcher pytorch``) run without tearing it down at interpreter exit.

    On CPU (gloo), the process group's worker threads could still be alive when Python finalizes, and in about
    1 of 8 two-process runs rank 0 then aborted *after* saving ("terminate called without an active exception",
    exit code -6). Here every rank collects its garbage, meets the others at a barrier, destroys the process
    group, flushes its logs and leaves with ``os._exit(0)``. A non-distributed run returns untouched; call this
    only after ``run`` succeeded (an exception must still propagate with its traceback and exit code).
    """
    import torch.distributed as dist
    if not (dist.is_available() and dist.is_initialized()):
        return
    gc.collect()
    dist.barrier()
    dist.destroy_process_group()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
