"""Plot ReBNN weight oscillation from a work dir's logs: ``python tools/plot_oscillation.py WORK_DIR [--out F]``."""
import argparse
import os
import sys

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), '..')))

from rebnn_det.apis.oscillation_plot import plot_oscillation  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('work_dir')
    parser.add_argument('--out', help='PNG path (default WORK_DIR/oscillation.png)')
    args = parser.parse_args()
    print(f'oscillation plot: {plot_oscillation(args.work_dir, args.out)}')


if __name__ == '__main__':
    main()
