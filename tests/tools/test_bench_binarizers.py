"""bench/bench_binarizers.py without training: statistics and the table from synthetic logs (hand-computed), the
json round trip, and the run/skip/resume logic with tools/train.py replaced by a fake that writes logs."""
import importlib.util
import json
import math
import os
import os.path as osp

import pytest

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
_spec = importlib.util.spec_from_file_location('bench_binarizers', osp.join(ROOT, 'bench', 'bench_binarizers.py'))
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


def _write_scalars(work_dir, timestamp, mAP, mAP50, flip=None, osc=None, step_times=(0.5, 0.7, 0.6), tail='',
                   gamma=None):
    vis = osp.join(work_dir, timestamp, 'vis_data')
    os.makedirs(vis, exist_ok=True)
    records = [{'loss': 1.0, 'time': t, 'epoch': 1, 'iter': 25 * (k + 1), 'step': 25 * (k + 1)}
               for k, t in enumerate(step_times)]
    if flip is not None:
        records += [{'rebnn_osc_flip_ratio': 9.0, 'rebnn_osc_oscillated': 9.0, 'step': 75},  # an earlier epoch
                    {'rebnn_osc_flip_ratio': flip, 'rebnn_osc_oscillated': osc, 'step': 600,
                     **({} if gamma is None else {'rebnn_osc_gamma': gamma})}]
    records.append({'coco/bbox_mAP': mAP, 'coco/bbox_mAP_50': mAP50, 'time': 0.2, 'step': 8})
    with open(osp.join(vis, 'scalars.json'), 'w') as f:
        f.write(''.join(json.dumps(r) + '\n' for r in records) + tail)


def _write_run(root, row, seed, mAP, mAP50=0.9, flip=None, osc=None, setting='default', schedule='demo',
               wall_s=(600.0,), finished=True, stages=1, gamma=None):
    directory = bench.run_dir(str(root), setting, schedule, row, seed)
    for i in range(stages):
        stage_dir = osp.join(directory, f'stage{i}')
        os.makedirs(stage_dir)
        # an earlier stage's logs must not be read: only the last stage gives the metrics
        _write_scalars(stage_dir, '20260101_000000', *((mAP, mAP50, flip, osc) if i == stages - 1
                                                        else (0.01, 0.02, 0.5, 0.5)),
                       gamma=gamma if i == stages - 1 else 9.0)
        bench._save_meta(stage_dir, dict(setting=setting, schedule=schedule, row=row, seed=seed, stage=i,
                                         num_stages=stages, threads='1', command=f'tools/train.py stage{i}',
                                         attempts=[dict(wall_s=w, rc=0) for w in wall_s], finished=finished))
    return directory


def test_mean_std_and_pooled_criterion_by_hand():
    mean, std = bench.mean_std([0.60, 0.62, 0.64])
    assert mean == pytest.approx(0.62) and std == pytest.approx(0.02)  # sqrt((0.02^2 + 0 + 0.02^2) / 2)
    assert bench.mean_std([0.5]) == (0.5, None) and bench.mean_std([None]) == (None, None)
    # s1 = 0.02, s2 = 0.01, n = 3 each: pooled = sqrt((2 * 4e-4 + 2 * 1e-4) / 4) = sqrt(2.5e-4) = 0.015811
    assert bench.pooled_std([0.60, 0.62, 0.64], [0.66, 0.67, 0.68]) == pytest.approx(math.sqrt(2.5e-4))
    c = bench.compare([0.66, 0.67, 0.68], [0.60, 0.62, 0.64])  # diff 0.05 > 2 * 0.015811 = 0.0316
    assert c['diff'] == pytest.approx(0.05) and c['beyond'] is True
    c = bench.compare([0.61, 0.63, 0.65], [0.60, 0.62, 0.64])  # diff 0.01 < 2 * 0.02 = 0.04
    assert c['diff'] == pytest.approx(0.01) and c['beyond'] is False
    # unequal n: s1^2 = (0.01^2 + 0.01^2) / 1 = 2e-4 (n=2: 0.70, 0.72), s2^2 = 4e-4 (n=3):
    # pooled = sqrt((1 * 2e-4 + 2 * 4e-4) / 3) = 0.018257
    c = bench.compare([0.70, 0.72], [0.60, 0.62, 0.64])
    assert c['pooled'] == pytest.approx(math.sqrt(1e-3 / 3)) and c['diff'] == pytest.approx(0.09) and c['beyond']
    assert bench.compare([0.7], [0.60, 0.62, 0.64])['beyond'] is None  # one seed: no verdict
    assert bench.compare([None], [0.6])['diff'] is None  # a real-valued row has no flip ratio


@pytest.fixture
def synthetic_root(tmp_path):
    root = tmp_path / 'runs'
    for seed, m, f in zip((0, 1, 2), (0.60, 0.62, 0.64), (2.0e-4, 2.2e-4, 2.4e-4)):
        _write_run(root, 'XNOR-style', seed, m, mAP50=0.90, flip=f, osc=0.004, wall_s=(300.0, 330.0))
    for seed, m in zip((0, 1, 2), (0.66, 0.67, 0.68)):
        _write_run(root, 'ReBNN adaptive', seed, m, mAP50=0.92, flip=1e-4, osc=0.001, gamma=1e-7 * (seed + 1))
    for seed, m in zip((0, 1, 2), (0.61, 0.63, 0.65)):
        _write_run(root, 'ReBNN gamma=0', seed, m, flip=2.2e-4, osc=0.004)
    _write_run(root, 'real-valued', 0, 0.70, mAP50=0.95)
    _write_run(root, 'ReBNN adaptive, two-stage W32A1->W1A1', 0, 0.69, flip=3e-4, osc=0.005, stages=2,
               wall_s=(120.0,))
    _write_run(root, 'ReBNN gamma=1e-5', 0, 0.99, finished=False)  # interrupted: not in the table
    _write_run(root, 'XNOR-style', 0, 0.30, flip=1e-3, osc=0.01, setting='hard')  # another table
    return root


def test_table_from_synthetic_logs(synthetic_root):
    runs = bench.collect(str(synthetic_root))
    assert len(runs) == 3 + 3 + 3 + 1 + 1 + 1
    two_stage = [r for r in runs if r['row'].endswith('W1A1')][0]
    assert two_stage['mAP'] == 0.69 and two_stage['wall_min'] == pytest.approx(4.0)  # 2 stages x 120 s
    assert two_stage['commands'] == ['tools/train.py stage0', 'tools/train.py stage1']
    xnor = [r for r in runs if r['row'] == 'XNOR-style' and r['setting'] == 'default'][0]
    assert xnor['wall_min'] == pytest.approx(10.5) and xnor['step_s'] == pytest.approx(0.6)  # 630 s; median step
    table = bench.format_tables(runs)
    lines = table.splitlines()
    assert lines[0] == "### setting: default, schedule: demo (x1 the demo's epochs)"
    hard_at = lines.index("### setting: hard, schedule: demo (x1 the demo's epochs)")  # its own table, after
    rows = {line.split(' | ')[0][2:]: line.split(' | ') for line in lines[:hard_at] if line.startswith('| ') and
            not line.startswith('| run')}
    hard_rows = [line.split(' | ') for line in lines[hard_at:] if line.startswith('| XNOR')]
    assert [r[1:3] for r in hard_rows] == [['1 (0)', '0.300']]
    assert rows['XNOR-style'][1:6] == ['3 (0,1,2)', '0.620 ± 0.020', '0.900 ± 0.000', '2.20e-04 ± 2.00e-05',
                                       '0.40% ± 0.00%']
    assert rows['XNOR-style'][6:8] == ['(baseline)', '(baseline)']
    # adaptive: Δ mAP +0.05 > 2 * 0.0158: yes; Δ flip -1.2e-4 vs 2 * sqrt((2 * 4e-10 + 0) / 4) = 2.83e-5: yes
    assert rows['ReBNN adaptive'][2] == '0.670 ± 0.010'
    assert rows['ReBNN adaptive'][6:9] == ['+0.050: yes', '-1.20e-04: yes', '2.00e-07 ± 1.00e-07']
    assert rows['XNOR-style'][8] == '-'  # no gamma logged
    # gamma=0: Δ mAP +0.01 < 2 * 0.02: no; Δ flip 0 < 2 * 2e-5: no
    assert rows['ReBNN gamma=0'][6:8] == ['+0.010: no', '+0.00e+00: no']
    assert rows['real-valued'][1:3] == ['1 (0)', '0.700']
    assert rows['real-valued'][6:8] == ['+0.080: n/a (< 2 seeds)', '-']
    assert rows['ReBNN adaptive, two-stage W32A1->W1A1'][4] == '3.00e-04'
    assert rows['ReBNN adaptive, two-stage W32A1->W1A1'][-1] == '4.0 |'
    assert 'ReBNN gamma=1e-5' not in rows
    assert list(rows) == ['real-valued', 'XNOR-style', 'ReBNN gamma=0', 'ReBNN adaptive',
                          'ReBNN adaptive, two-stage W32A1->W1A1']  # the order of the row list
    assert '|Δ mean| > 2 × pooled std' in table


def test_table_only_from_json_alone_matches_the_work_dirs(synthetic_root, tmp_path, capsys):
    export = str(tmp_path / 'results' / 'runs.json')
    bench.main(['--table-only', '--work-root', str(synthetic_root), '--export', export])
    from_dirs = capsys.readouterr().out
    import shutil
    shutil.rmtree(synthetic_root)  # the logs are gone: the json alone re-creates the table
    bench.main(['--table-only', '--from-json', export])
    assert capsys.readouterr().out == from_dirs
    saved = json.load(open(export))['runs']
    assert len(saved) == 12 and {'mAP', 'mAP50', 'late_flip', 'late_osc', 'wall_min', 'seed'} <= set(saved[0])
    # merging replaces a run of the same key and keeps the others
    bench.merge_export(export, [dict(saved[0], mAP=0.123)])
    again = json.load(open(export))['runs']
    assert len(again) == 12 and [r['mAP'] for r in again if bench._key(r) == bench._key(saved[0])] == [0.123]


def test_resumed_run_logs_later_records_win_and_cut_lines_are_skipped(tmp_path):
    work_dir = str(tmp_path)
    _write_scalars(work_dir, '20260101_000000', 0.1, 0.2, flip=5e-4, osc=0.01, tail='{"coco/bbox_mAP": 0.9, "co')
    assert bench.read_run(work_dir)['mAP'] == 0.1
    _write_scalars(work_dir, '20260101_010000', 0.3, 0.4, flip=1e-4, osc=0.002, step_times=(1.0,))
    r = bench.read_run(work_dir)
    assert (r['mAP'], r['mAP50'], r['late_flip'], r['late_osc']) == (0.3, 0.4, 1e-4, 0.002)
    assert r['step_s'] == pytest.approx(0.65)  # median over both attempts' step times: 0.5, 0.6 | 0.7, 1.0
    assert bench.read_run(str(tmp_path / 'empty')) is None


def test_schedule_options_scale_epochs_and_milestones():
    demo = osp.join(ROOT, 'configs', 'shapes', 'xnor_faster_rcnn_shapes.py')
    assert bench.schedule_options(demo, 1) == []
    assert bench.schedule_options(demo, 3) == ['train_cfg.max_epochs=24', 'train_cfg.val_interval=24',
                                               'param_scheduler.1.end=24', 'param_scheduler.1.milestones=[18]']
    stage2 = bench.config_for('rebnn_faster_rcnn_shapes_stage2_w1a1.py', 'hard')
    assert osp.basename(stage2) == 'rebnn_faster_rcnn_shapes_hard_stage2_w1a1.py' and osp.isfile(stage2)
    assert bench.schedule_options(stage2, 3)[2:] == ['param_scheduler.0.end=12', 'param_scheduler.0.milestones=[6]']
    for stages in bench.ALL_RUNS.values():
        for config, _ in stages:
            hard_only = '_shapes_hard' in config or config.startswith('../')
            for setting in bench.SETTINGS:
                if hard_only and setting != 'hard':
                    with pytest.raises(ValueError, match='a config of the hard setting only: run its row with '
                                                         '--setting hard'):
                        bench.config_for(config, setting)
                else:
                    assert osp.isfile(bench.config_for(config, setting))


class FakeTrain:
    """Stands in for subprocess.run of tools/train.py: writes the logs and checkpoint a run would write, or
    fails like an interrupted run (after writing a checkpoint)."""

    def __init__(self, fail_first=0):
        self.calls, self.fail_first = [], fail_first

    def __call__(self, cmd, cwd, stdout, stderr):
        self.calls.append(cmd)
        work_dir = cmd[cmd.index('--work-dir') + 1]
        seed = int([c for c in cmd if c.startswith('randomness.seed=')][0].split('=')[1])
        os.makedirs(work_dir, exist_ok=True)
        with open(osp.join(work_dir, 'last_checkpoint'), 'w') as f:
            f.write(osp.join(work_dir, f'epoch_{len(self.calls)}.pth'))
        if len(self.calls) <= self.fail_first:
            return type('Done', (), {'returncode': 1})()
        _write_scalars(work_dir, f'2026010{len(self.calls)}_000000', 0.5 + seed / 100, 0.8, flip=1e-4, osc=0.001)
        return type('Done', (), {'returncode': 0})()


def test_runs_are_skipped_when_finished_and_resumed_when_interrupted(tmp_path, monkeypatch, capsys):
    root = str(tmp_path / 'runs')
    fake = FakeTrain(fail_first=1)
    monkeypatch.setattr(bench.subprocess, 'run', fake)
    export = str(tmp_path / 'runs.json')
    args = ['--work-root', root, '--rows', 'XNOR-style', '--seeds', '3', '--export', export]
    with pytest.raises(RuntimeError, match='XNOR-style seed 3 stage 0 failed .exit 1.*continue it from its last'):
        bench.main(args)
    stage_dir = osp.join(bench.run_dir(root, 'default', 'demo', 'XNOR-style', 3), 'stage0')
    assert bench._load_meta(stage_dir)['finished'] is False
    bench.main(args)  # the same command continues it
    assert len(fake.calls) == 2 and all('--resume' in c for c in fake.calls)
    assert 'randomness.seed=3' in fake.calls[1] and 'default_hooks.checkpoint.interval=1' in fake.calls[1]
    meta = bench._load_meta(stage_dir)
    assert meta['finished'] and [a['rc'] for a in meta['attempts']] == [1, 0] and meta['seed'] == 3
    bench.main(args)  # finished: skipped
    assert len(fake.calls) == 2 and 'finished earlier, skipped' in capsys.readouterr().out
    assert [r['mAP'] for r in json.load(open(export))['runs']] == [0.53]


def test_two_stage_row_loads_the_first_stage_checkpoint_on_the_long_schedule(tmp_path, monkeypatch):
    fake = FakeTrain()
    monkeypatch.setattr(bench.subprocess, 'run', fake)
    row = 'ReBNN adaptive, two-stage W32A1->W1A1'
    bench.main(['--work-root', str(tmp_path), '--rows', row, '--seeds', '0', '--schedule', 'long',
                '--setting', 'hard', '--export', ''])
    stage0, stage1 = fake.calls
    assert stage0[2].endswith('rebnn_faster_rcnn_shapes_hard_stage1_w32a1.py')
    assert stage1[2].endswith('rebnn_faster_rcnn_shapes_hard_stage2_w1a1.py')
    directory = bench.run_dir(str(tmp_path), 'hard', 'long', row, 0)
    assert f'load_from={osp.join(directory, "stage0", "epoch_1.pth")}' in stage1
    assert 'train_cfg.max_epochs=12' in stage0 and 'param_scheduler.0.milestones=[6]' in stage1
    assert osp.basename(directory.rstrip('/').rsplit('/seed', 1)[0]) == 'ReBNN_adaptive_two-stage_W32A1_to_W1A1'
    # --schedule long without --rows: the XNOR-style and adaptive rows only
    fake.calls.clear()
    bench.main(['--work-root', str(tmp_path / 'l'), '--seeds', '0', '--schedule', 'long', '--export', ''])
    assert [osp.basename(c[2]) for c in fake.calls] == ['xnor_faster_rcnn_shapes.py', 'rebnn_faster_rcnn_shapes.py']


def test_pretrained_and_distilled_rows_train_their_prerequisites_once(tmp_path, monkeypatch, capsys):
    """'pretrained + distilled' needs the classifier pretraining and the real-valued teacher (seed 0 of the same
    setting/schedule): both are trained first, once, and their last checkpoints fill the cfg-options."""
    fake = FakeTrain()
    monkeypatch.setattr(bench.subprocess, 'run', fake)
    root = str(tmp_path)
    bench.main(['--work-root', root, '--rows', 'pretrained + distilled', 'pretrained backbone', '--seeds', '0', '1',
                '--setting', 'hard', '--export', '', '--seed-major'])
    configs = [osp.relpath(c[2], osp.join(bench.ROOT, 'configs')) for c in fake.calls]
    assert configs == ['classification/rebnn_resnet18_shapes_hard_crops.py', 'shapes/real_faster_rcnn_shapes_hard.py',
                       'shapes/rebnn_faster_rcnn_shapes_hard_pretrained_distill.py',
                       'shapes/rebnn_faster_rcnn_shapes_hard_pretrained.py',
                       'shapes/rebnn_faster_rcnn_shapes_hard_pretrained_distill.py',
                       'shapes/rebnn_faster_rcnn_shapes_hard_pretrained.py']
    pretrain = osp.join(bench.run_dir(root, 'hard', 'demo', bench.PRETRAIN_ROW, 0), 'stage0', 'epoch_1.pth')
    teacher = osp.join(bench.run_dir(root, 'hard', 'demo', 'real-valued', 0), 'stage0', 'epoch_2.pth')
    for call in fake.calls[2:]:
        assert f'model.backbone.init_cfg.checkpoint={pretrain}' in call
    assert f'model.distill.teacher_checkpoint={teacher}' in fake.calls[2] and 'randomness.seed=1' in fake.calls[4]
    assert not any(o.startswith('model.distill') for o in fake.calls[3])
    out = capsys.readouterr().out
    assert out.count('classifier pretraining (crops) seed 0 stage 0: finished earlier, skipped') == 3
    with pytest.raises(ValueError, match='hard setting only'):
        bench.main(['--work-root', root, '--rows', 'distilled', '--seeds', '0', '--export', ''])


def _merge_many(export, first_seed, count):
    record = dict(setting='default', schedule='demo', row='XNOR-style', mAP=0.5)
    for seed in range(first_seed, first_seed + count):
        bench.merge_export(export, [dict(record, seed=seed)])


def test_merges_from_two_processes_at_once_lose_no_record(tmp_path):
    """Two bench processes (one per core) finishing runs at the same time: every record ends up in the json (the
    read-merge-write is locked) and no temporary file is left behind."""
    import multiprocessing
    export = str(tmp_path / 'runs.json')
    ctx = multiprocessing.get_context('fork')
    workers = [ctx.Process(target=_merge_many, args=(export, first, 40)) for first in (0, 1000)]
    for p in workers:
        p.start()
    for p in workers:
        p.join(60)
    assert [p.exitcode for p in workers] == [0, 0]
    assert sorted(r['seed'] for r in bench.load_runs(export)) == list(range(40)) + list(range(1000, 1040))
    assert sorted(os.listdir(tmp_path)) == ['runs.json', 'runs.json.lock']
