#!/usr/bin/env bash
# Recipes against each other at an equal budget on a lent GPU, each seed of each preset
# trained for MINUTES and evaluated (with attribute rates read by a classifier trained
# there). One call, no network:
#   OUT=/some/folder CACHE=path/to/prepared-cache MINUTES=3 bash benchmarks/gpu_recipe.sh
#   PRESETS="faces128 progan128" SEEDS="0 1" CACHE=cache128-small MINUTES=1.5 bash benchmarks/gpu_recipe.sh
# Defaults: PRESETS="dcgan64 faces64", SEEDS=0, N=1000 (CACHE64 is still read for CACHE).
# The cache's size must be the presets' resolution and it must travel with the call (64
# MiB at most: a 64 px cache of 5,000 photos is 61 MB; at 128 px about 1,200 fit, e.g.
# every 21st photo of the shared 25,340, 57 MiB). Make one with `facegan prepare FOLDER
# --out CACHE --size 128` on a copy of the CelebA folder (its annotation files and the
# photos kept; take them from across the official split, since the classifier trains on
# the train split and is checked on the test split), and carry it. Checked on a CPU with
# MINUTES=0.1 N=32. Same small-dependency note as benchmarks/gpu.sh. Writes under $OUT:
# one log per run, eval-*.json, summary.md.
set -uo pipefail
OUT=${OUT:-gpu-out}
CACHE=${CACHE:-${CACHE64:?set CACHE to a prepared CelebA cache}}
PRESETS=${PRESETS:-dcgan64 faces64}
SEEDS=${SEEDS:-0}
MINUTES=${MINUTES:-3}
N=${N:-1000}
mkdir -p "$OUT"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
PY=${PYTHON:-python3}
$PY -c "import tomli_w, tqdm" 2>/dev/null || $PY -m pip install --no-index --find-links "${WHEELS:-wheels}" tomli-w tqdm >/dev/null 2>&1 || true

$PY -m facegan train-classifier --data "$CACHE" --out "$OUT/classifier.pt" --epochs 4 > "$OUT/classifier.txt" 2>&1 \
  || { tail -3 "$OUT/classifier.txt"; echo "gpu_recipe.sh: the classifier did not train; nothing else run" >&2; exit 1; }
runs=()
for preset in $PRESETS; do
  for seed in $SEEDS; do
    run="$preset-s$seed"; runs+=("$run")
    $PY -m facegan train --preset "$preset" --data "$CACHE" --run "$OUT/runs/$run" --seed "$seed" --epochs 100000 \
      --time-limit "$MINUTES" --keep-checkpoints 1 > "$OUT/train-$run.txt" 2>&1
    $PY -m facegan evaluate --run "$OUT/runs/$run" --real "$CACHE" --n "$N" --classifier "$OUT/classifier.pt" \
      --json "$OUT/eval-$run.json" > "$OUT/eval-$run.txt" 2>&1
  done
done
{ echo "# $PRESETS, seeds $SEEDS, $MINUTES minutes each, N = $N, $(date -u +%F)"; nvidia-smi -L 2>/dev/null; echo;
  tail -10 "$OUT/classifier.txt"; for run in "${runs[@]}"; do echo; echo "## $run";
  tail -1 "$OUT/train-$run.txt"; grep -v 'inception features' "$OUT/eval-$run.txt"; done; } > "$OUT/summary.md"
cat "$OUT/summary.md"
