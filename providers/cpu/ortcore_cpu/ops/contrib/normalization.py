"""onnxruntime's contrib normalizations: SkipLayerNormalization, SkipSimplifiedLayerNormalization
(com.microsoft) and LayerNormalization-1 and SimplifiedLayerNormalization, which onnxruntime
registers in the ONNX domain (LayerNormalization until ONNX's own version 17 takes over).

Statistics are computed in float32 at least (as onnxruntime does for 16-bit inputs); the
saved mean and inverse standard deviation come out in float32 (``stash_type=1``).
"""

from __future__ import annotations

from typing import Any

import ml_dtypes
import numpy as np

from ortcore.errors import InvalidArgument
from ortcore_cpu.ops.nn import norm
from ortcore_cpu.registry import kernel

_FLOAT = (np.float16, np.float32, np.float64, ml_dtypes.bfloat16)
_MS = "com.microsoft"


def _rms(x: np.ndarray, axes: tuple[int, ...], epsilon: float) -> tuple[np.ndarray, np.ndarray]:
    """(x * inv_rms, inv_rms) over ``axes`` (kept), in float32 at least."""
    xw = norm._wide(x)
    inv = 1.0 / np.sqrt(np.mean(np.square(xw), axis=axes, keepdims=True) + xw.dtype.type(epsilon))
    return xw * inv, inv


def _skip_sum(x: np.ndarray, skip: np.ndarray, bias: np.ndarray | None, hidden: int) -> np.ndarray:
    """input + skip (+ bias) in float32 at least; skip may broadcast over the batch."""
    if x.shape[-1] != hidden or skip.shape[-1] != hidden:
        raise InvalidArgument(f"Skip normalization: input {x.shape} and skip {skip.shape} need hidden size {hidden}")
    total = norm._wide(x) + norm._wide(skip)
    if bias is not None:
        total += norm._wide(bias)
    return total


@kernel("SkipLayerNormalization", since=1, domain=_MS, dtypes=_FLOAT, multi_output=True)
def skip_layer_norm(
    x: np.ndarray,
    skip: np.ndarray,
    gamma: np.ndarray,
    beta: np.ndarray | None = None,
    bias: np.ndarray | None = None,
    /,
    *,
    epsilon: float = 1e-12,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """com.microsoft SkipLayerNormalization: LayerNorm(input + skip + bias) over the last axis.

    Outputs: the result, mean and inverse standard deviation (float32, last axis kept as 1)
    and the sum input + skip + bias.
    """
    total = _skip_sum(x, skip, bias, gamma.shape[-1])
    y, mean, inv_std = norm._standardize(total, (-1,), epsilon)
    y *= norm._wide(gamma)
    if beta is not None:
        y += norm._wide(beta)
    return (
        y.astype(x.dtype, copy=False),
        mean.astype(np.float32, copy=False),
        inv_std.astype(np.float32, copy=False),
        total.astype(x.dtype, copy=False),
    )


@kernel("SkipSimplifiedLayerNormalization", since=1, domain=_MS, dtypes=_FLOAT, multi_output=True)
def skip_simplified_layer_norm(
    x: np.ndarray,
    skip: np.ndarray,
    gamma: np.ndarray,
    bias: np.ndarray | None = None,
    /,
    *,
    epsilon: float = 1e-12,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """com.microsoft SkipSimplifiedLayerNormalization: RMSNorm(input + skip + bias) * gamma.

    The mean output has no meaning for an RMS norm; it is zero.
    """
    total = _skip_sum(x, skip, bias, gamma.shape[-1])
    y, inv = _rms(total, (-1,), epsilon)
    y *= norm._wide(gamma)
    return (
        y.astype(x.dtype, copy=False),
        np.zeros(inv.shape, np.float32),
        inv.astype(np.float32, copy=False),
        total.astype(x.dtype, copy=False),
    )


@kernel("LayerNormalization", since=1, dtypes=_FLOAT, multi_output=True)
def layer_norm_1(
    x: np.ndarray,
    scale: np.ndarray,
    bias: np.ndarray | None = None,
    /,
    *,
    axis: int = -1,
    epsilon: float = 1e-5,
    stash_type: int = 1,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """onnxruntime's contrib LayerNormalization (ONNX domain, opsets 1-16): as ONNX's version 17."""
    return norm.layer_norm(x, scale, bias, axis=axis, epsilon=epsilon, stash_type=stash_type)


@kernel("SimplifiedLayerNormalization", since=1, dtypes=_FLOAT, multi_output=True)
def simplified_layer_norm(
    x: np.ndarray, scale: np.ndarray, /, *, axis: int = -1, epsilon: float = 1e-5, stash_type: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """onnxruntime's SimplifiedLayerNormalization (ONNX domain): RMSNorm over dims >= axis,
    times scale; also the inverse root mean square."""
    axis = axis + x.ndim if axis < 0 else axis
    y, inv = _rms(x, tuple(range(axis, x.ndim)), epsilon)
    y *= norm._wide(scale)
    stash = np.float32 if stash_type == 1 else x.dtype
    return y.astype(scale.dtype, copy=False), inv.astype(stash, copy=False)
