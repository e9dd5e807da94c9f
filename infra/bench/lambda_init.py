#!/usr/bin/env python3
"""Cold start of the Lambda binaries: process start to first event handled.

For each function this script plays the Lambda service on 127.0.0.1: it
serves the Runtime API (GET .../invocation/next hands out one sample event
from infra/events/, POST .../invocation/ID/response ends the clock), starts
the function's `bootstrap` binary with the environment Lambda gives it,
and measures the time from spawning the process to receiving the response.
The AWS calls of the first event go to a running moto_server (--endpoint),
on which the script first creates the table and bus the functions use.

The binaries are the same code `sam build` packs for arm64, built for this
machine (`cargo build --release -p wca-webhook -p wca-analytics`), since an
arm64 binary cannot run here.

Usage:
  python lambda_init.py --target-dir target/release --endpoint http://127.0.0.1:PORT [--runs 20]

Prints one JSON line per function with p50/p90/max milliseconds.
"""

import argparse
import http.server
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import boto3

REPO = Path(__file__).resolve().parents[2]
TABLE = "wca-init-bench"
BUS = "wca-init-bench-events"


class RuntimeApi(http.server.BaseHTTPRequestHandler):
    """One invocation: hand out the event, record when the answer comes."""

    event = b"{}"
    answered = None  # (time, status path, body)
    done = None  # threading.Event

    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.path.endswith("/runtime/invocation/next"):
            if type(self).answered is not None:
                # The function asks for a second event: it gets none; the
                # process is killed and this connection dropped.
                return
            self.send_response(200)
            self.send_header("Lambda-Runtime-Aws-Request-Id", "init-bench-1")
            self.send_header("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + 30000))
            self.send_header(
                "Lambda-Runtime-Invoked-Function-Arn",
                "arn:aws:lambda:us-east-1:123456789012:function:bench",
            )
            self.send_header("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000")
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(type(self).event)))
            self.end_headers()
            self.wfile.write(type(self).event)
        else:
            self.send_response(404)
            self.end_headers()

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        type(self).answered = (time.perf_counter(), self.path, body)
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()
        type(self).done.set()


class QuietServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # The killed function's dropped connection is expected.
        pass


def make_stack(endpoint):
    kw = dict(endpoint_url=endpoint, region_name="us-east-1",
              aws_access_key_id="testing", aws_secret_access_key="testing")
    ddb = boto3.client("dynamodb", **kw)
    if TABLE not in ddb.list_tables()["TableNames"]:
        ddb.create_table(
            TableName=TABLE,
            # As template.yaml: pk + sk, and the `history` index on hk.
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": n, "AttributeType": "S"} for n in ("pk", "sk", "hk")
            ],
            LocalSecondaryIndexes=[
                {
                    "IndexName": "history",
                    "KeySchema": [
                        {"AttributeName": "pk", "KeyType": "HASH"},
                        {"AttributeName": "hk", "KeyType": "RANGE"},
                    ],
                    "Projection": {"ProjectionType": "ALL"},
                }
            ],
            BillingMode="PAY_PER_REQUEST",
        )
    events = boto3.client("events", **kw)
    if BUS not in [b["Name"] for b in events.list_event_buses()["EventBuses"]]:
        events.create_event_bus(Name=BUS)


def one_run(binary, event, env):
    RuntimeApi.event = event
    RuntimeApi.answered = None
    RuntimeApi.done = threading.Event()
    server = QuietServer(("127.0.0.1", 0), RuntimeApi)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    run_env = dict(env)
    run_env["AWS_LAMBDA_RUNTIME_API"] = "127.0.0.1:%d" % server.server_address[1]
    start = time.perf_counter()
    proc = subprocess.Popen([str(binary)], env=run_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ok = RuntimeApi.done.wait(30)
    proc.kill()
    _, err = proc.communicate()
    server.shutdown()
    server.server_close()
    if not ok:
        sys.exit("%s: no answer within 30 s; stderr:\n%s" % (binary, err.decode(errors="replace")))
    at, path, body = RuntimeApi.answered
    if not path.endswith("/response"):
        sys.exit("%s: answered %s: %s" % (binary, path, body[:400]))
    return (at - start) * 1000, body


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--target-dir", default=str(REPO / "target" / "release"))
    ap.add_argument("--endpoint", required=True, help="moto_server URL")
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args()
    make_stack(args.endpoint)
    base = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": "/nonexistent",
        "AWS_ENDPOINT_URL": args.endpoint,
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_CONFIG_FILE": "/nonexistent",
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
        "AWS_LAMBDA_FUNCTION_NAME": "bench",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_STREAM_NAME": "bench",
        "AWS_LAMBDA_LOG_GROUP_NAME": "bench",
        "TABLE_NAME": TABLE,
        "EVENT_BUS_NAME": BUS,
        "WCA_TIMEZONE": "Asia/Shanghai",
        "WECHAT_TOKEN": "sampleToken123",
        "WECHAT_APP_ID": "wx0000000000000000",
        "WCA_TIMESTAMP_WINDOW_SECS": "0",
    }
    cases = [
        ("webhook", "webhook-verify.json", b"hello-from-wechat"),
        ("webhook", "webhook-text.json", b"CDATA"),
        ("analytics", "analytics-batch.json", b"batchItemFailures"),
    ]
    for name, event_file, expect in cases:
        binary = Path(args.target_dir) / name
        event = (REPO / "infra" / "events" / event_file).read_bytes()
        times = []
        for _ in range(args.runs):
            ms, body = one_run(binary, event, base)
            if expect not in body:
                sys.exit("%s on %s answered unexpectedly: %s" % (name, event_file, body[:400]))
            times.append(ms)
        times.sort()
        print(json.dumps({
            "function": name,
            "event": event_file,
            "runs": len(times),
            "p50_ms": round(statistics.median(times), 2),
            "p90_ms": round(times[int(len(times) * 0.9) - 1], 2),
            "max_ms": round(times[-1], 2),
            "binary_bytes": binary.stat().st_size,
        }))


if __name__ == "__main__":
    main()
