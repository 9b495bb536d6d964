#!/usr/bin/env bash
# Idempotent set-up of a local virtual environment for rebnn_det on a fresh CPU machine.
#   bash tools/setup_env.sh [VENV_DIR]   (default: .venv)
# Steps that are already done are skipped (a stamp file records the finished install); mmcv 2.1.0 has no wheel
# on PyPI and is built from source once (~10 min on 2 cores) -- pip keeps the built wheel in its cache, so a
# second environment on the same machine installs it in seconds.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${1:-$here/.venv}"
stamp="$venv/.rebnn_det_installed"
py="${PYTHON:-python3}"

if [ -f "$stamp" ] && [ "$stamp" -nt "$here/setup.py" ] && [ "$stamp" -nt "$here/tools/setup_env.sh" ]; then
  exit 0
fi
[ -x "$venv/bin/python" ] || "$py" -m venv "$venv"
pip="$venv/bin/python -m pip"
export PIP_DISABLE_PIP_VERSION_CHECK=1
echo "[setup] base packages (torch 2.13.0 CPU, build tools, mmengine) into $venv"
$pip install -q "torch==2.13.0" wheel ninja "numpy<2.3" opencv-python-headless pycocotools \
  "mmengine==0.10.7" matplotlib tensorboard pytest
if ! "$venv/bin/python" -c "import mmcv, mmcv.ops" 2>/dev/null; then
  echo "[setup] mmcv 2.1.0 with ops (built from source the first time: ~10 min on 2 cores; cached afterwards)"
  # mmcv's setup.py needs an older setuptools than torch declares; build with it, then restore a torch-compatible
  # one that still has pkg_resources (mmengine 0.10.7 imports it at run time).
  $pip install -q "setuptools<70" 2>&1 | grep -v "requires setuptools" || true
  MMCV_WITH_OPS=1 FORCE_CUDA=0 MAX_JOBS="$(nproc)" $pip install -q --no-build-isolation "mmcv==2.1.0"
fi
$pip install -q "setuptools>=77.0.3,<82"
echo "[setup] mmdet 3.3.0 and rebnn_det (editable)"
$pip install -q "mmdet==3.3.0"
$pip install -q --no-build-isolation --no-deps -e "$here"
"$venv/bin/python" -c "import mmcv.ops, mmdet, rebnn_det" 
touch "$stamp"
echo "[setup] done: $venv"
