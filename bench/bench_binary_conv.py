"""Binary 3x3 conv kernel vs fp32 conv on every distinct binary 3x3 conv shape of ReBNNResNet-18 at 800x1216.

    .venv/bin/python bench/bench_binary_conv.py [--reps 10] [--warmup 3] [--isa avx512] [--threads N]

Per shape, batch 1, threads = cores (default), variants interleaved (one run of each per repetition), median:
- ``binary``: rebnn_det.deploy.kernels.binary_conv2d on a channels-last fp32 input (the layout deploy mode feeds
  it): packs sign(x - beta) of the input, XNOR-popcount conv, float output ``alpha * count`` -- everything a
  binary layer costs;
- ``binary NCHW``: the same on an NCHW-contiguous input (packing reads strided channels);
- ``pack``: the input packing alone (part of ``binary``);
- ``chained``: the layer as it runs inside a deploy-mode ResNet stage -- its input already packed by the previous
  layer's epilogue, its own output packed for the next layer in its epilogue (``packed_input`` + ``pack_next``);
- ``pad ±1``: ``binary`` with pad_value = +1 (no zero-padding correction) instead of 0;
- ``fp32``: torch.nn.functional.conv2d (oneDNN) on the NCHW input with the same shape.
GMAC/s counts multiply-accumulates (binary MACs for the kernel). Ratios: fp32 / binary and fp32 / chained.
"""
import argparse
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from rebnn_det.deploy import kernels  # noqa: E402
from rebnn_det.deploy.packing import pack_conv_weight  # noqa: E402

# (C_in, C_out, input H, input W, stride): ReBNNResNet-18 stages at an 800x1216 image (stem: /4)
SHAPES = [(64, 64, 200, 304, 1), (64, 128, 200, 304, 2), (128, 128, 100, 152, 1), (128, 256, 100, 152, 2),
          (256, 256, 50, 76, 1), (256, 512, 50, 76, 2), (512, 512, 25, 38, 1)]


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--reps', type=int, default=10)
    parser.add_argument('--warmup', type=int, default=3)
    parser.add_argument('--isa', default=None, help="kernel path (default: $REBNN_KERNEL_ISA or the best)")
    parser.add_argument('--threads', type=int, default=os.cpu_count())
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    isa = kernels.kernel_isa(args.isa)
    print(f'# binary 3x3 conv vs fp32 F.conv2d, batch 1, {args.threads} threads, kernel path {isa!r}, '
          f'median of {args.reps} interleaved runs (torch {torch.__version__})')
    print('| shape | out HxW | binary ms | binary NCHW ms | pack ms | chained ms | pad ±1 ms | fp32 ms | binary GMAC/s '
          '| fp32 GMAC/s | fp32/binary | fp32/chained |')
    print('|---|---|---|---|---|---|---|---|---|---|---|---|')
    ratios, chained_ratios = [], []
    torch.manual_seed(0)
    for c_in, c_out, h, w, stride in SHAPES:
        x = torch.randn(1, c_in, h, w)
        x_cl = x.contiguous(memory_format=torch.channels_last)
        weight = torch.randn(c_out, c_in, 3, 3)
        threshold = torch.randn(c_in) * 0.1
        alpha = weight.abs().flatten(1).mean(1)
        kw = kernels.prepare_weight(pack_conv_weight(weight), c_in)
        packed_in = kernels.PackedActivations(kernels.pack_padded(x_cl, threshold, 1, 0.0, isa=isa), c_in, threshold,
                                              (1, 1), 0.0)
        next_threshold = torch.randn(c_out) * 0.1
        variants = {
            'binary': lambda: kernels.binary_conv2d(x_cl, threshold, kw, alpha, None, stride, 1, 0.0, isa=isa),
            'binary_nchw': lambda: kernels.binary_conv2d(x, threshold, kw, alpha, None, stride, 1, 0.0, isa=isa),
            'pack': lambda: kernels.pack_padded(x_cl, threshold, 1, 0.0, isa=isa),
            'chained': lambda: kernels.binary_conv2d(x_cl, threshold, kw, alpha, None, stride, 1, 0.0, isa=isa,
                                                     packed_input=packed_in, pack_next=(next_threshold, 1, 0.0)),
            'pad1': lambda: kernels.binary_conv2d(x_cl, threshold, kw, alpha, None, stride, 1, 1.0, isa=isa),
            'fp32': lambda: F.conv2d(x, weight, None, stride, 1),
        }
        times = {k: [] for k in variants}
        with torch.no_grad():
            for _ in range(args.warmup):
                for fn in variants.values():
                    fn()
            for _ in range(args.reps):
                for k, fn in variants.items():
                    times[k].append(timed(fn))
        med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
        ho, wo = (h - 1) // stride + 1, (w - 1) // stride + 1
        gmac = c_out * ho * wo * c_in * 9 / 1e9
        ratio, chained = med['fp32'] / med['binary'], med['fp32'] / med['chained']
        ratios.append(ratio)
        chained_ratios.append(chained)
        print(f'| {c_in}->{c_out} s{stride} @{h}x{w} | {ho}x{wo} | {med["binary"]:.2f} | {med["binary_nchw"]:.2f} '
              f'| {med["pack"]:.2f} | {med["chained"]:.2f} | {med["pad1"]:.2f} | {med["fp32"]:.2f} '
              f'| {gmac / med["binary"] * 1e3:.0f} | {gmac / med["fp32"] * 1e3:.0f} | {ratio:.1f}x | {chained:.1f}x |')
    print(f'\nmedian ratio fp32/binary: {statistics.median(ratios):.1f}x (min {min(ratios):.1f}x, max '
          f'{max(ratios):.1f}x); fp32/chained: {statistics.median(chained_ratios):.1f}x (min '
          f'{min(chained_ratios):.1f}x, max {max(chained_ratios):.1f}x)')


if __name__ == '__main__':
    main()
