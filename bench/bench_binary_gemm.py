"""Binary GEMM (the binary RoI head's FC layers) vs fp32 ``torch.nn.functional.linear`` on the RoI FC shapes of
Faster R-CNN: 1000 RoIs x 12544 (256 x 7 x 7) -> 1024 (fc6) and 1000 x 1024 -> 1024 (fc7).

    .venv/bin/python bench/bench_binary_gemm.py [--rois 1000] [--reps 10] [--warmup 3] [--isa avx512] [--threads N]

Threads = cores (default), variants interleaved (one run of each per repetition), median:
- ``binary``: rebnn_det.deploy.kernels.binary_linear on the fp32 features: packs sign(x - beta), XNOR-popcount
  GEMM, float output ``alpha * count`` -- everything a binary FC layer costs (the BN of deploy mode is one more
  multiply-add per output in the same epilogue);
- ``fp32``: torch.nn.functional.linear (MKL/oneDNN) with the same shapes and a bias.
GMAC/s counts multiply-accumulates (binary MACs for the kernel). Target: fp32 / binary >= 10 on both shapes.
"""
import argparse
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench.machine import cpu_model  # noqa: E402
from rebnn_det.deploy import kernels  # noqa: E402
from rebnn_det.deploy.packing import pack_signs_last  # noqa: E402

SHAPES = [('fc6', 256 * 7 * 7, 1024), ('fc7', 1024, 1024)]


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--rois', type=int, default=1000)
    parser.add_argument('--reps', type=int, default=10)
    parser.add_argument('--warmup', type=int, default=3)
    parser.add_argument('--isa', default=None, help='kernel path (default: the best this CPU runs)')
    parser.add_argument('--threads', type=int, default=os.cpu_count())
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f'{cpu_model()}; {args.threads} threads; kernel path {kernels.kernel_isa(args.isa)}; {args.rois} RoIs; '
          f'median of {args.reps}')
    print('| layer | shape | fp32 ms | binary ms | fp32 / binary | fp32 GMAC/s | binary GMAC/s |')
    print('|---|---|---|---|---|---|---|')
    torch.manual_seed(0)
    for name, k, o in SHAPES:
        x, w, b = torch.randn(args.rois, k), torch.randn(o, k), torch.randn(o)
        threshold, scale = torch.randn(k) * 0.1, torch.rand(o)
        weight = kernels.linear_weight(pack_signs_last(w), k)
        variants = dict(fp32=lambda: F.linear(x, w, b),
                        binary=lambda: kernels.binary_linear(x, threshold, weight, scale, b, isa=args.isa))
        for fn in variants.values():
            for _ in range(args.warmup):
                fn()
        times = {v: [] for v in variants}
        for _ in range(args.reps):
            for v, fn in variants.items():
                times[v].append(timed(fn))
        med = {v: statistics.median(t) for v, t in times.items()}
        macs = args.rois * k * o
        print(f'| {name} | {args.rois} x {k} -> {o} | {med["fp32"] * 1e3:.1f} | {med["binary"] * 1e3:.2f} | '
              f'{med["fp32"] / med["binary"]:.1f}x | {macs / med["fp32"] / 1e9:.0f} | '
              f'{macs / med["binary"] / 1e9:.0f} |')


if __name__ == '__main__':
    main()
