#!/usr/bin/env bash
# Idempotent set-up of a local virtual environment for rebnn_det on a fresh CPU machine.
#   bash tools/setup_env.sh [VENV_DIR]        (default: .venv; PYTHON=python3.11 picks the interpreter)
# Finished installs are remembered by a stamp file (redone when setup.py, pyproject.toml, this script or any file
# under csrc/ -- the C++ kernels, rebuilt by the editable install -- change). mmcv 2.1.0 has
# no wheel on PyPI: it is built from source once (~10 min on 2 cores) and pip keeps the built wheel in its cache
# (~/.cache/pip/wheels), so another environment on the same machine installs it in seconds.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${1:-$here/.venv}"
case "$venv" in /*) ;; *) venv="$PWD/$venv" ;; esac  # absolute: checks below run from another directory
stamp="$venv/.rebnn_det_installed"
stamp_is_fresh() {
  [ -f "$stamp" ] || return 1
  local f
  for f in "$here/setup.py" "$here/pyproject.toml" "$here/tools/setup_env.sh"; do
    if [ -e "$f" ] && [ "$f" -nt "$stamp" ]; then return 1; fi
  done
  # any C++ source/header newer than the stamp (or a csrc/ folder changed by an added/removed file)
  [ -z "$(find "$here/csrc" -newer "$stamp" -print -quit 2>/dev/null)" ]
}
if stamp_is_fresh; then
  exit 0
fi
[ -x "$venv/bin/python" ] || "${PYTHON:-python3}" -m venv "$venv"
log="$venv/setup.log"
: > "$log"
export PIP_DISABLE_PIP_VERSION_CHECK=1

pip_install() {  # quiet unless it fails; the full output is in $log
  if ! "$venv/bin/python" -m pip install "$@" >>"$log" 2>&1; then
    tail -n 40 "$log" >&2
    echo "[setup] failed: pip install $*  (full log: $log)" >&2
    exit 1
  fi
}

echo "[setup] torch 2.13.0 (CPU), build tools, mmengine 0.10.7 -> $venv  (log: $log)"
pip_install "torch==2.13.0" wheel ninja "numpy<2.3" opencv-python-headless pycocotools "mmengine==0.10.7" \
  matplotlib tensorboard pytest
if ! "$venv/bin/python" -c "import mmcv.ops" >/dev/null 2>&1; then
  echo "[setup] mmcv 2.1.0 with ops (built from source the first time: ~10 min on 2 cores; cached afterwards)"
  # mmcv's setup.py wants an older setuptools than torch declares (pip reports that conflict; it is harmless
  # for the build). torch's range is restored right after; mmengine 0.10.7 needs pkg_resources (< 82).
  pip_install "setuptools<70"
  MMCV_WITH_OPS=1 FORCE_CUDA=0 MAX_JOBS="$(nproc)" pip_install --no-build-isolation "mmcv==2.1.0"
fi
pip_install "setuptools>=77.0.3,<80.9"  # from 80.9 on, every mmengine import warns "pkg_resources is deprecated"
echo "[setup] mmdet 3.3.0"
pip_install "mmdet==3.3.0"
echo "[setup] rebnn_det (editable) with its C++ kernels rebnn_det._C (csrc/, ~1-3 min to compile)"
MAX_JOBS="$(nproc)" pip_install --no-build-isolation --no-deps -e "$here"
"$venv/bin/python" -c "import mmcv.ops, mmdet, rebnn_det" 2>>"$log" || { echo "[setup] import check failed (see $log)" >&2; exit 1; }
if ! (cd / && "$venv/bin/python" -c "import torch, rebnn_det._C") 2>>"$log"; then
  echo "[setup] note: the XNOR-popcount kernels (rebnn_det._C) were not built (see $log); binary convolutions" \
       "will use the pure-PyTorch path" >&2
fi
touch "$stamp"
echo "[setup] ready: $venv"
