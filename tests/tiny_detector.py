"""A tiny ReBNN Faster R-CNN trained once per session on the shapes set (the ``tiny_trained_detector`` fixture of
tests/conftest.py, shared by the deploy, engine and tool tests)."""
import copy
import os.path as osp
from collections import namedtuple

import pytest
import torch

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
SHAPES_CONFIG = osp.join(ROOT, 'configs', 'shapes', 'rebnn_faster_rcnn_shapes.py')

TinyDetector = namedtuple('TinyDetector', 'cfg checkpoint work_dir')


def tiny_shapes_cfg(data_root: str, work_dir: str, epochs: int = 10):
    """The demo config shrunk to a 16-wide ReBNNResNet-18 + 16-wide BinaryFPN on 16 train / 8 val 96-px images.

    ``val`` and ``test`` read the 16 *training* images: after a few dozen steps the model finds some of those
    (mAP > 0), so "same mAP after export" compares real numbers rather than two zeros.
    """
    from mmengine.config import Config
    cfg = Config.fromfile(SHAPES_CONFIG)
    width, neck = 16, 32
    cfg.model.backbone.update(base_channels=width, stem_channels=width)
    cfg.model.neck.update(in_channels=[width, 2 * width, 4 * width, 8 * width], out_channels=neck)
    cfg.model.rpn_head.update(in_channels=neck, feat_channels=neck)
    cfg.model.roi_head.bbox_roi_extractor.out_channels = neck
    cfg.model.roi_head.bbox_head.update(in_channels=neck, fc_out_channels=64)
    root = data_root.rstrip('/') + '/'
    for loader, split, num in (('train_dataloader', 'train', 16), ('val_dataloader', 'train', 16),
                               ('test_dataloader', 'train', 16)):
        dl = cfg[loader]
        dl.update(batch_size=4, num_workers=0, persistent_workers=False)
        dl.dataset.update(data_root=root, split=split, num_images=num, img_size=96)
        for step in dl.dataset.pipeline:
            if step['type'] == 'Resize':
                step['scale'] = (96, 96)
    for evaluator in ('val_evaluator', 'test_evaluator'):
        cfg[evaluator].ann_file = root + 'annotations/instances_train.json'
    cfg.train_cfg.update(max_epochs=epochs, val_interval=epochs + 1)
    cfg.param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=False, begin=0, end=1)]
    cfg.optim_wrapper.optimizer.lr = 3e-3
    cfg.default_hooks.logger.interval = 100
    cfg.default_hooks.checkpoint.update(interval=epochs, max_keep_ckpts=1)
    cfg.work_dir = work_dir
    cfg.randomness = dict(seed=0)
    return cfg


@pytest.fixture(scope='session')
def tiny_trained_detector(tmp_path_factory):
    """``TinyDetector(cfg, checkpoint, work_dir)``: a tiny ReBNN Faster R-CNN (ReBNNHook on) trained for 40
    iterations in a temporary directory. ``cfg`` is the mmengine Config it was trained with (data under the same
    temporary directory; val/test read the training images); ``checkpoint`` the mmengine ``.pth`` it saved.
    Deep-copy ``cfg`` before changing it (``Config.copy`` is shallow and the fixture is shared)."""
    from mmengine.runner import Runner
    base = tmp_path_factory.mktemp('tiny_detector')
    cfg = tiny_shapes_cfg(str(base / 'data'), str(base / 'work'))
    train_cfg = copy.deepcopy(cfg)
    train_cfg.update(val_dataloader=None, val_cfg=None, val_evaluator=None)  # no evaluation while training
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny convs: one thread is several times faster on the shared 2-core machine
    try:
        Runner.from_cfg(train_cfg).train()
    finally:
        torch.set_num_threads(threads)
    checkpoint = osp.join(cfg.work_dir, f'epoch_{cfg.train_cfg.max_epochs}.pth')
    assert osp.isfile(checkpoint), checkpoint
    return TinyDetector(cfg, checkpoint, cfg.work_dir)
