#!/usr/bin/env bash
# Installs the deploy and lint tools (SAM CLI, the pinned cfn-lint,
# cargo-lambda with its zig) into their own virtualenv, once per change of
# infra/sam-requirements.txt, and checkov into a virtualenv nested in it
# (infra/checkov-requirements.txt; its pins clash with the SAM CLI's), with
# `checkov` linked into the first one's bin. Progress goes to stderr; the
# last line printed is that bin directory.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
venv="${WCA_SAM_VENV:-$repo/.venv-sam}"
req="$repo/infra/sam-requirements.txt"
stamp="$venv/.wca-requirements"
if [ ! -x "$venv/bin/python" ]; then
  echo "setup-sam: creating $venv" >&2
  python3 -m venv "$venv" >&2
fi
if ! cmp -s "$req" "$stamp"; then
  echo "setup-sam: installing $(grep -v '^#' "$req" | xargs)" >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req" >&2
  cp "$req" "$stamp"
fi
checkov_req="$repo/infra/checkov-requirements.txt"
checkov_venv="$venv/checkov"
checkov_stamp="$checkov_venv/.wca-requirements"
if [ ! -x "$checkov_venv/bin/python" ]; then
  echo "setup-sam: creating $checkov_venv" >&2
  python3 -m venv "$checkov_venv" >&2
fi
if ! cmp -s "$checkov_req" "$checkov_stamp"; then
  echo "setup-sam: installing $(grep -v '^#' "$checkov_req" | xargs)" >&2
  "$checkov_venv/bin/pip" install --quiet --disable-pip-version-check -r "$checkov_req" >&2
  cp "$checkov_req" "$checkov_stamp"
fi
ln -sf "$checkov_venv/bin/checkov" "$venv/bin/checkov"
echo "$venv/bin"
