"""The logic behind tools/train.py and tools/test.py: mmdet's command-line flags mapped onto an mmengine Config.

Kept in the package so tests reach it; the tools only parse ``sys.argv`` and call these functions.
"""
import argparse
import os
import os.path as osp
from typing import List, Optional

import torch
from mmengine.config import Config, DictAction

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
    parser.add_argument('--amp', action='store_true', help='mixed precision (AmpOptimWrapper, dynamic loss scale)')
    parser.add_argument('--auto-scale-lr', action='store_true', help='scale lr by total batch / base batch')
    parser.add_argument('--resume', nargs='?', type=str, const='auto',
                        help='resume from a checkpoint; without a path, from the latest one in the work dir')
    return parser


def test_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description='Test (and evaluate) an mmdet detector checkpoint')
    _common_args(parser, with_checkpoint=True)
    parser.add_argument('--out', help='dump the raw predictions to this .pkl file')
    parser.add_argument('--show-dir', help='write images with predicted boxes into <work_dir>/<timestamp>/SHOW_DIR')
    parser.add_argument('--score-thr', type=float, default=0.3, help='score threshold of drawn boxes')
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


def train_config(argv: Optional[List[str]] = None) -> Config:
    """The Config ``tools/train.py ARGS`` trains with."""
    args = train_parser().parse_args(argv)
    cfg = _base_cfg(args)
    if args.amp:
        wrapper_type = cfg.optim_wrapper.get('type', 'OptimWrapper')
        if wrapper_type not in ('OptimWrapper', 'AmpOptimWrapper'):
            raise ValueError(f'--amp needs optim_wrapper.type OptimWrapper or AmpOptimWrapper, got {wrapper_type}')
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    if args.auto_scale_lr:
        if 'auto_scale_lr' not in cfg or 'base_batch_size' not in cfg.auto_scale_lr:
            raise ValueError('--auto-scale-lr needs auto_scale_lr.base_batch_size in the config')
        cfg.auto_scale_lr.enable = True
    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif args.resume is not None:
        if not osp.isfile(args.resume):
            raise FileNotFoundError(f'--resume checkpoint {args.resume!r} does not exist')
        cfg.resume, cfg.load_from = True, args.resume
    return cfg


def test_config(argv: Optional[List[str]] = None) -> Config:
    """The Config ``tools/test.py ARGS`` tests with."""
    args = test_parser().parse_args(argv)
    cfg = _base_cfg(args)
    if not osp.isfile(args.checkpoint):
        raise FileNotFoundError(f'checkpoint {args.checkpoint!r} does not exist')
    cfg.load_from = args.checkpoint
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
    return cfg


def build_runner(cfg: Config, check_data: bool = True):
    """Check the dataset paths, then build the runner the config asks for (mmengine's Runner by default)."""
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner
    if check_data:
        check_data_paths(cfg)
    if cfg.get('launcher') == 'pytorch' and not torch.cuda.is_available() and not torch.distributed.is_initialized():
        torch.distributed.init_process_group('gloo')  # before mmengine's init_dist, which needs CUDA
    return Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
