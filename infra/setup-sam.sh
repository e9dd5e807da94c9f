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

# ensure_venv DIR REQUIREMENTS: a virtualenv at DIR holding REQUIREMENTS,
# reinstalled only when that file changed since the last install.
ensure_venv() {
  local dir="$1" req="$2"
  local stamp="$dir/.wca-requirements"
  if [ ! -x "$dir/bin/python" ]; then
    echo "setup-sam: creating $dir" >&2
    python3 -m venv "$dir" >&2
  fi
  if ! cmp -s "$req" "$stamp"; then
    echo "setup-sam: installing $(grep -v '^#' "$req" | xargs)" >&2
    "$dir/bin/pip" install --quiet --disable-pip-version-check -r "$req" >&2
    cp "$req" "$stamp"
  fi
}

ensure_venv "$venv" "$repo/infra/sam-requirements.txt"
checkov_venv="$venv/checkov"
ensure_venv "$checkov_venv" "$repo/infra/checkov-requirements.txt"
ln -sf "$checkov_venv/bin/checkov" "$venv/bin/checkov"
echo "$venv/bin"
