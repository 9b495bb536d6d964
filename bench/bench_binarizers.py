"""Accuracy and weight oscillation of the binarizers on the embedded shapes set, over several seeds.

    python bench/bench_binarizers.py [--setting default|hard] [--schedule demo|long] [--seeds 0 1 2]
        [--rows NAME ...] [--work-root work_dirs/bench_binarizers] [--cfg-options k=v ...]
    python bench/bench_binarizers.py --table-only [--from-json bench/results/binarizers_runs.json]

Each (row, seed) is one `tools/train.py` run of a config in configs/shapes/ (a subprocess, so runs share no state;
two runs for the two-stage row) with `randomness.seed=SEED` (initialisation and data order; the data set itself is
the same for every seed), in its own work dir WORK_ROOT/SETTING/SCHEDULE/ROW/seedSEED/stageI. A run whose work
dir records it finished is skipped; an interrupted one is continued with `tools/train.py --resume` from its last
checkpoint (checkpoints are saved every epoch, only the last kept). `bench_run.json` in each work dir records the
command, the seed and the wall time of every attempt.

--setting hard uses the *_shapes_hard*.py configs (harder generator knobs, see rebnn_faster_rcnn_shapes_hard.py);
--schedule long multiplies every stage's epochs and epoch-based lr milestones by 3 (the demo: 8 epochs = 600
steps, x0.1 after epoch 6; long: 24 epochs = 1800 steps, x0.1 after epoch 18) and, unless --rows is given,
runs only the XNOR-style and adaptive rows.

Numbers are read back from each run's saved logs (`*/vis_data/scalars.json`; a resumed run's later records win):
COCO bbox mAP / mAP50 on the val split; the late flip ratio = mean fraction of latent binary weights whose sign
flipped per optimizer step in the last epoch (ReBNNHook's oscillation window); the late oscillated share = share
of weights that flipped at least twice in that epoch; the late mean gamma = the gamma applied in that epoch
(mean over channels, layers and steps); the median logged step time. The table gives mean +- sample
std (n-1) over the seeds and, for every binary row, whether it differs from the XNOR-style row beyond the seed
spread: |mean difference| > 2 x pooled std, pooled std = sqrt(((n1-1) s1^2 + (n2-1) s2^2) / (n1 + n2 - 2))
(needs >= 2 seeds in both rows). Every finished run is also merged into a compact json (--export, default
bench/results/binarizers_runs.json), from which --table-only --from-json re-creates the tables without any
work dir.
"""
import argparse
import glob
import json
import math
import os
import os.path as osp
import statistics
import subprocess
import sys
import time
from typing import Dict, List, Optional, Sequence

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
SHAPES = osp.join(ROOT, 'configs', 'shapes')
sys.path.insert(0, ROOT)
from rebnn_det.fileio import atomic_write, exclusive_lock  # noqa: E402
from rebnn_det.run_logs import last_checkpoint_named, read_work_dir_scalars  # noqa: E402

DEFAULT_EXPORT = osp.join(ROOT, 'bench', 'results', 'binarizers_runs.json')
BASELINE = 'XNOR-style'
# row -> stages (config for the default setting, extra cfg-options); '{prev_ckpt}' is the previous stage's last
# checkpoint. The hard setting's configs are the same names with '_shapes' -> '_shapes_hard'.
RUNS = {
    'real-valued': [('real_faster_rcnn_shapes.py', [])],
    'XNOR-style': [('xnor_faster_rcnn_shapes.py', [])],
    'ReBNN gamma=0': [('rebnn_faster_rcnn_shapes.py', ['custom_hooks.0.gamma=0'])],
    'ReBNN gamma=2e-4 (authors)': [('rebnn_faster_rcnn_shapes.py', ['custom_hooks.0.gamma=0.0002'])],
    'ReBNN gamma=1e-5': [('rebnn_faster_rcnn_shapes.py', ['custom_hooks.0.gamma=0.00001'])],
    'ReBNN adaptive': [('rebnn_faster_rcnn_shapes.py', [])],
    'ReBNN adaptive, two-stage W32A1->W1A1': [('rebnn_faster_rcnn_shapes_stage1_w32a1.py', []),
                                              ('rebnn_faster_rcnn_shapes_stage2_w1a1.py', ['load_from={prev_ckpt}'])],
}
# placeholders filled with the last checkpoint of a prerequisite run (trained first if needed, seed 0, same
# setting and schedule): PREREQUISITES[name] = its row
PRETRAIN_ROW = 'classifier pretraining (crops)'
PRETRAINED = 'model.backbone.init_cfg.checkpoint={pretrained_ckpt}'
TEACHER = 'model.distill.teacher_checkpoint={teacher_ckpt}'
FCOS_TEACHER = 'model.distill.teacher_checkpoint={fcos_teacher_ckpt}'
PREREQUISITES = {'pretrained_ckpt': PRETRAIN_ROW, 'teacher_ckpt': 'real-valued',
                 'fcos_teacher_ckpt': 'FCOS real-valued'}
EXTRA_RUNS = {  # not run unless named in --rows
    'ReBNN gamma=1e-4': [('rebnn_faster_rcnn_shapes.py', ['custom_hooks.0.gamma=0.0001'])],
    # what the RoI head's two shared FCs cost when binary: compare with --baseline 'binary RPN'
    'binary RPN': [('rebnn_faster_rcnn_shapes_binary_rpn.py', [])],
    'binary RPN + RoI FCs': [('rebnn_faster_rcnn_shapes_binary_roi.py', [])],
    # closing the binary-real gap (hard setting only; configs named exactly): the backbone pretrained as a
    # classifier on the crops set, distillation from this setting's real-valued run (its seed 0), both
    'pretrained backbone': [('rebnn_faster_rcnn_shapes_hard_pretrained.py', [PRETRAINED])],
    'distilled': [('rebnn_faster_rcnn_shapes_hard_distill.py', [TEACHER])],
    'pretrained + distilled': [('rebnn_faster_rcnn_shapes_hard_pretrained_distill.py', [PRETRAINED, TEACHER])],
    # the distillation weights (the config's 1.0 / 1.0 on seed 0 cost mAP): a weaker feature term, logits only
    'distilled, feature weight 0.1': [('rebnn_faster_rcnn_shapes_hard_distill.py',
                                       [TEACHER, 'model.distill.feature_weight=0.1'])],
    'distilled, logits only': [('rebnn_faster_rcnn_shapes_hard_distill.py',
                                [TEACHER, 'model.distill.feature_weight=0'])],
    'FCOS real-valued': [('real_fcos_shapes_hard.py', [])],
    'FCOS binary head': [('rebnn_fcos_shapes_hard_binary_head.py', [])],
    'FCOS binary head, pretrained': [('rebnn_fcos_shapes_hard_binary_head_pretrained.py', [PRETRAINED])],
    'FCOS binary head, distilled': [('rebnn_fcos_shapes_hard_binary_head_distill.py', [FCOS_TEACHER])],
    'FCOS binary head, pretrained + distilled': [('rebnn_fcos_shapes_hard_binary_head_pretrained_distill.py',
                                                  [PRETRAINED, FCOS_TEACHER])],
    # the prerequisite of the 'pretrained' rows (no detection metrics of its own: not in the tables)
    PRETRAIN_ROW: [('../classification/rebnn_resnet18_shapes_hard_crops.py', [])],
}
ALL_RUNS = {**RUNS, **EXTRA_RUNS}
SETTINGS = ('default', 'hard')
SCHEDULES = {'demo': 1, 'long': 3}  # epoch multiplier
LONG_ROWS = ['XNOR-style', 'ReBNN adaptive']
METRICS = ('mAP', 'mAP50', 'late_flip', 'late_osc')


# ---------------------------------------------------------------------------------------------------- statistics
def mean_std(values: Sequence[float]):
    """(mean, sample std with n-1) of ``values``; std is None for a single value, both None for none."""
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


def pooled_std(a: Sequence[float], b: Sequence[float]) -> Optional[float]:
    """sqrt(((n1-1) s1^2 + (n2-1) s2^2) / (n1 + n2 - 2)); None unless both samples have >= 2 values."""
    if len(a) < 2 or len(b) < 2:
        return None
    va, vb = statistics.variance(a), statistics.variance(b)
    return math.sqrt(((len(a) - 1) * va + (len(b) - 1) * vb) / (len(a) + len(b) - 2))


def compare(a: Sequence[float], b: Sequence[float]) -> dict:
    """Whether the mean of ``a`` differs from the mean of ``b`` beyond the seed spread:
    |mean(a) - mean(b)| > 2 x pooled std. ``beyond`` is None when either has fewer than 2 values."""
    a, b = [v for v in a if v is not None], [v for v in b if v is not None]
    if not a or not b:
        return dict(diff=None, pooled=None, beyond=None)
    diff = statistics.fmean(a) - statistics.fmean(b)
    pooled = pooled_std(a, b)
    return dict(diff=diff, pooled=pooled, beyond=None if pooled is None else abs(diff) > 2 * pooled)


# ---------------------------------------------------------------------------------------------------- run logs
def read_run(work_dir: str) -> Optional[dict]:
    """Metrics of a training run from its logs alone: None if it logged no COCO validation."""
    records = read_work_dir_scalars(work_dir)
    vals = [r for r in records if 'coco/bbox_mAP' in r]
    if not vals:
        return None
    windows = [r for r in records if 'rebnn_osc_flip_ratio' in r]
    times = [r['time'] for r in records if 'time' in r and 'loss' in r]
    return dict(mAP=vals[-1]['coco/bbox_mAP'], mAP50=vals[-1]['coco/bbox_mAP_50'],
                late_flip=windows[-1]['rebnn_osc_flip_ratio'] if windows else None,
                late_osc=windows[-1]['rebnn_osc_oscillated'] if windows else None,
                late_gamma=windows[-1].get('rebnn_osc_gamma') if windows else None,
                step_s=statistics.median(times) if times else None)


def _slug(name: str) -> str:
    """A directory name: 'ReBNN adaptive, two-stage W32A1->W1A1' -> 'ReBNN_adaptive_two-stage_W32A1_to_W1A1'."""
    text = ''.join(c if c.isalnum() or c in '.-' else '_' for c in name.replace('->', ' to '))
    return '_'.join(part for part in text.split('_') if part)


def run_dir(work_root: str, setting: str, schedule: str, row: str, seed: int) -> str:
    return osp.join(work_root, setting, schedule, _slug(row), f'seed{seed}')


def _meta_path(stage_dir: str) -> str:
    return osp.join(stage_dir, 'bench_run.json')


def _load_meta(stage_dir: str) -> Optional[dict]:
    try:
        with open(_meta_path(stage_dir)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _save_meta(stage_dir: str, meta: dict) -> None:
    text = json.dumps(meta, indent=1)
    atomic_write(_meta_path(stage_dir), lambda f: f.write(text.encode()))


def collect_run(directory: str) -> Optional[dict]:
    """The record of one (row, seed) run from its directory (stage work dirs with bench_run.json), or None if
    any stage is not finished."""
    stages = sorted((p for p in glob.glob(osp.join(directory, 'stage*')) if osp.isdir(p)),
                    key=lambda p: int(p.rsplit('stage', 1)[1]))  # not the stageI.out console logs
    metas = [_load_meta(s) for s in stages]
    if not metas or any(m is None or not m.get('finished') for m in metas) or len(metas) != metas[0]['num_stages']:
        return None
    metrics = read_run(stages[-1])
    if metrics is None:
        return None
    first = metas[0]
    return dict(setting=first['setting'], schedule=first['schedule'], row=first['row'], seed=first['seed'],
                **metrics, wall_min=sum(a['wall_s'] for m in metas for a in m['attempts']) / 60,
                attempts=sum(len(m['attempts']) for m in metas), threads=first.get('threads'),
                cfg_options=first.get('cfg_options', []),
                commands=[m['command'] for m in metas])


def collect(work_root: str) -> List[dict]:
    """Every finished run under ``work_root``."""
    runs = []
    for meta_path in sorted(glob.glob(osp.join(work_root, '*', '*', '*', 'seed*', 'stage0', 'bench_run.json'))):
        run = collect_run(osp.dirname(osp.dirname(meta_path)))
        if run is not None:
            runs.append(run)
    return runs


def _key(run: dict):
    return run['setting'], run['schedule'], run['row'], run['seed']


def merge_export(path: str, runs: List[dict]) -> List[dict]:
    """Merge ``runs`` into the json at ``path`` (a run of the same setting/schedule/row/seed is replaced). The
    read-merge-write holds an exclusive lock on ``path + '.lock'``, so bench processes running side by side (one
    per core) never lose each other's records; the write is atomic."""
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    with exclusive_lock(path + '.lock'):
        old = load_runs(path) if osp.isfile(path) else []
        merged = {_key(r): r for r in old}
        merged.update({_key(r): r for r in runs})
        out = sorted(merged.values(), key=lambda r: (r['setting'], r['schedule'], _row_order(r['row']), r['seed']))
        text = json.dumps(dict(description='bench/bench_binarizers.py: one record per finished (setting, schedule, '
                                           'row, seed) run', runs=out), indent=1)
        atomic_write(path, lambda f: f.write(text.encode()))
    return out


def load_runs(path: str) -> List[dict]:
    with open(path) as f:
        return json.load(f)['runs']


def _row_order(row: str) -> int:
    names = list(ALL_RUNS)
    return names.index(row) if row in names else len(names)


# ---------------------------------------------------------------------------------------------------- tables
def _fmt(mean, std, spec: str, pct: bool = False) -> str:
    if mean is None:
        return '-'
    scale = 100 if pct else 1
    unit = '%' if pct else ''
    text = format(mean * scale, spec) + unit
    return text + (' ± ' + format(std * scale, spec) + unit if std is not None else '')


def _fmt_cmp(c: dict, spec: str) -> str:
    if c['diff'] is None:
        return '-'
    verdict = {True: 'yes', False: 'no', None: 'n/a (< 2 seeds)'}[c['beyond']]
    return f'{format(c["diff"], "+" + spec)}: {verdict}'


def summarize(runs: List[dict], baseline: str = BASELINE) -> Dict[tuple, List[dict]]:
    """(setting, schedule) -> one summary per row: seeds, mean/std of each metric, the comparison with the
    ``baseline`` row of the same setting and schedule, mean wall minutes and median step time."""
    groups: Dict[tuple, Dict[str, List[dict]]] = {}
    for r in runs:
        groups.setdefault((r['setting'], r['schedule']), {}).setdefault(r['row'], []).append(r)
    out = {}
    for key, rows in sorted(groups.items(), key=lambda kv: (SETTINGS.index(kv[0][0]) if kv[0][0] in SETTINGS
                                                            else 9, kv[0][1])):
        base = rows.get(baseline, [])
        summaries = []
        for row in sorted(rows, key=_row_order):
            rs = sorted(rows[row], key=lambda r: r['seed'])
            s = dict(row=row, seeds=[r['seed'] for r in rs], wall_min=mean_std([r['wall_min'] for r in rs])[0],
                     step_s=mean_std([r.get('step_s') for r in rs])[0])
            for m in METRICS:
                s[m] = mean_std([r[m] for r in rs])
            s['late_gamma'] = mean_std([r.get('late_gamma') for r in rs])  # absent from runs saved before it was
            if row != baseline and row != 'real-valued' and base:
                s['vs_baseline'] = {m: compare([r[m] for r in rs], [r[m] for r in base]) for m in ('mAP', 'late_flip')}
            elif row == 'real-valued' and base:
                s['vs_baseline'] = {'mAP': compare([r['mAP'] for r in rs], [r['mAP'] for r in base])}
            summaries.append(s)
        out[key] = summaries
    return out


def format_tables(runs: List[dict], baseline: str = BASELINE) -> str:
    lines = []
    for (setting, schedule), summaries in summarize(runs, baseline).items():
        lines += [f'### setting: {setting}, schedule: {schedule} (x{SCHEDULES.get(schedule, "?")} the demo\'s epochs)',
                  '',
                  '| run | seeds | bbox mAP | mAP50 | late flip ratio/step | late oscillated | '
                  f'Δ mAP vs {baseline}: beyond spread? | Δ late flip vs {baseline}: beyond spread? | '
                  'late mean γ | median s/step | wall min/run |',
                  '|---|---|---|---|---|---|---|---|---|---|---|']
        for s in summaries:
            cmp = s.get('vs_baseline', {})
            na = '(baseline)' if s['row'] == baseline else '-'
            lines.append(
                f'| {s["row"]} | {len(s["seeds"])} ({",".join(map(str, s["seeds"]))}) | {_fmt(*s["mAP"], ".3f")} | '
                f'{_fmt(*s["mAP50"], ".3f")} | {_fmt(*s["late_flip"], ".2e")} | {_fmt(*s["late_osc"], ".2f", True)} | '
                f'{_fmt_cmp(cmp["mAP"], ".3f") if "mAP" in cmp else na} | '
                f'{_fmt_cmp(cmp["late_flip"], ".2e") if "late_flip" in cmp else na} | '
                f'{_fmt(*s["late_gamma"], ".2e")} | '
                f'{"-" if s["step_s"] is None else format(s["step_s"], ".3f")} | {s["wall_min"]:.1f} |')
        lines.append('')
    lines.append('mean ± sample std (n-1) over the seeds; "beyond spread" = |Δ mean| > 2 × pooled std of the two '
                 'rows (n/a with < 2 seeds in either row); late mean γ = the gamma ReBNNHook applied, averaged over '
                 'channels, layers and the steps of the last epoch.')
    return '\n'.join(lines)


# ---------------------------------------------------------------------------------------------------- running
def config_for(config: str, setting: str) -> str:
    """The config file of a stage: ``config`` for the default setting, its ``_shapes_hard`` twin for the hard
    one; a config of the hard setting only (named ``*_shapes_hard*`` or a path outside configs/shapes/) is taken
    as named and refused for another setting."""
    if '_shapes_hard' in config or config.startswith('../'):
        if setting != 'hard':
            raise ValueError(f'{config} is a config of the hard setting only: run its row with --setting hard')
        return osp.normpath(osp.join(SHAPES, config))
    name = config if setting == 'default' else config.replace('_shapes', '_shapes_hard', 1)
    return osp.join(SHAPES, name)


def prerequisite_checkpoints(work_root: str, setting: str, schedule: str, options: List[str], cfg_options: List[str],
                             dry_run: bool) -> dict:
    """The placeholders of ``options`` that name a prerequisite run (:data:`PREREQUISITES`) -> its last
    checkpoint; each prerequisite is trained first when it has not finished (seed 0, this setting/schedule)."""
    fill = {}
    for name, row in PREREQUISITES.items():
        if any('{' + name + '}' in o for o in options):
            run_one(work_root, setting, schedule, row, 0, cfg_options, dry_run)
            stage = osp.join(run_dir(work_root, setting, schedule, row, 0), f'stage{len(ALL_RUNS[row]) - 1}')
            fill[name] = f'<last checkpoint of {stage}>' if dry_run else last_checkpoint_named(stage)
    return fill


def schedule_options(config_path: str, factor: int) -> List[str]:
    """cfg-options that multiply the config's epochs, validation interval and epoch-based lr milestones/ends by
    ``factor`` (iteration-based warm-up unchanged)."""
    if factor == 1:
        return []
    from mmengine.config import Config
    cfg = Config.fromfile(config_path)
    epochs = cfg.train_cfg.max_epochs * factor
    opts = [f'train_cfg.max_epochs={epochs}', f'train_cfg.val_interval={epochs}']
    for i, sched in enumerate(cfg.param_scheduler):
        if sched.get('by_epoch', True):
            if 'end' in sched:
                opts.append(f'param_scheduler.{i}.end={sched["end"] * factor}')
            if 'milestones' in sched:
                milestones = ','.join(str(m * factor) for m in sched['milestones'])
                opts.append(f'param_scheduler.{i}.milestones=[{milestones}]')
    return opts


def run_one(work_root: str, setting: str, schedule: str, row: str, seed: int, cfg_options: List[str],
            dry_run: bool = False) -> Optional[dict]:
    """Train (or finish) one (row, seed); returns its record (None for a dry run)."""
    directory = run_dir(work_root, setting, schedule, row, seed)
    stages = ALL_RUNS[row]
    prev = None
    for i, (config, opts) in enumerate(stages):
        stage_dir = osp.join(directory, f'stage{i}')
        meta = _load_meta(stage_dir)
        if meta is not None and meta.get('finished'):
            print(f'[bench] {row} seed {seed} stage {i}: finished earlier, skipped', flush=True)
            prev = stage_dir
            continue
        path = config_for(config, setting)
        fill = dict(prev_ckpt=None if prev is None else f'<last checkpoint of {prev}>' if dry_run
                    else last_checkpoint_named(prev),
                    **prerequisite_checkpoints(work_root, setting, schedule, opts, cfg_options, dry_run))
        cmd = [sys.executable, osp.join(ROOT, 'tools', 'train.py'), path, '--work-dir', stage_dir, '--resume',
               '--cfg-options', f'randomness.seed={seed}', 'default_hooks.checkpoint.interval=1',
               'default_hooks.checkpoint.max_keep_ckpts=1', *schedule_options(path, SCHEDULES[schedule]),
               *[o.format(**fill) for o in opts], *cfg_options]
        print(f'[bench] {row} seed {seed} stage {i}: {" ".join(cmd[1:])}', flush=True)
        if dry_run:
            prev = stage_dir
            continue
        os.makedirs(stage_dir, exist_ok=True)
        if meta is None:
            meta = dict(setting=setting, schedule=schedule, row=row, seed=seed, stage=i, num_stages=len(stages),
                        threads=os.environ.get('OMP_NUM_THREADS'), affinity=sorted(os.sched_getaffinity(0))
                        if hasattr(os, 'sched_getaffinity') else None, cfg_options=list(cfg_options), attempts=[],
                        finished=False)
        meta['command'] = ' '.join(osp.relpath(c, ROOT) if c.startswith(ROOT) else c for c in cmd[1:])
        start = time.time()
        with open(stage_dir + '.out', 'a') as log:  # the full console output of every attempt
            rc = subprocess.run(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT).returncode
        meta['attempts'].append(dict(start=time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(start)),
                                     wall_s=round(time.time() - start, 1), rc=rc))
        meta['finished'] = rc == 0
        _save_meta(stage_dir, meta)
        if rc != 0:
            raise RuntimeError(f'{row} seed {seed} stage {i} failed (exit {rc}); see {stage_dir}.out. Run the same '
                               'command again to continue it from its last checkpoint.')
        prev = stage_dir
    return None if dry_run else collect_run(directory)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--work-root', default=osp.join(ROOT, 'work_dirs', 'bench_binarizers'))
    parser.add_argument('--setting', choices=SETTINGS, default='default')
    parser.add_argument('--schedule', choices=list(SCHEDULES), default='demo')
    parser.add_argument('--seeds', nargs='+', type=int, default=[0, 1, 2])
    parser.add_argument('--rows', nargs='+', choices=list(ALL_RUNS),
                        help=f'default: every row of RUNS (--schedule long: {LONG_ROWS})')
    parser.add_argument('--seed-major', action='store_true',
                        help='run every row for the first seed, then every row for the next seed, ... (default: '
                             'all seeds of a row before the next row)')
    parser.add_argument('--cfg-options', nargs='+', default=[], help='applied to every run (e.g. for a smoke run)')
    parser.add_argument('--table-only', action='store_true', help='print the tables from saved logs, train nothing')
    parser.add_argument('--from-json', help='with --table-only: read the runs from this json instead of work dirs')
    parser.add_argument('--export', help=f'merge the finished runs into this json ("" to skip); default '
                        f'{osp.relpath(DEFAULT_EXPORT, ROOT)}, or none when --cfg-options is given')
    parser.add_argument('--baseline', choices=list(ALL_RUNS), default=BASELINE,
                        help='the row every other row is compared with (default: %(default)s)')
    parser.add_argument('--dry-run', action='store_true', help='print the commands only')
    args = parser.parse_args(argv)
    if args.from_json and not args.table_only:
        parser.error('--from-json only goes with --table-only')
    if args.export is None:  # runs with extra cfg-options (smoke runs) stay out of the results file by default
        args.export = '' if args.cfg_options else DEFAULT_EXPORT
    if not args.table_only:
        rows = args.rows or (LONG_ROWS if args.schedule == 'long' else list(RUNS))
        order = ([(row, seed) for seed in args.seeds for row in rows] if args.seed_major
                 else [(row, seed) for row in rows for seed in args.seeds])
        for row, seed in order:
            record = run_one(args.work_root, args.setting, args.schedule, row, seed, args.cfg_options, args.dry_run)
            if record is not None:
                print(f'[bench] {row} seed {seed}: mAP {record["mAP"]:.3f} mAP50 {record["mAP50"]:.3f} '
                      f'late flip {record["late_flip"]} late osc {record["late_osc"]} '
                      f'wall {record["wall_min"]:.1f} min', flush=True)
                if args.export:
                    merge_export(args.export, [record])
        if args.dry_run:
            return
    if args.from_json:
        runs = load_runs(args.from_json)
    else:
        runs = collect(args.work_root)
        if args.export and runs:
            merge_export(args.export, runs)
    if args.table_only and args.rows:  # the table of these rows alone (e.g. the FCOS ones with their baseline)
        runs = [r for r in runs if r['row'] in args.rows]
    print(format_tables(runs, args.baseline))


if __name__ == '__main__':
    main()
