"""The embedded dataset under concurrent starts, truncated files and stale settings."""
import json
import os
import os.path as osp
import subprocess
import sys
import time

import pytest
from mmdet.registry import DATASETS

import rebnn_det.datasets.shapes as shapes
from rebnn_det.datasets import ensure_shapes_split, generate_shapes_split

SETTINGS = dict(num_images=6, img_size=64, seed=0)  # small: ~0.1 s to generate

# A racing process: imports the generator from the package under test (sys.argv[1]: the folder holding
# rebnn_det), then for each round waits for the parent's "go" file and ensures the split, then reads it as
# CocoDataset would (complete json, every listed image present).
RACER = r'''
import json, os, os.path as osp, sys, time
sys.path.insert(0, sys.argv[1])
import rebnn_det.datasets.shapes as shapes
base, rounds, name = sys.argv[2], int(sys.argv[3]), sys.argv[4]
for k in range(rounds):
    open(osp.join(base, f'ready_{k}_{name}'), 'w').close()
    while not osp.exists(osp.join(base, f'go_{k}')):
        time.sleep(0.001)
    root = osp.join(base, f'root_{k}')
    ann = shapes.ensure_shapes_split(root, 'train', num_images=6, img_size=64, seed=0)
    coco = json.load(open(ann))
    assert all(osp.isfile(osp.join(root, img['file_name'])) for img in coco['images'])
    print(f'round {k} read {len(coco["images"])} images', flush=True)
'''


def _tree(root):
    """Relative path -> bytes of every file of a generated root, except the (empty) lock files."""
    files = {}
    for folder, _, names in os.walk(root):
        for name in names:
            if not name.endswith(('.lock', '.readers')):
                path = osp.join(folder, name)
                files[osp.relpath(path, root)] = open(path, 'rb').read()
    return files


@pytest.fixture(scope='module')
def reference(tmp_path_factory):
    """What one process alone writes for SETTINGS."""
    root = str(tmp_path_factory.mktemp('reference'))
    ensure_shapes_split(root, 'train', **SETTINGS)
    return _tree(root)


def test_two_processes_racing_on_fresh_roots_generate_once_and_identically(tmp_path, reference):
    rounds = 6
    package_root = osp.dirname(osp.dirname(osp.dirname(osp.abspath(shapes.__file__))))
    racers = [subprocess.Popen([sys.executable, '-c', RACER, package_root, str(tmp_path), str(rounds), name],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for name in 'ab']
    try:
        for k in range(rounds):  # release both racers into round k together
            deadline = time.monotonic() + 120  # a hang guard, not a timing assertion
            while not all(osp.exists(tmp_path / f'ready_{k}_{n}') for n in 'ab'):
                assert all(r.poll() is None for r in racers), [r.communicate()[0] for r in racers]
                assert time.monotonic() < deadline, 'racers never got ready'
                time.sleep(0.002)
            (tmp_path / f'go_{k}').touch()
        outputs = [r.communicate(timeout=120)[0] for r in racers]
    finally:
        for r in racers:
            r.kill()
    assert [r.returncode for r in racers] == [0, 0], outputs
    for out in outputs:
        assert [line for line in out.splitlines() if line.startswith('round ')] == \
            [f'round {k} read 6 images' for k in range(rounds)], out
    generations = sum(out.count('generating the embedded shapes dataset') for out in outputs)
    assert generations == rounds, outputs  # exactly one writer per fresh root
    for k in range(rounds):
        assert _tree(tmp_path / f'root_{k}') == reference  # complete, identical, no temporaries left


def test_truncated_json_is_regenerated(tmp_path, reference, capsys):
    root = str(tmp_path)
    ann = ensure_shapes_split(root, 'train', **SETTINGS)
    data = open(ann, 'rb').read()
    open(ann, 'wb').write(data[:len(data) // 2])  # e.g. a writer killed under the old in-place rewrite
    open(osp.join(root, 'annotations', '.instances_train.json.x1y2.tmp'), 'w').write('{"half')  # killed writer
    capsys.readouterr()
    assert ensure_shapes_split(root, 'train', **SETTINGS) == ann
    assert 'instances_train.json: unreadable (JSONDecodeError' in capsys.readouterr().out
    assert _tree(root) == reference


def test_stale_settings_are_regenerated(tmp_path, capsys):
    root = str(tmp_path)
    ann = ensure_shapes_split(root, 'train', **SETTINGS)
    capsys.readouterr()
    ensure_shapes_split(root, 'train', num_images=6, img_size=64, seed=1)
    out = capsys.readouterr().out
    assert "made with other settings ({'version': 2, 'seed': 0, 'num_images': 6" in out
    assert "wanted {'version': 2, 'seed': 1, 'num_images': 6" in out
    info = json.load(open(ann))['info']
    assert (info['seed'], info['num_images']) == (1, 6)
    assert _tree(root) == _tree(generate_shapes_split(str(tmp_path / 'seed1'), 'train', 6, 64, seed=1)
                                .rsplit('/annotations/', 1)[0])
    ensure_shapes_split(root, 'train', num_images=4, img_size=64, seed=1)
    assert 'made with other settings' in capsys.readouterr().out
    assert len(json.load(open(ann))['images']) == 4
    ensure_shapes_split(root, 'train', num_images=4, img_size=64, seed=1)
    assert capsys.readouterr().out == ''  # up to date: left alone


def test_missing_image_and_foreign_json_are_regenerated(tmp_path, reference, capsys):
    root = str(tmp_path)
    ann = ensure_shapes_split(root, 'train', **SETTINGS)
    os.remove(osp.join(root, 'train', '000003.jpg'))
    capsys.readouterr()
    ensure_shapes_split(root, 'train', **SETTINGS)
    assert f"1 of its images are missing (first: {osp.join(root, 'train', '000003.jpg')})" in capsys.readouterr().out
    assert _tree(root) == reference
    json.dump([1, 2], open(ann, 'w'))  # valid json, not a COCO file
    ensure_shapes_split(root, 'train', **SETTINGS)
    assert 'unreadable (TypeError' in capsys.readouterr().out
    assert _tree(root) == reference


def test_dataset_generates_when_annotations_are_loaded(tmp_path):
    cfg = dict(type='ShapesDataset', split='val', num_images=3, img_size=64, data_root=str(tmp_path) + '/',
               pipeline=[], lazy_init=True)
    ds = DATASETS.build(cfg)
    assert not osp.exists(tmp_path / 'annotations')  # lazy: nothing read, nothing written
    ds.full_init()
    assert len(json.load(open(tmp_path / 'annotations' / 'instances_val.json'))['images']) == 3
    assert ds[0]['img_path'] == osp.join(str(tmp_path) + '/', 'val/000000.jpg')
