"""Entry-point logic for the command-line tools (training, testing, data checks, plots)."""
from .. import plugin  # noqa: F401  (the tools build what configs name: every component registered)
from .cli import (build_runner, exit_after_distributed_run, resolve_resume, run, test_config, test_parser, train_config,
                  train_parser, with_training_safety_hooks)
from .data_check import check_data_paths

__all__ = ['build_runner', 'check_data_paths', 'exit_after_distributed_run', 'resolve_resume', 'run', 'test_config',
           'test_parser', 'train_config', 'train_parser', 'with_training_safety_hooks']
