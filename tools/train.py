"""Train a detector: ``python tools/train.py CONFIG [--work-dir D] [--resume [CKPT|DIR]] [--amp] [--cfg-options k=v]``.

mmdet's flags; the logic is rebnn_det.apis (tested there).
"""
import os
import sys

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), '..')))

from rebnn_det.apis import exit_after_distributed_run, run, train_config  # noqa: E402


def main():
    run(train_config(), mode='train')
    exit_after_distributed_run()  # DDP: leave cleanly (no gloo-thread abort at interpreter exit)


if __name__ == '__main__':
    main()
