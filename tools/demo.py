"""The README's main job: ``python tools/demo.py [--work-dir D] [--cfg-options k=v ...]``.

Trains the ReBNN Faster R-CNN demo config on the embedded shapes set (generated on first use), evaluates it
(COCO bbox mAP), writes the oscillation plot and prints where the checkpoint, log, scalars and plot are.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), '..')))

from mmengine.config import DictAction  # noqa: E402

from rebnn_det.apis.demo import format_demo_result, run_demo  # noqa: E402

# the checkout's demo config: tools/ and configs/ are siblings (the package itself knows no checkout layout)
DEMO_CONFIG = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', 'configs', 'shapes',
                                           'rebnn_faster_rcnn_shapes.py'))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--config', default=DEMO_CONFIG)
    parser.add_argument('--work-dir', default='work_dirs/demo_rebnn_shapes')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    args = parser.parse_args()
    print(format_demo_result(run_demo(args.config, args.work_dir, args.cfg_options)))


if __name__ == '__main__':
    main()
