#!/usr/bin/env python3
"""Talk to a running wca webhook exactly as WeChat would, using wechatpy.

Every WeChat-side primitive comes from wechatpy, not from this file: the
request signature (wechatpy.utils.WeChatSigner / check_signature), safe-mode
encryption of the request and verification + decryption of the reply
(wechatpy.crypto.WeChatCrypto, which also checks the app id at the end of
the decrypted reply), and parsing (wechatpy.parse_message,
wechatpy.replies.deserialize_reply, xmltodict).

Steps:
  1. GET URL verification with a random echostr: it must be echoed.
  2. POST a text message (fixed openid -> gh_ id, fresh MsgId) --repeat
     times, each post freshly signed (and, with --aes-key, encrypted) with a
     new timestamp/nonce but the same MsgId, like WeChat's retries.
  3. Each reply: HTTP 200; in safe mode an <Encrypt/> reply whose
     MsgSignature verifies over its own TimeStamp/Nonce and decrypts with
     our app id; a text reply to the sender from the gh_ id we wrote to,
     whose Content contains --expect-contains. All replies' Content must be
     identical.

Prints one JSON line (summary) on stdout; exit 0 on success, 1 on any
mismatch or transport error (message on stderr), 2 on bad usage.

Usage:
  python wechatpy_roundtrip.py --url http://127.0.0.1:PORT/wechat \
      --token T --app-id A [--aes-key K] [--expect-contains 你好] \
      [--text 你好] [--repeat 1]
"""

import argparse
import json
import random
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

try:
    import xmltodict
    import wechatpy
    from wechatpy import parse_message
    from wechatpy.crypto import WeChatCrypto
    from wechatpy.exceptions import InvalidAppIdException, InvalidSignatureException
    from wechatpy.replies import deserialize_reply
    from wechatpy.utils import WeChatSigner, check_signature
except ImportError as exc:  # pragma: no cover - environment problem
    sys.stderr.write(
        "wechatpy_roundtrip: %s\nrun infra/setup-python.sh and use the python it prints\n" % exc
    )
    sys.exit(1)

DEFAULT_OPENID = "oWcaInteropTestUser000000001"  # 28 chars, like real openids
DEFAULT_GH_ID = "gh_0123456789ab"
BODY_SNIPPET = 600


class Mismatch(Exception):
    """A check failed; the message says which and shows what came back."""


def snippet(data):
    if isinstance(data, bytes):
        data = data.decode("utf-8", errors="replace")
    data = str(data)
    if len(data) > BODY_SNIPPET:
        return data[:BODY_SNIPPET] + "...[%d chars total]" % len(data)
    return data


def cdata(value):
    return "<![CDATA[" + str(value).replace("]]>", "]]]]><![CDATA[>") + "]]>"


def sign(token, timestamp, nonce):
    signer = WeChatSigner()
    signer.add_data(token, timestamp, nonce)
    signature = signer.signature
    check_signature(token, signature, timestamp, nonce)  # self-check
    return signature


def fresh_timestamp_nonce():
    return str(int(time.time())), str(random.randint(10**8, 10**10 - 1))


def text_message_xml(gh_id, openid, create_time, content, msg_id):
    """A text message exactly in the shape WeChat pushes it."""
    return (
        "<xml>"
        "<ToUserName>%s</ToUserName>"
        "<FromUserName>%s</FromUserName>"
        "<CreateTime>%d</CreateTime>"
        "<MsgType><![CDATA[text]]></MsgType>"
        "<Content>%s</Content>"
        "<MsgId>%d</MsgId>"
        "</xml>" % (cdata(gh_id), cdata(openid), create_time, cdata(content), msg_id)
    )


def http(method, url, data=None, timeout=30.0):
    """(status, body bytes, seconds); HTTP errors are returned, not raised."""
    headers = {"User-Agent": "Mozilla/4.0"}
    if data is not None:
        headers["Content-Type"] = "text/xml"
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    start = time.perf_counter()
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            body = resp.read()
            status = resp.status
    except urllib.error.HTTPError as err:
        body = err.read()
        status = err.code
    except (urllib.error.URLError, OSError) as err:
        raise Mismatch("%s %s failed: %s" % (method, url.split("?")[0], err))
    return status, body, time.perf_counter() - start


def with_query(url, params):
    sep = "&" if urllib.parse.urlsplit(url).query else "?"
    return url + sep + urllib.parse.urlencode(params)


def verify_url(args):
    """WeChat's GET URL verification: the echostr must come back as is."""
    timestamp, nonce = fresh_timestamp_nonce()
    echostr = str(random.randint(10**18, 10**19 - 1))
    params = {
        "signature": sign(args.token, timestamp, nonce),
        "timestamp": timestamp,
        "nonce": nonce,
        "echostr": echostr,
    }
    status, body, _ = http("GET", with_query(args.url, params), timeout=args.timeout)
    if status != 200:
        raise Mismatch("GET verification: HTTP %d, body: %s" % (status, snippet(body)))
    if body.decode("utf-8", errors="replace").strip() != echostr:
        raise Mismatch(
            "GET verification: expected echostr %s echoed, got: %s" % (echostr, snippet(body))
        )
    return echostr


def build_post(args, crypto, plain_xml):
    """(query params, body) for one delivery of plain_xml, as WeChat sends it."""
    timestamp, nonce = fresh_timestamp_nonce()
    params = {
        "signature": sign(args.token, timestamp, nonce),
        "timestamp": timestamp,
        "nonce": nonce,
        "openid": args.openid,
    }
    if crypto is None:
        return params, plain_xml
    # wechatpy encrypts and signs (msg_signature = sha1 of sorted token,
    # timestamp, nonce, Encrypt). WeChat's safe-mode body carries only
    # ToUserName and Encrypt; the signature travels in the query.
    packed = xmltodict.parse(crypto.encrypt_message(plain_xml, nonce, timestamp))["xml"]
    params["encrypt_type"] = "aes"
    params["msg_signature"] = packed["MsgSignature"]
    body = "<xml><ToUserName>%s</ToUserName><Encrypt>%s</Encrypt></xml>" % (
        cdata(args.gh_id),
        cdata(packed["Encrypt"]),
    )
    return params, body


def open_reply(args, crypto, status, body):
    """Checks one POST reply; returns (reply fields dict, decrypted XML)."""
    if status != 200:
        raise Mismatch("POST: HTTP %d, body: %s" % (status, snippet(body)))
    text = body.decode("utf-8", errors="replace")
    if not text.strip() or text.strip() == "success":
        raise Mismatch("POST: expected a passive reply, got body: %r" % snippet(text))
    try:
        outer = xmltodict.parse(text)["xml"]
    except Exception as exc:
        raise Mismatch("POST: reply is not WeChat XML (%s), body: %s" % (exc, snippet(text)))
    if not isinstance(outer, dict):
        raise Mismatch("POST: reply <xml> is empty, body: %s" % snippet(text))

    if crypto is not None:
        missing = [k for k in ("Encrypt", "MsgSignature", "TimeStamp", "Nonce") if not outer.get(k)]
        if missing:
            raise Mismatch(
                "POST (safe mode): reply lacks %s; body: %s" % (", ".join(missing), snippet(text))
            )
        try:
            reply_xml = crypto.decrypt_message(
                text, outer["MsgSignature"], outer["TimeStamp"], outer["Nonce"]
            )
        except InvalidSignatureException:
            raise Mismatch(
                "POST (safe mode): reply MsgSignature does not verify over "
                "token/TimeStamp/Nonce/Encrypt; body: %s" % snippet(text)
            )
        except InvalidAppIdException:
            raise Mismatch(
                "POST (safe mode): decrypted reply does not end with app id %r; body: %s"
                % (args.app_id, snippet(text))
            )
        except Exception as exc:
            raise Mismatch(
                "POST (safe mode): wechatpy could not decrypt the reply (%s: %s); body: %s"
                % (type(exc).__name__, exc, snippet(text))
            )
        if not (reply_xml or "").strip():
            raise Mismatch("POST (safe mode): the decrypted reply is empty; body: %s" % snippet(text))
        try:
            fields = xmltodict.parse(reply_xml)["xml"]
        except Exception as exc:
            raise Mismatch(
                "POST (safe mode): decrypted reply is not XML (%s): %s" % (exc, snippet(reply_xml))
            )
    else:
        if "Encrypt" in outer:
            raise Mismatch("POST (plaintext mode): reply is encrypted; body: %s" % snippet(text))
        reply_xml, fields = text, outer

    if not isinstance(fields, dict):
        raise Mismatch("POST: reply <xml> is empty: %s" % snippet(reply_xml))
    msg_type = fields.get("MsgType")
    if msg_type != "text":
        raise Mismatch("POST: reply MsgType %r, expected 'text': %s" % (msg_type, snippet(reply_xml)))
    # wechatpy's own view of the reply: as a passive reply and as a message.
    reply = deserialize_reply(reply_xml)
    parsed = parse_message(reply_xml)
    if parsed.type != "text" or reply.type != "text":
        raise Mismatch("POST: wechatpy does not read a text reply: %s" % snippet(reply_xml))
    if parsed.target != args.openid:
        raise Mismatch(
            "POST: reply ToUserName %r, expected the sender's openid %r: %s"
            % (parsed.target, args.openid, snippet(reply_xml))
        )
    if parsed.source != args.gh_id:
        raise Mismatch(
            "POST: reply FromUserName %r, expected our account %r: %s"
            % (parsed.source, args.gh_id, snippet(reply_xml))
        )
    create_time = fields.get("CreateTime")
    if not (create_time or "").strip().isdigit():
        raise Mismatch("POST: reply CreateTime %r is not an integer: %s" % (create_time, snippet(reply_xml)))
    content = parsed.content or ""
    if not content.strip():
        raise Mismatch("POST: reply Content is empty: %s" % snippet(reply_xml))
    if args.expect_contains not in content:
        raise Mismatch(
            "POST: reply Content %r does not contain %r" % (snippet(content), args.expect_contains)
        )
    if reply.content != content:
        raise Mismatch("POST: wechatpy reads two different Contents from %s" % snippet(reply_xml))
    return content


def run(args):
    crypto = WeChatCrypto(args.token, args.aes_key, args.app_id) if args.aes_key else None
    summary = {
        "ok": False,
        "url": args.url,
        "mode": "safe" if crypto else "plaintext",
        "wechatpy": getattr(wechatpy, "__version__", "?"),
        "openid": args.openid,
        "gh_id": args.gh_id,
    }
    summary["echostr"] = verify_url(args)

    msg_id = random.randint(10**16, 2**63 - 1)
    plain_xml = text_message_xml(args.gh_id, args.openid, int(time.time()), args.text, msg_id)
    summary["msg_id"] = msg_id
    contents, latencies = [], []
    for attempt in range(args.repeat):
        params, body = build_post(args, crypto, plain_xml)
        status, reply_body, seconds = http(
            "POST", with_query(args.url, params), data=body.encode("utf-8"), timeout=args.timeout
        )
        latencies.append(seconds)
        try:
            content = open_reply(args, crypto, status, reply_body)
        except Mismatch as exc:
            raise Mismatch("post %d/%d: %s" % (attempt + 1, args.repeat, exc))
        if contents and content != contents[0]:
            raise Mismatch(
                "post %d/%d (same MsgId %d): reply Content %r differs from the first reply's %r"
                % (attempt + 1, args.repeat, msg_id, snippet(content), snippet(contents[0]))
            )
        contents.append(content)

    summary.update(
        ok=True,
        posts=len(contents),
        content=contents[0],
        latency_ms={
            "first": round(latencies[0] * 1000, 2),
            "max": round(max(latencies) * 1000, 2),
            "mean": round(sum(latencies) / len(latencies) * 1000, 2),
        },
    )
    return summary


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", required=True, help="webhook URL, e.g. http://127.0.0.1:PORT/wechat")
    ap.add_argument("--token", required=True, help="WECHAT_TOKEN the server uses")
    ap.add_argument("--app-id", required=True, help="WECHAT_APP_ID the server uses")
    ap.add_argument("--aes-key", help="WECHAT_AES_KEY (43 chars): use safe mode")
    ap.add_argument("--expect-contains", default="你好", help="substring the reply Content must have")
    ap.add_argument("--text", default="你好", help="text the user sends")
    ap.add_argument("--repeat", type=int, default=1, help="deliveries of the same MsgId")
    ap.add_argument("--openid", default=DEFAULT_OPENID, help="sender openid")
    ap.add_argument("--gh-id", default=DEFAULT_GH_ID, help="our account's original id (ToUserName)")
    ap.add_argument("--timeout", type=float, default=30.0, help="seconds per HTTP request")
    args = ap.parse_args(argv)
    if args.repeat < 1:
        ap.error("--repeat must be at least 1")
    if args.aes_key is not None and len(args.aes_key) != 43:
        ap.error("--aes-key must be 43 characters (WeChat's EncodingAESKey)")

    try:
        summary = run(args)
    except Mismatch as exc:
        sys.stderr.write("wechatpy_roundtrip: FAIL: %s\n" % exc)
        print(json.dumps({"ok": False, "url": args.url, "error": str(exc)}, ensure_ascii=False))
        return 1
    print(json.dumps(summary, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
