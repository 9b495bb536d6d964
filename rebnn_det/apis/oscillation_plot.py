"""Plot ReBNNHook's oscillation statistics (flip ratio and gamma per layer over iterations) from a work dir."""
import os.path as osp
from collections import defaultdict
from typing import Dict, List, Tuple

from ..run_logs import find_scalar_logs, read_scalar_records

Series = Dict[str, List[Tuple[int, float]]]
Points = Dict[str, Dict[int, float]]  # name -> {iteration: value}


def _scalar_logs(work_dir: str) -> List[str]:
    paths = find_scalar_logs(work_dir)
    if not paths:
        raise FileNotFoundError(f'no {osp.join(work_dir, "<timestamp>", "vis_data", "scalars.json")} found: '
                                'train with this work dir first (mmengine writes it at every logger interval)')
    return paths


def _series_of_run(records: List[dict]) -> Tuple[Points, Points, Points]:
    flips, gammas, overall = defaultdict(dict), defaultdict(dict), defaultdict(dict)
    for rec in records:
        step = rec.get('iter', rec.get('step'))
        for key, value in rec.items():
            if key.startswith('rebnn/') and key.endswith('/flip'):
                flips[key[len('rebnn/'):-len('/flip')]][step] = value
            elif key.startswith('rebnn/') and key.endswith('/gamma'):
                gammas[key[len('rebnn/'):-len('/gamma')]][step] = value
            elif key in ('rebnn_flip', 'rebnn_gamma', 'rebnn_osc_flip_ratio', 'rebnn_osc_oscillated'):
                overall[key][step] = value
    return flips, gammas, overall


def _supersede(merged: Points, run: Points) -> None:
    """A later run replaces, per series, everything earlier runs logged from its first iteration on: a resumed
    (or restarted) run continues the trajectory from there, and what the earlier run logged after that point
    belongs to the abandoned continuation."""
    for name, points in run.items():
        first = min(points)
        kept = {step: v for step, v in merged.get(name, {}).items() if step < first}
        kept.update(points)
        merged[name] = kept


def read_oscillation_series(work_dir: str) -> Tuple[Series, Series, Series]:
    """(per-layer flip ratio, per-layer gamma, model-wide series) as ``name -> [(iteration, value)]``, sorted by
    iteration, each iteration once: where runs of the work dir overlap (``--resume``, or a restart in the same
    work dir) the later run wins from its first logged iteration on (see :func:`_supersede`)."""
    merged: Tuple[Points, Points, Points] = ({}, {}, {})
    for path in _scalar_logs(work_dir):
        for into, run in zip(merged, _series_of_run(read_scalar_records(path))):
            _supersede(into, run)
    flips, gammas, overall = ({name: sorted(points.items()) for name, points in series.items()}
                              for series in merged)
    if not flips and not overall:
        raise ValueError(f'{work_dir} has no ReBNN statistics: add custom_hooks=[dict(type="ReBNNHook")] to the '
                         'config (gamma=0 for statistics only)')
    return flips, gammas, overall


def plot_oscillation(work_dir: str, out_file: str = None) -> str:
    """Write the plot (default ``WORK_DIR/oscillation.png``) and return its path."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    flips, gammas, overall = read_oscillation_series(work_dir)
    out_file = out_file or osp.join(work_dir, 'oscillation.png')
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.5))
    cmap = plt.get_cmap('viridis')
    for ax, series, key, title in ((axes[0], flips, 'rebnn_flip', 'sign-flip ratio per step'),
                                   (axes[1], gammas, 'rebnn_gamma', 'balanced parameter gamma (channel mean)')):
        names = sorted(series)
        for i, name in enumerate(names):
            xs, ys = zip(*series[name])
            ax.plot(xs, ys, color=cmap(i / max(1, len(names) - 1)), lw=0.8, alpha=0.6)
        if key in overall:
            xs, ys = zip(*overall[key])
            ax.plot(xs, ys, color='crimson', lw=2.2, label='model-wide')
            ax.legend(loc='upper right')
        ax.set_xlabel('iteration')
        ax.set_title(f'{title}, {len(names)} layers (dark = early)')
        ax.set_yscale('symlog', linthresh=1e-6)
        ax.grid(alpha=0.3)
    fig.suptitle(f'ReBNN weight oscillation: {osp.basename(osp.abspath(work_dir))}')
    fig.tight_layout()
    fig.savefig(out_file, dpi=110)
    plt.close(fig)
    return out_file
