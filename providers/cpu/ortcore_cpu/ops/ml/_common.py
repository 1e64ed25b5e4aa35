"""Helpers shared by the ai.onnx.ml classifiers and regressors: score post-transforms,
class labels and the [N, F] view of an input.

They follow onnxruntime (``ml_common.h``): LOGISTIC is the sign-symmetric
sigmoid, SOFTMAX_ZERO leaves near-zero scores out of the exponentials and the
sum, and PROBIT uses the same closed-form approximation of erf^-1 (Winitzki,
a = 0.147), not the exact inverse. Everything works on [N, C] score arrays,
row by row, in the array's own float dtype.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "ML",
    "NUMERIC",
    "POST_TRANSFORMS",
    "as_matrix",
    "class_labels",
    "logistic",
    "post_transform_name",
    "probit",
    "strings",
    "transform",
]

ML = "ai.onnx.ml"
#: the input types of the ml models (T1 of the classifiers, T of the regressors)
NUMERIC = (np.float32, np.float64, np.int64, np.int32)

POST_TRANSFORMS = ("NONE", "SOFTMAX", "LOGISTIC", "SOFTMAX_ZERO", "PROBIT")


def post_transform_name(value: str | int) -> str:
    """The transform's name from a string attribute (ml opset <= 4) or an enum (opset 5)."""
    name = POST_TRANSFORMS[value] if isinstance(value, int) and 0 <= value < 5 else value
    if name not in POST_TRANSFORMS:
        raise ValueError(f"unknown post_transform {value!r}; expected one of {POST_TRANSFORMS}")
    return name


def logistic(x: np.ndarray) -> np.ndarray:
    v = 1 / (1 + np.exp(-np.abs(x)))
    return np.where(x < 0, 1 - v, v).astype(x.dtype, copy=False)


def probit(x: np.ndarray) -> np.ndarray:
    """sqrt(2) * erfinv(2x - 1) with onnxruntime's approximation of erfinv."""
    t = x.dtype.type
    y = t(2) * x - t(1)
    sign = np.where(y < 0, t(-1), t(1))
    log = np.log((t(1) - y) * (t(1) + y))
    v = t(2 / (np.pi * 0.147)) + t(0.5) * log
    v3 = -v + np.sqrt(v * v - t(1 / 0.147) * log)
    return (t(np.sqrt(2)) * sign * np.sqrt(v3)).astype(x.dtype, copy=False)


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _softmax_zero(x: np.ndarray) -> np.ndarray:
    """Softmax where scores within 1e-7 of zero stay (nearly) zero and do not count in the sum."""
    t = x.dtype.type
    vmax = x.max(axis=1, keepdims=True)
    live = np.abs(x) > t(1e-7)
    e = np.where(live, np.exp(x - vmax), x * np.exp(-vmax))
    return e / np.where(live, e, t(0)).sum(axis=1, keepdims=True)


def transform(scores: np.ndarray, name: str) -> np.ndarray:
    """Apply a post-transform to [N, C] scores (C >= 2), one row at a time."""
    if name == "NONE":
        return scores
    if name == "LOGISTIC":
        return logistic(scores)
    if name == "SOFTMAX":
        return _softmax(scores)
    if name == "SOFTMAX_ZERO":
        return _softmax_zero(scores)
    return probit(scores)


def strings(values) -> np.ndarray:
    """A 1-D object array of Python str (numpy would make a fixed-width unicode array)."""
    out = np.empty(len(values), dtype=object)
    out[:] = list(values)
    return out


def class_labels(ints, strs) -> np.ndarray | None:
    """The class labels as an int64 or string (object) array; None when neither is given."""
    if strs:
        return strings(strs)
    if ints:
        return np.asarray(ints, dtype=np.int64)
    return None


def as_matrix(x: np.ndarray, op: str) -> np.ndarray:
    """An [N, F] view of a model input: a 1-D input is one sample."""
    if x.ndim == 1:
        return x.reshape(1, -1)
    if x.ndim != 2:
        raise ValueError(f"{op} expects a 1-D or 2-D input, got shape {x.shape}")
    return x
