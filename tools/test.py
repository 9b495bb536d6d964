"""Evaluate a checkpoint: ``python tools/test.py CONFIG CHECKPOINT [--out R.pkl] [--show-dir D] [--work-dir D]
[--deploy]``. CHECKPOINT may be an mmengine checkpoint or a packed 1-bit file (tools/export_binary.py).

mmdet's flags; the logic is rebnn_det.apis (tested there).
"""
import os
import sys

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), '..')))

from rebnn_det.apis import exit_after_distributed_run, run, test_config  # noqa: E402


def main():
    run(test_config(), mode='test')
    exit_after_distributed_run()  # DDP: leave cleanly (no gloo-thread abort at interpreter exit)


if __name__ == '__main__':
    main()
