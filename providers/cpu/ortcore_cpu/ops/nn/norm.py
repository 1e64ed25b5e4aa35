"""Normalizations: BatchNormalization, Instance/Layer/Group/RMS/Lp normalization, LRN, MVN.

Statistics are computed in float32 at least (float16 inputs are widened), and
the result is cast back to the input dtype.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ml_dtypes
import numpy as np

from ortcore.errors import InvalidArgument
from ortcore_cpu import jit
from ortcore_cpu.ops.nn import _norm_loops
from ortcore_cpu.registry import kernel

_FLOAT = (np.float16, np.float32, np.float64, ml_dtypes.bfloat16)
# dtypes with a compiled loop (where numba is on); the rest take the numpy path
_COMPILED = (np.dtype(np.float32), np.dtype(np.float64))


def _wide(x: np.ndarray) -> np.ndarray:
    """x as float32 at least, for accumulating statistics."""
    return x if x.dtype.itemsize >= 4 and x.dtype.kind == "f" else x.astype(np.float32)


def _outputs_wanted(ctx: Any) -> list[bool]:
    names = ctx.node.outputs if ctx.node is not None else ["y"] * ctx.n_outputs
    return [bool(n) for n in names]


# -- BatchNormalization -------------------------------------------------------------


def _channel_shape(x: np.ndarray, spatial: int) -> tuple[int, ...]:
    """Parameter shape broadcasting against x: [C, 1, ...] (spatial) or x.shape[1:]."""
    return (-1, *(1,) * (x.ndim - 2)) if spatial else x.shape[1:]


def _affine(scale, bias, mean, var, epsilon: float, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(a, c) with y = x * a + c, computed in float64 for the (small) parameter tensors."""
    a = np.asarray(scale, np.float64) / np.sqrt(np.asarray(var, np.float64) + epsilon)
    c = np.asarray(bias, np.float64) - np.asarray(mean, np.float64) * a
    return a.reshape(shape), c.reshape(shape)


def _apply(x: np.ndarray, a: np.ndarray, c: np.ndarray) -> np.ndarray:
    """x * a + c in two passes over one fresh buffer, in x's dtype (bfloat16 via float32)."""
    if x.dtype.kind == "V":
        return _apply(x.astype(np.float32), a, c).astype(x.dtype)
    y = np.multiply(x, a.astype(x.dtype, copy=False))
    y += c.astype(x.dtype, copy=False)
    return y


def _batch_stats(x: np.ndarray, spatial: int) -> tuple[np.ndarray, np.ndarray]:
    axes = (0, *range(2, x.ndim)) if spatial else (0,)
    xw = _wide(x)
    mean = xw.mean(axis=axes)
    var = xw.var(axis=axes)
    return mean, var


def _bn_train(x, scale, bias, mean, var, *, epsilon: float, momentum: float, spatial: int):
    """Training-mode BatchNormalization: normalize with batch stats, update running stats."""
    bmean, bvar = _batch_stats(x, spatial)
    shape = _channel_shape(x, spatial)
    a, c = _affine(scale, bias, bmean.reshape(np.shape(scale)), bvar.reshape(np.shape(scale)), epsilon, shape)
    y = _apply(x, a, c)
    stat_dtype = np.asarray(mean).dtype
    run_mean = (np.asarray(mean) * momentum + bmean.reshape(np.shape(mean)) * (1 - momentum)).astype(stat_dtype)
    run_var = (np.asarray(var) * momentum + bvar.reshape(np.shape(var)) * (1 - momentum)).astype(stat_dtype)
    return y, run_mean, run_var, bmean.astype(stat_dtype), bvar.astype(stat_dtype)


def _make_batch_norm(ctx: Any, epsilon: float, momentum: float, spatial: int, training: bool) -> Callable[..., Any]:
    """Shared factory: inference folds constant parameters into one scale and one shift, once."""
    if training:
        return lambda x, scale, bias, mean, var: _bn_train(
            x, scale, bias, mean, var, epsilon=epsilon, momentum=momentum, spatial=spatial
        )
    params = [ctx.constants.get(i) for i in (1, 2, 3, 4)]
    if any(p is None for p in params):
        return lambda x, scale, bias, mean, var: (
            _apply(x, *_affine(scale, bias, mean, var, epsilon, _channel_shape(x, spatial))),
        )
    folded: dict[tuple[Any, ...], tuple[np.ndarray, np.ndarray]] = {}
    affine = jit.loop(_norm_loops.channel_affine) if spatial else None

    channels = params[0].size

    def run(x: np.ndarray, *_: np.ndarray) -> tuple[np.ndarray]:
        if x.ndim < 2 or (spatial and x.shape[1] != channels):
            raise InvalidArgument(
                f"BatchNormalization: input of shape {x.shape} has {x.shape[1] if x.ndim > 1 else 'no'} channels, "
                f"the parameters {channels}"
            )
        key = (x.dtype, x.ndim, None if spatial else x.shape[1:])
        ac = folded.get(key)
        if ac is None:
            a, c = _affine(*params, epsilon, _channel_shape(x, spatial))
            ac = folded[key] = (a.astype(x.dtype), c.astype(x.dtype))
        if affine is not None and x.dtype in _COMPILED and x.flags.c_contiguous:
            y = np.empty_like(x)
            flat = (x.shape[0], x.shape[1], -1)
            affine(x.reshape(flat), ac[0].reshape(-1), ac[1].reshape(-1), y.reshape(flat))
            return (y,)
        return (_apply(x, *ac),)

    return run


@kernel("BatchNormalization", since=1, dtypes=_FLOAT, factory=True, multi_output=True)
@kernel("BatchNormalization", since=6, dtypes=_FLOAT, factory=True, multi_output=True)
def make_batch_norm_1(
    ctx: Any,
    *,
    consumed_inputs: list[int] | None = None,
    epsilon: float = 1e-5,
    is_test: int = 0,
    momentum: float = 0.9,
    spatial: int = 1,
) -> Callable[..., Any]:
    """BatchNormalization-1/6: is_test=0 means training (running and saved stats out)."""
    return _make_batch_norm(ctx, epsilon, momentum, spatial, training=not is_test)


@kernel("BatchNormalization", since=7, dtypes=_FLOAT, factory=True, multi_output=True)
def make_batch_norm_7(
    ctx: Any, *, epsilon: float = 1e-5, momentum: float = 0.9, spatial: int = 1
) -> Callable[..., Any]:
    """BatchNormalization-7: training mode when the node asks for more than Y."""
    return _make_batch_norm(ctx, epsilon, momentum, spatial, training=sum(_outputs_wanted(ctx)) > 1)


@kernel("BatchNormalization", since=9, dtypes=_FLOAT, factory=True, multi_output=True)
def make_batch_norm_9(ctx: Any, *, epsilon: float = 1e-5, momentum: float = 0.9) -> Callable[..., Any]:
    """BatchNormalization-9: per-channel statistics; training mode when more than Y is asked."""
    return _make_batch_norm(ctx, epsilon, momentum, 1, training=sum(_outputs_wanted(ctx)) > 1)


@kernel("BatchNormalization", since=14, dtypes=_FLOAT, factory=True, multi_output=True)
@kernel("BatchNormalization", since=15, dtypes=_FLOAT, factory=True, multi_output=True)
def make_batch_norm_14(
    ctx: Any, *, epsilon: float = 1e-5, momentum: float = 0.9, training_mode: int = 0
) -> Callable[..., Any]:
    """BatchNormalization-14/15: training_mode=1 also outputs the updated running stats."""
    run = _make_batch_norm(ctx, epsilon, momentum, 1, training=bool(training_mode))
    if not training_mode:
        return run
    return lambda *args: run(*args)[:3]


# -- Instance / Layer / Group / RMS normalization ----------------------------------------


def _standardize(x: np.ndarray, axes: tuple[int, ...], epsilon: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """((x - mean) * inv_std, mean, inv_std) over ``axes`` (kept), in float32 at least."""
    xw = _wide(x)
    mean = xw.mean(axis=axes, keepdims=True)
    centered = xw - mean
    var = np.mean(np.square(centered), axis=axes, keepdims=True)
    inv_std = 1.0 / np.sqrt(var + epsilon)
    centered *= inv_std
    return centered, mean, inv_std


@kernel("InstanceNormalization", since=1, dtypes=_FLOAT)
@kernel("InstanceNormalization", since=6, dtypes=_FLOAT)
@kernel("InstanceNormalization", since=22, dtypes=_FLOAT)
def instance_norm(
    x: np.ndarray,
    scale: np.ndarray,
    bias: np.ndarray,
    /,
    *,
    consumed_inputs: list[int] | None = None,
    epsilon: float = 1e-5,
) -> np.ndarray:
    """InstanceNormalization: per (n, c) over the spatial dims, then per-channel affine."""
    y, _, _ = _standardize(x, tuple(range(2, x.ndim)), epsilon)
    shape = (-1, *(1,) * (x.ndim - 2))
    y *= np.asarray(scale, y.dtype).reshape(shape)
    y += np.asarray(bias, y.dtype).reshape(shape)
    return y.astype(x.dtype, copy=False)


def _stash(stash_type: int, x: np.ndarray) -> np.dtype:
    return np.dtype(np.float32) if stash_type == 1 else x.dtype


@kernel("LayerNormalization", since=17, dtypes=_FLOAT, multi_output=True)
def layer_norm(
    x: np.ndarray,
    scale: np.ndarray,
    bias: np.ndarray | None = None,
    /,
    *,
    axis: int = -1,
    epsilon: float = 1e-5,
    stash_type: int = 1,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """LayerNormalization-17: standardize over dims >= axis; also Mean and InvStdDev."""
    axis = axis + x.ndim if axis < 0 else axis
    y, mean, inv_std = _standardize(x, tuple(range(axis, x.ndim)), epsilon)
    y *= scale
    if bias is not None:
        y += bias
    stash = _stash(stash_type, x)
    return y.astype(x.dtype, copy=False), mean.astype(stash, copy=False), inv_std.astype(stash, copy=False)


def _group_norm(x: np.ndarray, num_groups: int, epsilon: float) -> np.ndarray:
    n, c = x.shape[:2]
    if num_groups <= 0 or c % num_groups:
        raise InvalidArgument(f"GroupNormalization: {c} channels are not divisible by num_groups={num_groups}")
    xg = x.reshape(n, num_groups, -1)
    y, _, _ = _standardize(xg, (2,), epsilon)
    return y.reshape(x.shape)


@kernel("GroupNormalization", since=18, dtypes=_FLOAT)
def group_norm_18(
    x: np.ndarray, scale: np.ndarray, bias: np.ndarray, /, *, epsilon: float = 1e-5, num_groups: int = 0
) -> np.ndarray:
    """GroupNormalization-18: scale and bias given per group."""
    y = _group_norm(x, num_groups, epsilon)
    per = x.shape[1] // num_groups
    shape = (-1, *(1,) * (x.ndim - 2))
    y *= np.repeat(np.asarray(scale, y.dtype), per).reshape(shape)
    y += np.repeat(np.asarray(bias, y.dtype), per).reshape(shape)
    return y.astype(x.dtype, copy=False)


@kernel("GroupNormalization", since=21, dtypes=_FLOAT)
def group_norm_21(
    x: np.ndarray,
    scale: np.ndarray,
    bias: np.ndarray,
    /,
    *,
    epsilon: float = 1e-5,
    num_groups: int = 0,
    stash_type: int = 1,
) -> np.ndarray:
    """GroupNormalization-21: scale and bias given per channel."""
    y = _group_norm(x, num_groups, epsilon)
    shape = (-1, *(1,) * (x.ndim - 2))
    y *= np.asarray(scale, y.dtype).reshape(shape)
    y += np.asarray(bias, y.dtype).reshape(shape)
    return y.astype(x.dtype, copy=False)


@kernel("RMSNormalization", since=23, dtypes=_FLOAT)
def rms_norm(
    x: np.ndarray, scale: np.ndarray, /, *, axis: int = -1, epsilon: float = 1e-5, stash_type: int = 1
) -> np.ndarray:
    """RMSNormalization-23: x / sqrt(mean(x^2 over dims >= axis) + epsilon) * scale."""
    axis = axis + x.ndim if axis < 0 else axis
    xw = _wide(x)
    ms = np.mean(np.square(xw), axis=tuple(range(axis, x.ndim)), keepdims=True)
    y = xw * (1.0 / np.sqrt(ms + epsilon))
    y *= scale
    return y.astype(scale.dtype, copy=False)


@kernel("LpNormalization", since=1, dtypes=_FLOAT)
@kernel("LpNormalization", since=22, dtypes=_FLOAT)
def lp_norm(x: np.ndarray, /, *, axis: int = -1, p: int = 2) -> np.ndarray:
    """LpNormalization: x / ||x||_p along axis (zero where the norm is zero)."""
    xw = _wide(x)
    if p == 1:
        norm = np.sum(np.abs(xw), axis=axis, keepdims=True)
    elif p == 2:
        norm = np.sqrt(np.sum(np.square(xw), axis=axis, keepdims=True))
    else:
        raise InvalidArgument(f"LpNormalization supports p=1 or p=2, got {p}")
    with np.errstate(divide="ignore", invalid="ignore"):
        y = np.where(norm == 0, 0, xw / norm)
    return y.astype(x.dtype, copy=False)


def _pow(t: np.ndarray, beta: float) -> np.ndarray:
    """t ** beta in place, through square roots for AlexNet's 0.75 and 0.5 (np.power is slow)."""
    if beta == 0.75:
        root = np.sqrt(t, out=t)
        t *= np.sqrt(root)
        return t
    if beta == 0.5:
        return np.sqrt(t, out=t)
    if beta == 1:
        return t
    return np.power(t, t.dtype.type(beta), out=t)


@kernel("LRN", since=1, dtypes=_FLOAT)
@kernel("LRN", since=13, dtypes=_FLOAT)
def lrn(x: np.ndarray, /, *, alpha: float = 1e-4, beta: float = 0.75, bias: float = 1.0, size: int = 0) -> np.ndarray:
    """LRN: x / (bias + alpha/size * sum of x^2 over `size` neighbouring channels)^beta."""
    if size <= 0:
        raise InvalidArgument("LRN needs a positive size attribute")
    xw = _wide(x)
    before, after = (size - 1) // 2, size - 1 - (size - 1) // 2
    sq = np.square(xw)
    acc = sq.copy()
    for k in range(1, min(before, x.shape[1] - 1) + 1):
        acc[:, k:] += sq[:, :-k]
    for k in range(1, min(after, x.shape[1] - 1) + 1):
        acc[:, :-k] += sq[:, k:]
    acc *= xw.dtype.type(alpha / size)
    acc += xw.dtype.type(bias)
    y = np.divide(xw, _pow(acc, beta), out=acc)
    return y.astype(x.dtype, copy=False)


@kernel("MeanVarianceNormalization", since=9, dtypes=_FLOAT)
@kernel("MeanVarianceNormalization", since=13, dtypes=_FLOAT)
def mean_variance_norm(x: np.ndarray, /, *, axes: list[int] | None = None) -> np.ndarray:
    """MeanVarianceNormalization: (x - E[x]) / (sqrt(E[x^2] - E[x]^2) + 1e-9) over axes."""
    axes_ = tuple(axes) if axes is not None else (0, 2, 3)
    xw = _wide(x)
    mean = xw.mean(axis=axes_, keepdims=True)
    var = np.mean(np.square(xw), axis=axes_, keepdims=True) - np.square(mean)
    y = (xw - mean) / (np.sqrt(np.maximum(var, 0)) + 1e-9)
    return y.astype(x.dtype, copy=False)
