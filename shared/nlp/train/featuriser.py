"""The wca featuriser (version 1), in Python.

Turns a text into the hashed feature ids that the intent and sentiment models
take. The Rust crate `wca-nlp` (shared/nlp/src/featuriser.rs) implements the
same function; the golden vectors in shared/nlp/tests/golden/ (written by
train.py from this file) keep the two identical. Change one, change both, and
bump `version`.

The definition, step by step (also written into every featuriser.json):

1. Map each code point: U+FF01..U+FF5E (full-width ASCII) -> minus 0xFEE0;
   U+3000 (ideographic space) and U+00A0 (no-break space) -> U+0020;
   then A-Z -> a-z; then (collapse_digits) 0-9 -> '0'. Nothing else changes:
   no Unicode tables, so Python and Rust agree whatever their versions.
2. Collapse each run of ASCII whitespace (U+0009..U+000D, U+0020) into one
   U+0020 and drop it at both ends.
3. Keep the first `max_chars` code points.
4. Features, in this order: the bias feature "b" (always, so no text has zero
   features); every character n-gram of each order n in `char_ngrams` (in
   the listed order, left to right), keyed "c<n>" + U+001F + the n-gram; every
   maximal run of ASCII letters and digits at least `min_word_chars` long,
   keyed "w" + U+001F + the run.
5. id = FNV-1a 64 (offset 0xcbf29ce484222325, prime 0x100000001b3) of the
   key's UTF-8 bytes, modulo `buckets`.

The model input is `ids` (int64 [N]) and `weights` (float32 [1, N], every
entry 1/N: the mean of the bag).
"""

from __future__ import annotations

import json
from pathlib import Path

FNV_OFFSET = 0xCBF29CE484222325
FNV_PRIME = 0x100000001B3
MASK64 = (1 << 64) - 1

ASCII_WHITESPACE = frozenset((0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20))

NAME = "wca-hashed-ngrams"
VERSION = 1

DEFINITION = [
    "1. Map each code point: U+FF01..U+FF5E (full-width ASCII) -> minus 0xFEE0 (if fullwidth_to_ascii); "
    "U+3000 and U+00A0 -> U+0020 (if unicode_spaces); A-Z -> a-z (if ascii_lowercase); "
    "0-9 -> '0' (if collapse_digits). In that order; nothing else changes (no Unicode tables).",
    "2. Collapse each run of ASCII whitespace (U+0009..U+000D, U+0020) into one U+0020 and trim both ends.",
    "3. Keep the first max_chars code points.",
    "4. Features, in this order: 'b' (if bias_feature); for each n in char_ngrams, every n-gram of code points "
    "left to right, keyed 'c<n>' + U+001F + n-gram; every maximal run of ASCII letters/digits "
    "(if word_tokens) with at least min_word_chars code points, keyed 'w' + U+001F + run.",
    "5. id = FNV-1a 64 (offset 0xcbf29ce484222325, prime 0x100000001b3) of the key's UTF-8 bytes, mod buckets.",
    "Model inputs: ids int64 [N]; weights float32 [1, N], each 1/N (mean pooling). Output: probs float32 [1, labels].",
]


def fnv1a64(data: bytes) -> int:
    h = FNV_OFFSET
    for b in data:
        h ^= b
        h = (h * FNV_PRIME) & MASK64
    return h


class Featuriser:
    """Featuriser of one model, from its featuriser.json settings."""

    def __init__(self, cfg: dict):
        self.cfg = cfg
        self.buckets = int(cfg["buckets"])
        self.max_chars = int(cfg["max_chars"])
        self.orders = [int(n) for n in cfg["char_ngrams"]]
        self.word_tokens = bool(cfg["word_tokens"])
        self.min_word_chars = int(cfg["min_word_chars"])
        self.bias_feature = bool(cfg["bias_feature"])
        norm = cfg["normalise"]
        self.fullwidth = bool(norm["fullwidth_to_ascii"])
        self.spaces = bool(norm["unicode_spaces"])
        self.lower = bool(norm["ascii_lowercase"])
        self.digits = bool(norm["collapse_digits"])
        self._cache: dict[str, int] = {}

    @classmethod
    def load(cls, path: Path) -> "Featuriser":
        return cls(json.loads(Path(path).read_text(encoding="utf-8")))

    def _map(self, c: int) -> int:
        if self.fullwidth and 0xFF01 <= c <= 0xFF5E:
            c -= 0xFEE0
        if self.spaces and (c == 0x3000 or c == 0xA0):
            c = 0x20
        if self.lower and 0x41 <= c <= 0x5A:
            c += 0x20
        if self.digits and 0x30 <= c <= 0x39:
            c = 0x30
        return c

    def normalise(self, text: str, truncate: bool = True) -> str:
        out: list[str] = []
        pending_space = False
        for ch in text:
            c = self._map(ord(ch))
            if c in ASCII_WHITESPACE:
                pending_space = bool(out)
                continue
            if pending_space:
                out.append(" ")
                pending_space = False
            out.append(chr(c))
        if truncate:
            out = out[: self.max_chars]
        return "".join(out)

    def _id(self, key: str) -> int:
        i = self._cache.get(key)
        if i is None:
            i = fnv1a64(key.encode("utf-8")) % self.buckets
            if len(self._cache) < 2_000_000:
                self._cache[key] = i
        return i

    def ids(self, text: str) -> list[int]:
        s = self.normalise(text)
        out: list[int] = []
        if self.bias_feature:
            out.append(self._id("b"))
        for n in self.orders:
            prefix = f"c{n}\x1f"
            for i in range(len(s) - n + 1):
                out.append(self._id(prefix + s[i : i + n]))
        if self.word_tokens:
            run: list[str] = []
            for ch in s + " ":
                if ch.isascii() and ch.isalnum():
                    run.append(ch)
                    continue
                if len(run) >= self.min_word_chars and run:
                    out.append(self._id("w\x1f" + "".join(run)))
                run = []
        return out


def default_config(buckets: int, max_chars: int = 256) -> dict:
    return {
        "featuriser": NAME,
        "version": VERSION,
        "buckets": buckets,
        "hash": "fnv1a64",
        "normalise": {
            "fullwidth_to_ascii": True,
            "unicode_spaces": True,
            "ascii_lowercase": True,
            "collapse_digits": True,
        },
        "max_chars": max_chars,
        "char_ngrams": [1, 2, 3],
        "word_tokens": True,
        "min_word_chars": 2,
        "bias_feature": True,
        "pooling": "mean",
        "definition": DEFINITION,
    }
