#!/usr/bin/env bash
# The GPU benchmark of the live ASR path as one command on the lent CUDA machine.
#
#   bash scripts/gpu/run.sh [bench_gpu.py options]      # repo root; .gpu-torch/ carried (prepare.py)
#   GPU_DATA=.gpu-torch-base bash scripts/gpu/run.sh    # another prepared folder (base 4-bit)
#
# Writes into $OUT (default out/gpu): env.txt, bench.log, gpu_bench.json, gpu_bench.md and
# frontend_cost.json. The benchmark (decoder load and warm-up included) stops starting new runs
# after BENCH_BUDGET seconds (330) and is killed at BENCH_TIMEOUT (350 s); the front-end cost
# step runs last, at most 45 s, so the whole command stays under 7 minutes. SKIP_FRONTEND=1
# skips that step (CPU dry runs here). NEXTLINE_TORCH_PROFILE=$OUT/prof.jsonl adds one line of
# phase times per decoded batch (and one per decoder warm-up).
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT="${OUT:-out/gpu}"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
PY="${PYTHON:-python3}"
DATA="${GPU_DATA:-.gpu-torch}"

{
  date -u
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 || true
  echo "cpus: $(nproc)"
  "$PY" -c "import sys, torch, numpy, tokenizers, safetensors; print(sys.version.split()[0], \
'torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.is_available(), 'numpy', \
numpy.__version__, 'tokenizers', tokenizers.__version__, 'safetensors', safetensors.__version__)"
} > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"
if [ ! -f "$DATA/model.safetensors" ]; then
  echo "missing $DATA/model.safetensors: run scripts/gpu/prepare.py here and carry $DATA"
  exit 2
fi

timeout "${BENCH_TIMEOUT:-350}" "$PY" scripts/gpu/bench_gpu.py --data "$DATA" --out "$OUT" \
  --budget "${BENCH_BUDGET:-330}" "$@" 2>&1 | tee "$OUT/bench.log"
status=$?

if [ "${SKIP_FRONTEND:-0}" != 1 ] && ls "$DATA"/whl/*.whl > /dev/null 2>&1; then
  if "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target /tmp/site "$DATA"/whl/*.whl; then
    PYTHONPATH=/tmp/site timeout 45 "$PY" scripts/gpu/frontend_cost.py --data "$DATA" --out "$OUT" \
      || echo "front-end cost: skipped"
  fi
fi
exit "$status"
