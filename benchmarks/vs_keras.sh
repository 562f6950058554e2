#!/usr/bin/env bash
# The thesis's Keras DCGAN against facegan's thesis128 (benchmarks/vs_keras.py): makes,
# once, a virtual environment with tensorflow-cpu in .venv-keras (facegan itself never
# depends on TensorFlow), then runs the comparison with facegan's own environment.
set -euo pipefail
cd "$(dirname "$0")/.."
KERAS_VENV=${KERAS_VENV:-.venv-keras}
if [ ! -x "$KERAS_VENV/bin/python" ] || ! "$KERAS_VENV/bin/python" -c "import tensorflow" 2>/dev/null; then
    python3 -m venv "$KERAS_VENV"
    "$KERAS_VENV/bin/pip" install -q 'tensorflow-cpu>=2.16'
fi
exec .venv/bin/python benchmarks/vs_keras.py --keras-python "$KERAS_VENV/bin/python" "$@"
