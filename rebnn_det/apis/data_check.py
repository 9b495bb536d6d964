"""Clear errors for a missing COCO/VOC directory, before mmdet fails deep inside a dataset."""
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
}


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


def check_data_paths(cfg: Config) -> None:
    """Raise ``FileNotFoundError`` naming the expected layout when a COCO/VOC dataset of the config is missing.

    Only real-data datasets are checked (``CocoDataset``, ``VOCDataset``); the embedded ``ShapesDataset`` is
    generated on first use.
    """
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        if cfg.get(loader) is None:
            continue
        for ds in _datasets(cfg[loader].get('dataset')):
            kind = ds.get('type')
            if kind not in LAYOUTS:
                continue
            root = ds.get('data_root') or ''
            ann = ds.get('ann_file') or ''
            path = ann if osp.isabs(ann) else osp.join(root, ann)
            if osp.exists(path) and (not root or osp.isdir(root)):
                continue
            name, layout = LAYOUTS[kind]
            raise FileNotFoundError(
                f'{name} data not found: {loader}.dataset expects {path!r} (data_root={root!r}).\n'
                f'Expected layout:\n{layout.format(root=root or "<data_root>/")}\n'
                f'Put (or symlink) the dataset there, e.g. `ln -s /path/to/dataset {root.rstrip("/") or "data"}`, '
                f'or point the config at it: --cfg-options {loader}.dataset.data_root=/path/to/dataset/ '
                '(and the evaluator ann_file for COCO), or edit data_root in a config that inherits this one.')
