#!/usr/bin/env bash
# The whole test suite, as CI runs it. Installs what the tests need (a
# Python virtualenv with wechatpy and moto, another with the SAM CLI and
# its pinned cfn-lint, and checkov), starts the local AWS stand-in on a
# free loopback port, then: SAM template lint, checkov's policy scan,
# format check, clippy with warnings as errors, rustdoc with warnings as
# errors, every test (nextest, which includes the crash test and a short
# fuzzing pass) and the doc examples.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! cargo nextest --version >/dev/null 2>&1; then
  echo "== installing cargo-nextest"
  cargo install cargo-nextest --locked
fi

echo "== python test environment"
WCA_PYTHON="$(infra/setup-python.sh | tail -n 1)"
export WCA_PYTHON
SAM_BIN="$(infra/setup-sam.sh | tail -n 1)"

echo "== local AWS stand-in (moto_server)"
port="$("$WCA_PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
moto_log="$(mktemp -t wca-moto.XXXXXX)"
"$WCA_PYTHON" infra/moto_serve.py 127.0.0.1 "$port" >"$moto_log" 2>&1 &
moto_pid=$!
trap 'kill "$moto_pid" 2>/dev/null || true; wait "$moto_pid" 2>/dev/null || true; rm -f "$moto_log"' EXIT
export WCA_MOTO_ENDPOINT="http://127.0.0.1:$port"
"$WCA_PYTHON" - "$WCA_MOTO_ENDPOINT" <<'PY'
import sys, time, urllib.request
for _ in range(100):
    try:
        urllib.request.urlopen(sys.argv[1] + "/moto-api/", timeout=1)
        sys.exit(0)
    except Exception:
        time.sleep(0.1)
sys.exit("moto_server did not start")
PY
# Nothing from this machine's AWS set-up may leak into the tests.
export AWS_CONFIG_FILE=/nonexistent AWS_SHARED_CREDENTIALS_FILE=/nonexistent
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1
unset AWS_PROFILE AWS_SESSION_TOKEN AWS_ENDPOINT_URL

echo "== sam validate --lint"
SAM_CLI_TELEMETRY=0 "$SAM_BIN/sam" validate --lint --region us-east-1

echo "== checkov (template policy scan; skips are justified in template.yaml)"
"$SAM_BIN/checkov" -f template.yaml --framework cloudformation --quiet --compact --skip-download

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== cargo doc (warnings are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked --quiet

echo "== cargo nextest"
cargo nextest run --workspace --locked --no-fail-fast

echo "== doc tests"
cargo test --workspace --doc --locked
