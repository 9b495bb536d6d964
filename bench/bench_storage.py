"""Storage of a binary detector: fp32 vs packed (1 bit per binary weight), counted and as written files.

    python bench/bench_storage.py [--config configs/rebnn_faster_rcnn.py] [--shape 800 1216]

Rows: the 1-bit ReBNNResNet-18 + BinaryFPN (target: packed >= 20x smaller than fp32), each head (its binary layers
counted), the
whole detector in fp32 / packed / packed --half, and the sizes of the files tools/export_binary.py writes next to
an fp32 mmengine-style checkpoint holding only the state dict. Counted sizes follow rebnn_det.deploy.summary
(1 bit per binary weight, 32 bits per other value; --half: 16 bits per weight of the real convs/linears); file
sizes include torch's zip/pickle overhead and the int64 word padding of the sign bits.
Weights are the config's initialisation (sizes do not depend on the values).
"""
import argparse
import os
import os.path as osp
import sys
import tempfile

import torch

sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), '..')))

from rebnn_det.deploy import build_detector, export_model, model_summary  # noqa: E402
from rebnn_det.deploy.summary import half_packed_bytes  # noqa: E402


def _binary_or_real(part) -> str:
    binary = [r for r in part.layers if r.weight_bits == 1]
    return f'{len(binary)} binary layers' if binary else 'real-valued'


def mib(n: float) -> str:
    return f'{n / 2**20:8.2f} MiB'


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--config', default=osp.join(osp.dirname(__file__), '..', 'configs', 'rebnn_faster_rcnn.py'))
    parser.add_argument('--shape', type=int, nargs=2, default=[800, 1216])
    args = parser.parse_args()
    model = build_detector(args.config)
    summary = model_summary(model, args.shape)
    feat = summary.part('backbone', 'neck')
    heads = [n for n, _ in model.named_children() if n.endswith('head')]
    rows = [
        ('ReBNNResNet-18 + BinaryFPN', feat.fp32_bytes, feat.packed_bytes),
        ('  backbone only', summary.part('backbone').fp32_bytes, summary.part('backbone').packed_bytes),
        *[(f'{head} ({_binary_or_real(summary.part(head))})', summary.part(head).fp32_bytes,
           summary.part(head).packed_bytes) for head in heads],
        ('whole detector', summary.fp32_bytes, summary.packed_bytes),
        ('whole detector, --half', summary.fp32_bytes, half_packed_bytes(model)),
    ]
    with tempfile.TemporaryDirectory() as tmp:
        fp32_file = osp.join(tmp, 'fp32.pth')
        torch.save({'state_dict': model.state_dict()}, fp32_file)
        packed_file = export_model(model, args.config, osp.join(tmp, 'packed.pth'))
        half_file = export_model(model, args.config, osp.join(tmp, 'half.pth'), half=True)
        files = [('file: state_dict .pth vs packed', os.path.getsize(fp32_file), os.path.getsize(packed_file)),
                 ('file: state_dict .pth vs packed --half', os.path.getsize(fp32_file), os.path.getsize(half_file))]
    print(f'config {osp.relpath(args.config)}; BOPs {summary.bops / 1e9:.2f} G, FLOPs {summary.flops / 1e9:.2f} G '
          f'({", ".join(summary.traced)} at {args.shape[0]}x{args.shape[1]}'
          f'{"".join(f"; {n} at {k} RoIs" for n, k in summary.rois.items())}), OPs {summary.ops / 1e9:.2f} G; '
          f'backbone + neck alone: BOPs {feat.bops / 1e9:.2f} G, FLOPs {feat.flops / 1e9:.2f} G, '
          f'OPs {feat.ops / 1e9:.2f} G')
    print(f'| {"part":<40} | {"fp32":>12} | {"packed":>12} | {"ratio":>7} |')
    print(f'|{"-" * 42}|{"-" * 14}|{"-" * 14}|{"-" * 9}|')
    for name, fp32, packed in rows + files:
        print(f'| {name:<40} | {mib(fp32):>12} | {mib(packed):>12} | {fp32 / packed:6.2f}x |')


if __name__ == '__main__':
    main()
