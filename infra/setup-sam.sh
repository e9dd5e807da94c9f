#!/usr/bin/env bash
# Installs the deploy and lint tools (SAM CLI, the pinned cfn-lint,
# cargo-lambda with its zig) into their own virtualenv, once per change of
# infra/sam-requirements.txt, and prints the venv's bin directory last.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
venv="${WCA_SAM_VENV:-$repo/.venv-sam}"
req="$repo/infra/sam-requirements.txt"
stamp="$venv/.wca-requirements"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv" >&2
fi
if ! cmp -s "$req" "$stamp"; then
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req" >&2
  cp "$req" "$stamp"
fi
echo "$venv/bin"
