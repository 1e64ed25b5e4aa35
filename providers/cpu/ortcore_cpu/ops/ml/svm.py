"""Support vector machines: SVMClassifier and SVMRegressor (ai.onnx.ml 1).

Kernels are evaluated for all samples at once (RBF through the expansion
``|x|^2 + |s|^2 - 2 x.s`` in float64). The classifier follows libsvm's
one-versus-one scheme as onnxruntime does: one decision value per class pair,
a vote per pair, the label from the votes; with ``prob_a``/``prob_b`` the
pairwise Platt probabilities are coupled into class probabilities by libsvm's
iterative method, run for every sample together. Labels, score layouts and
the binary special cases are onnxruntime's.
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

_KERNELS = ("LINEAR", "POLY", "RBF", "SIGMOID")


def _kernel_fn(kernel_type: str, kernel_params):
    """``k(X, S)`` -> [N, V] for the kernel type and its (gamma, coef0, degree)."""
    if kernel_type not in _KERNELS:
        raise ValueError(f"unknown kernel_type {kernel_type!r}; expected one of {_KERNELS}")
    gamma, coef0, degree = (list(kernel_params or []) + [0.0, 0.0, 0.0])[:3]

    def k(x: np.ndarray, sv: np.ndarray) -> np.ndarray:
        if kernel_type == "RBF":
            x64, s64 = x.astype(np.float64), sv.astype(np.float64)
            d = (x64 * x64).sum(1)[:, None] + (s64 * s64).sum(1)[None, :] - 2 * (x64 @ s64.T)
            return np.exp(-gamma * np.maximum(d, 0))
        dot = x.astype(np.float64) @ sv.astype(np.float64).T
        if kernel_type == "LINEAR":
            return dot
        if kernel_type == "POLY":
            return (gamma * dot + coef0) ** degree
        return np.tanh(gamma * dot + coef0)

    return k


def _couple(r: np.ndarray) -> np.ndarray:
    """Class probabilities [N, C] from pairwise probabilities r [N, C, C] (r[i, j] = P(i | i or j)).

    libsvm's ``multiclass_probability`` (Wu, Lin and Weng, 2004, method 2): at most 100
    Gauss-Seidel sweeps, each sample stopping once its error is below 0.005 / C.
    """
    n, c, _ = r.shape
    q = -r.transpose(0, 2, 1) * r  # q[i, j] = -r[j, i] * r[i, j] off the diagonal
    diag = (r * r).sum(axis=1) - np.einsum("nii,nii->ni", r, r)  # sum over j != i of r[j, i]^2
    idx = np.arange(c)
    q[:, idx, idx] = diag
    p = np.full((n, c), 1.0 / c)
    eps = 0.005 / c
    live = np.arange(n)
    for _ in range(max(100, c)):
        qs, ps = q[live], p[live]
        qp = np.einsum("nij,nj->ni", qs, ps)
        pqp = (ps * qp).sum(1)
        done = np.abs(qp - pqp[:, None]).max(1) < eps
        live, qs, ps, qp, pqp = live[~done], qs[~done], ps[~done], qp[~done], pqp[~done]
        if live.size == 0:
            break
        for t in range(c):
            diff = (pqp - qp[:, t]) / qs[:, t, t]
            ps[:, t] += diff
            pqp = (pqp + diff * (diff * qs[:, t, t] + 2 * qp[:, t])) / (1 + diff) / (1 + diff)
            qp = (qp + diff[:, None] * qs[:, t, :]) / (1 + diff)[:, None]
            ps /= (1 + diff)[:, None]
        p[live] = ps
    return p


@kernel("SVMClassifier", since=1, domain=ML, dtypes=NUMERIC, factory=True, multi_output=True)
def svm_classifier(
    ctx, *, classlabels_ints=None, classlabels_strings=None, coefficients=None, kernel_params=None,
    kernel_type="LINEAR", post_transform="NONE", prob_a=None, prob_b=None, rho=None,
    support_vectors=None, vectors_per_class=None,
):
    """SVMClassifier-1: libsvm SVC (support vectors given) or liblinear (coefficients only)."""
    post = post_transform_name(post_transform)
    labels = class_labels(classlabels_ints, classlabels_strings)
    if labels is None:
        raise ValueError("SVMClassifier needs classlabels_ints or classlabels_strings")
    use_strings = bool(classlabels_strings)
    n_class = len(labels)
    coef = np.asarray(coefficients or [], dtype=np.float32)
    rho = np.asarray(rho or [0.0], dtype=np.float32)
    prob_a = np.asarray(prob_a or [], dtype=np.float64)
    prob_b = np.asarray(prob_b or [], dtype=np.float64)
    if prob_a.size != prob_b.size:
        raise ValueError("SVMClassifier: prob_a and prob_b must have the same length")
    have_proba = prob_a.size > 0
    counts = [int(v) for v in (vectors_per_class or [])]
    n_vectors = sum(counts)
    svc = n_vectors > 0
    all_positive = bool((coef >= 0).all())
    if svc:
        sv = np.asarray(support_vectors, dtype=np.float32).reshape(n_vectors, -1)
        kfun = _kernel_fn(kernel_type, kernel_params)
        coef = coef.astype(np.float64).reshape(n_class - 1, n_vectors)
        starts = np.concatenate([[0], np.cumsum(counts)])
        pairs = [(i, j) for i in range(n_class - 1) for j in range(i + 1, n_class)]
    else:
        coef = coef.reshape(n_class, -1)

    def pair_scores(x):
        k = kfun(x, sv)
        out = np.empty((x.shape[0], len(pairs)))
        for p, (i, j) in enumerate(pairs):
            si, sj = slice(starts[i], starts[i + 1]), slice(starts[j], starts[j + 1])
            out[:, p] = k[:, si] @ coef[j - 1, si] + k[:, sj] @ coef[i, sj] + rho[p]
        return out

    def run(x, /):
        x = as_matrix(x, "SVMClassifier").astype(np.float32, copy=False)
        n = x.shape[0]
        max_weight = np.zeros(n, dtype=np.float32)
        if svc:
            dec = pair_scores(x)
            votes = np.zeros((n, n_class), dtype=np.int64)
            rows = np.arange(n)
            for p, (i, j) in enumerate(pairs):
                votes[rows, np.where(dec[:, p] > 0, i, j)] += 1
            top = np.argmax(votes, axis=1)
            if have_proba:
                pr = 1 - logistic(dec * prob_a + prob_b)
                pr = np.clip(pr, 1e-7, 1 - 1e-7)
                r = np.zeros((n, n_class, n_class))
                for p, (i, j) in enumerate(pairs):
                    r[:, i, j] = pr[:, p]
                    r[:, j, i] = 1 - pr[:, p]
                scores = _couple(r).astype(np.float32)
            elif n_class > 2:
                scores = dec.astype(np.float32)
            else:  # one decision value s: [-s, s] untransformed, else [1 - p, p] (p = s or logistic(s))
                s = dec[:, 0].astype(np.float32)
                if post == "PROBIT":  # onnxruntime leaves the second column unwritten
                    scores = np.stack([probit(s), np.zeros_like(s)], axis=1)
                elif post == "NONE":
                    scores = np.stack([-s, s], axis=1)
                else:
                    p = logistic(s) if post == "LOGISTIC" else s
                    scores = np.stack([1 - p, p], axis=1)
        else:
            if x.shape[1] != coef.shape[1]:
                raise ValueError(f"SVMClassifier: expected {coef.shape[1]} features, got {x.shape[1]}")
            scores = x @ coef.T
            if rho[0] != 0:
                scores += rho[0]
            top = np.argmax(scores, axis=1)
            max_weight = scores[np.arange(n), top]
        if n_class == 2 and not have_proba:
            positive = (max_weight >= 0.5) if all_positive else (max_weight > 0)
            top = np.where(positive, 1, top)
        label = labels[top]
        if use_strings:
            label = strings(label.tolist())
        if not (svc and not have_proba and n_class == 2):
            if scores.shape[1] > 1:
                scores = transform(scores, post)
            elif post == "PROBIT":
                scores = probit(scores)
        return label, scores.astype(np.float32, copy=False)

    return run


@kernel("SVMRegressor", since=1, domain=ML, dtypes=NUMERIC, factory=True)
def svm_regressor(
    ctx, *, coefficients=None, kernel_params=None, kernel_type="LINEAR", n_supports=0, one_class=0,
    post_transform="NONE", rho=None, support_vectors=None,
):
    """SVMRegressor-1: one output per sample; one_class maps it to +1/-1. The post-transform is
    not applied, as in onnxruntime."""
    post_transform_name(post_transform)
    coef = np.asarray(coefficients or [], dtype=np.float64)
    bias = float((rho or [0.0])[0])
    if n_supports > 0:
        sv = np.asarray(support_vectors, dtype=np.float32).reshape(n_supports, -1)
        kfun = _kernel_fn(kernel_type, kernel_params)

    def run(x, /):
        x = as_matrix(x, "SVMRegressor").astype(np.float32, copy=False)
        if n_supports > 0:
            y = kfun(x, sv) @ coef[:n_supports] + bias
        else:
            if x.shape[1] != coef.size:
                raise ValueError(f"SVMRegressor: expected {coef.size} features, got {x.shape[1]}")
            y = x.astype(np.float64) @ coef + bias
        if one_class:
            y = np.where(y > 0, 1.0, -1.0)
        return y.astype(np.float32)[:, None]

    return run
