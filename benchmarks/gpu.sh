#!/usr/bin/env bash
# Everything to check on a lent GPU machine, in one go (no network there; PyTorch is
# installed). Run from the repository root:   OUT=/some/folder bash benchmarks/gpu.sh
# facegan's small pure-Python dependencies may be missing there: before the call, run
#   pip download --no-deps -d wheels tomli-w tqdm pytest iniconfig pluggy packaging
# here and carry the (git-ignored) wheels/ folder with the command.
# The three parts are capped at 150 + 240 + 170 s so that the whole script fits in one
# 10-minute device call.
# Writes under $OUT: env.txt, tests.txt, train_speed.jsonl (+ table), bf16_vs_fp32.jsonl,
# scaling.jsonl (several GPUs only), summary.md
set -uo pipefail
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
PY=${PYTHON:-python3}
# facegan's own small dependencies, where the machine lacks them and has wheels nearby
$PY -c "import tomli_w, tqdm, pytest" 2>/dev/null || $PY -m pip install --no-index --find-links "${WHEELS:-wheels}" tomli-w tqdm pytest >/dev/null 2>&1 || true

{ nvidia-smi; $PY -c "import torch; print(torch.__version__, torch.version.cuda, torch.cuda.get_device_name())"; } > "$OUT/env.txt" 2>&1

# 1. the tests that touch CUDA (and the fast-path tests)
timeout 150 $PY -m pytest -q tests/test_speed.py > "$OUT/tests.txt" 2>&1
echo "tests exit: $?" >> "$OUT/tests.txt"

# 2. the speed benchmark: thesis128 at batch 16 and 128, dcgan64 at 128, eager vs fast
timeout 240 $PY benchmarks/train_speed.py --variants eager fast > "$OUT/train_speed.txt" 2>&1
grep '^{' "$OUT/train_speed.txt" > "$OUT/train_speed.jsonl"

# 3. two minutes of real thesis128 training in bf16 and in fp32, same seed and steps
timeout 170 $PY benchmarks/precision_check.py --minutes 1 > "$OUT/bf16_vs_fp32.jsonl" 2>&1

# 4. one GPU against all of them, where the machine has several (this part then needs
#    about 150 s more than one device call allows after the others: run it alone)
GPUS=$(nvidia-smi -L 2>/dev/null | wc -l)
if [ "$GPUS" -gt 1 ]; then
    timeout 150 $PY benchmarks/scaling.py --device cuda --processes "$GPUS" --steps 200 > "$OUT/scaling.jsonl" 2>&1
fi

{ echo "# GPU run $(date -u +%F)"; echo; head -20 "$OUT/env.txt"; echo; tail -20 "$OUT/train_speed.txt";
  echo; tail -3 "$OUT/bf16_vs_fp32.jsonl"; echo; tail -3 "$OUT/tests.txt"; } > "$OUT/summary.md"
cat "$OUT/summary.md"
