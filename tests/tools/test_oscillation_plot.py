"""The oscillation plot over several runs of one work dir (resume, restart) and imperfect scalars.json files."""
import json

import pytest

from rebnn_det.apis.oscillation_plot import plot_oscillation, read_oscillation_series


def _write_run(work_dir, timestamp, records, tail=''):
    vis = work_dir / timestamp / 'vis_data'
    vis.mkdir(parents=True)
    (vis / 'scalars.json').write_text(''.join(json.dumps(r) + '\n' for r in records) + tail)


def _train_log(it, flip):  # what LoggerHook writes at a logger interval (ReBNNHook's model-wide values in it)
    return {'loss': 1.0, 'rebnn_flip': flip, 'rebnn_gamma': flip / 10, 'iter': it, 'step': it}


def _layer_log(it, flip):  # what ReBNNHook writes per layer (visualizer.add_scalars: 'step' only)
    return {'rebnn/backbone.conv/flip': flip, 'rebnn/backbone.conv/gamma': flip / 10, 'step': it}


def test_resumed_run_supersedes_overlapping_iterations(tmp_path):
    # run 1 logged iterations 10..50 and was killed; run 2 resumed from the checkpoint at iteration 30 and
    # logs 40..70: iterations 40 and 50 were logged twice, run 2's values are the ones of the kept trajectory
    _write_run(tmp_path, '20260101_120000', [r for it in (10, 20, 30, 40, 50)
                                             for r in (_train_log(it, it / 1000), _layer_log(it, it / 1000))])
    _write_run(tmp_path, '20260101_130000', [r for it in (40, 50, 60, 70)
                                             for r in (_train_log(it, it / 100), _layer_log(it, it / 100))])
    # a test run in the same work dir logs no ReBNN statistics and must not cut anything
    _write_run(tmp_path, '20260101_140000', [{'coco/bbox_mAP': 0.1, 'step': 1}])
    flips, gammas, overall = read_oscillation_series(str(tmp_path))
    expected = [(10, 0.01), (20, 0.02), (30, 0.03), (40, 0.4), (50, 0.5), (60, 0.6), (70, 0.7)]
    assert flips == {'backbone.conv': expected}
    assert overall['rebnn_flip'] == expected
    assert overall['rebnn_gamma'] == [(it, v / 10) for it, v in expected]
    assert gammas == {'backbone.conv': [(it, v / 10) for it, v in expected]}


def test_later_run_drops_the_abandoned_continuation(tmp_path):
    # run 1 reached iteration 50; run 2 resumed from iteration 20 and stopped at 40: run 1's 50 belongs to a
    # trajectory that no longer exists, and each iteration appears once
    _write_run(tmp_path, '20260101_120000', [_train_log(it, it / 1000) for it in (10, 20, 30, 40, 50)])
    _write_run(tmp_path, '20260101_130000', [_train_log(it, it / 100) for it in (30, 40)])
    # the same iteration twice inside one run (an epoch-end window on a logger iteration): the last value counts
    _write_run(tmp_path, '20260101_140000', [{'rebnn_osc_flip_ratio': 0.5, 'step': 40},
                                             {'rebnn_osc_flip_ratio': 0.25, 'step': 40}])
    _, _, overall = read_oscillation_series(str(tmp_path))
    assert overall['rebnn_flip'] == [(10, 0.01), (20, 0.02), (30, 0.3), (40, 0.4)]
    assert overall['rebnn_osc_flip_ratio'] == [(40, 0.25)]
    out = plot_oscillation(str(tmp_path))
    assert open(out, 'rb').read()[:8] == b'\x89PNG\r\n\x1a\n'


def test_cut_off_last_line_is_skipped_with_a_warning_bad_line_elsewhere_is_an_error(tmp_path):
    _write_run(tmp_path, '20260101_120000', [_train_log(10, 0.01), _train_log(20, 0.02)], tail='{"rebnn_fl')
    with pytest.warns(UserWarning, match=r'scalars.json:3: skipped the cut-off last line'):
        _, _, overall = read_oscillation_series(str(tmp_path))
    assert overall['rebnn_flip'] == [(10, 0.01), (20, 0.02)]
    _write_run(tmp_path, '20260101_130000', [_train_log(30, 0.03)], tail='oops\n' + json.dumps(_train_log(40, 0)))
    with pytest.raises(ValueError, match=r'20260101_130000/vis_data/scalars.json:2 is not a json line'), \
            pytest.warns(UserWarning, match='20260101_120000/vis_data/scalars.json:3: skipped'):
        read_oscillation_series(str(tmp_path))
