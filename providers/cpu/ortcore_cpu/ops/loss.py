"""Losses: NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss.

Both follow onnxruntime (and PyTorch): a target equal to ``ignore_index``
contributes nothing and does not count in the mean, whose denominator is the
sum of the weights of the counted targets. Half-precision inputs are computed
in float32 and the results cast back. Kernels are array-module generic (``xp``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ortcore_cpu.registry import kernel


def _work_dtype(dtype: np.dtype) -> np.dtype:
    return dtype if dtype in (np.float32, np.float64) else np.dtype(np.float32)


def _nll(xp: Any, log_prob: Any, target: Any, weight: Any, ignore_index: int | None, reduction: str) -> Any:
    """Weighted negative log likelihood of ``target`` classes along axis 1 of ``log_prob``."""
    if log_prob.ndim < 2:
        raise ValueError(f"input must have shape (N, C, d1, ...), got {log_prob.shape}")
    n, c = log_prob.shape[:2]
    if target.shape != (n, *log_prob.shape[2:]):
        raise ValueError(f"target shape {target.shape} does not match input shape {log_prob.shape}")
    target = target.astype(xp.int64, copy=False)
    ignored = target == ignore_index if ignore_index is not None else xp.zeros(target.shape, dtype=bool)
    safe = xp.where(ignored, 0, target)
    if bool(xp.any((safe < 0) | (safe >= c))):
        bad = target[~ignored & ((target < 0) | (target >= c))]
        raise ValueError(f"target value {int(bad.reshape(-1)[0])} is out of range [0, {c})")
    picked = xp.take_along_axis(log_prob, safe[:, None], axis=1)[:, 0]
    if weight is not None:
        w = weight.astype(log_prob.dtype, copy=False)[safe]
    else:
        w = xp.ones(target.shape, dtype=log_prob.dtype)
    w = xp.where(ignored, xp.zeros((), dtype=w.dtype), w)
    loss = -picked * w
    if reduction == "none":
        return loss
    if reduction == "sum":
        return xp.asarray(loss.sum(), dtype=log_prob.dtype)
    if reduction == "mean":
        return xp.asarray(loss.sum() / w.sum(), dtype=log_prob.dtype)
    raise ValueError(f"unknown reduction {reduction!r}; expected 'none', 'sum' or 'mean'")


@kernel("NegativeLogLikelihoodLoss", since=12, xp=True)
@kernel("NegativeLogLikelihoodLoss", since=13, xp=True)
@kernel("NegativeLogLikelihoodLoss", since=22, xp=True)
def negative_log_likelihood_loss(xp, input, target, weight=None, /, *, ignore_index=None, reduction="mean"):
    """NegativeLogLikelihoodLoss: ``-input[n, target[n, d...], d...] * weight[target]``, reduced."""
    work = _work_dtype(input.dtype)
    w = weight.astype(work) if weight is not None else None
    loss = _nll(xp, input.astype(work, copy=False), target, w, ignore_index, reduction)
    return loss.astype(input.dtype, copy=False)


@kernel("SoftmaxCrossEntropyLoss", since=12, xp=True, multi_output=True)
@kernel("SoftmaxCrossEntropyLoss", since=13, xp=True, multi_output=True)
def softmax_cross_entropy_loss(xp, scores, labels, weights=None, /, *, ignore_index=None, reduction="mean"):
    """SoftmaxCrossEntropyLoss: NLL of LogSoftmax over axis 1; returns (loss, log_prob)."""
    work = _work_dtype(scores.dtype)
    x = scores.astype(work, copy=False)
    shifted = x - x.max(axis=1, keepdims=True)
    log_prob = shifted - xp.log(xp.exp(shifted).sum(axis=1, keepdims=True))
    w = weights.astype(work) if weights is not None else None
    loss = _nll(xp, log_prob, labels, w, ignore_index, reduction)
    return loss.astype(scores.dtype, copy=False), log_prob.astype(scores.dtype, copy=False)
