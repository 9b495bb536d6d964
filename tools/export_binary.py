"""Export a trained detector to a packed 1-bit file:
``python tools/export_binary.py CONFIG CHECKPOINT OUT [--half] [--force] [--allow-partial]``.

The logic is rebnn_det.deploy.export_binary (tested there); the file format is documented in
rebnn_det/deploy/packed_file.py.
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), '..')))

from rebnn_det.deploy import export_binary  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description='Write a packed file: binary conv weights as 1-bit signs + alpha, '
                                     'everything else real-valued, the config embedded')
    parser.add_argument('config', help='config file the checkpoint was trained with')
    parser.add_argument('checkpoint', help='mmengine checkpoint (.pth)')
    parser.add_argument('out', help='packed file to write (e.g. model.packed.pth)')
    parser.add_argument('--half', action='store_true',
                        help='store the real-valued float tensors in fp16 (alpha and thresholds stay fp32)')
    parser.add_argument('--force', action='store_true', help='overwrite OUT if it exists')
    parser.add_argument('--allow-partial', action='store_true',
                        help='export a checkpoint that does not fit the config (missing tensors keep their initial '
                             'values); by default every tensor must fit')
    args = parser.parse_args(argv)
    out = export_binary(args.config, args.checkpoint, args.out, half=args.half, force=args.force,
                        allow_partial=args.allow_partial)
    print(f'wrote {out} ({osp.getsize(out):,} bytes; checkpoint {osp.getsize(args.checkpoint):,} bytes)')


if __name__ == '__main__':
    main()
