#!/usr/bin/env bash
# Creates the Python test environment (wechatpy for the WeChat interop test
# and the benchmark, moto_server as the local AWS stand-in) in a virtualenv at
# ${WCA_VENV:-<repo>/.venv}, installs infra/python-requirements.txt into it
# only when that file changed since the last install, and prints the venv's
# python on the last line of stdout. Everything else goes to stderr.
# Idempotent: a second run with unchanged requirements does no work.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${WCA_VENV:-$repo/.venv}"
req="$repo/infra/python-requirements.txt"
stamp="$venv/.wca-requirements"
python="${WCA_SYSTEM_PYTHON:-python3}"

if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import sys' >/dev/null 2>&1; then
  echo "setup-python: creating virtualenv $venv" >&2
  rm -rf "$venv"
  mkdir -p "$(dirname "$venv")"
  if ! "$python" -m venv "$venv" >&2; then
    # A Debian python3 without the python3-venv package has no ensurepip:
    # make the venv without pip, then let the system pip install pip into it.
    echo "setup-python: 'python3 -m venv' failed; retrying without ensurepip" >&2
    rm -rf "$venv"
    "$python" -m venv --without-pip "$venv" >&2
    "$python" -m pip --python "$venv/bin/python" install --quiet \
      --disable-pip-version-check pip >&2
  fi
fi

if ! cmp -s "$req" "$stamp"; then
  echo "setup-python: installing $req" >&2
  rm -f "$stamp"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    --no-input -r "$req" >&2
  cp "$req" "$stamp"
fi
echo "$venv/bin/python"
