#!/usr/bin/env python3
"""A small closed-loop load test of a running `wca serve` in plaintext mode.

Each of C worker threads keeps one HTTP/1.1 connection open and posts
signed text messages one after another, each with its own MsgId (so dedup
never answers from memory) and a sender and text drawn from a list, for
D seconds. It prints throughput and latency percentiles as one JSON line.

This is a stand-in until issue 13's load generator (`wca bench load`,
thousands of connections, safe mode) lands: Python threads cap what it can
offer at a few hundred requests a second on two cores, which is enough to
see the dialog's cost per message, not the server's ceiling.

    wca serve --config examples/demo-shop/wca.toml --port 3000 &
    python3 infra/bench/serve_load.py --token "$(cat .wca-data/dev-token)" \
        --connections 10 --seconds 20
"""

import argparse
import hashlib
import http.client
import json
import random
import threading
import time
import urllib.parse

TEXTS = [
    "你好",
    "我的快递到哪了",
    "运费怎么算？满多少包邮",
    "可以开票吗",
    "我要退货",
    "算了",
    "你们一般发什么快递",
    "谢谢",
]


def signed_query(token):
    timestamp = str(int(time.time()))
    nonce = str(random.randrange(10**8, 10**9))
    signature = hashlib.sha1("".join(sorted([token, timestamp, nonce])).encode()).hexdigest()
    return urllib.parse.urlencode(
        {"signature": signature, "timestamp": timestamp, "nonce": nonce}
    )


def body(openid, text, msg_id):
    return (
        "<xml><ToUserName><![CDATA[gh_wcadev0000]]></ToUserName>"
        f"<FromUserName><![CDATA[{openid}]]></FromUserName>"
        f"<CreateTime>{int(time.time())}</CreateTime>"
        "<MsgType><![CDATA[text]]></MsgType>"
        f"<Content><![CDATA[{text}]]></Content>"
        f"<MsgId>{msg_id}</MsgId></xml>"
    ).encode()


def worker(args, index, deadline, results, errors):
    conn = http.client.HTTPConnection(args.host, args.port, timeout=10)
    rng = random.Random(index)
    n = 0
    while time.monotonic() < deadline:
        n += 1
        msg_id = (index + 1) * 10**12 + n + rng.randrange(10**9) * 10**3
        openid = f"o_demo_user{rng.randrange(1, 11):02d}"
        payload = body(openid, rng.choice(TEXTS), msg_id)
        started = time.perf_counter()
        try:
            conn.request(
                "POST",
                f"{args.path}?{signed_query(args.token)}",
                payload,
                {"Content-Type": "text/xml"},
            )
            resp = conn.getresponse()
            resp.read()
            ok = resp.status == 200
        except OSError:
            ok = False
            conn.close()
            conn = http.client.HTTPConnection(args.host, args.port, timeout=10)
        elapsed = time.perf_counter() - started
        if ok:
            results.append(elapsed)
        else:
            errors.append(elapsed)
    conn.close()


def percentile(sorted_values, p):
    if not sorted_values:
        return None
    k = min(len(sorted_values) - 1, int(round(p / 100 * (len(sorted_values) - 1))))
    return sorted_values[k]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3000)
    parser.add_argument("--path", default="/wechat")
    parser.add_argument("--token", required=True, help="the server's WECHAT_TOKEN")
    parser.add_argument("--connections", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    if not args.host.startswith("127.") and args.host != "localhost":
        parser.error("load is only ever sent to a loopback address")

    results, errors = [], []
    deadline = time.monotonic() + args.seconds
    threads = [
        threading.Thread(target=worker, args=(args, i, deadline, results, errors))
        for i in range(args.connections)
    ]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - started
    lat = sorted(results)
    ms = lambda v: None if v is None else round(v * 1000, 2)
    print(
        json.dumps(
            {
                "connections": args.connections,
                "seconds": round(wall, 2),
                "ok": len(results),
                "errors": len(errors),
                "msg_per_s": round(len(results) / wall, 1),
                "p50_ms": ms(percentile(lat, 50)),
                "p90_ms": ms(percentile(lat, 90)),
                "p99_ms": ms(percentile(lat, 99)),
                "max_ms": ms(lat[-1] if lat else None),
            }
        )
    )


if __name__ == "__main__":
    main()
