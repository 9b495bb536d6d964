"""Test helpers: record what every ReBNNConv really convolves."""
import contextlib

import torch

from rebnn_det.ops import ReBNNConv, named_binary_convs


@contextlib.contextmanager
def record_binary_operands(model):
    """Yields a dict ``name -> (input, weight)`` filled by every ReBNNConv forward inside the block."""
    seen = {}
    originals = {}
    for name, m in named_binary_convs(model):
        originals[name] = m._conv_forward

        def spy(x, w, b, _name=name, _orig=m._conv_forward):
            seen[_name] = (x.detach(), w.detach())
            return _orig(x, w, b)
        m._conv_forward = spy
    try:
        yield seen
    finally:
        for name, m in named_binary_convs(model):
            del m._conv_forward


def assert_operands_binary(model, seen):
    """Every rebnn/xnor layer saw activations in {-1, +1} and weights in {-alpha_i, +alpha_i}."""
    layers = dict(named_binary_convs(model))
    assert seen and set(seen) == set(layers), set(layers) - set(seen)
    for name, (x, w) in seen.items():
        m: ReBNNConv = layers[name]
        if m.act_binarizer != 'none':
            assert set(x.unique().tolist()) <= {-1.0, 1.0}, name
        if m.weight_binarizer == 'rebnn':
            scale = m.alpha.detach().view(-1, 1, 1, 1)
            assert torch.allclose(w.abs(), scale.expand_as(w)), name
            assert torch.equal(torch.sign(w), torch.where(m.weight < 0, -1.0, 1.0)), name


def _subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def clear_visualizers():
    """Forget mmengine's visualizer instances (one per name per process), as a fresh tools/train.py or
    tools/test.py process starts: the next runner then writes into its own work_dir."""
    from mmengine.visualization import Visualizer
    for cls in (Visualizer, *_subclasses(Visualizer)):
        cls._instance_dict.clear()


def one_weight_runner(work_dir: str, epochs: int, **runner_kwargs):
    """An mmengine Runner training ``loss = w * x`` (one weight, SGD lr 0.1, two samples per epoch): the smallest
    real training run, for checkpoint and resume tests."""
    from mmengine.model import BaseModel
    from mmengine.runner import Runner

    class OneWeight(BaseModel):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(1))

        def forward(self, x, mode='loss'):
            return dict(loss=(self.w * x).sum())
    runner_kwargs.setdefault('experiment_name', f'one_weight_{abs(hash(work_dir))}')
    return Runner(model=OneWeight(), work_dir=work_dir, default_scope='mmdet',
                  train_dataloader=dict(dataset=[dict(x=torch.ones(1))] * 2, batch_size=1, num_workers=0,
                                        sampler=dict(type='DefaultSampler', shuffle=False),
                                        collate_fn=dict(type='default_collate')),
                  optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
                  train_cfg=dict(by_epoch=True, max_epochs=epochs), **runner_kwargs)


def save_teacher(cfg, folder, name: str = 'teacher', seed: int = 1):
    """A distillation teacher for tests: ``cfg`` (an mmengine Config) dumped to ``folder/name.py`` and its model,
    initialised (``init_weights``, seed ``seed``), saved as the checkpoint ``folder/name.pth``. Returns
    ``(config file, checkpoint)``."""
    import os.path as osp

    from mmdet.registry import MODELS
    config, checkpoint = osp.join(str(folder), f'{name}.py'), osp.join(str(folder), f'{name}.pth')
    cfg.dump(config)
    torch.manual_seed(seed)
    teacher = MODELS.build(cfg.model)
    teacher.init_weights()
    torch.save(dict(state_dict=teacher.state_dict(), meta={}), checkpoint)
    return config, checkpoint
