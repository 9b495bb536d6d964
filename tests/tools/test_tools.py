"""Command lines: mmdet-compatible flags, data checks, an end-to-end train/test/plot on a tiny shapes set,
and 2-process gloo DDP through tools/dist_train.sh."""
import glob
import os
import os.path as osp
import socket
import subprocess
import sys

import pytest
import torch
from mmdet.registry import MODELS
from mmengine.config import Config

from rebnn_det.apis import check_data_paths, cli, train_config
from rebnn_det.apis.cli import test_config as make_test_config

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SHAPES = osp.join(ROOT, 'configs', 'shapes', 'rebnn_faster_rcnn_shapes.py')
COCO = osp.join(ROOT, 'configs', 'rebnn_faster_rcnn.py')


def tiny_shapes_options(data_root, iters=2):
    """cfg-options shrinking the demo to a few 64-px images and one short epoch."""
    root = str(data_root) + '/'
    opts = [f'train_dataloader.dataset.data_root={root}', 'train_dataloader.dataset.num_images=8',
            'train_dataloader.dataset.img_size=64', 'train_dataloader.batch_size=4',
            'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
            f'val_dataloader.dataset.data_root={root}', 'val_dataloader.dataset.num_images=4',
            'val_dataloader.dataset.img_size=64', 'val_dataloader.num_workers=0',
            'val_dataloader.persistent_workers=False',
            f'test_dataloader.dataset.data_root={root}', 'test_dataloader.dataset.num_images=4',
            'test_dataloader.dataset.img_size=64', 'test_dataloader.num_workers=0',
            'test_dataloader.persistent_workers=False',
            f'val_evaluator.ann_file={root}annotations/instances_val.json',
            f'test_evaluator.ann_file={root}annotations/instances_val.json',
            'train_cfg.max_epochs=1', 'train_cfg.val_interval=1', 'default_hooks.logger.interval=1']
    return opts


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def run_tool(*args, env=None):
    # one thread: tiny convolutions on a shared 2-core machine are several times faster without thread contention
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, OMP_NUM_THREADS='1', **(env or {})))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def test_train_flags_map_to_config(tmp_path, monkeypatch):
    monkeypatch.setattr(cli, 'amp_device_available', lambda: True)  # the flag mapping, as on a GPU machine
    torch.save(dict(meta=dict(epoch=3, iter=9), state_dict=dict(w=torch.ones(1)), optimizer={}, message_hub={}),
               tmp_path / 'epoch_3.pth')
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'epoch_3.pth'))
    cfg = train_config([COCO, '--work-dir', str(tmp_path), '--amp', '--auto-scale-lr', '--resume',
                        '--cfg-options', 'train_cfg.max_epochs=3'])
    assert cfg.work_dir == str(tmp_path)
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper' and cfg.optim_wrapper.loss_scale == 'dynamic'
    assert cfg.auto_scale_lr.enable and cfg.train_cfg.max_epochs == 3
    assert cfg.resume is True and cfg.load_from == str(tmp_path / 'epoch_3.pth')
    cfg = train_config([COCO])
    assert cfg.work_dir == './work_dirs/rebnn_faster_rcnn' and not cfg.get('resume', False)
    with pytest.raises(FileNotFoundError, match="--resume checkpoint 'nope.pth' does not exist"):
        train_config([COCO, '--resume', 'nope.pth'])
    if not torch.cuda.is_available():
        cfg = train_config([COCO, '--launcher', 'pytorch'])
        assert cfg.env_cfg.dist_cfg.backend == 'gloo' and cfg.model_wrapper_cfg.device_ids is None


def test_amp_without_gpu_says_it_needs_one(monkeypatch):
    monkeypatch.setattr(cli, 'amp_device_available', lambda: False)
    with pytest.raises(RuntimeError, match=r'mixed precision \(--amp, AmpOptimWrapper\) needs a GPU'):
        train_config([COCO, '--amp'])
    cfg = Config.fromfile(SHAPES)
    cfg.optim_wrapper.type = 'AmpOptimWrapper'  # a config asking for it fails as clearly, before any folder
    with pytest.raises(RuntimeError, match='needs a GPU'):
        cli.build_runner(cfg, check_data=False)
    assert cli.amp_device_available() == torch.cuda.is_available()  # this CPU torch has no NPU/MLU/MUSA either


def test_resume_accepts_a_work_dir_and_says_when_there_is_nothing_to_resume(tmp_path):
    run_dir = tmp_path / 'old_run'
    run_dir.mkdir()
    with pytest.raises(FileNotFoundError, match=rf"--resume '{run_dir}': no checkpoint to resume in this directory "
                                                r'\(it has no last_checkpoint file and no complete epoch_N\.pth'):
        train_config([SHAPES, '--resume', str(run_dir)])
    (run_dir / 'last_checkpoint').write_text(str(run_dir / 'epoch_2.pth'))
    with pytest.raises(FileNotFoundError, match=r"names '.*epoch_2.pth', which does not exist"):
        train_config([SHAPES, '--resume', str(run_dir)])
    (run_dir / 'epoch_2.pth').write_bytes(b'')  # cut off while it was written
    with pytest.raises(FileNotFoundError, match=r"its last_checkpoint names '.*epoch_2.pth', which is truncated"):
        train_config([SHAPES, '--resume', str(run_dir)])
    torch.save(dict(meta=dict(epoch=2, iter=8), state_dict=dict(w=torch.ones(1)), optimizer={}, message_hub={}),
               run_dir / 'epoch_2.pth')
    cfg = train_config([SHAPES, '--work-dir', str(tmp_path / 'new'), '--resume', str(run_dir)])
    assert cfg.resume is True and cfg.load_from == str(run_dir / 'epoch_2.pth')
    os.remove(run_dir / 'last_checkpoint')  # a run killed before mmengine wrote it: the newest complete one
    with pytest.warns(UserWarning, match=rf"--resume: the directory '{run_dir}': it has no last_checkpoint file; "
                                         r"resuming from the newest complete checkpoint '.*epoch_2\.pth'"):
        cfg = train_config([SHAPES, '--work-dir', str(tmp_path / 'new'), '--resume', str(run_dir)])
    assert cfg.resume is True and cfg.load_from == str(run_dir / 'epoch_2.pth')
    # bare --resume in a work dir without checkpoints: a plain warning, then a new run (from load_from if set)
    stage2 = osp.join(ROOT, 'configs', 'shapes', 'rebnn_faster_rcnn_shapes_stage2_w1a1.py')
    with pytest.warns(UserWarning, match=r"--resume: no checkpoint to resume in the work dir '.*empty' \(it does not "
                      r'exist yet\): training starts from the beginning \(from load_from='):
        cfg = train_config([stage2, '--work-dir', str(tmp_path / 'empty'), '--resume'])
    assert cfg.resume is False and cfg.load_from.endswith('stage1_w32a1/epoch_4.pth')


def test_test_flags_map_to_config(tmp_path):
    ckpt = tmp_path / 'c.pth'
    ckpt.write_bytes(b'')
    cfg = make_test_config([COCO, str(ckpt), '--out', str(tmp_path / 'r.pkl'), '--show-dir', 'vis'])
    # loaded and checked against the model by CheckedLoadHook, not by mmengine's non-strict load_from
    assert cfg.load_from is None
    assert cfg.custom_hooks[-1] == dict(type='CheckedLoadHook', checkpoint=str(ckpt), strict=True)
    partial = make_test_config([COCO, str(ckpt), '--allow-partial'])
    assert partial.custom_hooks[-1] == dict(type='CheckedLoadHook', checkpoint=str(ckpt), strict=False)
    assert cfg.test_evaluator[-1] == dict(type='DumpDetResults', out_file_path=str(tmp_path / 'r.pkl'))
    assert cfg.default_hooks.visualization.draw and cfg.default_hooks.visualization.test_out_dir == 'vis'
    with pytest.raises(ValueError, match=r'--out must be a \.pkl/\.pickle file'):
        make_test_config([COCO, str(ckpt), '--out', 'r.json'])
    with pytest.raises(FileNotFoundError, match="checkpoint 'missing.pth' does not exist"):
        make_test_config([COCO, 'missing.pth'])
    with pytest.raises(FileNotFoundError, match=f"checkpoint '{tmp_path}' is a directory; pass a checkpoint file"):
        make_test_config([COCO, str(tmp_path)])
    assert not any(h.get('type') == 'BinaryDeployHook' for h in cfg.get('custom_hooks', []))
    cfg = make_test_config([COCO, str(ckpt), '--deploy'])
    assert cfg.custom_hooks[-1] == dict(type='BinaryDeployHook')
    assert [h['type'] for h in cfg.custom_hooks[:-1]] == [h['type'] for h in Config.fromfile(COCO).custom_hooks] + [
        'CheckedLoadHook']


def test_training_gets_the_safety_hooks_unless_the_config_lists_them():
    cfg = cli.with_training_safety_hooks(Config.fromfile(SHAPES))
    assert cfg.custom_hooks == [dict(type='ReBNNHook', gamma='adaptive'), dict(type='NonFiniteGuardHook'),
                                dict(type='ExactResumeHook')]
    cfg = Config.fromfile(SHAPES)
    cfg.custom_hooks = [dict(type='mmdet.NonFiniteGuardHook', max_consecutive=10)]
    assert cli.with_training_safety_hooks(cfg).custom_hooks == [
        dict(type='mmdet.NonFiniteGuardHook', max_consecutive=10), dict(type='ExactResumeHook')]


def test_evaluation_needs_only_the_test_data(tmp_path):
    """tools/test.py on COCO val alone: no training set, no error; a missing test set is still named."""
    cfg = Config.fromfile(COCO)
    root = str(tmp_path / 'coco') + '/'
    (tmp_path / 'coco' / 'annotations').mkdir(parents=True)
    (tmp_path / 'coco' / 'annotations' / 'instances_val2017.json').write_text('{}')
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[key].dataset.data_root = root
    cfg.val_evaluator.ann_file = cfg.test_evaluator.ann_file = root + 'annotations/instances_val2017.json'
    check_data_paths(cfg, mode='test')
    with pytest.raises(FileNotFoundError, match='train_dataloader.dataset expects .*instances_train2017.json'):
        check_data_paths(cfg, mode='train')
    cfg.test_evaluator.ann_file = root + 'annotations/other.json'
    with pytest.raises(FileNotFoundError, match=r"test_evaluator.ann_file '.*other.json' not found"):
        check_data_paths(cfg, mode='test')
    cfg.test_dataloader.dataset.data_root = str(tmp_path / 'nowhere') + '/'
    with pytest.raises(FileNotFoundError, match='test_dataloader.dataset expects .*nowhere/annotations/instances_val'):
        check_data_paths(cfg, mode='test')
    with pytest.raises(ValueError, match=r"mode must be one of \['test', 'train'\], got 'val'"):
        check_data_paths(cfg, mode='val')


def test_failed_start_leaves_no_empty_timestamp_folder(tmp_path):
    work = tmp_path / 'work'
    cfg = train_config([SHAPES, '--work-dir', str(work), '--cfg-options', *tiny_shapes_options(tmp_path / 'data')])
    cfg.train_dataloader.dataset.pipeline[2].type = 'NoSuchTransform'  # fails in train(), after the runner started
    (work / 'older_run_20200101_000000').mkdir(parents=True)
    with pytest.raises(KeyError, match='NoSuchTransform'):
        cli.run(cfg, mode='train')
    assert sorted(p.name for p in work.iterdir() if p.is_dir()) == ['older_run_20200101_000000']


@pytest.mark.parametrize('config, expected', [
    ('rebnn_faster_rcnn.py', 'annotations/instances_train2017.json'),
    ('rebnn_faster_rcnn_voc.py', 'VOC2007/ImageSets/Main/trainval.txt'),
])
def test_missing_dataset_names_layout_and_data_root(tmp_path, config, expected):
    cfg = Config.fromfile(osp.join(ROOT, 'configs', config))
    root = str(tmp_path / 'nowhere') + '/'
    if config.endswith('voc.py'):
        for ds in cfg.train_dataloader.dataset.dataset.datasets:
            ds.data_root = root
    else:
        cfg.train_dataloader.dataset.data_root = root
    with pytest.raises(FileNotFoundError) as err:
        check_data_paths(cfg)
    msg = str(err.value)
    assert 'data not found' in msg and expected in msg and root in msg
    assert 'Expected layout' in msg and 'data_root=' in msg


def test_train_test_show_dir_and_plot_end_to_end(tmp_path):
    work = tmp_path / 'work'
    opts = tiny_shapes_options(tmp_path / 'data')
    out = run_tool('tools/train.py', SHAPES, '--work-dir', str(work), '--cfg-options', *opts)
    assert 'coco/bbox_mAP' in out
    ckpt = work / 'epoch_1.pth'
    assert ckpt.is_file()
    assert torch.load(ckpt, weights_only=False)['rebnn_hook']['num_steps'] == 2
    out = run_tool('tools/test.py', SHAPES, str(ckpt), '--work-dir', str(work), '--out', str(tmp_path / 'r.pkl'),
                   '--show-dir', 'shown', '--cfg-options', *opts)
    assert 'coco/bbox_mAP_50' in out and (tmp_path / 'r.pkl').is_file()
    shown = glob.glob(str(work / '*' / 'shown' / '*.jpg'))
    assert len(shown) == 4
    out = run_tool('tools/plot_oscillation.py', str(work))
    png = work / 'oscillation.png'
    assert 'oscillation plot' in out and png.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    # resume from the last checkpoint continues training for one more epoch
    run_tool('tools/train.py', SHAPES, '--work-dir', str(work), '--resume', '--cfg-options', *opts[:-3],
             'train_cfg.max_epochs=2', 'train_cfg.val_interval=2')
    assert torch.load(work / 'epoch_2.pth', weights_only=False)['rebnn_hook']['num_steps'] == 4


def test_plot_without_statistics_is_a_clear_error(tmp_path):
    from rebnn_det.apis.oscillation_plot import plot_oscillation
    with pytest.raises(FileNotFoundError, match='scalars.json'):
        plot_oscillation(str(tmp_path))
    run_dir = tmp_path / '20260101_000000' / 'vis_data'
    run_dir.mkdir(parents=True)
    (run_dir / 'scalars.json').write_text('{"loss": 1.0, "iter": 1, "step": 1}\n')
    with pytest.raises(ValueError, match='no ReBNN statistics: add custom_hooks'):
        plot_oscillation(str(tmp_path))


def test_convert_real_resnet_tool(tmp_path):
    from mmdet.models.backbones import ResNet
    torch.save(ResNet(depth=18).state_dict(), tmp_path / 'r18.pth')
    out = run_tool('tools/convert_real_resnet.py', str(tmp_path / 'r18.pth'), str(tmp_path / 'init.pth'))
    assert 'wrote' in out
    keys = torch.load(tmp_path / 'init.pth', weights_only=True)['state_dict']
    assert 'layer2.0.downsample.1.weight' in keys and 'layer2.0.downsample.0.weight' not in keys


def test_dist_train_two_gloo_processes(tmp_path):
    work = tmp_path / 'work'
    opts = tiny_shapes_options(tmp_path / 'data')
    opts = [o for o in opts if not o.startswith('train_dataloader.batch_size')] + ['train_dataloader.batch_size=2']
    proc = subprocess.run(['bash', 'tools/dist_train.sh', SHAPES, '2', '--work-dir', str(work), '--cfg-options',
                           *opts], cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, PORT=str(_free_port()), OMP_NUM_THREADS='1',
                                   PYTHON=sys.executable))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    log = open(glob.glob(str(work / '*' / '*.log'))[0]).read()
    assert 'Distributed training: True' in log and 'GPU number: 2' in log  # mmengine's name for world size
    state = torch.load(work / 'epoch_1.pth', weights_only=False)
    assert state['rebnn_hook']['num_steps'] == 2  # 8 images / (2 ranks x 2 per rank)


def test_dist_train_a_distilled_detector_on_two_gloo_processes(tmp_path):
    """DDP with a teacher: each rank loads its own frozen teacher (never wrapped by DDP, never broadcast), the
    distillation losses are logged, the checkpoint is the plain student's."""
    from tests.helpers import save_teacher
    teacher_cfg, teacher_ckpt = save_teacher(Config.fromfile(SHAPES), tmp_path)
    work = tmp_path / 'work'
    opts = tiny_shapes_options(tmp_path / 'data')
    opts = [o for o in opts if not o.startswith('train_dataloader.batch_size')] + [
        'train_dataloader.batch_size=2', 'model.type=DistilledFasterRCNN',
        f'model.distill.teacher_config={teacher_cfg}', f'model.distill.teacher_checkpoint={teacher_ckpt}']
    proc = subprocess.run(['bash', 'tools/dist_train.sh', SHAPES, '2', '--work-dir', str(work), '--cfg-options',
                           *opts], cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, PORT=str(_free_port()), OMP_NUM_THREADS='1',
                                   PYTHON=sys.executable))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    log = open(glob.glob(str(work / '*' / '*.log'))[0]).read()
    assert 'Distributed training: True' in log and 'GPU number: 2' in log
    assert 'loss_distill_fpn' in log and 'loss_distill_logits' in log
    state = torch.load(work / 'epoch_1.pth', weights_only=False)
    plain = set(MODELS.build(Config.fromfile(SHAPES).model).state_dict())
    assert set(state['state_dict']) == plain and state['rebnn_hook']['num_steps'] == 2


def test_mmdets_own_train_tool_runs_the_pretrained_and_distilled_config(tmp_path):
    """mmdet's tools/train.py (shipped in the mmdet package) with the hard set's 'both' config: the backbone is
    loaded checked from a classifier checkpoint, the teacher on the first step, the distillation losses logged."""
    import mmdet

    from rebnn_det.models import ReBNNResNet
    from tests.helpers import save_teacher
    config = osp.join(ROOT, 'configs', 'shapes', 'rebnn_faster_rcnn_shapes_hard_pretrained_distill.py')
    cfg = Config.fromfile(config)
    teacher_cfg, teacher_ckpt = save_teacher(Config.fromfile(osp.join(ROOT, cfg.model.distill.teacher_config)),
                                             tmp_path)
    backbone = ReBNNResNet(**{k: v for k, v in cfg.model.backbone.items() if k not in ('type', 'init_cfg')})
    torch.save(dict(state_dict={f'backbone.{k}': v for k, v in backbone.state_dict().items()}), tmp_path / 'cls.pth')
    tool = osp.join(osp.dirname(mmdet.__file__), '.mim', 'tools', 'train.py')
    work = tmp_path / 'work'
    proc = subprocess.run([sys.executable, tool, config, '--work-dir', str(work), '--cfg-options',
                           *tiny_shapes_options(tmp_path / 'data'), f'model.distill.teacher_config={teacher_cfg}',
                           f'model.distill.teacher_checkpoint={teacher_ckpt}',
                           f'model.backbone.init_cfg.checkpoint={tmp_path / "cls.pth"}'],
                          cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=ROOT))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    log = open(glob.glob(str(work / '*' / '*.log'))[0]).read()
    assert f"loaded pretrained checkpoint '{tmp_path / 'cls.pth'}' (prefix 'backbone.'), every tensor checked" in log
    assert 'loss_distill_fpn' in log and 'ReBNNHook' in log
    state = torch.load(work / 'epoch_1.pth', weights_only=False)['state_dict']
    assert not any('teacher' in k for k in state)


def test_exit_after_distributed_run_leaves_before_interpreter_teardown(tmp_path):
    """The CPU-DDP abort after saving came from gloo threads alive at interpreter teardown: a finished distributed
    run destroys its group and exits 0 without reaching teardown (atexit handlers never run); a
    non-distributed run just returns."""
    script = (
        'import atexit, sys, torch.distributed as dist\n'
        'from rebnn_det.apis import exit_after_distributed_run\n'
        'exit_after_distributed_run(); print("returned when not distributed", flush=True)\n'
        f'dist.init_process_group("gloo", init_method="file://{tmp_path}/store", rank=0, world_size=1)\n'
        'atexit.register(lambda: print("interpreter teardown", flush=True))\n'
        'print("initialized", dist.is_initialized(), flush=True)\n'
        'exit_after_distributed_run()\n'
        'print("after exit", flush=True)\n'
        'sys.exit(3)\n')
    proc = subprocess.run([sys.executable, '-c', script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.splitlines() == ['returned when not distributed', 'initialized True']
