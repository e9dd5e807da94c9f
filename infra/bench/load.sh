#!/usr/bin/env bash
# The load table of the README: starts `wca serve` on a fresh data dir and
# runs `wca bench load` against it at each connection count, in plaintext
# and in safe (encrypted) mode, then prints one Markdown row per run.
#
#   infra/bench/load.sh                          # default config
#   infra/bench/load.sh --config examples/demo-shop/wca.toml
#   infra/bench/load.sh --connections "10 1000 5000" --seconds 20 --wca target/release/wca
#   infra/bench/load.sh --users 1000     # several messages of one user at once
#
# Build first: cargo build --release -p wca-cli. Run it on an idle machine:
# the generator shares the cores with the server it measures.
set -euo pipefail
cd "$(dirname "$0")/../.."

wca="${CARGO_TARGET_DIR:-target}/release/wca"
config=""
connections="10 1000 5000"
modes="plaintext safe"
seconds=20
# Distinct senders: WeChat users seldom have two messages in flight at
# once, and a shop with 5,000 open connections has far more than 5,000
# followers. (Fewer senders means several messages of one user at a time,
# which wca serve takes one after another.)
users=100000
port=3917
while [ $# -gt 0 ]; do
  case "$1" in
    --wca) wca="$2"; shift 2 ;;
    --config) config="$2"; shift 2 ;;
    --connections) connections="$2"; shift 2 ;;
    --modes) modes="$2"; shift 2 ;;
    --seconds) seconds="$2"; shift 2 ;;
    --users) users="$2"; shift 2 ;;
    --port) port="$2"; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
[ -x "$wca" ] || { echo "no wca binary at $wca: cargo build --release -p wca-cli" >&2; exit 1; }

# A fixed token and key for the run; nothing secret, never deployed.
export WECHAT_TOKEN=loadBenchToken2026
export WECHAT_APP_ID=wxbenchload00000001
aes_key=abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG

work="$(mktemp -d -t wca-load.XXXXXX)"
server=""
stop_server() {
  if [ -n "$server" ]; then
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
    server=""
  fi
}
trap 'stop_server; rm -rf "$work"' EXIT

echo "| connections | mode | msg/s | p50 ms | p90 ms | p99 ms | max ms | errors |"
echo "|---|---|---|---|---|---|---|---|"
for mode in $modes; do
  if [ "$mode" = safe ]; then export WECHAT_AES_KEY="$aes_key"; else unset WECHAT_AES_KEY; fi
  for c in $connections; do
    rm -rf "$work/data"
    args=(serve --port "$port" --data-dir "$work/data")
    [ -n "$config" ] && args+=(--config "$config")
    WCA_LOG=warn "$wca" "${args[@]}" >"$work/serve.log" 2>&1 &
    server=$!
    for _ in $(seq 100); do
      if "$wca" send --url "http://127.0.0.1:$port/wechat" --data-dir "$work/data" 你好 >/dev/null 2>&1; then break; fi
      sleep 0.1
    done
    line="$("$wca" bench load --url "http://127.0.0.1:$port/wechat" --data-dir "$work/data" \
      --connections "$c" --users "$users" --seconds "$seconds" --json)"
    stop_server
    python3 - "$line" <<'PY'
import json, sys
r = json.loads(sys.argv[1])
kinds = ", ".join(f"{n} {k}" for k, n in r["error_kinds"].items())
errors = f'{r["errors"]} ({kinds})' if r["errors"] else "0"
print(f'| {r["connections"]:,} | {r["mode"]} | {r["throughput"]:,.0f} | {r["p50_ms"]:.1f} | '
      f'{r["p90_ms"]:.1f} | {r["p99_ms"]:.1f} | {r["max_ms"]:.1f} | {errors} |')
PY
  done
done
