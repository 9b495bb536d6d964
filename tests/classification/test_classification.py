"""The classification stage (mmengine): the embedded crops set, a training run of the binary classifier with
ReBNNHook by tools/train.py's code, its checkpoint initialising a detector's backbone with the config's one line,
the ImageNet configs and image-list dataset, accuracy, and the distilled classifier's loss."""
import glob
import math
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from mmdet.registry import MODELS as CLS_MODELS

from rebnn_det.apis import run, train_config
from rebnn_det.datasets import ShapesCropsDataset
from rebnn_det.models import DistilledBackboneClassifier, soft_cross_entropy
from tests.helpers import clear_visualizers

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CLS = osp.join(ROOT, 'configs', 'classification')
CROPS = osp.join(CLS, 'rebnn_resnet18_shapes_hard_crops.py')
CLS_CONFIGS = sorted(glob.glob(osp.join(CLS, '*.py')))


def tiny_crops_options(data_root: str):
    """cfg-options that shrink the embedded config to a few seconds: 10 + 4 source images, batch 8, 2 epochs."""
    opts = [f'train_dataloader.dataset.data_root={data_root}', f'val_dataloader.dataset.data_root={data_root}',
            f'test_dataloader.dataset.data_root={data_root}', 'train_dataloader.dataset.num_images=10',
            'val_dataloader.dataset.num_images=4', 'test_dataloader.dataset.num_images=4',
            'train_dataloader.batch_size=8', 'val_dataloader.batch_size=8', 'train_dataloader.num_workers=0',
            'val_dataloader.num_workers=0', 'test_dataloader.num_workers=0',
            'train_dataloader.persistent_workers=False', 'val_dataloader.persistent_workers=False',
            'test_dataloader.persistent_workers=False', 'train_cfg.max_epochs=2', 'train_cfg.val_interval=2',
            'default_hooks.checkpoint.interval=2', 'param_scheduler.1.end=2']
    return opts


def test_soft_cross_entropy_by_hand():
    s, t = torch.tensor([[0.0, 0.0]]), torch.tensor([[0.0, math.log(3.0)]])
    # softmax(t) = (1/4, 3/4), log_softmax(s) = (-ln 2, -ln 2): -sum = ln 2
    assert soft_cross_entropy(s, t).item() == pytest.approx(math.log(2.0), abs=1e-6)
    # T = 2: softmax(t / 2) sums to 1 against the same log_softmax(0) = -ln 2, times T^2 = 4
    assert soft_cross_entropy(s, t, temperature=2.0).item() == pytest.approx(4 * math.log(2.0), abs=1e-6)
    # a batch is averaged: a second row with s = t = (ln 3, 0): -(3/4 ln 3/4 + 1/4 ln 1/4)
    s2 = torch.tensor([[0.0, 0.0], [math.log(3.0), 0.0]])
    t2 = torch.tensor([[0.0, math.log(3.0)], [math.log(3.0), 0.0]])
    entropy = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    assert soft_cross_entropy(s2, t2).item() == pytest.approx((math.log(2.0) + entropy) / 2, abs=1e-6)


def test_the_crops_dataset_packs_image_and_label(tmp_path):
    ds = ShapesCropsDataset(split='val', data_root=str(tmp_path), num_images=4, img_size=64, seed=7, crop_size=16,
                            pipeline=[dict(type='PackClassificationInputs')])
    assert ds.metainfo['classes'][:2] == ('circle', 'square') and len(ds) > 0
    sample = ds[0]
    info = ds.get_data_info(0)
    assert sample['inputs'].dtype == torch.uint8 and tuple(sample['inputs'].shape) == (3, 16, 16)
    assert torch.equal(sample['inputs'], torch.from_numpy(info['img']).permute(2, 0, 1))
    assert sample['data_samples'] == info['gt_label']
    with pytest.raises(ValueError, match="split must be 'train' or 'val'"):
        ShapesCropsDataset(split='test', data_root=str(tmp_path))


def test_pretraining_run_then_one_init_cfg_line_loads_the_detector_backbone(tmp_path):
    """tools/train.py's code trains the embedded classification config (mmengine's runner, ReBNNHook on the binary
    backbone, accuracy on val); the hard-set detection config's init_cfg line then loads every backbone tensor of
    that checkpoint."""
    work = str(tmp_path / 'cls')
    clear_visualizers()
    cfg = train_config([CROPS, '--work-dir', work, '--cfg-options', *tiny_crops_options(str(tmp_path / 'data'))])
    run(cfg, mode='train')
    ckpt = osp.join(work, 'epoch_2.pth')
    saved = torch.load(ckpt, weights_only=False)
    state = saved['state_dict']
    assert {'fc.weight', 'backbone.layer1.0.conv1.alpha'} <= set(state)
    assert any(k['type'].endswith('ReBNNHook') for k in cfg.custom_hooks)
    scalars = open(glob.glob(osp.join(work, '*', 'vis_data', 'scalars.json'))[0]).read()
    assert '"rebnn_flip"' in scalars and 'rebnn_osc_flip_ratio' in scalars and 'accuracy/top1' in scalars

    from mmdet.registry import MODELS
    det_cfg = Config.fromfile(osp.join(ROOT, 'configs', 'shapes', 'rebnn_faster_rcnn_shapes_hard_pretrained.py'))
    assert det_cfg.model.backbone.init_cfg.checkpoint == 'work_dirs/rebnn_resnet18_shapes_hard_crops/epoch_12.pth'
    det_cfg.model.backbone.init_cfg.checkpoint = ckpt
    detector = MODELS.build(det_cfg.model)
    detector.init_weights()
    backbone = detector.backbone.state_dict()
    assert set(f'backbone.{k}' for k in backbone) == {k for k in state if k.startswith('backbone.')}
    for key, value in backbone.items():
        assert torch.equal(value, state[f'backbone.{key}']), key


@pytest.mark.parametrize('path', CLS_CONFIGS, ids=osp.basename)
def test_classification_configs_build_and_train_a_step(path, tmp_path):
    cfg = Config.fromfile(path)
    assert cfg.custom_imports['imports'] == ['rebnn_det.plugin'] and cfg.default_scope == 'mmdet'
    if 'distill' in cfg.model:  # its teacher: the named real classifier config, untrained, saved for the test
        teacher = CLS_MODELS.build(Config.fromfile(osp.join(ROOT, cfg.model.distill.teacher_config)).model)
        torch.save(dict(state_dict=teacher.state_dict()), tmp_path / 't.pth')
        cfg.model.distill.teacher_checkpoint = str(tmp_path / 't.pth')
    stage2 = 'stage2' in path
    if stage2:
        assert cfg.load_from.endswith('stage1_w32a1/epoch_256.pth') and cfg.custom_hooks[0].type == 'ReBNNHook'
    torch.manual_seed(0)
    model = CLS_MODELS.build(cfg.model)
    model.init_weights()
    conv = model.backbone.layer1[0].conv1
    if 'real_' in path:
        assert type(conv) is torch.nn.Conv2d
    else:
        assert conv.weight_binarizer == ('rebnn' if stage2 or 'shapes' in path else 'none')
        assert conv.act_binarizer == 'rsign'
    num_classes = cfg.model.num_classes
    data = model.data_preprocessor(dict(inputs=[torch.randint(0, 255, (3, 64, 64), dtype=torch.uint8)] * 2,
                                        data_samples=[0, num_classes - 1]), True)
    losses = model(**data, mode='loss')
    loss = sum(losses.values())
    loss.backward()
    assert torch.isfinite(loss) and conv.weight.grad is not None
    if 'distill' in cfg.model:
        assert losses['loss_cls'].item() == 0.0 and losses['loss_distill'].item() > 0  # distributional loss alone
        assert not any('teacher' in k for k in model.state_dict())
    model.eval()
    with torch.no_grad():
        preds = model(**model.data_preprocessor(dict(
            inputs=[torch.zeros(3, 64, 64, dtype=torch.uint8)], data_samples=[1]), False), mode='predict')
    assert preds[0]['gt_label'] == 1 and preds[0]['pred_score'].shape == (num_classes, )


def test_distilled_classifier_loss_is_the_formula_and_errors_are_clear(tmp_path):
    cfg = Config.fromfile(CROPS)
    teacher_cfg = cfg.copy()
    teacher_cfg.model.backbone = dict(type='ResNet', depth=18, base_channels=32, stem_channels=32, out_indices=(3, ))
    teacher_cfg.dump(str(tmp_path / 'teacher.py'))
    torch.manual_seed(1)
    teacher = CLS_MODELS.build(teacher_cfg.model)
    torch.save(dict(state_dict=teacher.state_dict()), tmp_path / 'teacher.pth')
    model_cfg = dict(cfg.model, type='DistilledBackboneClassifier', distill=dict(
        teacher_config=str(tmp_path / 'teacher.py'), teacher_checkpoint=str(tmp_path / 'teacher.pth'), weight=0.5,
        temperature=2.0))
    torch.manual_seed(0)
    model = CLS_MODELS.build(model_cfg)
    assert isinstance(model, DistilledBackboneClassifier) and model.teacher is None
    x = torch.randn(3, 3, 32, 32)
    samples = [0, 1, 2]
    model.train()
    losses = model.loss(x, samples)
    assert model.teacher is not None and not model.teacher.training
    assert all(not p.requires_grad for p in model.teacher.parameters())
    teacher.eval()
    with torch.no_grad():
        expected = 0.5 * soft_cross_entropy(model.logits(x), teacher.logits(x), 2.0)
        ce = torch.nn.functional.cross_entropy(model.logits(x), torch.tensor(samples))
        plain = CLS_MODELS.build(cfg.model)
        plain.load_state_dict(model.state_dict())
        plain.train()
    assert losses['loss_distill'].item() == pytest.approx(expected.item(), rel=1e-5)
    assert losses['loss_cls'].item() == pytest.approx(ce.item(), rel=1e-5)
    assert set(model.state_dict()) == set(plain.state_dict())

    with pytest.raises(ValueError, match=r"unknown keys \['feature_weight'\]"):
        CLS_MODELS.build(dict(model_cfg, distill=dict(model_cfg['distill'], feature_weight=1.0)))
    with pytest.raises(ValueError, match='temperature > 0'):
        CLS_MODELS.build(dict(model_cfg, distill=dict(model_cfg['distill'], temperature=0)))
    missing = CLS_MODELS.build(dict(model_cfg, distill=dict(model_cfg['distill'],
                                                            teacher_checkpoint=str(tmp_path / 'none.pth'))))
    with pytest.raises(FileNotFoundError, match='none.pth'):
        missing.loss(x, samples)
    teacher_cfg.model.num_classes = 5
    teacher_cfg.dump(str(tmp_path / 'teacher5.py'))
    torch.save(dict(state_dict=CLS_MODELS.build(teacher_cfg.model).state_dict()), tmp_path / 'teacher5.pth')
    other = CLS_MODELS.build(dict(model_cfg, distill=dict(model_cfg['distill'], teacher_config=str(
        tmp_path / 'teacher5.py'), teacher_checkpoint=str(tmp_path / 'teacher5.pth'))))
    with pytest.raises(ValueError, match=r"teacher's logits \(3, 5\) do not match the student's \(3, 12\)"):
        other.loss(x, samples)


def test_missing_imagenet_names_the_layout():
    from rebnn_det.apis.data_check import check_data_paths
    cfg = Config.fromfile(osp.join(CLS, 'rebnn_resnet18_8xb32_in1k_stage1_w32a1.py'))
    cfg.train_dataloader.dataset.data_root = '/nonexistent/imagenet'
    with pytest.raises(FileNotFoundError, match=r"ImageNet-1k \(mmpretrain layout\) data not found: "
                                                r"train_dataloader.dataset expects '/nonexistent/imagenet/train'"):
        check_data_paths(cfg)


def _fake_imagenet(root, classes=('n01', 'n02', 'n03'), per_class=2):
    import cv2
    import numpy as np
    lines = []
    for label, wnid in enumerate(classes):
        folder = osp.join(root, 'train', wnid)
        __import__('os').makedirs(folder, exist_ok=True)
        for i in range(per_class):
            img = np.full((40 + 8 * i, 60, 3), 40 * label + i, np.uint8)
            cv2.imwrite(osp.join(folder, f'{wnid}_{i}.JPEG'), img)
            lines.append(f'{wnid}/{wnid}_{i}.JPEG {label}')
    __import__('os').makedirs(osp.join(root, 'meta'), exist_ok=True)
    with open(osp.join(root, 'meta', 'train.txt'), 'w') as f:
        f.write('\n'.join(lines) + '\n')


def test_image_list_dataset_reads_the_imagenet_layout(tmp_path):
    """The ImageNet config's train pipeline on a 3-class folder in mmpretrain's layout: ann_file lines and the
    folder-per-class listing give the same samples; bad lines and labels are named."""
    from mmdet.registry import DATASETS
    root = str(tmp_path / 'imagenet')
    _fake_imagenet(root)
    cfg = Config.fromfile(osp.join(CLS, 'rebnn_resnet18_8xb32_in1k_stage1_w32a1.py'))
    ds_cfg = cfg.train_dataloader.dataset
    ds_cfg.update(data_root=root, num_classes=3)
    ds = DATASETS.build(ds_cfg)
    assert len(ds) == 6 and [ds.get_data_info(i)['gt_label'] for i in range(6)] == [0, 0, 1, 1, 2, 2]
    sample = ds[3]
    assert tuple(sample['inputs'].shape) == (3, 224, 224) and sample['data_samples'] == 1
    # values of class 1, image 1 (41) survive the crop/resize/flip (a constant image)
    assert sample['inputs'].float().mean().item() == pytest.approx(41, abs=1)
    folders = DATASETS.build(dict(ds_cfg, ann_file=''))
    assert [folders.get_data_info(i)['img_path'] for i in range(6)] == [ds.get_data_info(i)['img_path']
                                                                        for i in range(6)]
    assert folders.metainfo['classes'] == ('n01', 'n02', 'n03')
    with pytest.raises(ValueError, match=r'3 class folders, but num_classes=4'):
        DATASETS.build(dict(ds_cfg, ann_file='', num_classes=4))
    with pytest.raises(ValueError, match='no images found'):
        DATASETS.build(dict(ds_cfg, ann_file='', num_classes=None, data_prefix=dict(img_path='meta')))
    with open(osp.join(root, 'meta', 'train.txt'), 'a') as f:
        f.write('n03/n03_0.JPEG 7\n')
    with pytest.raises(ValueError, match=r"label 7 of 'n03/n03_0.JPEG' is not in 0..2"):
        DATASETS.build(ds_cfg)
    with open(osp.join(root, 'meta', 'train.txt'), 'a') as f:
        f.write('just-a-path\n')
    with pytest.raises(ValueError, match=r'train.txt:8: expected "<relative image path> <label>"'):
        DATASETS.build(ds_cfg)


def test_random_resized_crop_and_accuracy_by_hand():
    import numpy as np

    from rebnn_det.datasets import RandomResizedCrop
    from rebnn_det.evaluation import ClassificationAccuracy
    crop = RandomResizedCrop(scale=8, crop_scale=(0.25, 0.25), ratio=(1.0, 1.0))
    rng = np.random.RandomState(0)
    for _ in range(20):  # area 1/4 of 40x40 at ratio 1: a 20x20 square inside the image
        y, x, h, w = crop.crop_box(40, 40, rng)
        assert (h, w) == (20, 20) and 0 <= y <= 20 and 0 <= x <= 20
    wide = RandomResizedCrop(scale=8, crop_scale=(1.0, 1.0), ratio=(1.0, 1.0))
    assert wide.crop_box(10, 40, rng) == (0, 15, 10, 10)  # never fits: the central square of the nearest ratio
    with pytest.raises(ValueError, match='interpolation must be one of'):
        RandomResizedCrop(scale=8, interpolation='area')
    metric = ClassificationAccuracy(topk=(1, 2))
    scores = [torch.tensor([0.7, 0.2, 0.1]), torch.tensor([0.2, 0.5, 0.3]), torch.tensor([0.1, 0.3, 0.6])]
    metric.process({}, [dict(pred_score=s, gt_label=g) for s, g in zip(scores, [0, 2, 1])])
    # top1: only the first is right (1/3); top2: first, second (0.5, 0.3 holds 2), third (0.6, 0.3 holds 1): 3/3
    result = metric.compute_metrics(metric.results)
    assert result['top1'] == pytest.approx(100 / 3) and result['top2'] == pytest.approx(100.0)
    with pytest.raises(ValueError, match='topk must be ints >= 1'):
        ClassificationAccuracy(topk=(0, ))
    five = ClassificationAccuracy(topk=(1, 5))
    with pytest.raises(ValueError, match=r'topk \(1, 5\) needs at least 5 classes, the model scores 3'):
        five.process({}, [dict(pred_score=scores[0], gt_label=0)])
    with pytest.raises(ValueError, match='no predictions'):
        five.compute_metrics([])
