"""Train-step time of Faster R-CNN: ReBNN-binary (with / without ReBNNHook, with distillation from a real
teacher) vs mmdet's real ResNet-18 + FPN.

    python bench/bench_train_step.py [--steps 12] [--batch 2] [--size 320 320] [--device cpu]

Same input for every variant; variants are interleaved step by step (round robin) so machine noise hits all of
them alike; the table reports median seconds per step and the ratios measured in this one run.
"""
import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), '..')))

from mmdet.registry import MODELS  # noqa: E402
from mmdet.testing import demo_mm_inputs  # noqa: E402
from mmengine.config import Config  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402

import rebnn_det.plugin  # noqa: E402,F401
from rebnn_det.engine import ReBNNRegularizer  # noqa: E402
from rebnn_det.ops import binary_weight_layers  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VARIANTS = {
    'real R18-FPN (mmdet)': ('configs/real_faster_rcnn.py', False),
    'ReBNN R18-FPN, no hook': ('configs/rebnn_faster_rcnn.py', False),
    'ReBNN R18-FPN + ReBNNHook': ('configs/rebnn_faster_rcnn.py', True),
    # the real teacher's forward (no grad) + the PKD and logit losses; the teacher is constructor-initialised
    'ReBNN R18-FPN + ReBNNHook + distillation': ('configs/rebnn_faster_rcnn_distill.py', True),
}


def _stand_in_teacher(cfg, folder):
    """The distill config's teacher, constructor-initialised and saved (timing does not depend on training)."""
    teacher_cfg = os.path.join(ROOT, cfg.model.distill.teacher_config)
    torch.manual_seed(1)
    teacher = MODELS.build(Config.fromfile(teacher_cfg).model)
    checkpoint = os.path.join(folder, 'teacher.pth')
    torch.save(dict(state_dict=teacher.state_dict(), meta={}), checkpoint)
    cfg.model.distill.update(teacher_config=teacher_cfg, teacher_checkpoint=checkpoint)


def build(config, with_hook, device, folder):
    cfg = Config.fromfile(os.path.join(ROOT, config))
    if 'distill' in cfg.model:
        _stand_in_teacher(cfg, folder)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model).to(device)  # constructor init is enough for timing (alpha = mean|w|)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
    if with_hook:
        layers = binary_weight_layers(model)
        ReBNNRegularizer(layers, 'adaptive').attach(opt)
    return model, opt


def step(model, opt, packed):
    data = model.data_preprocessor(packed, True)
    loss, _ = model.parse_losses(model(**data, mode='loss'))
    opt.zero_grad()
    loss.backward()
    opt.step()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--steps', type=int, default=12)
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--batch', type=int, default=2)
    parser.add_argument('--size', type=int, nargs=2, default=(320, 320), metavar=('H', 'W'))
    parser.add_argument('--device', default='cpu')
    args = parser.parse_args()
    init_default_scope('mmdet')
    torch.manual_seed(0)
    packed = demo_mm_inputs(args.batch, [(3, *args.size)] * args.batch, num_items=[4] * args.batch,
                            num_classes=80, device=args.device)
    folder = tempfile.mkdtemp(prefix='bench_train_step_')
    models = {name: build(cfg, hook, args.device, folder) for name, (cfg, hook) in VARIANTS.items()}
    times = {name: [] for name in models}
    sync = torch.cuda.synchronize if args.device.startswith('cuda') else (lambda: None)
    for i in range(args.warmup + args.steps):
        for name, (model, opt) in models.items():
            sync()
            t0 = time.perf_counter()
            step(model, opt, packed)
            sync()
            if i >= args.warmup:
                times[name].append(time.perf_counter() - t0)
    med = {n: statistics.median(t) for n, t in times.items()}
    ref = med['real R18-FPN (mmdet)']
    no_hook = med['ReBNN R18-FPN, no hook']
    print(f'\nFaster R-CNN train step, batch {args.batch}, {args.size[0]}x{args.size[1]}, {args.device}, '
          f'torch {torch.__version__}, {torch.get_num_threads()} threads, median of {args.steps} steps')
    print('| variant | median s/step | / real | / ReBNN no hook |\n|---|---|---|---|')
    for n, m in med.items():
        print(f'| {n} | {m:.3f} | {m / ref:.3f} | {m / no_hook:.3f} |')
    shutil.rmtree(folder, ignore_errors=True)


if __name__ == '__main__':
    main()
