"""Clear errors for a missing COCO/VOC/ImageNet directory, before mmdet fails deep inside a dataset."""
import os.path as osp
from typing import Iterator

from mmengine.config import Config, ConfigDict

LAYOUTS = {
    'CocoDataset': ('COCO 2017', """{root}
  annotations/instances_train2017.json
  annotations/instances_val2017.json
  train2017/*.jpg
  val2017/*.jpg"""),
    'VOCDataset': ('PASCAL VOC', """{root}
  VOC2007/Annotations/*.xml  VOC2007/ImageSets/Main/{{trainval,test}}.txt  VOC2007/JPEGImages/*.jpg
  VOC2012/Annotations/*.xml  VOC2012/ImageSets/Main/trainval.txt         VOC2012/JPEGImages/*.jpg"""),
    'ImageListDataset': ('ImageNet-1k (mmpretrain layout)', """{root}
  train/n01440764/*.JPEG ...   (one folder per class)
  val/*.JPEG or val/<class>/*.JPEG
  meta/train.txt  meta/val.txt   ("relative/path label" per line; without ann_file: one folder per class)"""),
}


def _expected_path(ds) -> str:
    """The file or folder a dataset config reads first: its annotation file (COCO/VOC), or for an image list
    (ImageNet) the split's image folder."""
    root = ds.get('data_root') or ''
    if ds.get('type') == 'ImageListDataset':
        prefix = (ds.get('data_prefix') or {}).get('img_path', 'train')
        return prefix if osp.isabs(prefix) else osp.join(root, prefix)
    ann = ds.get('ann_file') or ''
    return ann if osp.isabs(ann) else osp.join(root, ann)


def _datasets(cfg) -> Iterator[ConfigDict]:
    if isinstance(cfg, (list, tuple)):
        for c in cfg:
            yield from _datasets(c)
    elif isinstance(cfg, dict):
        if 'datasets' in cfg:
            yield from _datasets(cfg['datasets'])
        elif 'dataset' in cfg:
            yield from _datasets(cfg['dataset'])
        else:
            yield cfg


# What each command reads: training validates with the val split, testing reads only the test split.
LOADERS = {'train': ('train_dataloader', 'val_dataloader'), 'test': ('test_dataloader',)}
EVALUATORS = {'train': ('val_evaluator',), 'test': ('test_evaluator',)}


def _evaluator_ann_files(cfg, key: str) -> Iterator[str]:
    evaluators = cfg.get(key)
    for ev in evaluators if isinstance(evaluators, (list, tuple)) else [evaluators]:
        if isinstance(ev, dict) and str(ev.get('type', '')).endswith('CocoMetric') and ev.get('ann_file'):
            yield ev['ann_file']


def check_data_paths(cfg: Config, mode: str = 'train') -> None:
    """Raise ``FileNotFoundError`` naming the expected layout when a COCO/VOC dataset that the command will read
    is missing: ``mode='train'`` checks the train and val dataloaders (and the val evaluator's ann file),
    ``mode='test'`` only the test dataloader and the test evaluator's ann file (evaluating on COCO val needs no
    training set).

    Only real-data datasets are checked (``CocoDataset``, ``VOCDataset``, ``ImageListDataset``); the
    embedded ``ShapesDataset`` / ``ShapesCropsDataset`` are generated on first use.
    """
    if mode not in LOADERS:
        raise ValueError(f'mode must be one of {sorted(LOADERS)}, got {mode!r}')
    for loader in LOADERS[mode]:
        if cfg.get(loader) is None:
            continue
        for ds in _datasets(cfg[loader].get('dataset')):
            kind = ds.get('type')
            if kind not in LAYOUTS:
                continue
            root = ds.get('data_root') or ''
            path = _expected_path(ds)
            if osp.exists(path) and (not root or osp.isdir(root)):
                continue
            name, layout = LAYOUTS[kind]
            raise FileNotFoundError(
                f'{name} data not found: {loader}.dataset expects {path!r} (data_root={root!r}).\n'
                f'Expected layout:\n{layout.format(root=root or "<data_root>/")}\n'
                f'Put (or symlink) the dataset there, e.g. `ln -s /path/to/dataset {root.rstrip("/") or "data"}`, '
                f'or point the config at it: --cfg-options {loader}.dataset.data_root=/path/to/dataset/ '
                '(and the evaluator ann_file for COCO), or edit data_root in a config that inherits this one.')
    real_data = any(ds.get('type') in LAYOUTS for loader in LOADERS[mode] if cfg.get(loader) is not None
                    for ds in _datasets(cfg[loader].get('dataset')))
    for key in EVALUATORS[mode]:
        for ann in _evaluator_ann_files(cfg, key) if real_data else ():
            if not osp.isfile(ann):
                raise FileNotFoundError(
                    f'{key}.ann_file {ann!r} not found (COCO evaluation reads the ground truth from it). Point it '
                    f'at the annotation file of the evaluated split: --cfg-options {key}.ann_file=/path/to/'
                    'instances_val2017.json')
