#!/usr/bin/env python3
"""Side-by-side: Python onnxruntime vs wca (tract) on the wca-nlp models.

Same ONNX files, same featuriser definition, same messages, one thread each:

1. Messages: every line of the training data (shared/nlp/data/intent/*.txt
   and shared/nlp/data/sentiment/chat-*.txt, deduplicated, in file order),
   or --messages FILE. Written to one file that both sides read.
2. Python: featuriser.py (the training featuriser) + onnxruntime
   InferenceSession per model, intra/inter-op threads 1, CPU provider.
   - load: both featuriser.json files read and both sessions created, timed
     --loads times (the first is the cold one);
   - per message: for both models, featurise, build the inputs, run, and
     derive what wca derives (intent label + top 3, sentiment label + score),
     timed per message with perf_counter_ns over --rounds passes after one
     untimed warm-up pass. featuriser.py memoises ids per n-gram; its cache
     is cleared before every pass so a pass does not run on ids memoised by
     the previous one (within a pass, common n-grams still hit the cache).
   - also onnxruntime alone (session.run on precomputed inputs), to show
     where the Python time goes.
3. wca: `WCA bench nlp --messages FILE --model-dir MODELS --rounds R
   --loads L`, which does the same in-process (load from the same files,
   then classify + sentiment per message) and prints JSON. Once more
   without --model-dir for the embedded models (the deployed cold start).
4. Agreement: `WCA classify --model-dir MODELS` on the first 300 messages;
   its intent, confidence, sentiment and score must match Python's within
   1e-5, so both sides provably ran the same models on the same input.
5. Prints a table and the ratios (Python / wca); --out writes all as JSON.

Run it with the venv that shared/nlp/train/run.sh creates:

    cargo build --release -p wca-cli
    ~/.cache/wca/train-venv/bin/python infra/bench/onnxruntime_vs_wca.py \\
        --wca $CARGO_TARGET_DIR/release/wca [--out results.json]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# One thread for numpy/onnxruntime, set before they load.
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = "1"

ROOT = Path(__file__).resolve().parents[2]
NLP = ROOT / "shared" / "nlp"
sys.path.insert(0, str(NLP / "train"))

try:
    import numpy as np
    import onnxruntime as ort
    from featuriser import Featuriser
except ImportError as exc:  # pragma: no cover - environment problem
    sys.stderr.write(
        f"onnxruntime_vs_wca: {exc}\n"
        "run shared/nlp/train/run.sh once, then use ~/.cache/wca/train-venv/bin/python\n"
    )
    sys.exit(1)

TASKS = ("intent", "sentiment")
TOLERANCE = 1e-5


class BenchError(Exception):
    pass


def data_messages() -> list[str]:
    files = sorted((NLP / "data" / "intent").glob("*.txt")) + sorted((NLP / "data" / "sentiment").glob("chat-*.txt"))
    seen: set[str] = set()
    out = []
    for f in files:
        for line in f.read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if line and not line.startswith("#") and line not in seen:
                seen.add(line)
                out.append(line)
    return out


def read_messages(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


class PyNlp:
    """featuriser.py + onnxruntime, doing per message what wca-nlp does."""

    def __init__(self, models: Path):
        self.models = {}
        for task in TASKS:
            d = models / task
            so = ort.SessionOptions()
            so.intra_op_num_threads = 1
            so.inter_op_num_threads = 1
            sess = ort.InferenceSession(str(d / "model.onnx"), so, providers=["CPUExecutionProvider"])
            labels = [line.strip() for line in (d / "labels.txt").read_text(encoding="utf-8").splitlines() if line.strip()]
            self.models[task] = (Featuriser.load(d / "featuriser.json"), sess, labels)
        slabels = self.models["sentiment"][2]
        self.neg = slabels.index("negative")
        self.pos = slabels.index("positive")

    def clear_caches(self) -> None:
        for feat, _, _ in self.models.values():
            feat._cache.clear()

    def probs(self, task: str, text: str) -> np.ndarray:
        feat, sess, _ = self.models[task]
        ids = np.asarray(feat.ids(text), dtype=np.int64)
        w = np.full((1, len(ids)), np.float32(1.0) / np.float32(len(ids)), dtype=np.float32)
        return sess.run(["probs"], {"ids": ids, "weights": w})[0][0]

    def classify(self, text: str):
        p = self.probs("intent", text)
        labels = self.models["intent"][2]
        order = np.argsort(-p, kind="stable")[:3]
        top = [(labels[i], float(p[i])) for i in order]
        s = self.probs("sentiment", text)
        slabels = self.models["sentiment"][2]
        return {
            "intent": top[0][0],
            "confidence": top[0][1],
            "top": top,
            "sentiment": slabels[int(np.argmax(s))],
            "sentiment_score": float(min(1.0, max(-1.0, s[self.pos] - s[self.neg]))),
        }


def quantiles(ns: list[int]) -> dict:
    ns = sorted(ns)
    at = lambda q: ns[round((len(ns) - 1) * q)] / 1e3  # noqa: E731
    return {
        "p50_us": at(0.50),
        "p90_us": at(0.90),
        "p99_us": at(0.99),
        "max_us": at(1.0),
        "mean_us": sum(ns) / len(ns) / 1e3,
    }


def bench_python(models: Path, messages: list[str], rounds: int, loads: int) -> dict:
    load_ms = []
    nlp = None
    for _ in range(max(1, loads)):
        t = time.perf_counter_ns()
        nlp = PyNlp(models)
        load_ms.append((time.perf_counter_ns() - t) / 1e6)
    assert nlp is not None
    for m in messages:  # warm-up
        nlp.classify(m)
    times = []
    perf = time.perf_counter_ns
    for _ in range(max(1, rounds)):
        nlp.clear_caches()
        for m in messages:
            t = perf()
            nlp.classify(m)
            times.append(perf() - t)
    # onnxruntime alone: both session.run calls on precomputed inputs.
    inputs = []
    for m in messages:
        per = []
        for task in TASKS:
            feat, sess, _ = nlp.models[task]
            ids = np.asarray(feat.ids(m), dtype=np.int64)
            w = np.full((1, len(ids)), np.float32(1.0) / np.float32(len(ids)), dtype=np.float32)
            per.append((sess, {"ids": ids, "weights": w}))
        inputs.append(per)
    ort_times = []
    for _ in range(max(1, rounds)):
        for per in inputs:
            t = perf()
            for sess, feed in per:
                sess.run(["probs"], feed)
            ort_times.append(perf() - t)
    return {
        "implementation": f"python {platform.python_version()} + onnxruntime {ort.__version__} + featuriser.py",
        "messages": len(messages),
        "rounds": max(1, rounds),
        "load_ms_first": load_ms[0],
        "load_ms_min": min(load_ms),
        **quantiles(times),
        "onnxruntime_only": quantiles(ort_times),
    }, nlp


def run_wca(wca: str, args: list[str], stdin: bytes | None = None) -> bytes:
    proc = subprocess.run([wca, *args], input=stdin, capture_output=True)
    if proc.returncode != 0:
        raise BenchError(f"{wca} {' '.join(args)} failed: {proc.stderr.decode(errors='replace')}")
    return proc.stdout


def check_agreement(wca: str, models: Path, nlp: PyNlp, messages: list[str]) -> int:
    sample = messages[:300]
    out = run_wca(wca, ["classify", "--model-dir", str(models)], "\n".join(sample).encode() + b"\n")
    lines = [json.loads(line) for line in out.decode().splitlines()]
    if len(lines) != len(sample):
        raise BenchError(f"wca classify returned {len(lines)} lines for {len(sample)}")
    for text, ours in zip(sample, lines):
        py = nlp.classify(text)
        if ours["text"] != text:
            raise BenchError(f"wca classify echoed {ours['text']!r} for {text!r}")
        for key in ("confidence", "sentiment_score"):
            if abs(ours[key] - py[key]) > TOLERANCE:
                raise BenchError(f"{text!r}: {key} wca {ours[key]} vs python {py[key]}")
        # Labels must agree unless the top two are tied within the tolerance.
        if ours["intent"] != py["intent"] and abs(py["top"][0][1] - py["top"][1][1]) > TOLERANCE:
            raise BenchError(f"{text!r}: intent wca {ours['intent']} vs python {py['intent']}")
        if ours["sentiment"] != py["sentiment"]:
            raise BenchError(f"{text!r}: sentiment wca {ours['sentiment']} vs python {py['sentiment']}")
    return len(sample)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def default_wca() -> str:
    target = os.environ.get("CARGO_TARGET_DIR", str(ROOT / "target"))
    return str(Path(target) / "release" / "wca")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--wca", default=default_wca(), help="the wca binary (release build); default $CARGO_TARGET_DIR/release/wca")
    ap.add_argument("--models", type=Path, default=NLP / "models", help="holds intent/ and sentiment/ (default: shared/nlp/models)")
    ap.add_argument("--messages", type=Path, help="one message a line (default: every line of shared/nlp/data)")
    ap.add_argument("--rounds", type=int, default=5, help="timed passes over the messages (after one warm-up pass)")
    ap.add_argument("--loads", type=int, default=10, help="timed model loads (the first is the cold one)")
    ap.add_argument("--out", type=Path, help="write all results as JSON here")
    args = ap.parse_args()

    if not Path(args.wca).is_file():
        raise BenchError(f"{args.wca} not found: cargo build --release -p wca-cli (or pass --wca)")
    messages = read_messages(args.messages) if args.messages else data_messages()
    if not messages:
        raise BenchError("no messages")

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "messages.txt"
        path.write_text("\n".join(messages) + "\n", encoding="utf-8")
        common = ["--messages", str(path), "--rounds", str(args.rounds), "--loads", str(args.loads)]
        print(f"{len(messages)} messages, {args.rounds} rounds; python ...", file=sys.stderr)
        python, nlp = bench_python(args.models, messages, args.rounds, args.loads)
        print("wca ...", file=sys.stderr)
        wca = json.loads(run_wca(args.wca, ["bench", "nlp", "--model-dir", str(args.models), *common]))
        wca_embedded = json.loads(run_wca(args.wca, ["bench", "nlp", *common]))
        agreed = check_agreement(args.wca, args.models, nlp, messages)

    ratio = {
        "p50": python["p50_us"] / wca["p50_us"],
        "p99": python["p99_us"] / wca["p99_us"],
        "mean": python["mean_us"] / wca["mean_us"],
        "load_first": python["load_ms_first"] / wca["load_ms_first"],
        "load_min": python["load_ms_min"] / wca["load_ms_min"],
        "onnxruntime_only_p50_vs_wca_p50": python["onnxruntime_only"]["p50_us"] / wca["p50_us"],
    }
    rows = [
        ("python + onnxruntime", python),
        ("onnxruntime session.run only", {**python["onnxruntime_only"], "load_ms_first": float("nan"), "load_ms_min": float("nan")}),
        ("wca, model files", wca),
        ("wca, embedded models", wca_embedded),
    ]
    print(f"\nboth models per message, single thread; {len(messages)} messages x {args.rounds} rounds; {cpu_model()}")
    print(f"{'':32} {'load first':>11} {'load min':>9} {'p50':>9} {'p90':>9} {'p99':>9} {'mean':>9}")
    ms = lambda v, w: f"{'-':>{w + 2}}" if v != v else f"{v:{w}.2f}ms"  # noqa: E731
    for name, r in rows:
        print(
            f"{name:32} {ms(r['load_ms_first'], 9)} {ms(r['load_ms_min'], 7)} "
            f"{r['p50_us']:7.2f}µs {r['p90_us']:7.2f}µs {r['p99_us']:7.2f}µs {r['mean_us']:7.2f}µs"
        )
    print(
        f"\npython / wca: p50 {ratio['p50']:.1f}x, p99 {ratio['p99']:.1f}x, mean {ratio['mean']:.1f}x, "
        f"load {ratio['load_first']:.1f}x (first) {ratio['load_min']:.1f}x (min); "
        f"onnxruntime's session.run alone vs all of wca: {ratio['onnxruntime_only_p50_vs_wca_p50']:.1f}x (p50)"
    )
    print(f"agreement: wca classify matched python on {agreed} messages (within {TOLERANCE})")

    if args.out:
        args.out.write_text(
            json.dumps(
                {
                    "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                    "cpu": cpu_model(),
                    "messages": len(messages),
                    "rounds": args.rounds,
                    "python": python,
                    "wca": wca,
                    "wca_embedded": wca_embedded,
                    "ratio_python_over_wca": ratio,
                    "agreement_checked": agreed,
                    "numpy": np.__version__,
                    "onnxruntime": ort.__version__,
                },
                indent=2,
            )
            + "\n",
            encoding="utf-8",
        )
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        sys.stderr.write(f"onnxruntime_vs_wca: {exc}\n")
        sys.exit(1)
