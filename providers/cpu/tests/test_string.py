"""StringNormalizer, StringConcat, StringSplit, RegexFullMatch, TfIdfVectorizer and
ImageDecoder: what the ONNX node cases leave out.

Expected values come from onnxruntime (StringNormalizer, RegexFullMatch with RE2,
TfIdfVectorizer), onnx.reference (StringSplit, TfIdfVectorizer), Python's own string
methods, or images encoded by Pillow; never from ortcore.
"""

from __future__ import annotations

import io
import sys

import numpy as np
import pytest

import ortcore
from ortcore.testing import compare_outputs, run_onnxruntime, run_ortcore, run_reference
from ortcore.testing import single_node_model as make_model

RNG = np.random.default_rng(3)


def strings(values, shape=None):
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out if shape is None else out.reshape(shape)


# --- StringNormalizer -----------------------------------------------------------------

WORDS = ["Monday", "tuesday", "MONDAY", "", "Zoë", "straße", "wed", "monday", "Tuesday"]


@pytest.mark.parametrize("case", ["NONE", "LOWER", "UPPER"])
@pytest.mark.parametrize("sensitive", [0, 1])
@pytest.mark.parametrize("stopwords", [None, ["monday", "Tuesday"], ["MONDAY", "wed", "Monday", "tuesday", "", "Zoë", "straße", "monday", "Tuesday"]])
@pytest.mark.parametrize("two_d", [False, True])
def test_string_normalizer_matches_onnxruntime(case, sensitive, stopwords, two_d):
    x = strings(WORDS, (1, len(WORDS)) if two_d else None)
    # onnxruntime builds a C++ std::locale from the name; C.UTF-8 exists on every glibc system.
    attrs = dict(case_change_action=case, is_case_sensitive=sensitive, locale="C.UTF-8")
    if stopwords is not None:
        attrs["stopwords"] = stopwords
    model = make_model("StringNormalizer", {"x": x}, [object], opset=10, **attrs)
    expected = run_onnxruntime(model, {"x": x})[0]
    if case == "UPPER":
        # Python upper-cases "ß" to "SS" (Unicode full case mapping); onnxruntime's
        # per-character towupper keeps it.
        expected = np.vectorize(lambda s: s.replace("ß", "SS"), otypes=[object])(expected)
    compare_outputs(expected, run_ortcore(model, {"x": x})[0])


# --- StringConcat ---------------------------------------------------------------------


@pytest.mark.parametrize("shapes", [((2, 3), (2, 3)), ((2, 3), (3,)), ((), (4,)), ((2, 1), (1, 3)), ((0, 2), (2,))])
def test_string_concat_broadcasts(shapes):
    a = strings([f"a{i}é" for i in range(int(np.prod(shapes[0])))], shapes[0])
    b = strings([f"-b{i}" for i in range(int(np.prod(shapes[1])))], shapes[1])
    model = make_model("StringConcat", {"a": a, "b": b}, [object], opset=20)
    actual = run_ortcore(model, {"a": a, "b": b})[0]
    expected = np.frompyfunc(lambda x, y: x + y, 2, 1)(a, b)
    compare_outputs(np.asarray(expected, dtype=object), actual)


# --- StringSplit ----------------------------------------------------------------------


SPLIT_TEXT = ["a,b,,c", "", "  lead and  trail ", "one", "x,y", "tab\tsep\nnew line", ",,"]


@pytest.mark.parametrize("delimiter", [None, "", ",", ", ", "an"])
@pytest.mark.parametrize("maxsplit", [None, 0, 1, 2])
@pytest.mark.parametrize("shape", [(7,), (7, 1)])
def test_string_split(delimiter, maxsplit, shape):
    x = strings(SPLIT_TEXT, shape)
    attrs = {}
    if delimiter is not None:
        attrs["delimiter"] = delimiter
    if maxsplit is not None:
        attrs["maxsplit"] = maxsplit
    model = make_model("StringSplit", {"x": x}, [object, np.int64], opset=20, **attrs)
    actual = run_ortcore(model, {"x": x})
    expected = run_reference(model, {"x": x})
    # onnxruntime is no help here: it counts zero substrings in "" and splits on " " only,
    # where the spec says whitespace; onnx.reference (Python's str.split) follows the spec.
    for e, a in zip(expected, actual):
        compare_outputs(e, a)


def test_string_split_empty_input():
    x = np.empty((0, 3), dtype=object)
    model = make_model("StringSplit", {"x": x}, [object, np.int64], opset=20, delimiter=",")
    y, z = run_ortcore(model, {"x": x})
    assert y.shape == (0, 3, 0) and z.shape == (0, 3) and z.dtype == np.int64


# --- RegexFullMatch -------------------------------------------------------------------

TEXT = ["abc", "ABC123", "a.b", "2024-01-31", "hello world", "", "x\ny", "tab\t", "Q*E", "naïve"]


@pytest.mark.parametrize(
    "pattern",
    [
        r"[a-z]+", r"\w+", r"\d{4}-\d{2}-\d{2}", r".*o w.*", r"a\.b", r"(?i)abc\d*", r"",
        r"[[:alpha:]]+", r"[[:upper:][:digit:]]+", r"[[:space:][:alpha:]]+", r"\QQ*E\E", r"x\ny\z", r"(a|b|c)+",
        r"\S+", r"[\w.]+", r"\D*", r"\C\C\C", r"[^\s]+",
    ],
)
def test_regex_full_match_matches_re2(pattern):
    """onnxruntime runs RE2, the engine the spec names."""
    x = strings(TEXT, (2, 5))
    model = make_model("RegexFullMatch", {"x": x}, [np.bool_], opset=20, pattern=pattern)
    compare_outputs(run_onnxruntime(model, {"x": x})[0], run_ortcore(model, {"x": x})[0])


def test_regex_full_match_refuses_unicode_classes():
    x = strings(["a"])
    model = make_model("RegexFullMatch", {"x": x}, [np.bool_], opset=20, pattern=r"\p{L}+")
    with pytest.raises(ortcore.NotImplemented):
        run_ortcore(model, {"x": x})


# --- TfIdfVectorizer ------------------------------------------------------------------

INT_POOL = dict(
    pool_int64s=[2, 3, 5, 4, 5, 6, 7, 8, 6, 7, 2, 3, 9, 2, 2, 4],  # 1-grams: 2 3 5 4; 2-grams: (5,6)(7,8)(6,7)(2,3)(9,2)(2,4)
    ngram_counts=[0, 4],
    ngram_indexes=[0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
)


@pytest.mark.parametrize("mode", ["TF", "IDF", "TFIDF"])
@pytest.mark.parametrize("grams", [(1, 1), (1, 2), (2, 2)])
@pytest.mark.parametrize("skip", [0, 1, 3])
@pytest.mark.parametrize("weights", [False, True])
@pytest.mark.parametrize("shape", [(12,), (3, 12)])
def test_tfidf_integers(mode, grams, skip, weights, shape):
    x = RNG.integers(2, 10, shape).astype(np.int64)
    attrs = dict(INT_POOL, mode=mode, min_gram_length=grams[0], max_gram_length=grams[1], max_skip_count=skip)
    if weights:
        attrs["weights"] = RNG.uniform(0.5, 2, 10).round(3).tolist()
    model = make_model("TfIdfVectorizer", {"x": x}, [np.float32], opset=9, **attrs)
    actual = run_ortcore(model, {"x": x})[0]
    if weights or mode == "TF":  # onnx.reference fails on IDF/TFIDF without weights
        compare_outputs(run_reference(model, {"x": x})[0], actual)
    compare_outputs(run_onnxruntime(model, {"x": x})[0], actual)


@pytest.mark.parametrize("skip", [0, 2])
def test_tfidf_strings_and_int32(skip):
    vocab = ["the", "cat", "sat", "on", "mat", "a"]
    pool = ["cat", "mat", "the", "cat", "on", "the", "cat", "sat", "the", "the", "cat", "sat"]  # 1-grams, 2-grams, 3-grams
    attrs = dict(
        mode="TFIDF", min_gram_length=1, max_gram_length=3, max_skip_count=skip, pool_strings=pool,
        ngram_counts=[0, 2, 6], ngram_indexes=[4, 0, 1, 2, 3, 5], weights=[1.5, 2.0, 0.5, 1.0, 3.0, 0.25],
    )
    tokens = RNG.integers(0, len(vocab), (4, 9))
    x = strings([vocab[i] for i in tokens.ravel()], tokens.shape)
    model = make_model("TfIdfVectorizer", {"x": x}, [np.float32], opset=9, **attrs)
    actual = run_ortcore(model, {"x": x})[0]
    # The spec gives weights[i] to the i-th pool n-gram (output slot ngram_indexes[i]), as
    # onnxruntime does; onnx.reference indexes weights by output slot, so it is not used here.
    compare_outputs(run_onnxruntime(model, {"x": x})[0], actual)

    ids = {w: i + 10 for i, w in enumerate(vocab)}
    int_attrs = {k: v for k, v in attrs.items() if k != "pool_strings"}
    int_attrs["pool_int64s"] = [ids[w] for w in pool]
    xi = tokens.astype(np.int32) + 10
    int_model = make_model("TfIdfVectorizer", {"x": xi}, [np.float32], opset=9, **int_attrs)
    compare_outputs(actual, run_ortcore(int_model, {"x": xi})[0])


# --- ImageDecoder ---------------------------------------------------------------------


def test_image_decoder_declines_without_pillow(monkeypatch):
    monkeypatch.setitem(sys.modules, "PIL", None)  # "import PIL" now raises ImportError
    x = np.zeros(4, np.uint8)
    model = make_model("ImageDecoder", {"x": x}, [np.uint8], opset=20)
    with pytest.raises(ortcore.NotImplemented, match="Pillow"):
        run_ortcore(model, {"x": x})


@pytest.mark.parametrize("fmt", ["PNG", "BMP"])
@pytest.mark.parametrize("pixel_format", ["RGB", "BGR", "Grayscale"])
def test_image_decoder_lossless_formats(fmt, pixel_format):
    Image = pytest.importorskip("PIL.Image")
    rgb = RNG.integers(0, 256, (5, 7, 3)).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format=fmt)
    encoded = np.frombuffer(buf.getvalue(), np.uint8)
    model = make_model("ImageDecoder", {"x": encoded}, [np.uint8], opset=20, pixel_format=pixel_format)
    actual = run_ortcore(model, {"x": encoded})[0]
    if pixel_format == "RGB":
        expected = rgb
    elif pixel_format == "BGR":
        expected = rgb[:, :, ::-1]
    else:  # ITU-R 601-2 luma, as Pillow's "L" conversion defines it
        expected = np.asarray(Image.fromarray(rgb).convert("L"))[:, :, None]
    compare_outputs(expected, actual)


def test_image_decoder_garbage_gives_empty_image():
    pytest.importorskip("PIL.Image")
    x = np.frombuffer(b"not an image at all", np.uint8)
    model = make_model("ImageDecoder", {"x": x}, [np.uint8], opset=20)
    assert run_ortcore(model, {"x": x})[0].shape == (0, 0, 3)


def test_tfidf_long_ngrams_over_a_large_vocabulary():
    """80 distinct tokens and 10-grams: 80**10 codes overflow int64, so tuples are looked up."""
    unigrams = list(range(100, 180))
    grams = [list(range(100, 110)), [105, 171, 140, 100, 101, 102, 103, 104, 105, 106]]
    x = np.array([unigrams[:30] + grams[1] + grams[0] + grams[1]], dtype=np.int64)
    attrs = dict(
        mode="TF", min_gram_length=10, max_gram_length=10, max_skip_count=1,
        pool_int64s=unigrams + grams[0] + grams[1], ngram_counts=[0, 80, 80, 80, 80, 80, 80, 80, 80, 80],
        ngram_indexes=list(range(80)) + [80, 81],
    )
    model = make_model("TfIdfVectorizer", {"x": x}, [np.float32], opset=9, **attrs)
    actual = run_ortcore(model, {"x": x})[0]
    assert actual[0, 80] == 2 and actual[0, 81] == 2  # 100..109 also opens the input
    compare_outputs(run_onnxruntime(model, {"x": x})[0], actual)
