"""String ops: StringNormalizer, StringConcat, StringSplit, RegexFullMatch, TfIdfVectorizer,
ImageDecoder.

Strings are numpy object arrays of Python ``str``. Per-string work is a list
comprehension over the flat array (numpy has no vectorised string kernels for
object arrays); TfIdfVectorizer maps tokens to integer codes once and counts
n-grams with numpy. RegexFullMatch runs Python's ``re`` on a pattern translated
from RE2 syntax (``\\Q...\\E``, ``\\z``, POSIX classes, ASCII-only ``\\d \\s \\w``);
RE2 features with no ``re`` equivalent (``\\p{..}`` classes) are refused at session
creation. Python's ``re`` accepts more than RE2 (backreferences, lookaround), so such
patterns run here although RE2 would reject them. ImageDecoder needs Pillow and declines the node when Pillow is not installed.
"""

from __future__ import annotations

import io
import re
from typing import Any

import numpy as np

from ortcore import errors
from ortcore_cpu.registry import kernel


def _text(value: Any) -> str:
    return value if isinstance(value, str) else bytes(value).decode("utf-8")


def _strings(values: list[Any], shape: tuple[int, ...]) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out.reshape(shape)


# --- StringNormalizer ---------------------------------------------------------------------


@kernel("StringNormalizer", since=10, factory=True)
def string_normalizer(ctx, /, *, case_change_action="NONE", is_case_sensitive=0, locale="", stopwords=None):
    """StringNormalizer-10: drop stop-word elements of a [C] or [1, C] tensor, then change case.

    Case changes are Python's locale-independent Unicode ``lower``/``upper``; the locale
    attribute is accepted and not used.
    """
    if case_change_action not in ("NONE", "LOWER", "UPPER"):
        raise ValueError(f"StringNormalizer: unknown case_change_action {case_change_action!r}")
    change = {"LOWER": str.lower, "UPPER": str.upper}.get(case_change_action)
    stops = set(stopwords or ())
    if not is_case_sensitive:
        stops = {w.lower() for w in stops}

    def run(x, /):
        if not (x.ndim == 1 or (x.ndim == 2 and x.shape[0] == 1)):
            raise ValueError(f"StringNormalizer accepts [C] or [1, C] inputs, got shape {x.shape}")
        words = [_text(s) for s in x.ravel().tolist()]
        if stops:
            key = (lambda w: w) if is_case_sensitive else str.lower
            words = [w for w in words if key(w) not in stops]
        if change is not None:
            words = [change(w) for w in words]
        if not words:  # everything dropped: one empty string
            words = [""]
        return _strings(words, (len(words),) if x.ndim == 1 else (1, len(words)))

    return run


# --- StringConcat / StringSplit -------------------------------------------------------------


@kernel("StringConcat", since=20)
def string_concat(x, y, /):
    """StringConcat-20: elementwise x + y with broadcasting."""
    out = np.empty(np.broadcast_shapes(x.shape, y.shape), dtype=object)
    np.add(x.astype(object, copy=False), y.astype(object, copy=False), out=out)
    return out


@kernel("StringSplit", since=20, multi_output=True, factory=True)
def string_split(ctx, /, *, delimiter="", maxsplit=None):
    """StringSplit-20: substrings padded with "" to the longest split, and their counts.

    An empty or absent delimiter splits on runs of whitespace and drops leading and
    trailing whitespace, as Python's ``str.split()`` does.
    """
    sep = delimiter or None
    limit = -1 if maxsplit is None else maxsplit

    def run(x, /):
        parts = [_text(s).split(sep, limit) for s in x.ravel().tolist()]
        counts = np.array([len(p) for p in parts], dtype=np.int64)
        width = int(counts.max(initial=0))
        padded = [p + [""] * (width - len(p)) for p in parts]
        y = np.empty((len(parts), width), dtype=object)
        if parts and width:
            y[...] = padded
        return y.reshape(x.shape + (width,)), counts.reshape(x.shape)

    return run


# --- RegexFullMatch -----------------------------------------------------------------------

_POSIX_CLASSES = {
    "alnum": "0-9A-Za-z", "alpha": "A-Za-z", "ascii": "\\x00-\\x7f", "blank": "\\t ",
    "cntrl": "\\x00-\\x1f\\x7f", "digit": "0-9", "graph": "!-~", "lower": "a-z",
    "print": " -~", "punct": "!-/:-@\\[-`{-~", "space": "\\t\\n\\v\\f\\r ",
    "upper": "A-Z", "word": "0-9A-Za-z_", "xdigit": "0-9A-Fa-f",
}
# RE2's Perl classes are ASCII-only; Python's match Unicode letters and digits.
_PERL_CLASSES = {"d": "0-9", "s": "\\t\\n\\f\\r ", "w": "0-9A-Za-z_"}


def _re2_to_python(pattern: str) -> str:
    """Translate an RE2 pattern into Python ``re`` syntax with the same meaning.

    Handles \\Q...\\E quoting, \\z, \\C, POSIX classes ([[:alpha:]]) and RE2's ASCII-only
    \\d \\s \\w (and negations). Unicode classes (\\p{..}) have no ``re`` equivalent.
    """
    out: list[str] = []
    i, n, in_class = 0, len(pattern), False
    while i < n:
        ch = pattern[i]
        if in_class and pattern.startswith("[:", i):
            end = pattern.find(":]", i + 2)
            name = pattern[i + 2 : end] if end > 0 else ""
            negate = name.startswith("^")
            if end < 0 or name.lstrip("^") not in _POSIX_CLASSES:
                raise ValueError(f"RegexFullMatch: unknown POSIX class in {pattern!r}")
            if negate:
                raise errors.NotImplemented("RegexFullMatch: negated POSIX classes ([:^name:]) are not supported")
            out.append(_POSIX_CLASSES[name])
            i = end + 2
            continue
        if ch == "\\" and i + 1 < n:
            nxt = pattern[i + 1]
            if nxt == "Q":  # literal text up to \E
                end = pattern.find("\\E", i + 2)
                literal = pattern[i + 2 :] if end < 0 else pattern[i + 2 : end]
                out.append("".join("\\" + c if not c.isalnum() else c for c in literal))
                i = n if end < 0 else end + 2
                continue
            if nxt in "pP":
                raise errors.NotImplemented("RegexFullMatch: RE2 Unicode classes (\\p{..}) have no Python re equivalent")
            if nxt.lower() in _PERL_CLASSES:
                chars = _PERL_CLASSES[nxt.lower()]
                if nxt.islower():
                    out.append(chars if in_class else f"[{chars}]")
                elif in_class:
                    raise errors.NotImplemented(f"RegexFullMatch: \\{nxt} inside a character class is not supported")
                else:
                    out.append(f"[^{chars}]")
            elif nxt == "z":
                out.append("\\Z")
            elif nxt == "C":  # any byte; here any character, newline included
                out.append("(?s:.)")
            else:
                out.append(pattern[i : i + 2])
            i += 2
            continue
        if ch == "[" and not in_class:
            in_class = True
            out.append(ch)
            i += 1
            # a leading ^ and a leading ] belong to the class
            if i < n and pattern[i] == "^":
                out.append("^")
                i += 1
            if i < n and pattern[i] == "]":
                out.append("\\]")
                i += 1
            continue
        if ch == "]" and in_class:
            in_class = False
        out.append(ch)
        i += 1
    return "".join(out)


@kernel("RegexFullMatch", since=20, factory=True)
def regex_full_match(ctx, /, *, pattern=""):
    """RegexFullMatch-20: whether each string fully matches an RE2 pattern (run with ``re``)."""
    try:
        regex = re.compile(_re2_to_python(pattern))
    except re.error as exc:
        raise ValueError(f"RegexFullMatch: invalid pattern {pattern!r}: {exc}") from exc
    fullmatch = regex.fullmatch

    def run(x, /):
        hits = [fullmatch(_text(s)) is not None for s in x.ravel().tolist()]
        return np.array(hits, dtype=np.bool_).reshape(x.shape)

    return run


# --- TfIdfVectorizer ----------------------------------------------------------------------


def _pool_ngrams(pool: list[Any], ngram_counts: list[int], lo: int, hi: int) -> dict[int, list[tuple[Any, ...]]]:
    """n -> the pool's n-grams of length n in [lo, hi], in pool order (one per output slot id)."""
    grams: dict[int, list[tuple[Any, ...]]] = {}
    ids: dict[int, list[int]] = {}
    next_id = 0
    bounds = list(ngram_counts) + [len(pool)]
    for n, (start, end) in enumerate(zip(bounds[:-1], bounds[1:]), start=1):
        count = (end - start) // n
        if lo <= n <= hi:
            grams[n] = [tuple(pool[start + k * n : start + (k + 1) * n]) for k in range(count)]
            ids[n] = list(range(next_id, next_id + count))
        next_id += count
    return {n: list(zip(grams[n], ids[n])) for n in grams}


@kernel("TfIdfVectorizer", since=9, factory=True)
def tfidf_vectorizer(
    ctx, /, *, max_gram_length, max_skip_count, min_gram_length, mode, ngram_counts, ngram_indexes,
    pool_int64s=None, pool_strings=None, weights=None,
):
    """TfIdfVectorizer-9: counts of pool n-grams (with up to max_skip_count skips), weighted."""
    if mode not in ("TF", "IDF", "TFIDF"):
        raise ValueError(f"TfIdfVectorizer: unknown mode {mode!r}")
    out_size = max(ngram_indexes) + 1
    pool = list(pool_strings if pool_strings else pool_int64s or [])
    # weights[i] belongs to the i-th pool n-gram, whose output slot is ngram_indexes[i]
    # (onnx.reference indexes weights by slot instead; onnxruntime follows the spec).
    scale = np.ones(out_size, dtype=np.float32)
    if weights:
        if len(weights) != len(ngram_indexes):
            raise ValueError(f"TfIdfVectorizer: {len(weights)} weights for {len(ngram_indexes)} n-grams")
        scale[np.asarray(ngram_indexes)] = np.asarray(weights, dtype=np.float32)

    # Tokens become dense codes 0..V-1 (V = distinct pool tokens); unknown tokens never match.
    vocab = {tok: i for i, tok in enumerate(dict.fromkeys(pool))}
    base = max(len(vocab), 1)
    by_size = _pool_ngrams(pool, ngram_counts, min_gram_length, max_gram_length)
    tables = {}
    for n, entries in by_size.items():
        if not entries:
            continue
        if base**n >= 2**62:
            # codes would overflow int64: look up tuples of token codes instead
            tables[n] = {tuple(vocab[t] for t in g): ngram_indexes[i] for g, i in entries}
            continue
        codes = {}
        for gram, i in entries:
            code = 0
            for tok in gram:
                code = code * base + vocab[tok]
            codes[code] = ngram_indexes[i]
        keys = np.array(sorted(codes), dtype=np.int64)
        tables[n] = (keys, np.array([codes[k] for k in keys.tolist()], dtype=np.int64))
    if pool_strings:
        def encode(x):
            return np.array([vocab.get(_text(s), -1) for s in x.ravel().tolist()], dtype=np.int64)
    else:
        known = np.array(sorted(vocab), dtype=np.int64)
        known_codes = np.array([vocab[k] for k in known.tolist()], dtype=np.int64)

        def encode(x):
            flat = x.ravel().astype(np.int64)
            pos = np.clip(np.searchsorted(known, flat), 0, max(len(known) - 1, 0))
            hit = known[pos] == flat if len(known) else np.zeros(flat.shape, bool)
            return np.where(hit, known_codes[pos] if len(known) else 0, -1)

    def run(x, /):
        if x.ndim > 2:
            raise ValueError(f"TfIdfVectorizer accepts [C] or [B, C] inputs, got shape {x.shape}")
        rows = x.shape[0] if x.ndim == 2 else 1
        width = x.shape[-1] if x.ndim else 1
        tokens = encode(x).reshape(rows, width)
        counts = np.zeros(rows * out_size, dtype=np.int64)
        for n, table in tables.items():
            for skip in range(1, max_skip_count + 2) if n > 1 else (1,):
                span = (n - 1) * skip
                if span >= width:
                    break
                starts = width - span
                grams = np.stack([tokens[:, j * skip : j * skip + starts] for j in range(n)], axis=-1)
                row_of = np.repeat(np.arange(rows), starts)
                grams = grams.reshape(-1, n)
                if isinstance(table, dict):
                    hits = [table.get(tuple(g)) for g in grams.tolist()]
                    found = np.array([h is not None for h in hits], dtype=bool)
                    slot = np.array([h for h in hits if h is not None], dtype=np.int64)
                else:
                    keys, slots = table
                    valid = (grams >= 0).all(axis=1)
                    code = np.zeros(len(grams), dtype=np.int64)
                    for j in range(n):
                        code = code * base + grams[:, j]
                    pos = np.clip(np.searchsorted(keys, code), 0, len(keys) - 1)
                    found = valid & (keys[pos] == code)
                    slot = slots[pos[found]]
                counts += np.bincount(row_of[found] * out_size + slot, minlength=rows * out_size)
        counts = counts.reshape(rows, out_size)
        if mode == "TF":
            y = counts.astype(np.float32)
        elif mode == "IDF":
            y = (counts > 0) * scale
        else:
            y = counts * scale
        y = y.astype(np.float32, copy=False)
        return y if x.ndim == 2 else y.reshape(out_size)

    return run


# --- ImageDecoder -------------------------------------------------------------------------


@kernel("ImageDecoder", since=20, factory=True)
def image_decoder(ctx, /, *, pixel_format="RGB"):
    """ImageDecoder-20: encoded bytes -> uint8 [H, W, C] (C = 3, or 1 for Grayscale), via Pillow.

    Pillow's JPEG decoder (libjpeg-turbo) uses the "fancy" chroma upsampling the spec names.
    An undecodable stream gives an empty [0, 0, C] image, as the spec asks.
    """
    try:
        from PIL import Image
    except ImportError as exc:
        raise errors.NotImplemented("ImageDecoder needs Pillow, which is not installed (pip install pillow)") from exc
    if pixel_format not in ("RGB", "BGR", "Grayscale"):
        raise ValueError(f"ImageDecoder: unknown pixel_format {pixel_format!r}")
    channels = 1 if pixel_format == "Grayscale" else 3

    def run(encoded, /):
        try:
            with Image.open(io.BytesIO(np.ascontiguousarray(encoded, dtype=np.uint8).tobytes())) as img:
                img = img.convert("L" if channels == 1 else "RGB")
                pixels = np.asarray(img, dtype=np.uint8)
        except Exception:  # noqa: BLE001 - the spec asks for an empty image on any decode failure
            return np.zeros((0, 0, channels), dtype=np.uint8)
        if channels == 1:
            return pixels[:, :, np.newaxis].copy()
        return np.ascontiguousarray(pixels[:, :, ::-1]) if pixel_format == "BGR" else pixels

    return run
