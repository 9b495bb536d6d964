"""The local checkpoint loader rebnn_det registers in mmengine: full mmengine checkpoints load under torch >= 2.6,
damaged files are one clear error naming the file and what is wrong (also on resume), packed 1-bit files load
as the checkpoint they describe."""
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.runner.checkpoint import CheckpointLoader

from rebnn_det.engine import CheckpointReadError
from tests.helpers import one_weight_runner

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


@pytest.fixture
def good(tmp_path):
    path = tmp_path / 'good.pth'
    # numpy scalars and arrays are what torch >= 2.6's weights_only default refuses in mmengine checkpoints
    torch.save(dict(state_dict=dict(w=torch.ones(3)), meta=dict(seed=np.int64(3), hist=np.zeros(2))), path)
    return path


def test_mmengine_checkpoint_with_numpy_objects_loads(good):
    ckpt = CheckpointLoader.load_checkpoint(str(good))
    assert torch.equal(ckpt['state_dict']['w'], torch.ones(3)) and ckpt['meta']['seed'] == 3


@pytest.mark.parametrize('damage, message', [
    (lambda data: b'', r'the file is empty \(0 bytes\)'),
    (lambda data: data[:len(data) // 2], r'the file ends early \(\d+ bytes\): it is truncated'),
    (lambda data: b'not a checkpoint at all' * 10, r'it is not a readable torch checkpoint \(230 bytes\)'),
])
def test_damaged_file_is_one_clear_error_naming_it(good, damage, message):
    bad = good.parent / 'bad.pth'
    bad.write_bytes(damage(good.read_bytes()))
    with pytest.raises(CheckpointReadError, match=f"checkpoint '{bad}' cannot be read: {message}") as err:
        CheckpointLoader.load_checkpoint(str(bad))
    assert 'use another checkpoint' in str(err.value)


def test_truncated_legacy_pickle_is_a_clear_error(tmp_path):
    path = tmp_path / 'legacy.pth'
    torch.save(dict(w=torch.ones(100)), path, _use_new_zipfile_serialization=False)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(CheckpointReadError, match=f"checkpoint '{path}' cannot be read: the file ends early"):
        CheckpointLoader.load_checkpoint(str(path))


def test_missing_file_or_directory_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"checkpoint file '{tmp_path}/nope.pth' does not exist"):
        CheckpointLoader.load_checkpoint(str(tmp_path / 'nope.pth'))
    with pytest.raises(FileNotFoundError, match=f"checkpoint file '{tmp_path}' is a directory"):
        CheckpointLoader.load_checkpoint(str(tmp_path))


def test_resume_from_a_truncated_checkpoint_names_the_file(tmp_path):
    runner = one_weight_runner(str(tmp_path), epochs=1)
    runner.train()
    ckpt = tmp_path / 'epoch_1.pth'
    ckpt.write_bytes(ckpt.read_bytes()[:-100])
    with pytest.raises(CheckpointReadError, match=f"checkpoint '{ckpt}' cannot be read: the file ends early"):
        runner.resume(str(ckpt))


def test_packed_file_loads_as_the_checkpoint_it_describes(tmp_path):
    from mmdet.registry import MODELS

    from rebnn_det.deploy.export import export_model
    cfg = Config.fromfile(osp.join(ROOT, 'configs', 'shapes', 'rebnn_faster_rcnn_shapes.py'))
    cfg.model.backbone.update(base_channels=8, stem_channels=8)
    cfg.model.neck.update(in_channels=[8, 16, 32, 64], out_channels=16)
    cfg.model.rpn_head.update(in_channels=16, feat_channels=16)
    cfg.model.roi_head.bbox_roi_extractor.out_channels = 16
    cfg.model.roi_head.bbox_head.update(in_channels=16, fc_out_channels=32)
    model = MODELS.build(cfg.model)
    model.init_weights()
    packed = export_model(model, cfg, str(tmp_path / 'model.packed.pth'))
    ckpt = CheckpointLoader.load_checkpoint(packed)
    state = model.state_dict()
    assert set(ckpt['state_dict']) == set(state) and 'packed' in ckpt['meta']
    assert torch.equal(ckpt['state_dict']['neck.lateral_convs.1.conv.alpha'], state['neck.lateral_convs.1.conv.alpha'])
    # map_location reaches the packed reader (the meta device stands in for an accelerator)
    moved = CheckpointLoader.load_checkpoint(packed, map_location='meta')
    assert {v.device.type for v in moved['state_dict'].values()} == {'meta'}
    assert {k: v.shape for k, v in moved['state_dict'].items()} == {k: v.shape for k, v in state.items()}
