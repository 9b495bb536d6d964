"""Entry-point logic for the command-line tools (training, testing, data checks, plots)."""
from .cli import build_runner, test_config, test_parser, train_config, train_parser
from .data_check import check_data_paths

__all__ = ['build_runner', 'check_data_paths', 'test_config', 'test_parser', 'train_config', 'train_parser']
