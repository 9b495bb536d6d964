"""Export a detector to a ``.pt2`` archive that runs with torch alone (torch.export; the 1-bit kernels as
``torch.ops.rebnn`` custom operators):
``python tools/export_pt2.py CONFIG CKPT|PACKED OUT.pt2 [--shape H W] [--static] [--aoti] [--force]``.

The logic is rebnn_det.deploy.pt2_export.export_pt2 (tested there); running the archive:
rebnn_det/deploy/pt2_runtime.py (docs/deploy.md).
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), '..')))

import rebnn_det.plugin  # noqa: E402,F401  (the components and the checkpoint loaders)
from rebnn_det.deploy.pt2_export import export_pt2  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description='Export the deploy-mode network (backbone, neck, heads up to their '
                                     'raw outputs) with torch.export into one .pt2 with the post-processing settings')
    parser.add_argument('config', help='config file of the detector')
    parser.add_argument('checkpoint', help='mmengine checkpoint (.pth) or packed 1-bit file (tools/export_binary.py)')
    parser.add_argument('out', help='.pt2 archive to write')
    parser.add_argument('--shape', type=int, nargs=2, default=(800, 1216), metavar=('H', 'W'),
                        help='example input height and width (multiples of the size divisor; default 800 1216)')
    parser.add_argument('--static', action='store_true',
                        help='export for this input shape only (default: any height/width multiple of the divisor)')
    parser.add_argument('--aoti', action='store_true',
                        help='write an AOTInductor package of the network (FCOS-type detectors) for the C++ program '
                        'deploy_cpp/rebnn_detect instead')
    parser.add_argument('--force', action='store_true', help='overwrite OUT if it exists')
    args = parser.parse_args(argv)
    out = export_pt2(args.config, args.checkpoint, args.out, tuple(args.shape), dynamic=not args.static,
                     force=args.force, aoti=args.aoti)
    print(f'wrote {out} ({osp.getsize(out):,} bytes; checkpoint {osp.getsize(args.checkpoint):,} bytes)')


if __name__ == '__main__':
    main()
