"""Per-layer bits, storage, binary/float MACs and totals (fp32/packed size, BOPs, FLOPs, OPs) of a config's model:
``python tools/model_summary.py CONFIG [--shape H W] [--totals-only]``.

The logic is rebnn_det.deploy.summary (conventions in its docstring; tested there).
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), '..')))

from rebnn_det.deploy import build_detector, format_summary, model_summary  # noqa: E402
from rebnn_det.deploy.summary import check_input_shape  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description='Model summary: what is binary, what it stores and computes')
    parser.add_argument('config', help='config file')
    parser.add_argument('--shape', type=int, nargs=2, default=[800, 1216], metavar=('H', 'W'),
                        help='input image height and width (default 800 1216, the padded COCO test size)')
    parser.add_argument('--totals-only', action='store_true', help='print only the totals')
    args = parser.parse_args(argv)
    try:
        check_input_shape(args.shape)
    except ValueError as err:
        parser.error(f'--shape: {err}')
    model = build_detector(args.config)
    print(format_summary(model_summary(model, args.shape), layers=not args.totals_only))


if __name__ == '__main__':
    main()
