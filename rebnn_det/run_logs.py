"""The one reader of what mmengine leaves in a work dir (plain Python): the ``scalars.json`` of each run and the
``last_checkpoint`` pointer. Used by the oscillation plot, the demo, the non-finite guard, ``--resume`` and the
benchmarks."""
import glob
import json
import os.path as osp
import warnings
from typing import List, Optional


def find_scalar_logs(work_dir: str) -> List[str]:
    """``WORK_DIR/<timestamp>/vis_data/scalars.json`` of every run in the work dir, oldest first (mmengine's
    ``%Y%m%d_%H%M%S`` timestamps sort chronologically; a resumed run's folder sorts after the interrupted one's)."""
    return sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')))


def read_scalar_records(path: str) -> List[dict]:
    """The json lines of one scalars.json; a cut-off last line (a run killed while logging) is skipped with a
    warning, a bad line elsewhere is an error naming the file and line."""
    with open(path) as f:
        lines = f.read().split('\n')
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as e:
            if any(rest.strip() for rest in lines[number:]):
                raise ValueError(f'{path}:{number} is not a json line ({e})') from e
            warnings.warn(f'{path}:{number}: skipped the cut-off last line (was the run killed while logging?)')
    return records


def read_work_dir_scalars(work_dir: str) -> List[dict]:
    """Every record of the work dir's scalars.json files, older runs first."""
    return [record for path in find_scalar_logs(work_dir) for record in read_scalar_records(path)]


def last_checkpoint_named(work_dir: str) -> Optional[str]:
    """The checkpoint path mmengine's ``last_checkpoint`` file names (``''`` if the file is empty), or ``None``
    when the work dir has no such file."""
    path = osp.join(work_dir, 'last_checkpoint')
    if not osp.isfile(path):
        return None
    with open(path) as f:
        return f.read().strip()
