"""The exported network (.pt2) vs deploy mode, and the .pt2's size vs the packed file.

    .venv/bin/python bench/bench_pt2.py [--models fcos faster] [--size 800 1216] [--reps 5] [--threads N]
        [--no-compile] [--no-aoti]

What is exported is timed: backbone + neck + dense head up to the raw outputs (``NetworkOutputs``; for Faster R-CNN
with binary RPN and RoI FCs also the features the RoI stage reads), batch 1, one random preprocessed image.
Variants of one model, interleaved (order rotated every repetition), median of ``--reps`` after one warm-up:
- ``deploy (eager)``: the ``convert_to_deploy`` model, eager PyTorch (the reference);
- ``.pt2 (torch.export)``: the exported program loaded back by the runtime's ``load_pt2`` (checked, then
  ``ExportedProgram.module()``);
- ``torch.compile (inductor)``: the deploy model compiled (the kernels stay extern calls);
- ``AOTInductor .pt2``: the exported program compiled ahead of time by AOTInductor and loaded with
  ``torch._inductor.aoti_load_package``.
Compile and export times are printed once. Sizes: the packed 1-bit file (``export_model``), the ``.pt2`` of
``tools/export_pt2.py`` (both programs; the binary weights stay packed int64 words) and the fp32 state dict.
Random weights (``init_weights``, seed 0): latency and size do not depend on training.
"""
import argparse
import os
import statistics
import sys
import tempfile
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from bench.machine import cpu_model  # noqa: E402

CONFIGS = {'fcos': 'rebnn_fcos_binary_head.py', 'faster': 'rebnn_faster_rcnn_binary_roi.py'}


def build(config: str):
    import logging

    from mmdet.registry import MODELS
    from mmengine.config import Config
    from mmengine.logging import MMLogger
    from mmengine.registry import init_default_scope

    import rebnn_det.plugin  # noqa: F401
    MMLogger.get_current_instance().setLevel(logging.ERROR)
    init_default_scope('mmdet')
    cfg = Config.fromfile(os.path.join(ROOT, 'configs', config))
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    return cfg, model.eval()


def timed(fn, x, reps_out: list):
    t = time.perf_counter()
    with torch.no_grad():
        fn(x)
    reps_out.append((time.perf_counter() - t) * 1e3)


def bench_model(key: str, size, reps: int, compile_: bool, aoti: bool, tmp: str) -> None:
    from rebnn_det.deploy.convert import convert_to_deploy
    from rebnn_det.deploy.export import export_model
    from rebnn_det.deploy.pt2_export import NetworkOutputs, export_detector_pt2
    from rebnn_det.deploy.pt2_runtime import load_pt2
    cfg, model = build(CONFIGS[key])
    packed = export_model(model, cfg, os.path.join(tmp, f'{key}.packed.pth'))
    fp32 = os.path.join(tmp, f'{key}.fp32.pth')
    torch.save(model.state_dict(), fp32)
    deploy = convert_to_deploy(model)
    net = NetworkOutputs(deploy).eval()
    x = torch.randn(1, 3, *size, generator=torch.Generator().manual_seed(1))
    t = time.perf_counter()
    pt2 = export_detector_pt2(deploy, cfg, os.path.join(tmp, f'{key}.pt2'), size)
    export_s = time.perf_counter() - t
    variants = {'deploy (eager)': net, '.pt2 (torch.export)': load_pt2(pt2).programs['network']}  # the runtime's loader
    notes = [f'export {export_s:.1f} s']
    if compile_:
        compiled = torch.compile(net, backend='inductor')
        t = time.perf_counter()
        with torch.no_grad():
            compiled(x)
        notes.append(f'inductor compile + first run {time.perf_counter() - t:.1f} s')
        variants['torch.compile (inductor)'] = compiled
    if aoti:
        with torch.no_grad():
            ep = torch.export.export(net, (x, ))
            t = time.perf_counter()
            path = torch._inductor.aoti_compile_and_package(ep, package_path=os.path.join(tmp, f'{key}.aoti.pt2'))
        notes.append(f'AOTInductor compile {time.perf_counter() - t:.1f} s')
        variants['AOTInductor .pt2'] = torch._inductor.aoti_load_package(path)
    ref = net(x)
    for name, fn in variants.items():  # warm-up, and the outputs agree
        with torch.no_grad():
            out = fn(x)
        worst = max(((a - b).abs() / b.abs().clamp_min(1e-6)).max().item() for a, b in zip(out, ref))
        exact = all(torch.equal(a, b) for a, b in zip(out, ref))
        notes.append(f'{name}: {"bit-identical" if exact else f"max relative difference {worst:.1e}"}')
    times = {name: [] for name in variants}
    names = list(variants)
    for r in range(reps):
        for name in names[r % len(names):] + names[:r % len(names)]:
            timed(variants[name], x, times[name])
    base = statistics.median(times['deploy (eager)'])
    print(f'\n### {key} ({CONFIGS[key]}), {size[0]}x{size[1]}, batch 1\n')
    print('| variant | ms (median) | vs deploy eager |')
    print('|---|---:|---:|')
    for name in names:
        med = statistics.median(times[name])
        print(f'| {name} | {med:.1f} | {base / med:.2f}x |')
    print('\n' + '; '.join(notes))
    print(f'\nsizes: packed file {os.path.getsize(packed) / 2**20:.2f} MiB, .pt2 {os.path.getsize(pt2) / 2**20:.2f} '
          f'MiB ({os.path.getsize(pt2) / os.path.getsize(packed):.2f}x the packed file), fp32 state dict '
          f'{os.path.getsize(fp32) / 2**20:.2f} MiB')


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--models', nargs='+', choices=sorted(CONFIGS), default=['fcos', 'faster'])
    parser.add_argument('--size', type=int, nargs=2, default=(800, 1216))
    parser.add_argument('--reps', type=int, default=5)
    parser.add_argument('--threads', type=int, default=os.cpu_count())
    parser.add_argument('--no-compile', action='store_true')
    parser.add_argument('--no-aoti', action='store_true')
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f'{cpu_model()}; {args.threads} threads; torch {torch.__version__}')
    with tempfile.TemporaryDirectory() as tmp:
        for key in args.models:
            bench_model(key, tuple(args.size), args.reps, not args.no_compile, not args.no_aoti, tmp)


if __name__ == '__main__':
    main()
