"""Feature preprocessing: Normalizer, Scaler, Binarizer, Imputer, ArrayFeatureExtractor and
FeatureVectorizer (ai.onnx.ml 1).

Where the specification is loose, onnxruntime's reading is kept: Normalizer's
MAX divides by the (signed) maximum and inputs have one or two dimensions;
Scaler's offset and scale have one entry or one per
column; Imputer's values apply per column only when there is one per column,
otherwise the first one applies everywhere.
"""

from __future__ import annotations

import numpy as np

from ortcore_cpu.ops.ml._common import ML, NUMERIC
from ortcore_cpu.registry import kernel

_NORMS = ("MAX", "L1", "L2")


@kernel("Normalizer", since=1, domain=ML, dtypes=NUMERIC, factory=True)
def normalizer(ctx, *, norm="MAX"):
    """Normalizer-1: each row divided by its max, L1 or L2 norm (left as is when that is 0)."""
    if norm not in _NORMS:
        raise ValueError(f"Normalizer: unknown norm {norm!r}; expected one of {_NORMS}")

    def run(x, /):
        if x.ndim not in (1, 2):
            raise ValueError(f"Normalizer accepts 1-D or 2-D inputs, got shape {x.shape}")
        x = x.astype(np.float32)
        axis = 0 if x.ndim == 1 else 1
        if norm == "MAX":
            div = x.max(axis=axis, keepdims=True)
        elif norm == "L1":
            div = np.abs(x).sum(axis=axis, keepdims=True)
        else:
            sq = x * x
            div = sq.sum(axis=axis, keepdims=True)
            safe = np.where(div != 0, div, np.float32(1))
            return np.where(div != 0, np.copysign(np.sqrt(sq / safe), x), x)
        return np.where(div != 0, x / np.where(div != 0, div, np.float32(1)), x)

    return run


def _per_column(values, stride: int, op: str, name: str) -> np.ndarray:
    if len(values) not in (1, stride):
        raise ValueError(f"{op}: {name} has {len(values)} values; expected 1 or one per column ({stride})")
    return values


@kernel("Scaler", since=1, domain=ML, dtypes=NUMERIC)
def scaler(x, /, *, offset=None, scale=None):
    """Scaler-1: ``(x - offset) * scale`` as float32 (computed in float64 for double inputs)."""
    if x.ndim == 0:
        raise ValueError("Scaler: the input must have at least one dimension")
    wide = np.float64 if x.dtype == np.float64 else np.float32
    stride = x.shape[0] if x.ndim == 1 else x.shape[1]
    o = _per_column(np.asarray(offset if offset else [0.0], dtype=wide), stride, "Scaler", "offset")
    s = _per_column(np.asarray(scale if scale else [1.0], dtype=wide), stride, "Scaler", "scale")
    if x.ndim > 2 and (o.size > 1 or s.size > 1):  # onnxruntime pairs flat element i with column i % shape[1]
        col = (np.arange(x.size) % stride).reshape(x.shape)
        o, s = np.resize(o, stride)[col], np.resize(s, stride)[col]
    return ((x.astype(wide, copy=False) - o) * s).astype(np.float32, copy=False)


@kernel("Binarizer", since=1, domain=ML, dtypes=NUMERIC)
def binarizer(x, /, *, threshold=0.0):
    """Binarizer-1: 1 where ``x > threshold``, else 0, in the input's type."""
    return (x > threshold).astype(x.dtype)


@kernel("Imputer", since=1, domain=ML, dtypes=NUMERIC)
def imputer(x, /, *, imputed_value_floats=None, imputed_value_int64s=None, replaced_value_float=0.0,
            replaced_value_int64=0):
    """Imputer-1: elements equal to the replaced value (NaN matching NaN) become the imputed value;
    float inputs use the float attributes, integer inputs the int64 ones."""
    is_float = x.dtype.kind == "f"
    values = imputed_value_floats if is_float else imputed_value_int64s
    if not values:
        raise ValueError(f"Imputer: {'imputed_value_floats' if is_float else 'imputed_value_int64s'} "
                         f"is needed for {x.dtype} inputs")
    if x.ndim == 0:
        raise ValueError("Imputer: the input must have at least one dimension")
    replaced = replaced_value_float if is_float else replaced_value_int64
    stride = x.shape[0] if x.ndim == 1 else x.shape[1]
    fill = np.asarray(values if len(values) == stride else values[:1], dtype=x.dtype)
    if x.ndim > 2 and fill.size > 1:  # flat element i takes value i % shape[1]
        fill = fill[(np.arange(x.size) % stride).reshape(x.shape)]
    hit = np.isnan(x) if is_float and np.isnan(replaced) else x == replaced
    return np.where(hit, fill, x)


@kernel("ArrayFeatureExtractor", since=1, domain=ML,
        dtypes={0: (np.float32, np.float64, np.int64, np.int32, np.object_), 1: (np.int64,)})
def array_feature_extractor(x, indices, /):
    """ArrayFeatureExtractor-1: the listed positions of the last axis; a 1-D input gives [1, K]."""
    if x.ndim == 0:
        raise ValueError("ArrayFeatureExtractor: X must have at least one dimension")
    index = indices.ravel()
    if index.size == 0:
        raise ValueError("ArrayFeatureExtractor: no indices given")
    last = x.shape[-1]
    if (index >= last).any() or (index < -last).any():
        raise IndexError(f"ArrayFeatureExtractor: index out of range for a last axis of {last}")
    out = np.take(x, index, axis=-1)
    return out.reshape(1, -1) if x.ndim == 1 else out


@kernel("FeatureVectorizer", since=1, domain=ML, dtypes=NUMERIC)
def feature_vectorizer(*inputs, inputdimensions=None):
    """FeatureVectorizer-1: inputs as rows of ``inputdimensions[i]`` columns (cut or zero-padded),
    side by side, as float32."""
    dims = list(inputdimensions or [])
    if len(dims) != len(inputs):
        raise ValueError(f"FeatureVectorizer: {len(inputs)} inputs but {len(dims)} inputdimensions")
    rows = [x.reshape(1, -1) if x.ndim == 1 else x.reshape(x.shape[0], -1) for x in inputs]
    n = rows[0].shape[0] if rows else 0
    out = np.zeros((n, sum(dims)), dtype=np.float32)
    start = 0
    for x, d in zip(rows, dims):
        if x.shape[0] != n:
            raise ValueError(f"FeatureVectorizer: inputs have {n} and {x.shape[0]} rows")
        k = min(d, x.shape[1])
        out[:, start : start + k] = x[:, :k]
        start += d
    return out
