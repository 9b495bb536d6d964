#!/usr/bin/env bash
# Distributed testing with torchrun.   bash tools/dist_test.sh CONFIG CHECKPOINT NUM_PROCS [test.py options...]
set -euo pipefail
CONFIG=$1
CHECKPOINT=$2
NPROC=$3
shift 3
tools_dir="$(cd "$(dirname "$0")" && pwd)"
export PYTHONPATH="$tools_dir/..${PYTHONPATH:+:$PYTHONPATH}"
exec "${PYTHON:-python}" -m torch.distributed.run --nnodes="${NNODES:-1}" --node_rank="${NODE_RANK:-0}" \
  --master_addr="${MASTER_ADDR:-127.0.0.1}" --master_port="${PORT:-29500}" --nproc_per_node="$NPROC" \
  "$tools_dir/test.py" "$CONFIG" "$CHECKPOINT" --launcher pytorch "$@"
