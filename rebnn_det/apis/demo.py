"""The README's main job: train the ReBNN Faster R-CNN on the embedded shapes set, evaluate it with COCO mAP,
plot the weight oscillation and say where everything is. The config path comes from the caller (tools/demo.py
passes the checkout's configs/shapes/rebnn_faster_rcnn_shapes.py): the package does not know where configs are."""
import glob
import os.path as osp
import time
from typing import Optional, Sequence

from mmengine.config import Config

from ..run_logs import last_checkpoint_named
from .cli import build_runner
from .oscillation_plot import plot_oscillation


def run_demo(config: str, work_dir: str, cfg_options: Optional[dict] = None) -> dict:
    """Train ``config`` + evaluate + plot; returns the metrics and the paths of checkpoint, log, scalars, plot."""
    if not osp.isfile(config):
        raise FileNotFoundError(f'demo config {config!r} does not exist; pass the path of '
                                'configs/shapes/rebnn_faster_rcnn_shapes.py in a rebnn_det checkout')
    start = time.time()
    cfg = Config.fromfile(config)
    cfg.work_dir = work_dir
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    runner = build_runner(cfg)
    runner.train()  # the config validates after the last epoch (COCO bbox mAP table in the log)
    hub = runner.message_hub
    metrics = {k[len('val/'):]: hub.get_scalar(k).current() for k in hub.log_scalars if k.startswith('val/coco/')}
    checkpoint = last_checkpoint_named(work_dir)
    result = dict(metrics=metrics, checkpoint=checkpoint,
                  log=glob.glob(osp.join(runner.log_dir, '*.log'))[0],
                  scalars=osp.join(runner.log_dir, 'vis_data', 'scalars.json'),
                  plot=osp.abspath(plot_oscillation(work_dir)), minutes=(time.time() - start) / 60)
    return result


def format_demo_result(result: dict, keys: Sequence[str] = ('bbox_mAP', 'bbox_mAP_50', 'bbox_mAP_75')) -> str:
    lines = ['', f'ReBNN Faster R-CNN on the embedded shapes val split ({result["minutes"]:.1f} min):']
    lines += [f'  {k:<12} {result["metrics"].get("coco/" + k, float("nan")):.3f}' for k in keys]
    lines += [f'  {name:<12} {result[name]}' for name in ('checkpoint', 'log', 'scalars', 'plot')]
    return '\n'.join(lines)
