"""Linear models: LinearClassifier and LinearRegressor (ai.onnx.ml 1).

Scores are ``X @ coefficients.T + intercepts`` in float32, as in onnxruntime,
which also decides the labels and the binary special cases reproduced here:
with one score column the label is the sign of the raw score, and with two
class labels the scores become ``[1 - p, p]`` where p is the score after
LOGISTIC or PROBIT and the raw score otherwise (SOFTMAX and SOFTMAX_ZERO do
not apply to one column). With one column and no two labels only PROBIT
applies. (onnxruntime 1.31 writes binary PROBIT scores packed in the wrong
layout; here they follow the ``[1 - p, p]`` rule.)
"""

from __future__ import annotations

import numpy as np

from ortcore_cpu.ops.ml._common import (
    ML,
    NUMERIC,
    as_matrix,
    class_labels,
    logistic,
    post_transform_name,
    probit,
    strings,
    transform,
)
from ortcore_cpu.registry import kernel


def _weights(coefficients, n_features: int, n_targets: int | None, op: str) -> np.ndarray:
    coef = np.asarray(coefficients, dtype=np.float32)
    rows = n_targets or coef.size // max(n_features, 1)
    if rows * n_features != coef.size:
        raise ValueError(
            f"{op}: {coef.size} coefficients do not make {rows} rows of {n_features} features"
        )
    return coef.reshape(rows, n_features)


@kernel("LinearClassifier", since=1, domain=ML, dtypes=NUMERIC, factory=True, multi_output=True)
def linear_classifier(
    ctx, *, coefficients, classlabels_ints=None, classlabels_strings=None, intercepts=None,
    multi_class=0, post_transform="NONE",
):
    """LinearClassifier-1: one score per intercept, the top class as label."""
    post = post_transform_name(post_transform)
    labels = class_labels(classlabels_ints, classlabels_strings)
    use_strings = bool(classlabels_strings)
    icpt = np.asarray(intercepts or [], dtype=np.float32)
    two_labels = labels is not None and len(labels) == 2
    if two_labels:
        negative, positive = labels[0], labels[1]
    else:
        negative, positive = ("0", "1") if use_strings else (0, 1)

    def run(x, /):
        x = as_matrix(x, "LinearClassifier").astype(np.float32, copy=False)
        coef = _weights(coefficients, x.shape[1], icpt.size or None, "LinearClassifier")
        scores = x @ coef.T
        if icpt.size:
            scores += icpt
        if coef.shape[0] == 1:
            raw = scores[:, 0]
            if use_strings:
                label = strings(np.where(raw > 0, positive, negative).tolist())
            else:
                label = np.where(raw > 0, positive, negative).astype(np.int64)
            if post == "PROBIT":
                raw = probit(raw)
            elif post == "LOGISTIC" and two_labels:
                raw = logistic(raw)
            if two_labels:
                scores = np.stack([1 - raw, raw], axis=1)
            else:
                scores = raw[:, None]
        else:
            top = np.argmax(scores, axis=1)
            label = labels[top] if labels is not None else top.astype(np.int64)
            scores = transform(scores, post)
        return label, scores.astype(np.float32, copy=False)

    return run


@kernel("LinearRegressor", since=1, domain=ML, dtypes=NUMERIC, factory=True)
def linear_regressor(ctx, *, coefficients=None, intercepts=None, post_transform="NONE", targets=1):
    """LinearRegressor-1: ``targets`` outputs per sample; intercepts count only if one per target."""
    post = post_transform_name(post_transform)
    icpt = np.asarray(intercepts or [], dtype=np.float32)
    use_icpt = icpt.size == targets

    def run(x, /):
        x = as_matrix(x, "LinearRegressor").astype(np.float32, copy=False)
        coef = _weights(coefficients or [], x.shape[1], targets, "LinearRegressor")
        y = x @ coef.T
        if use_icpt:
            y += icpt
        if targets > 1:
            y = transform(y, post)
        elif post == "PROBIT":
            y = probit(y)
        return y.astype(np.float32, copy=False)

    return run
