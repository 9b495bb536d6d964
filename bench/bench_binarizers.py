"""Accuracy and oscillation of the binarizers on the embedded shapes set (same schedule and seed for all).

    python bench/bench_binarizers.py [--work-root work_dirs/bench_binarizers] [--only NAME ...]
        [--cfg-options k=v ...]   # applied to every run, e.g. train_cfg.max_epochs=2 for a smoke run

Each row is one `tools/train.py` run of a config in configs/shapes/ (a subprocess, so runs don't share state;
two for the two-stage row); numbers are read back from its (last) work dir: COCO bbox mAP / mAP50 on the val split, the flip ratio of the last
epoch (mean fraction of latent weights whose sign flipped per step, from ReBNNHook's oscillation window), the
share of weights that oscillated (>= 2 flips) in that epoch, and the median logged step time.
"""
import argparse
import glob
import json
import os
import os.path as osp
import statistics
import subprocess
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
SHAPES = osp.join(ROOT, 'configs', 'shapes')
# name -> stages (config, extra cfg-options); '{prev}' is the previous stage's work dir.
RUNS = {
    'real-valued': [('real_faster_rcnn_shapes.py', [])],
    'XNOR-style': [('xnor_faster_rcnn_shapes.py', [])],
    'ReBNN gamma=0': [('rebnn_faster_rcnn_shapes.py', ['custom_hooks.0.gamma=0'])],
    'ReBNN gamma=1e-4': [('rebnn_faster_rcnn_shapes.py', ['custom_hooks.0.gamma=0.0001'])],
    'ReBNN adaptive': [('rebnn_faster_rcnn_shapes.py', [])],
}
# not run by default (--only NAME): the low end of the authors' constant grid, and the two-stage recipe
EXTRA_RUNS = {
    'ReBNN gamma=1e-5': [('rebnn_faster_rcnn_shapes.py', ['custom_hooks.0.gamma=0.00001'])],
    'ReBNN adaptive, two-stage 4+4 ep': [('rebnn_faster_rcnn_shapes_stage1_w32a1.py', []),
                                         ('rebnn_faster_rcnn_shapes_stage2_w1a1.py', ['load_from={prev}/epoch_4.pth'])],
}


def read_run(work_dir: str) -> dict:
    records = []
    for path in sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))):
        records += [json.loads(line) for line in open(path)]
    val = [r for r in records if 'coco/bbox_mAP' in r][-1]
    windows = [r for r in records if 'rebnn_osc_flip_ratio' in r]
    times = [r['time'] for r in records if 'time' in r and 'loss' in r]
    return dict(mAP=val['coco/bbox_mAP'], mAP50=val['coco/bbox_mAP_50'],
                late_flip=windows[-1]['rebnn_osc_flip_ratio'] if windows else None,
                late_osc=windows[-1]['rebnn_osc_oscillated'] if windows else None,
                step=statistics.median(times))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--work-root', default=osp.join(ROOT, 'work_dirs', 'bench_binarizers'))
    parser.add_argument('--only', nargs='+', choices=list(RUNS) + list(EXTRA_RUNS))
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--cfg-options', nargs='+', default=[])
    args = parser.parse_args()
    rows = {}
    for name in args.only or RUNS:
        start, prev = time.time(), None
        for i, (config, opts) in enumerate({**RUNS, **EXTRA_RUNS}[name]):
            work_dir = osp.join(args.work_root, name.replace(' ', '_').replace('=', '').replace(',', '') + f'.{i}')
            cmd = [sys.executable, osp.join(ROOT, 'tools', 'train.py'), osp.join(SHAPES, config), '--work-dir',
                   work_dir, '--cfg-options', f'randomness.seed={args.seed}',
                   *[o.format(prev=prev) for o in opts], *args.cfg_options]
            print(f'[bench] {name}: {" ".join(cmd[1:])}', flush=True)
            os.makedirs(work_dir, exist_ok=True)
            with open(work_dir + '.out', 'w') as log:  # the run's full console output
                subprocess.run(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, check=True)
            prev = work_dir
        rows[name] = dict(read_run(prev), minutes=(time.time() - start) / 60)
        print(f'[bench] {name}: {rows[name]}', flush=True)
    fmt = lambda v, f: '-' if v is None else format(v, f)  # noqa: E731
    print('\n| run | bbox mAP | mAP50 | late flip ratio/step | late oscillated | median s/step | minutes |')
    print('|---|---|---|---|---|---|---|')
    for name, r in rows.items():
        print(f'| {name} | {r["mAP"]:.3f} | {r["mAP50"]:.3f} | {fmt(r["late_flip"], ".2e")} | '
              f'{fmt(r["late_osc"], ".2%")} | {r["step"]:.3f} | {r["minutes"]:.1f} |')


if __name__ == '__main__':
    main()
