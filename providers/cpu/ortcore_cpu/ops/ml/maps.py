"""Maps and sequences of maps: ZipMap, DictVectorizer and CastMap (ai.onnx.ml 1).

A map is a Python dict and a sequence of maps a list of dicts, as in
onnxruntime's Python API. ZipMap's dicts hold Python floats and list their
keys in ascending order (onnxruntime builds ``std::map``s). DictVectorizer also
takes a list of dicts, one output row each.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ortcore_cpu.ops.ml._common import ML, as_matrix
from ortcore_cpu.registry import kernel


@kernel("ZipMap", since=1, domain=ML, dtypes=(np.float32,), factory=True)
def zip_map(ctx, *, classlabels_int64s=None, classlabels_strings=None):
    """ZipMap-1: one {label: score} dict per row of an [N, C] (or [C]) float tensor."""
    if bool(classlabels_int64s) == bool(classlabels_strings):
        raise ValueError("ZipMap needs exactly one of classlabels_int64s and classlabels_strings")
    labels = list(classlabels_strings or classlabels_int64s)
    order = sorted(range(len(labels)), key=labels.__getitem__)
    keys = [labels[j] for j in order]
    columns = np.asarray(order, dtype=np.intp)

    def run(x, /):
        x = as_matrix(x, "ZipMap")
        if x.shape[1] != len(labels):
            raise ValueError(f"ZipMap: {x.shape[1]} columns for {len(labels)} class labels")
        return [dict(zip(keys, row)) for row in x[:, columns].tolist()]

    return run


def _value_dtype(values: list[Any]) -> np.dtype:
    """The numpy dtype for map values whose declared type is unknown."""
    if not values:
        return np.dtype(np.float32)
    v = values[0]
    if isinstance(v, str):
        return np.dtype(object)
    if isinstance(v, np.generic):
        return v.dtype
    if isinstance(v, (bool, int)):
        return np.dtype(np.int64)
    return np.dtype(np.float32)


@kernel("DictVectorizer", since=1, domain=ML, factory=True)
def dict_vectorizer(ctx, *, int64_vocabulary=None, string_vocabulary=None):
    """DictVectorizer-1: each map as a row with the value of vocabulary[j] in column j (0 or "" when
    absent); a dict gives [1, V], a list of dicts [N, V]. Keys outside the vocabulary are ignored."""
    if bool(int64_vocabulary) == bool(string_vocabulary):
        raise ValueError("DictVectorizer needs exactly one of int64_vocabulary and string_vocabulary")
    vocabulary = list(string_vocabulary or int64_vocabulary)
    columns: dict[Any, list[int]] = {}
    for j, key in enumerate(vocabulary):  # a repeated word fills each of its columns
        columns.setdefault(key, []).append(j)
    out_type = ctx.output_types[0] if ctx.output_types else None
    declared = out_type.dtype if out_type is not None and out_type.kind == "tensor" else None

    def run(x, /):
        maps = [x] if isinstance(x, Mapping) else list(x)
        cells = [(i, j, v) for i, m in enumerate(maps) for k, v in m.items() for j in columns.get(k, ())]
        dtype = declared if declared is not None else _value_dtype([v for _, _, v in cells])
        out = np.full((len(maps), len(vocabulary)), "" if dtype.kind == "O" else 0, dtype=dtype)
        if cells:
            rows, cols, vals = zip(*cells)
            out[list(rows), list(cols)] = vals
        return out

    return run


_CASTS = ("TO_FLOAT", "TO_STRING", "TO_INT64")


def _cast_value(v: Any, cast_to: str) -> Any:
    if cast_to == "TO_STRING":
        return v if isinstance(v, str) else f"{float(np.float32(v)):f}"
    if cast_to == "TO_INT64":
        return int(v) if isinstance(v, str) else int(np.float32(v))
    return float(np.float32(v))


@kernel("CastMap", since=1, domain=ML, factory=True)
def cast_map(ctx, *, cast_to="TO_FLOAT", map_form="DENSE", max_map=1):
    """CastMap-1: a map(int64, string|float) as a [1, K] tensor in ascending key order; SPARSE places
    value k at column k of max_map columns (the rest 0, or "0.f" for strings as onnxruntime pads)."""
    if cast_to not in _CASTS:
        raise ValueError(f"CastMap: unknown cast_to {cast_to!r}; expected one of {_CASTS}")
    if map_form not in ("DENSE", "SPARSE"):
        raise ValueError(f"CastMap: unknown map_form {map_form!r}; expected DENSE or SPARSE")
    dtype = {"TO_FLOAT": np.float32, "TO_STRING": object, "TO_INT64": np.int64}[cast_to]

    def run(x, /):
        items = sorted(x.items())
        if map_form == "DENSE":
            out = np.empty((1, len(items)), dtype=dtype)
            out[0, :] = [_cast_value(v, cast_to) for _, v in items]
            return out
        if items and items[0][0] < 0:
            raise ValueError(f"CastMap: negative key {items[0][0]} with SPARSE packing")
        out = np.full((1, max_map), "0.f" if cast_to == "TO_STRING" else 0, dtype=dtype)
        for k, v in items:
            if k < max_map:
                out[0, k] = _cast_value(v, cast_to)
        return out

    return run
