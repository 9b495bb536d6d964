"""Evaluate a checkpoint: ``python tools/test.py CONFIG CHECKPOINT [--out R.pkl] [--show-dir D] [--work-dir D]``.

mmdet's flags; the logic is rebnn_det.apis (tested there).
"""
import os
import sys

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), '..')))

from rebnn_det.apis import build_runner, test_config  # noqa: E402


def main():
    build_runner(test_config()).test()


if __name__ == '__main__':
    main()
