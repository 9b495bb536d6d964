"""Deploy mode (XNOR-popcount kernels) vs the fp32-simulated binary model vs the real-valued model.

    .venv/bin/python bench/bench_deploy.py --part backbone [--size 800 1216] [--reps 10]
    .venv/bin/python bench/bench_deploy.py --part detector [--num-images 100]

``backbone``: ReBNNResNet-18 + BinaryFPN (256 channels, 5 levels, as configs/rebnn_faster_rcnn.py) at 800x1216,
batch 1, threads = cores, median of interleaved forwards of: ``deploy`` (convert_to_deploy, fused epilogues),
``deploy unfused`` (packed convs, BN/add/RPReLU as separate torch ops: what fusion buys), ``simulated`` (the
training graph, fp32) and ``real`` (mmdet ResNet-18 + FPN). Peak activation memory of one forward is measured in
a fresh subprocess per model: the rise of the process's peak resident set (``VmHWM`` in /proc/self/status, reset
through /proc/self/clear_refs after a warm-up forward and ``malloc_trim``) above the resident set before the
forward -- i.e. everything the forward allocates at its peak (activations, packed buffers, workspace).

``detector``: images/s of the whole Faster R-CNN (configs/shapes/*_faster_rcnn_shapes.py: 128-px images of the
embedded shapes val set, batch 1, data preprocessing included, loading excluded), deploy vs simulated vs real,
interleaved per image. Weights are random unless ``--checkpoint`` (binary model) / ``--real-checkpoint`` are given.
"""
import argparse
import copy
import json
import os
import statistics
import subprocess
import sys
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from bench.machine import peak_rise_mib  # noqa: E402


def _setup():
    from mmengine.registry import init_default_scope

    import rebnn_det.plugin  # noqa: F401  registers everything
    init_default_scope('mmdet')


def backbone_neck(kind: str):
    """The model measured by --part backbone: 'simulated', 'deploy', 'deploy_unfused' or 'real'."""
    from mmdet.models.backbones import ResNet
    from mmdet.models.necks import FPN
    from torch import nn

    from rebnn_det.deploy.convert import convert_to_deploy
    from rebnn_det.models.backbones.rebnn_resnet import ReBNNResNet
    from rebnn_det.models.necks.binary_fpn import BinaryFPN
    if kind == 'real':
        backbone, neck = ResNet(depth=18, out_indices=(0, 1, 2, 3)), FPN([64, 128, 256, 512], 256, 5)
    else:
        backbone, neck = ReBNNResNet(depth=18), BinaryFPN([64, 128, 256, 512], 256, 5)
    model = nn.Sequential(backbone, neck).eval()
    if kind.startswith('deploy'):
        convert_to_deploy(model, fuse=kind == 'deploy')
    return model


def memory_child(kind: str, size) -> dict:
    _setup()
    torch.set_num_threads(os.cpu_count())
    model = backbone_neck(kind)
    x = torch.randn(1, 3, *size)
    with torch.no_grad():
        model(x)  # warm-up: one-time allocations (oneDNN primitives, thread pools) are not activations
        rise, _ = peak_rise_mib(lambda: model(x))
    return dict(kind=kind, peak_mib=rise)


def bench_backbone(args):
    _setup()
    torch.set_num_threads(args.threads)
    kinds = ['deploy', 'deploy_unfused', 'simulated', 'real']
    models = {k: backbone_neck(k) for k in kinds}
    x = torch.randn(1, 3, *args.size)
    times = {k: [] for k in kinds}
    with torch.no_grad():
        for _ in range(args.warmup):
            for m in models.values():
                m(x)
        for _ in range(args.reps):
            for k, m in models.items():
                t = time.perf_counter()
                m(x)
                times[k].append(time.perf_counter() - t)
    memory = {}
    for k in kinds:
        res = subprocess.run([sys.executable, os.path.abspath(__file__), '--memory-child', k, '--size',
                              *map(str, args.size)], capture_output=True, text=True, check=True)
        memory[k] = json.loads(res.stdout.strip().splitlines()[-1])['peak_mib']
    med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    print(f'# ReBNNResNet-18 + BinaryFPN at {args.size[0]}x{args.size[1]}, batch 1, {args.threads} threads, '
          f'median of {args.reps} interleaved forwards')
    print('| model | ms | vs real | peak activation memory (MiB) |')
    print('|---|---|---|---|')
    for k in kinds:
        print(f'| {k} | {med[k]:.1f} | {med["real"] / med[k]:.2f}x faster | {memory[k]:.0f} |')


def bench_detector(args):
    from mmdet.registry import MODELS
    from mmengine.config import Config
    from mmengine.runner import Runner, load_checkpoint

    from rebnn_det.deploy.convert import convert_to_deploy
    _setup()
    torch.set_num_threads(args.threads)
    import logging

    from mmengine.logging import MMLogger
    MMLogger.get_current_instance().setLevel(logging.WARNING)  # no per-parameter init report
    cfgs = {k: Config.fromfile(os.path.join(ROOT, 'configs', 'shapes', f'{name}_faster_rcnn_shapes.py'))
            for k, name in (('binary', 'rebnn'), ('real', 'real'))}
    torch.manual_seed(0)
    models = {}
    for k, cfg in cfgs.items():
        model = MODELS.build(cfg.model)
        model.init_weights()
        if k == 'binary' and args.checkpoint:
            load_checkpoint(model, args.checkpoint, map_location='cpu', logger='silent')
        if k == 'real' and args.real_checkpoint:
            load_checkpoint(model, args.real_checkpoint, map_location='cpu', logger='silent')
        models['simulated' if k == 'binary' else 'real'] = model.eval()
    models['deploy'] = convert_to_deploy(copy.deepcopy(models['simulated']))
    loader_cfg = copy.deepcopy(cfgs['binary'].test_dataloader)
    loader_cfg.update(batch_size=1, num_workers=0, persistent_workers=False)
    loader_cfg.dataset.data_root = os.path.join(ROOT, loader_cfg.dataset.data_root)
    loader = Runner.build_dataloader(loader_cfg)
    batches = [b for _, b in zip(range(args.num_images), loader)]
    kinds = ['deploy', 'simulated', 'real']
    total = {k: 0.0 for k in kinds}
    with torch.no_grad():
        for m in models.values():
            m.test_step(copy.deepcopy(batches[0]))  # warm-up
        for i, batch in enumerate(batches):
            for k in kinds[i % 3:] + kinds[:i % 3]:  # rotate the order: interleaved and fair
                b = copy.deepcopy(batch)
                t = time.perf_counter()
                models[k].test_step(b)
                total[k] += time.perf_counter() - t
    print(f'# whole Faster R-CNN (configs/shapes, {len(batches)} val images, batch 1, {args.threads} threads)')
    print('| model | images/s | vs real |')
    print('|---|---|---|')
    for k in kinds:
        print(f'| {k} | {len(batches) / total[k]:.1f} | {total["real"] / total[k]:.2f}x |')


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--part', choices=['backbone', 'detector', 'all'], default='all')
    parser.add_argument('--size', type=int, nargs=2, default=[800, 1216])
    parser.add_argument('--reps', type=int, default=10)
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--threads', type=int, default=os.cpu_count())
    parser.add_argument('--num-images', type=int, default=100)
    parser.add_argument('--checkpoint', default=None, help='trained binary shapes checkpoint (detector part)')
    parser.add_argument('--real-checkpoint', default=None,
                        help='trained real-valued shapes checkpoint (detector part; untrained weights give fewer '
                             'boxes above the score threshold, i.e. less post-processing work)')
    parser.add_argument('--memory-child', default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_child:
        print(json.dumps(memory_child(args.memory_child, args.size)))
        return
    if args.part in ('backbone', 'all'):
        bench_backbone(args)
    if args.part in ('detector', 'all'):
        bench_detector(args)


if __name__ == '__main__':
    main()
