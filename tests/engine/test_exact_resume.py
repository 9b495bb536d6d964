"""ExactResumeHook: a run stopped after epoch 1 and resumed ends with the same weights, bit for bit, as an
uninterrupted run (tiny ReBNN Faster R-CNN on the shapes set), and per-sample seeding is independent of the
process's random state."""
import os.path as osp
import random

import numpy as np
import pytest
import torch
from mmengine.config import Config

from rebnn_det.apis import build_runner, resolve_resume
from rebnn_det.engine.hooks.exact_resume import SeededSampleFetch
from tests.helpers import save_teacher

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SHAPES = osp.join(ROOT, 'configs', 'shapes', 'rebnn_faster_rcnn_shapes.py')


def tiny_config(data_root, work_dir, max_epochs, workers, validate):
    """The shapes demo config shrunk to 8-wide layers, 8 training images of 64 px, 2 iterations per epoch."""
    cfg = Config.fromfile(SHAPES)
    root = f'{data_root}/'
    model = cfg.model
    model.backbone.update(base_channels=8, stem_channels=8)
    model.neck.update(in_channels=[8, 16, 32, 64], out_channels=16)
    model.rpn_head.update(in_channels=16, feat_channels=16)
    model.roi_head.bbox_roi_extractor.out_channels = 16
    model.roi_head.bbox_head.update(in_channels=16, fc_out_channels=32)
    for key, num in (('train_dataloader', 8), ('val_dataloader', 4), ('test_dataloader', 4)):
        cfg[key].dataset.update(data_root=root, num_images=num, img_size=64)
        cfg[key].update(batch_size=4, num_workers=workers, persistent_workers=workers > 0)
    cfg.val_evaluator.ann_file = cfg.test_evaluator.ann_file = root + 'annotations/instances_val.json'
    # validation after epoch 1 only in the uninterrupted run: it draws random numbers the other run does not
    cfg.train_cfg.update(max_epochs=max_epochs, val_interval=1, val_begin=1 if validate else 100)
    cfg.default_hooks.logger.interval = 1
    cfg.default_hooks.checkpoint.update(interval=1, max_keep_ckpts=1)
    cfg.work_dir = str(work_dir)
    cfg.experiment_name = cfg.visualizer.name = f'{osp.basename(str(work_dir))}_{max_epochs}'  # one per runner
    return cfg


@pytest.fixture
def one_thread():
    """Tiny convolutions on a shared 2-core machine run several times faster on one thread (both runs use it)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _distilled(cfg, teacher):
    """``cfg`` with distillation from ``teacher`` = (config file, checkpoint)."""
    cfg.model.update(type='DistilledFasterRCNN', distill=dict(teacher_config=teacher[0], teacher_checkpoint=teacher[1]))
    return cfg


@pytest.mark.parametrize('distill', [False, True], ids=['plain', 'distilled'])
def test_resume_after_epoch_1_ends_bit_identical_to_an_uninterrupted_run(tmp_path, one_thread, distill):
    from mmdet.registry import MODELS
    data = tmp_path / 'data'
    teacher = None
    if distill:  # a teacher of the same shape, initialised differently (the distillation losses are not zero)
        teacher = save_teacher(tiny_config(data, tmp_path / 'teacher', 1, workers=0, validate=False), tmp_path,
                               seed=5)

    def configure(cfg):
        return _distilled(cfg, teacher) if teacher else cfg

    # uninterrupted: 2 epochs, one persistent worker (its random state would run on from epoch 1 into epoch 2)
    build_runner(configure(tiny_config(data, tmp_path / 'full', 2, workers=1, validate=True))).train()
    # interrupted: 1 epoch, then a new process-like runner resumes the work dir for epoch 2; no workers
    build_runner(configure(tiny_config(data, tmp_path / 'split', 1, workers=0, validate=False))).train()
    cfg = configure(tiny_config(data, tmp_path / 'split', 2, workers=0, validate=False))
    resolve_resume('auto', cfg)
    assert cfg.load_from == str(tmp_path / 'split' / 'epoch_1.pth')
    build_runner(cfg).train()

    full = torch.load(tmp_path / 'full' / 'epoch_2.pth', weights_only=False)
    split = torch.load(tmp_path / 'split' / 'epoch_2.pth', weights_only=False)
    assert full['meta']['iter'] == split['meta']['iter'] == 4
    differ = [k for k, v in full['state_dict'].items() if not torch.equal(v, split['state_dict'][k])]
    assert differ == [], f'{len(differ)} of {len(full["state_dict"])} tensors differ, e.g. {differ[:3]}'
    assert full['rebnn_hook']['num_steps'] == split['rebnn_hook']['num_steps'] == 4
    assert full['exact_resume'] == split['exact_resume']
    if distill:  # the distillation losses were part of training, and no teacher weight is in the checkpoint
        scalars = sorted((tmp_path / 'full').glob('*/vis_data/scalars.json'))
        assert scalars and 'loss_distill_fpn' in scalars[-1].read_text()
        plain = MODELS.build(tiny_config(data, tmp_path / 'x', 1, 0, False).model)
        assert set(full['state_dict']) == set(plain.state_dict())


class RandomDataset:
    """Each sample is one draw from each generator the data pipeline may use."""

    def __len__(self):
        return 4

    def __getitem__(self, index):
        return (index, random.random(), float(np.random.rand()), float(torch.rand(())))


def test_each_sample_is_seeded_by_seed_epoch_and_index_and_the_caller_state_is_kept():
    epoch = torch.zeros((), dtype=torch.int64)
    fetch = SeededSampleFetch(RandomDataset(), seed=7, epoch=epoch)
    torch.manual_seed(1)
    np.random.seed(1)
    random.seed(1)
    first = fetch([0, 1])
    expected_next = (random.random(), float(np.random.rand()), float(torch.rand(())))
    torch.manual_seed(2)  # another caller state, another batch composition: same samples
    np.random.seed(2)
    assert fetch([1]) == first[1:] and fetch([3, 0])[1] == first[0]
    assert first[0][1:] != first[1][1:]
    epoch.fill_(1)
    assert fetch([0])[0][1:] != first[0][1:]  # a new epoch draws new augmentations
    torch.manual_seed(1)
    np.random.seed(1)
    random.seed(1)
    fetch([0, 1, 2])
    assert (random.random(), float(np.random.rand()), float(torch.rand(()))) == expected_next
