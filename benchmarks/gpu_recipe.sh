#!/usr/bin/env bash
# faces64 against dcgan64 at an equal budget on a lent GPU, then both evaluated (and
# their attribute rates, with a classifier trained there). One call, no network:
#   OUT=/some/folder CACHE64=path/to/64px-celeba-cache MINUTES=3 bash benchmarks/gpu_recipe.sh
# The cache must travel with the call (a 64 px cache of 5,000 photos is 61 MB: make one
# with `facegan prepare ../shared/data/celeba --out cache64-small --size 64` on a copy
# of the CelebA folder trimmed to 5,000 images, and carry it). Same small-dependency
# note as benchmarks/gpu.sh. Writes under $OUT: one log per run, eval-*.json, summary.md.
set -uo pipefail
OUT=${OUT:-gpu-out}
CACHE64=${CACHE64:?set CACHE64 to a prepared 64 px CelebA cache}
MINUTES=${MINUTES:-3}
N=${N:-1000}
mkdir -p "$OUT"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
PY=${PYTHON:-python3}
$PY -c "import tomli_w, tqdm" 2>/dev/null || $PY -m pip install --no-index --find-links "${WHEELS:-wheels}" tomli-w tqdm >/dev/null 2>&1 || true

$PY -m facegan train-classifier --data "$CACHE64" --out "$OUT/classifier.pt" --epochs 4 > "$OUT/classifier.txt" 2>&1
for preset in dcgan64 faces64; do
  $PY -m facegan train --preset "$preset" --data "$CACHE64" --run "$OUT/runs/$preset" --epochs 100000 \
    --time-limit "$MINUTES" --keep-checkpoints 1 > "$OUT/train-$preset.txt" 2>&1
  $PY -m facegan evaluate --run "$OUT/runs/$preset" --real "$CACHE64" --n "$N" --classifier "$OUT/classifier.pt" \
    --json "$OUT/eval-$preset.json" > "$OUT/eval-$preset.txt" 2>&1
done
{ echo "# faces64 vs dcgan64, $MINUTES minutes each, $(date -u +%F)"; nvidia-smi -L 2>/dev/null; echo;
  tail -10 "$OUT/classifier.txt"; for preset in dcgan64 faces64; do echo; echo "## $preset";
  tail -1 "$OUT/train-$preset.txt"; grep -v 'inception features' "$OUT/eval-$preset.txt"; done; } > "$OUT/summary.md"
cat "$OUT/summary.md"
