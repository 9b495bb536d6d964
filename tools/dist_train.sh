#!/usr/bin/env bash
# Distributed training with torchrun (mmengine DDP; NCCL on GPUs, gloo on CPU-only machines).
#   bash tools/dist_train.sh CONFIG NUM_PROCS [train.py options...]
# Multi-node: set NNODES, NODE_RANK, MASTER_ADDR, PORT; PYTHON picks the interpreter (default: python).
set -euo pipefail
CONFIG=$1
NPROC=$2
shift 2
tools_dir="$(cd "$(dirname "$0")" && pwd)"
export PYTHONPATH="$tools_dir/..${PYTHONPATH:+:$PYTHONPATH}"
exec "${PYTHON:-python}" -m torch.distributed.run --nnodes="${NNODES:-1}" --node_rank="${NODE_RANK:-0}" \
  --master_addr="${MASTER_ADDR:-127.0.0.1}" --master_port="${PORT:-29500}" --nproc_per_node="$NPROC" \
  "$tools_dir/train.py" "$CONFIG" --launcher pytorch "$@"
