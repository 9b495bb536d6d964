"""Convert a real ResNet-18/34 checkpoint (torchvision or mmdet layout) for ReBNNResNet's ``init_cfg``.

    python tools/convert_real_resnet.py resnet18.pth rebnn_r18_init.pth [--prefix backbone.]

then in a config: ``model.backbone.init_cfg = dict(type='Pretrained', checkpoint='rebnn_r18_init.pth')``.
alpha is computed from each loaded weight (channel mean |w|); RSign/RPReLU start at their defaults.

    python tools/convert_real_resnet.py resnet34.pth real_resnet34_in1k.pth --classifier

writes a torchvision ResNet *classifier* (with its fc) as a real ``BackboneClassifier`` checkpoint instead: the
teacher of configs/classification/rebnn_resnet18_8xb32_in1k_stage2_w1a1_distill.py.
"""
import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), '..')))

from rebnn_det.models import convert_real_resnet_state_dict, real_resnet_classifier_state_dict  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('src', help='real ResNet checkpoint (.pth)')
    parser.add_argument('dst', help='output checkpoint for ReBNNResNet')
    parser.add_argument('--prefix', default='', help="key prefix of the ResNet, e.g. 'backbone.' for a detector")
    parser.add_argument('--classifier', action='store_true',
                        help='keep the classifier: a real BackboneClassifier checkpoint (a distillation teacher)')
    args = parser.parse_args()
    state = torch.load(args.src, map_location='cpu', weights_only=True)
    converted = (real_resnet_classifier_state_dict(state) if args.classifier
                 else convert_real_resnet_state_dict(state, prefix=args.prefix))
    torch.save(dict(state_dict=converted, meta=dict(converted_from=os.path.abspath(args.src))), args.dst)
    print(f'wrote {len(converted)} tensors to {args.dst}')


if __name__ == '__main__':
    main()
