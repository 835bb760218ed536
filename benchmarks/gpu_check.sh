#!/usr/bin/env bash
# The side-by-side comparison on an NVIDIA GPU, within 10 minutes, results as JSON.
#
#   WHEELHOUSE=wheelhouse OUT=gpu-results bash benchmarks/gpu_check.sh
#
# The GPU machine has no network, so every wheel travels with the checkout. On a machine that has one,
# build the wheel set once (onnxruntime-gpu alone is ~244 MiB; its CUDA runtime, cuBLAS and cuDNN wheels
# from the `cuda` extra add well over 1 GiB), then carry the folder along:
#
#   pip download -d wheelhouse ".[cuda,models]" pip setuptools wheel
#
# When the machine already has onnxruntime-gpu and CUDA libraries that load (CUDAExecutionProvider really
# runs a session), no wheelhouse is needed: the script uses the python it is given ($PYTHON).
# Never install the `bench` extra here: fastembed pulls the CPU onnxruntime wheel, which overwrites
# onnxruntime-gpu's files (same import name) and silently turns the GPU rows into CPU rows.
set -euo pipefail

cd "$(dirname "$0")/.."
OUT="${OUT:-gpu-results}"
WHEELHOUSE="${WHEELHOUSE:-wheelhouse}"
PYTHON="${PYTHON:-python3}"
LIMIT="${LIMIT:-3000}"
mkdir -p "$OUT"
start=$(date +%s)

if [ -d "$WHEELHOUSE" ]; then
    "$PYTHON" -m venv /tmp/vecns-gpu
    PYTHON=/tmp/vecns-gpu/bin/python
    "$PYTHON" -m pip install -q --no-index --find-links "$WHEELHOUSE" -e ".[cuda,models]"
fi

"$PYTHON" - <<'PY' | tee "$OUT/device.txt"
import onnxruntime as ort
from vecns.embed import cuda_available
print("onnxruntime", ort.__version__, ort.get_available_providers())
print("cuda usable:", cuda_available())
if not cuda_available():
    raise SystemExit("CUDA does not run a session here: install the cuda extra's wheels (see the header)")
PY
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >> "$OUT/device.txt" 2>&1 || true

# Time limits (200 + 200 + 100 s, plus the install) keep the whole check under 10 minutes.
# Each model: raw ONNX Runtime on CUDA (sorted, embedder batches), vecns add, vecns migrate, search.
# Peers are skipped: this environment has no torch and no fastembed by design (see above).
for model in paraphrase-minilm-l3-v2 all-minilm-l6-v2-int8; do
    timeout 200 "$PYTHON" benchmarks/compare.py --providers cuda --model "$model" --limit "$LIMIT" \
        --repeats 3 --skip-naive --skip-peers --batch-size 256 --threads 4 \
        --json-out "$OUT/compare-$model.json" | tee "$OUT/compare-$model.txt"
done
# fp16 on the GPU: speed against the fp32 rows above, and the min cosine of its vectors to the raw fp32 ones.
timeout 100 "$PYTHON" benchmarks/compare.py --providers cuda --precision fp16 --model all-minilm-l6-v2-int8 \
    --limit "$LIMIT" --repeats 3 --skip-naive --skip-peers --skip-migrate --batch-size 256 --threads 4 \
    --json-out "$OUT/compare-fp16.json" | tee "$OUT/compare-fp16.txt"
echo "gpu_check done in $(( $(date +%s) - start )) s; results in $OUT/"
