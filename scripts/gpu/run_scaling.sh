#!/usr/bin/env bash
# Calls per GPU with CUDA-graph decode steps, in one process and spread over K processes.
#
#   bash scripts/gpu/run_scaling.sh        # repo root on the CUDA machine; .gpu-torch/ carried
#
# 1. One process (4 decode workers, 4 graphs per row bucket): the capacity table, a text check
#    of graphed against eager decoding, N=32 with the graphs set aside (the eager reference,
#    same warm-up), then the sweep up from 32 calls (stops at the first miss, one bisection).
# 2. SHARDS processes (default 4), each with its own model, calls and 2 decode workers, all on
#    the one GPU, started together per N (bench_shards.py); the rows pool every shard's words.
#    MPS=1 runs them under NVIDIA MPS (started here, stopped at exit): without it the processes'
#    kernels time-slice the GPU and latency suffers (docs/results/gpu.md). ONE_TIMEOUT=1 skips
#    step 1. The >= 200 calls run: MPS=1 ONE_TIMEOUT=1 SHARDS=12 SHARD_CALLS=208,256
#    SHARD_ARGS="--max-batch 64" (about 70 s after the machine is up; greedy finals); with the
#    server's beam-5 finals: SHARDS=16 SHARD_CALLS=208 SHARD_ARGS="--max-batch 64 --final-beam 5".
# Everything lands in $OUT: env.txt, one/ (gpu_bench.json, .md), shards.log, gpu_shards.json,
# gpu_shards.md. About 7 minutes; each step has its own timeout, so one failing step leaves the
# other's results. ONE_ARGS / SHARD_ARGS add options to either step (a CPU dry run here:
# ONE_ARGS="--graphs force --max-batch 4 --capacity 1,4 --duration 3" ...).
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT="${OUT:-out/gpu}"
mkdir -p "$OUT/one"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
PY="${PYTHON:-python3}"
DATA="${GPU_DATA:-.gpu-torch}"
SHARDS="${SHARDS:-4}"
{
  date -u
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 || true
  echo "cpus: $(nproc)"
  "$PY" -c "import sys, torch; print(sys.version.split()[0], 'torch', torch.__version__, \
'cuda', torch.version.cuda, torch.cuda.is_available())"
} > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

timeout "${ONE_TIMEOUT:-215}" "$PY" scripts/gpu/bench_gpu.py --data "$DATA" --out "$OUT/one" \
  --processes 0 --workers 4 --graph-copies 4 --calls "${ONE_CALLS:-32,64,96,128,192,256}" \
  --duration 20 --drain 10 --eager-reference 32 --reference-steps '' \
  --capacity 1,16,64,256 --budget "${ONE_BUDGET:-200}" ${ONE_ARGS:-} 2>&1 | grep -v '^{' || true

if [ "${MPS:-0}" = 1 ]; then  # NVIDIA MPS: the shards' kernels share the GPU instead of taking turns
  export CUDA_MPS_PIPE_DIRECTORY=/tmp/mps CUDA_MPS_LOG_DIRECTORY=/tmp/mpslog
  mkdir -p /tmp/mps /tmp/mpslog
  nvidia-cuda-mps-control -d && trap 'echo quit | nvidia-cuda-mps-control' EXIT
  sleep 1
fi
BARRIER="$(mktemp -d)"
for ((i = 0; i < SHARDS; i++)); do
  OMP_NUM_THREADS=2 timeout "${SHARD_TIMEOUT:-230}" "$PY" scripts/gpu/bench_gpu.py \
    --data "$DATA" --out "$BARRIER/out$i" --processes 0 --workers 2 --graph-copies 2 \
    --max-batch 128 --calls "${SHARD_CALLS:-128,192,256,320,384}" --duration 20 --drain 10 \
    --capacity '' --reference-steps '' --budget "${SHARD_BUDGET:-215}" \
    --shard "$i/$SHARDS" --barrier "$BARRIER" ${SHARD_ARGS:-} > "$BARRIER/shard$i.log" 2>&1 &
done
wait
cat "$BARRIER"/shard*.log > "$OUT/shards.log"
grep -h "shard\|loaded\|Error\|error" "$OUT/shards.log" | grep -v '^{' | head -60
"$PY" scripts/gpu/bench_shards.py "$BARRIER" --shards "$SHARDS" --out "$OUT"
