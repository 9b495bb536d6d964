"""Whole-detector inference latency on a CPU: binary detectors in deploy mode vs the stock real-valued mmdet ones,
by part, at a COCO-sized input.

    .venv/bin/python bench/bench_detector.py [--group faster fcos retina] [--size 800 1216] [--reps 5]
        [--threads N] [--no-memory]
    .venv/bin/python bench/bench_detector.py --profile 'faster binary RPN, deploy' [--size 800 1216]

Every model is built from its config in configs/ with random weights (``init_weights``; seed 0): latency does not
depend on training, except through the number of proposals, which is printed (the RPN keeps its test_cfg's 1000
after NMS on random scores too). Batch 1, one preprocessed random image (data preprocessing not timed), threads =
cores by default. Parts, timed separately within one forward (ms, median over ``--reps`` forwards, after one warm-up
forward; the models of a group are interleaved, their order rotated every repetition):
- two-stage: ``extract_feat`` (backbone + neck), ``rpn_head.predict``, ``roi_head.predict`` (RoIAlign, the RoI
  head, box decoding and NMS);
- single-stage: ``extract_feat``, ``bbox_head.predict`` (head convs, decoding, NMS).
Rows ending in "deploy" are ``convert_to_deploy`` models (XNOR-popcount kernels, fused epilogues, threaded
RoIAlign); "real + deploy plumbing" is the real model through ``convert_to_deploy`` (its only change: the threaded
RoIAlign), to separate what binarization buys from what the plumbing fixes buy.
Peak memory (``--no-memory`` skips it): one fresh subprocess per model; the rise of the process's peak resident
set during one forward after a warm-up forward (VmHWM reset through /proc/self/clear_refs), and the resident set
of the loaded model before it.
``--profile NAME``: torch.profiler over 3 forwards of one model after a warm-up: ops by self CPU time.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from bench.machine import cpu_model, peak_rise_mib  # noqa: E402

# name -> (config under configs/, overrides making it the stock real-valued detector or None, convert_to_deploy?)
_REAL_R18 = dict(type='ResNet', depth=18, num_stages=4, out_indices=(0, 1, 2, 3), frozen_stages=-1,
                 norm_cfg=dict(type='BN', requires_grad=True), norm_eval=False, style='pytorch', init_cfg=None)
REAL_BACKBONE_NECK = dict(backbone=dict(_delete_=True, **_REAL_R18), neck=dict(type='FPN'))
MODELS_BY_GROUP = {
    'faster': {
        'faster real (mmdet R18-FPN)': ('real_faster_rcnn.py', None, False),
        'faster real + deploy plumbing': ('real_faster_rcnn.py', None, True),
        'faster binary, deploy': ('rebnn_faster_rcnn.py', None, True),
        'faster binary RPN, deploy': ('rebnn_faster_rcnn_binary_rpn.py', None, True),
        'faster binary RPN + RoI FCs, deploy': ('rebnn_faster_rcnn_binary_roi.py', None, True),
    },
    'fcos': {
        'fcos real (mmdet R18-FPN, GN head)': ('rebnn_fcos.py', REAL_BACKBONE_NECK, False),
        'fcos binary head, deploy': ('rebnn_fcos_binary_head.py', None, True),
    },
    'retina': {
        'retina real (mmdet R18-FPN)': ('rebnn_retinanet.py', REAL_BACKBONE_NECK, False),
        'retina binary head, deploy': ('rebnn_retinanet_binary_head.py', None, True),
    },
}
ALL_MODELS = {name: spec for group in MODELS_BY_GROUP.values() for name, spec in group.items()}
REAL_OF_GROUP = {g: next(iter(models)) for g, models in MODELS_BY_GROUP.items()}


def build(name: str):
    """The model ``name`` of ALL_MODELS, random weights (seed 0), eval mode (deploy-converted if it says so)."""
    import logging

    from mmdet.registry import MODELS
    from mmengine.config import Config
    from mmengine.logging import MMLogger
    from mmengine.registry import init_default_scope

    import rebnn_det.plugin  # noqa: F401  registers everything
    from rebnn_det.deploy.convert import convert_to_deploy
    init_default_scope('mmdet')
    MMLogger.get_current_instance().setLevel(logging.WARNING)  # no per-parameter init report
    config, overrides, deploy = ALL_MODELS[name]
    cfg = Config.fromfile(os.path.join(ROOT, 'configs', config))
    if overrides:
        cfg.merge_from_dict(dict(model=overrides))
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    model.eval()
    return convert_to_deploy(model) if deploy else model


def make_input(size):
    from mmdet.structures import DetDataSample
    h, w = size
    torch.manual_seed(1)
    x = torch.randn(1, 3, h, w)
    sample = DetDataSample()
    sample.set_metainfo(dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w), batch_input_shape=(h, w),
                             scale_factor=(1.0, 1.0)))
    return x, [sample]


def forward_parts(model, x, samples) -> dict:
    """One forward, timed by part (seconds); also the number of proposals of a two-stage detector."""
    times = {}
    t0 = time.perf_counter()
    feats = model.extract_feat(x)
    t1 = time.perf_counter()
    times['backbone + neck'] = t1 - t0
    if hasattr(model, 'roi_head'):
        proposals = model.rpn_head.predict(feats, samples, rescale=False)
        t2 = time.perf_counter()
        model.roi_head.predict(feats, proposals, samples, rescale=True)
        t3 = time.perf_counter()
        times.update({'RPN head': t2 - t1, 'RoI head': t3 - t2, 'proposals': len(proposals[0])})
    else:
        model.bbox_head.predict(feats, samples, rescale=True)
        times['head'] = time.perf_counter() - t1
    return times


def memory_child(name: str, size, threads: int) -> dict:
    torch.set_num_threads(threads)
    model = build(name)
    x, samples = make_input(size)
    with torch.no_grad():
        forward_parts(model, x, samples)  # warm-up: one-time allocations (oneDNN primitives, thread pools)
        rise, before = peak_rise_mib(lambda: forward_parts(model, x, samples))
    return dict(name=name, peak_rise_mib=rise, resident_before_mib=before)


def profile(name: str, size, threads: int, rows: int):
    from torch.profiler import ProfilerActivity, profile as torch_profile, record_function
    torch.set_num_threads(threads)
    model = build(name)
    x, samples = make_input(size)
    with torch.no_grad():
        forward_parts(model, x, samples)
        with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(3):
                with record_function('extract_feat'):
                    feats = model.extract_feat(x)
                if hasattr(model, 'roi_head'):
                    with record_function('rpn_head.predict'):
                        proposals = model.rpn_head.predict(feats, samples, rescale=False)
                    with record_function('roi_head.predict'):
                        model.roi_head.predict(feats, proposals, samples, rescale=True)
                else:
                    with record_function('bbox_head.predict'):
                        model.bbox_head.predict(feats, samples, rescale=True)
    print(f'# {name}: torch.profiler, 3 forwards at {size[0]}x{size[1]}, {threads} threads, {cpu_model()}')
    print(prof.key_averages().table(sort_by='self_cpu_time_total', row_limit=rows, max_name_column_width=60))


def bench(args):
    torch.set_num_threads(args.threads)
    x, samples = make_input(args.size)
    print(f'# {cpu_model()}; {args.threads} threads; batch 1 at {args.size[0]}x{args.size[1]}; random weights; '
          f'median of {args.reps} interleaved forwards (ms)')
    for group in args.group:
        names = list(MODELS_BY_GROUP[group])
        models = {n: build(n) for n in names}
        times = {n: [] for n in names}
        with torch.no_grad():
            for n in names:
                forward_parts(models[n], x, samples)  # warm-up
            for rep in range(args.reps):
                for n in names[rep % len(names):] + names[:rep % len(names)]:
                    times[n].append(forward_parts(models[n], x, samples))
        del models
        memory = {}
        if not args.no_memory:
            for n in names:
                res = subprocess.run([sys.executable, os.path.abspath(__file__), '--memory-child', n, '--size',
                                      *map(str, args.size), '--threads', str(args.threads)],
                                     capture_output=True, text=True, check=True)
                memory[n] = json.loads(res.stdout.strip().splitlines()[-1])
        parts = [p for p in times[names[0]][0] if p != 'proposals']
        med = {n: {p: statistics.median(t[p] for t in times[n]) * 1e3 for p in parts} for n in names}
        total = {n: statistics.median(sum(t[p] for p in parts) for t in times[n]) * 1e3 for n in names}
        real = REAL_OF_GROUP[group]
        print()
        print('| model | ' + ' | '.join(parts) + ' | total | vs real | proposals | peak memory rise (MiB) | '
              'resident model (MiB) |')
        print('|---|' + '---|' * (len(parts) + 6))
        for n in names:
            props = statistics.median(t.get('proposals', 0) for t in times[n])
            mem = memory.get(n)
            print(f'| {n} | ' + ' | '.join(f'{med[n][p]:.0f}' for p in parts) +
                  f' | {total[n]:.0f} | {total[real] / total[n]:.2f}x | {props:.0f} | '
                  f'{"-" if mem is None else format(mem["peak_rise_mib"], ".0f")} | '
                  f'{"-" if mem is None else format(mem["resident_before_mib"], ".0f")} |')


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--group', nargs='+', choices=list(MODELS_BY_GROUP), default=list(MODELS_BY_GROUP))
    parser.add_argument('--size', nargs=2, type=int, default=[800, 1216], metavar=('H', 'W'))
    parser.add_argument('--reps', type=int, default=5)
    parser.add_argument('--threads', type=int, default=os.cpu_count())
    parser.add_argument('--no-memory', action='store_true', help='skip the peak-memory subprocesses')
    parser.add_argument('--profile', choices=list(ALL_MODELS), help='profile one model instead')
    parser.add_argument('--profile-rows', type=int, default=25)
    parser.add_argument('--memory-child', choices=list(ALL_MODELS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_child:
        print(json.dumps(memory_child(args.memory_child, args.size, args.threads)))
    elif args.profile:
        profile(args.profile, args.size, args.threads, args.profile_rows)
    else:
        bench(args)


if __name__ == '__main__':
    main()
