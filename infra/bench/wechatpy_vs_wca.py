#!/usr/bin/env python3
"""Side-by-side benchmark: wechatpy vs wca on WeChat's safe-mode message path.

1. Generates N distinct safe-mode (AES) encrypted text messages exactly as
   WeChat sends them, with wechatpy's WeChatCrypto: varied Chinese/English
   content, distinct MsgIds and nonces, query params signature, timestamp,
   nonce, openid, encrypt_type=aes, msg_signature. One JSON object a line:
   {"query": {...}, "body": "<xml>...</xml>"}.
2. Times wechatpy doing the full server path on every line: check_signature
   + decrypt_message + parse_message + TextReply to the sender + render +
   encrypt_message. The file is read and JSON-decoded before the clock
   starts; time.perf_counter spans the whole loop; best of --runs runs.
   Before timing, the replies to the first 3 messages are decrypted again to
   prove the path is real.
3. Runs `WCA_BIN bench protocol --input FILE --token T --app-id A
   --aes-key K`, which does the same path over the same file (best of 3)
   and prints one JSON line {"messages", "seconds", "per_message_us",
   "per_sec"}.
4. Prints a table and the wca/wechatpy throughput ratio; with --out, writes
   everything (plus python/wechatpy versions, CPU model, date) as JSON.

Usage:
  python wechatpy_vs_wca.py --wca target/release/wca [--messages 10000]
      [--token ..] [--aes-key ..] [--app-id ..] [--out results.json]
"""

import argparse
import datetime
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time

try:
    import xmltodict
    import wechatpy
    from wechatpy import parse_message
    from wechatpy.crypto import WeChatCrypto
    from wechatpy.replies import TextReply
    from wechatpy.utils import WeChatSigner, check_signature
except ImportError as exc:  # pragma: no cover - environment problem
    sys.stderr.write(
        "wechatpy_vs_wca: %s\nrun infra/setup-python.sh and use the python it prints\n" % exc
    )
    sys.exit(1)

DEFAULT_TOKEN = "wcaBenchToken123"
DEFAULT_APP_ID = "wx1234567890abcdef"
DEFAULT_AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
GH_ID = "gh_0123456789ab"
REPLY_CONTENT = "您好，请问有什么可以帮您？"

PHRASES = [
    "你好",
    "您好，请问客服在吗？",
    "我的订单什么时候发货？订单号 {n}",
    "退货流程是怎样的？",
    "发票怎么开",
    "Hello, is anyone there?",
    "What are your opening hours?",
    "How do I reset my password? account #{n}",
    "I'd like a refund for order {n}, it arrived damaged.",
    "谢谢！Thanks a lot 😊",
    "价格 < 100 & 包邮吗？",
    "能不能便宜一点",
    "地址：北京市朝阳区建国路{n}号",
    "請問有繁體中文的說明書嗎？",
    "ok",
    "/::)",
]
LONG_PHRASE = "我想咨询一下会员积分的使用规则，以及积分是否会过期。" * 6


class BenchError(Exception):
    pass


def cdata(value):
    return "<![CDATA[" + str(value).replace("]]>", "]]]]><![CDATA[>") + "]]>"


def message_content(rng, n):
    if n % 97 == 0:
        return LONG_PHRASE
    text = rng.choice(PHRASES).format(n=n)
    if rng.random() < 0.3:
        text += " " + rng.choice(PHRASES).format(n=n + 1)
    return text


def generate(path, count, token, app_id, aes_key, seed):
    """Writes `count` encrypted messages to `path`; returns their plaintexts
    (openid, content) for the first few, to check the python path with."""
    rng = random.Random(seed)
    random.seed(seed)  # wechatpy's 16-byte random prefix uses `random`
    crypto = WeChatCrypto(token, aes_key, app_id)
    now = int(time.time())
    openids = ["oWcaBench%019d" % rng.randrange(10**18) for _ in range(256)]
    msg_id_base = 24_000_000_000_000_000 + rng.randrange(10**15)
    nonces = set()
    samples = []
    with open(path, "w", encoding="utf-8") as out:
        for i in range(count):
            openid = openids[i % len(openids)]
            content = message_content(rng, i)
            timestamp = str(now)
            nonce = str(rng.randrange(10**9, 10**10))
            while nonce in nonces:
                nonce = str(rng.randrange(10**9, 10**10))
            nonces.add(nonce)
            plain = (
                "<xml><ToUserName>%s</ToUserName><FromUserName>%s</FromUserName>"
                "<CreateTime>%d</CreateTime><MsgType><![CDATA[text]]></MsgType>"
                "<Content>%s</Content><MsgId>%d</MsgId></xml>"
                % (cdata(GH_ID), cdata(openid), now, cdata(content), msg_id_base + i)
            )
            packed = xmltodict.parse(crypto.encrypt_message(plain, nonce, timestamp))["xml"]
            signer = WeChatSigner()
            signer.add_data(token, timestamp, nonce)
            query = {
                "signature": signer.signature,
                "timestamp": timestamp,
                "nonce": nonce,
                "openid": openid,
                "encrypt_type": "aes",
                "msg_signature": packed["MsgSignature"],
            }
            # WeChat's safe-mode body: ToUserName and Encrypt only.
            body = "<xml><ToUserName>%s</ToUserName><Encrypt>%s</Encrypt></xml>" % (
                cdata(GH_ID),
                cdata(packed["Encrypt"]),
            )
            out.write(json.dumps({"query": query, "body": body}, ensure_ascii=False) + "\n")
            if i < 3:
                samples.append((openid, content))
    return samples


def load(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def handle(crypto, token, query, body):
    """wechatpy's full server path for one message: the encrypted reply XML."""
    check_signature(token, query["signature"], query["timestamp"], query["nonce"])
    xml = crypto.decrypt_message(body, query["msg_signature"], query["timestamp"], query["nonce"])
    message = parse_message(xml)
    reply = TextReply(message=message, content=REPLY_CONTENT)
    return crypto.encrypt_message(reply.render(), query["nonce"], query["timestamp"])


def check_python_path(crypto, token, records, samples):
    """The path is real: replies decrypt to a text to the sender, and the
    request decrypts to what was generated."""
    for (openid, content), rec in zip(samples, records):
        q = rec["query"]
        request = parse_message(
            crypto.decrypt_message(rec["body"], q["msg_signature"], q["timestamp"], q["nonce"])
        )
        if request.content != content or request.source != openid:
            raise BenchError("request decrypts to %r from %r" % (request.content, request.source))
        out = handle(crypto, token, q, rec["body"])
        outer = xmltodict.parse(out)["xml"]
        reply = xmltodict.parse(
            crypto.decrypt_message(out, outer["MsgSignature"], outer["TimeStamp"], outer["Nonce"])
        )["xml"]
        want = {"MsgType": "text", "ToUserName": openid, "FromUserName": GH_ID, "Content": REPLY_CONTENT}
        got = {k: reply.get(k) for k in want}
        if got != want:
            raise BenchError("wechatpy reply %r, expected %r" % (got, want))


def time_python(crypto, token, records, runs):
    times = []
    for _ in range(runs):
        total = 0
        start = time.perf_counter()
        for rec in records:
            total += len(handle(crypto, token, rec["query"], rec["body"]))
        times.append(time.perf_counter() - start)
        if total == 0:
            raise BenchError("wechatpy produced no reply bytes")
    return times


def run_wca(args, input_path, expected):
    cmd = [
        args.wca, "bench", "protocol",
        "--input", input_path,
        "--token", args.token,
        "--app-id", args.app_id,
        "--aes-key", args.aes_key,
    ]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.wca_timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BenchError("running %s: %s" % (" ".join(cmd), exc))
    if proc.returncode != 0:
        raise BenchError(
            "%s exited %d\nstderr (tail):\n%s\nstdout (tail):\n%s"
            % (" ".join(cmd), proc.returncode, proc.stderr[-2000:], proc.stdout[-1000:])
        )
    result = None
    for line in proc.stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                result = json.loads(line)
            except ValueError:
                continue
    if not isinstance(result, dict) or "seconds" not in result or "messages" not in result:
        raise BenchError(
            "wca printed no JSON line with messages/seconds; stdout:\n%s" % proc.stdout[-2000:]
        )
    if result["messages"] != expected:
        raise BenchError("wca processed %r messages, expected %d" % (result["messages"], expected))
    if not result["seconds"] or result["seconds"] <= 0:
        raise BenchError("wca reported %r seconds" % result["seconds"])
    return result, cmd


def cpu_model():
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def wca_version(binary):
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=20)
        return out.stdout.strip() or None
    except (OSError, subprocess.TimeoutExpired):
        return None


def package_version(name):
    try:
        from importlib.metadata import version

        return version(name)
    except Exception:
        return None


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--wca", required=True, help="path to the wca binary (cargo build --release -p wca-cli)")
    ap.add_argument("--messages", type=int, default=10000)
    ap.add_argument("--token", default=DEFAULT_TOKEN)
    ap.add_argument("--app-id", default=DEFAULT_APP_ID)
    ap.add_argument("--aes-key", default=DEFAULT_AES_KEY, help="43-char EncodingAESKey")
    ap.add_argument("--out", help="write the results JSON here")
    ap.add_argument("--input", help="keep the generated JSONL here (default: a temporary file)")
    ap.add_argument("--runs", type=int, default=3, help="python timing runs; the best is kept")
    ap.add_argument("--seed", type=int, default=20240601)
    ap.add_argument("--wca-timeout", type=float, default=1800.0, help="seconds for the wca run")
    args = ap.parse_args(argv)
    if args.messages < 1 or args.runs < 1:
        ap.error("--messages and --runs must be at least 1")
    if len(args.aes_key) != 43:
        ap.error("--aes-key must be 43 characters")
    args.wca = os.path.abspath(args.wca) if os.sep in args.wca else args.wca
    if not (os.access(args.wca, os.X_OK) or shutil.which(args.wca)):
        ap.error("--wca %s is not an executable (build it: cargo build --release -p wca-cli)" % args.wca)

    tmpdir = None
    if args.input:
        input_path = os.path.abspath(args.input)
    else:
        tmpdir = tempfile.TemporaryDirectory(prefix="wca-bench-")
        input_path = os.path.join(tmpdir.name, "messages.jsonl")
    try:
        return bench(args, input_path)
    except BenchError as exc:
        sys.stderr.write("wechatpy_vs_wca: FAIL: %s\n" % exc)
        return 1
    finally:
        if tmpdir is not None:
            tmpdir.cleanup()


def bench(args, input_path):
    n = args.messages
    log = lambda msg: sys.stderr.write(msg + "\n")
    log("generating %d safe-mode messages -> %s" % (n, input_path))
    start = time.perf_counter()
    samples = generate(input_path, n, args.token, args.app_id, args.aes_key, args.seed)
    log("  %.2fs" % (time.perf_counter() - start))

    records = load(input_path)
    crypto = WeChatCrypto(args.token, args.aes_key, args.app_id)
    check_python_path(crypto, args.token, records, samples)
    log("wechatpy path checked on the first %d messages; timing %d runs" % (len(samples), args.runs))
    py_times = time_python(crypto, args.token, records, args.runs)
    py_best = min(py_times)
    log("  wechatpy runs: %s" % ", ".join("%.3fs" % t for t in py_times))

    log("running wca bench protocol")
    wca, cmd = run_wca(args, input_path, n)
    wca_best = float(wca["seconds"])

    rows = [
        ("wechatpy %s (CPython %s)" % (package_version("wechatpy"), platform.python_version()), n / py_best, py_best / n * 1e6),
        ("wca", n / wca_best, wca_best / n * 1e6),
    ]
    ratio = rows[1][1] / rows[0][1]
    width = max(len(r[0]) for r in rows)
    print(
        "%d safe-mode text messages, best run (verify + decrypt + parse + reply + encrypt)"
        " (wechatpy: best of %d; wca: its own best of 3)" % (n, args.runs)
    )
    print("%-*s  %12s  %10s" % (width, "implementation", "msgs/s", "µs/msg"))
    for name, per_sec, us in rows:
        print("%-*s  %12.0f  %10.2f" % (width, name, per_sec, us))
    print("ratio wca/wechatpy (throughput): %.1fx" % ratio)

    results = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "messages": n,
        "path": "check signature + decrypt + parse + text reply + render + encrypt",
        "settings": {"token": args.token, "app_id": args.app_id, "aes_key": args.aes_key, "seed": args.seed},
        "machine": {
            "cpu_model": cpu_model(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
        },
        "python": {
            "version": platform.python_version(),
            "implementation": platform.python_implementation(),
            "wechatpy": package_version("wechatpy"),
            "cryptography": package_version("cryptography"),
        },
        "wechatpy": {
            "seconds": py_best,
            "runs_seconds": py_times,
            "per_message_us": py_best / n * 1e6,
            "per_sec": n / py_best,
        },
        "wca": {
            "binary": args.wca,
            "version": wca_version(args.wca),
            "command": cmd,
            "reported": wca,
            "seconds": wca_best,
            "per_message_us": wca_best / n * 1e6,
            "per_sec": n / wca_best,
        },
        "ratio_wca_over_wechatpy": ratio,
    }
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(results, f, ensure_ascii=False, indent=2)
            f.write("\n")
        log("results written to %s" % args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
