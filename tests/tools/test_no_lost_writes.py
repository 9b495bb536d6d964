"""No write loses the user's file or log: exclusive creation of packed files (also against a file that appears
during the export, and between two exporters), no temporary file left by an export ended with Ctrl-C, SIGTERM or
SIGHUP, the log of a run that diverged is kept, two shapes datasets with different settings never overwrite a split
another process reads, and bad --shape / pad_value values are clear errors."""
import os
import os.path as osp
import re
import signal
import subprocess
import sys
import textwrap

import pytest
import torch

from rebnn_det.apis import cli, train_config
from rebnn_det.deploy.packed_file import write_packed_file
from rebnn_det.fileio import atomic_write

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SHAPES = osp.join(ROOT, 'configs', 'shapes', 'rebnn_faster_rcnn_shapes.py')

PAYLOAD = dict(config={}, binary_layers={}, state_dict=dict(w=torch.ones(3)))


def test_a_file_that_appears_during_the_export_is_left_alone(tmp_path, monkeypatch):
    out = tmp_path / 'm.packed.pth'
    real_save = torch.save

    def save_while_another_exporter_finishes(obj, f):
        out.write_bytes(b'the other exporter')
        real_save(obj, f)
    monkeypatch.setattr(torch, 'save', save_while_another_exporter_finishes)
    with pytest.raises(FileExistsError, match=r"m\.packed\.pth' appeared while it was being written \(another "
                                              r'export\?\); it was left as it is: pass force=True \(--force\)'):
        write_packed_file(PAYLOAD, str(out))
    assert out.read_bytes() == b'the other exporter' and os.listdir(tmp_path) == ['m.packed.pth']
    write_packed_file(PAYLOAD, str(out), force=True)  # --force replaces it
    assert torch.load(out, weights_only=True)['format'] == 'rebnn_det.packed'


RACE = textwrap.dedent('''
    import sys, time, torch
    from rebnn_det.deploy import packed_file
    real_save = torch.save
    def slow_save(obj, f):
        time.sleep(1.5)  # both exporters are past the "exists?" check before either finishes
        real_save(obj, f)
    torch.save = slow_save
    try:
        packed_file.write_packed_file(dict(config={}, binary_layers={}, state_dict={}, who=sys.argv[2]), sys.argv[1])
        print('wrote')
    except FileExistsError:
        print('refused')
''')


def test_two_exporters_without_force_one_wins(tmp_path):
    out = str(tmp_path / 'm.packed.pth')
    procs = [subprocess.Popen([sys.executable, '-c', RACE, out, who], cwd=ROOT, stdout=subprocess.PIPE, text=True)
             for who in ('a', 'b')]
    results = {who: p.communicate(timeout=120)[0].split()[-1] for who, p in zip('ab', procs)}
    assert sorted(results.values()) == ['refused', 'wrote']
    winner = next(who for who, r in results.items() if r == 'wrote')
    assert torch.load(out, weights_only=True)['who'] == winner
    assert os.listdir(tmp_path) == ['m.packed.pth']  # the loser's temporary file is gone


INTERRUPTED = textwrap.dedent('''
    import sys, time
    from rebnn_det.fileio import atomic_write
    def write(f):
        f.write(b'x' * 1000)
        f.flush()
        print('writing', flush=True)
        time.sleep(60)
    atomic_write(sys.argv[1], write, replace=False)
''')


@pytest.mark.parametrize('sig', [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_an_interrupted_write_leaves_no_temporary_file(tmp_path, sig):
    out = str(tmp_path / 'm.packed.pth')

    def default_dispositions():  # a suite started under nohup / in the background ignores SIGHUP / SIGINT, and an
        for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):  # ignored signal rightly stays ignored
            signal.signal(s, signal.SIG_DFL)

    proc = subprocess.Popen([sys.executable, '-c', INTERRUPTED, out], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=default_dispositions)
    assert proc.stdout.readline().strip() == 'writing'
    assert len(os.listdir(tmp_path)) == 1  # the hidden temporary file
    proc.send_signal(sig)
    proc.communicate(timeout=60)
    # SIGTERM/SIGHUP: SystemExit(128 + signal); SIGINT: KeyboardInterrupt, then Python ends by the signal itself
    assert proc.returncode == (-signal.SIGINT if sig == signal.SIGINT else 128 + sig)
    assert os.listdir(tmp_path) == []


def test_signal_handlers_are_restored_after_a_write(tmp_path):
    before = signal.getsignal(signal.SIGTERM)
    atomic_write(str(tmp_path / 'f'), lambda f: f.write(b'1'))
    assert signal.getsignal(signal.SIGTERM) is before


def test_the_log_of_a_diverged_run_is_kept(tmp_path):
    from rebnn_det.engine import NonFiniteTrainingError
    from tests.tools.test_tools import tiny_shapes_options
    work = tmp_path / 'work'
    cfg = train_config([SHAPES, '--work-dir', str(work), '--cfg-options', *tiny_shapes_options(tmp_path / 'data')])
    cfg.model.roi_head.bbox_head.loss_bbox.loss_weight = float('nan')  # NaN loss and weights in iteration 1
    with pytest.raises(NonFiniteTrainingError, match='iteration 1'):
        cli.run(cfg, mode='train')
    runs = [p for p in work.iterdir() if p.is_dir()]
    assert len(runs) == 1 and (runs[0] / f'{runs[0].name}.log').stat().st_size > 0


SHAPES_READER = textwrap.dedent('''
    import sys, time
    from rebnn_det.datasets.shapes import ensure_shapes_split
    ensure_shapes_split(sys.argv[1], 'train', 4, 64, seed=0)
    print('reading', flush=True)
    time.sleep(120)
''')


def test_other_settings_never_overwrite_a_split_another_process_reads(tmp_path):
    from rebnn_det.datasets.shapes import ShapesInUseError, ensure_shapes_split
    root = str(tmp_path / 'shapes')
    reader = subprocess.Popen([sys.executable, '-c', SHAPES_READER, root], cwd=ROOT, stdout=subprocess.PIPE,
                              text=True)
    try:
        assert 'reading' in iter(lambda: reader.stdout.readline().strip(), '')  # after its generation messages
        images = {n: open(osp.join(root, 'train', n), 'rb').read() for n in os.listdir(osp.join(root, 'train'))}
        with pytest.raises(ShapesInUseError, match=r"instances_train\.json: the 'train' split there was made with "
                                                   r"other settings \(\{'version': 2, 'seed': 0.*wanted "
                                                   r"\{'version': 2, 'seed': 1.*another process is reading it.*Give "
                                                   r'this dataset its own data_root'):
            ensure_shapes_split(root, 'train', 4, 64, seed=1)
        assert {n: open(osp.join(root, 'train', n), 'rb').read() for n in images} == images
        assert ensure_shapes_split(root, 'train', 4, 64, seed=0)  # the same settings: shared, nothing rewritten
    finally:
        reader.kill()
        reader.wait()
    ensure_shapes_split(root, 'train', 4, 64, seed=1)  # nobody reads it now: regenerated
    assert {n: open(osp.join(root, 'train', n), 'rb').read() for n in images} != images


@pytest.mark.parametrize('shape', [['0', '0'], ['-5', '10'], ['100000', '100000'], ['16', '64']])
def test_model_summary_shape_is_checked_before_building(shape, capsys):
    sys.path.insert(0, osp.join(ROOT, 'tools'))
    try:
        import model_summary as tool
    finally:
        sys.path.pop(0)
    with pytest.raises(SystemExit) as exit_info:
        tool.main([SHAPES, '--shape', *shape])
    assert exit_info.value.code == 2
    expected = ('--shape: input shape must be two integers H W, each from 32 (a detector downsamples by 32) to 4096 '
                '(the model is run on a zero image of that size), got [' + ', '.join(shape) + ']')
    assert expected in capsys.readouterr().err


@pytest.mark.parametrize('value', [float('nan'), 0.5, 2, 'zero', None])
def test_pad_value_outside_the_kernels_values_is_refused(value):
    from rebnn_det.ops import ReBNNConv
    with pytest.raises(ValueError, match=re.escape('pad_value must be one of 0, +1, -1 (the padding constants the '
                                                   f'binary conv and its kernels support), got {value!r}')):
        ReBNNConv(4, 4, 3, padding=1, pad_value=value)
    for ok in (0, 1, -1, 1.0, -1.0):
        assert ReBNNConv(4, 4, 3, padding=1, pad_value=ok).pad_value == float(ok)
