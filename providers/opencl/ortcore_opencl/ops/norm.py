"""Normalizations in OpenCL C: BatchNormalization (inference), LRN, LayerNormalization,
InstanceNormalization.

BatchNormalization folds its four parameter tensors into one scale and one
shift per channel (on the host, once, when they are constants; otherwise by a
small kernel per run), so the per-element work is one multiply-add.

Layer and instance normalization are row normalizations: each row (the
trailing dims from ``axis`` for LayerNormalization, one (n, c) plane for
InstanceNormalization) is normalized by its own mean and variance. The
variance is the mean of squared deviations from the mean (two passes over
the row), which stays accurate where E[x^2] - E[x]^2 would cancel. Long rows
get one work-group each, reduced in local memory.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from ortcore.errors import InvalidArgument
from ortcore_opencl.ops.reduce import (
    FP64_PRAGMA,
    GROUP_THRESHOLD,
    build_options,
    group_size,
    input_dtype,
)
from ortcore_opencl.registry import kernel
from ortcore_opencl.runtime import Array

_FLOAT = (np.float32, np.float64)


def _outputs_wanted(ctx: Any) -> list[bool]:
    names = ctx.node.outputs if ctx.node is not None else ["y"] * ctx.n_outputs
    return [bool(n) for n in names]


def _what(ctx: Any, op: str) -> str:
    return ctx.node.describe() if ctx.node is not None else op


# -- BatchNormalization -----------------------------------------------------------------

_BN_SOURCE = FP64_PRAGMA + r"""
/* y = x * a[c] + b[c]; the global size is (inner, outer * C) so no division per element */
__kernel void bn_apply(__global const T* restrict x, __global const T* restrict a,
                       __global const T* restrict b, __global T* restrict y, long C, long inner)
{
    long i = get_global_id(0);
    long row = get_global_id(1);
    long c = row % C;
    long k = row * inner + i;
    y[k] = x[k] * a[c] + b[c];
}

/* a = scale / sqrt(var + eps), b = bias - mean * a, for parameters known only at run time */
__kernel void bn_fold(__global const T* restrict scale, __global const T* restrict bias,
                      __global const T* restrict mean, __global const T* restrict var,
                      __global T* restrict a, __global T* restrict b, T eps, long C)
{
    long c = get_global_id(0);
    if (c >= C) return;
    T s = scale[c] / sqrt(var[c] + eps);
    a[c] = s;
    b[c] = bias[c] - mean[c] * s;
}
"""


def _bn_inference_only(legacy: bool) -> Callable[[Any, list[Any]], str | None]:
    """The supports= predicate: decline the training forms (batch statistics)."""

    def supports(node: Any, input_types: list[Any]) -> str | None:
        if legacy and not node.attrs.get("is_test", 0):
            return "is_test=0 (training) is not implemented"
        if node.attrs.get("training_mode", 0):
            return "training_mode=1 (batch statistics) is not implemented"
        if sum(1 for o in node.outputs if o) > 1:
            return "the running/saved statistics outputs (training) are not implemented"
        return None

    return supports


def _batch_norm(ctx: Any, epsilon: float, spatial: int) -> Callable[..., Array]:
    rt = ctx.provider.runtime
    dtype = input_dtype(ctx)
    opts = build_options(dtype)
    apply = rt.kernel(_BN_SOURCE, "bn_apply", opts)
    fold = rt.kernel(_BN_SOURCE, "bn_fold", opts)
    what = _what(ctx, "BatchNormalization")
    params = [ctx.constants.get(i) for i in (1, 2, 3, 4)]
    folded: tuple[Array, Array] | None = None
    if all(p is not None for p in params):
        scale, bias, mean, var = (np.asarray(p, np.float64).reshape(-1) for p in params)
        a = scale / np.sqrt(var + epsilon)  # folded once, in float64, from constant weights
        folded = (rt.to_device(a.astype(dtype)), rt.to_device((bias - mean * a).astype(dtype)))

    def run(x: Array, scale: Array, bias: Array, mean: Array, var: Array) -> Array:
        if x.ndim < 2 and x.size:
            raise InvalidArgument(f"{what}: input X of shape {x.shape} has no channel dimension")
        channels = (x.shape[1] if spatial else math.prod(x.shape[1:])) if x.ndim >= 2 else 1
        for name, p in (("scale", scale), ("B", bias), ("input_mean", mean), ("input_var", var)):
            if p.size != channels:
                raise InvalidArgument(
                    f"{what}: {name} has {p.size} elements, expected {channels} for input X of shape {x.shape}"
                )
        y = rt.empty(x.shape, x.dtype)
        if x.size == 0:
            return y
        if folded is not None:
            a, b = folded
        else:
            a, b = rt.empty((channels,), x.dtype), rt.empty((channels,), x.dtype)
            rt.launch(fold, (channels,), None, scale.data, bias.data, mean.data, var.data,
                      a.data, b.data, x.dtype.type(epsilon), np.int64(channels))
        inner = x.size // (x.shape[0] * channels)
        rt.launch(apply, (inner, x.shape[0] * channels), None, x.data, a.data, b.data, y.data,
                  np.int64(channels), np.int64(inner))
        return y

    return run


@kernel("BatchNormalization", since=1, dtypes=_FLOAT, factory=True, supports=_bn_inference_only(True))
@kernel("BatchNormalization", since=6, dtypes=_FLOAT, factory=True, supports=_bn_inference_only(True))
def batch_norm_1(ctx: Any, *, consumed_inputs: list[int] | None = None, epsilon: float = 1e-5,
                 is_test: int = 0, momentum: float = 0.9, spatial: int = 1) -> Callable[..., Array]:
    """BatchNormalization-1/6 with is_test=1 (inference)."""
    return _batch_norm(ctx, epsilon, spatial)


@kernel("BatchNormalization", since=7, dtypes=_FLOAT, factory=True, supports=_bn_inference_only(False))
def batch_norm_7(ctx: Any, *, epsilon: float = 1e-5, momentum: float = 0.9, spatial: int = 1) -> Callable[..., Array]:
    """BatchNormalization-7, inference (only Y requested)."""
    return _batch_norm(ctx, epsilon, spatial)


@kernel("BatchNormalization", since=9, dtypes=_FLOAT, factory=True, supports=_bn_inference_only(False))
def batch_norm_9(ctx: Any, *, epsilon: float = 1e-5, momentum: float = 0.9) -> Callable[..., Array]:
    """BatchNormalization-9, inference (only Y requested)."""
    return _batch_norm(ctx, epsilon, 1)


@kernel("BatchNormalization", since=14, dtypes=_FLOAT, factory=True, supports=_bn_inference_only(False))
@kernel("BatchNormalization", since=15, dtypes=_FLOAT, factory=True, supports=_bn_inference_only(False))
def batch_norm_14(ctx: Any, *, epsilon: float = 1e-5, momentum: float = 0.9,
                  training_mode: int = 0) -> Callable[..., Array]:
    """BatchNormalization-14/15 with training_mode=0."""
    return _batch_norm(ctx, epsilon, 1)


# -- LRN ------------------------------------------------------------------------------------

_LRN_SOURCE = FP64_PRAGMA + r"""
/* y = x / (bias + alpha / size * sum of x^2 over the channel window) ^ beta */
__kernel void lrn(__global const T* restrict x, __global T* restrict y, long C, long inner,
                  long total, int before, int after, T alpha_over_size, T beta, T bias)
{
    long k = get_global_id(0);
    if (k >= total) return;
    long c = (k / inner) % C;
    long lo = max((long)0, c - before), hi = min(C - 1, c + after);
    long first = k + (lo - c) * inner;
    T sq = 0;
    for (long j = 0; j <= hi - lo; ++j) { T v = x[first + j * inner]; sq += v * v; }
    /* base > 0 (bias > 0): exp/log is several times cheaper than pow on CPU devices */
    y[k] = x[k] * exp(-beta * log(bias + alpha_over_size * sq));
}
"""


@kernel("LRN", since=1, dtypes=_FLOAT, factory=True)
@kernel("LRN", since=13, dtypes=_FLOAT, factory=True)
def lrn(ctx: Any, *, size: int, alpha: float = 0.0001, beta: float = 0.75, bias: float = 1.0) -> Callable[[Array], Array]:
    """LRN-1/13: local response normalization across channels."""
    rt = ctx.provider.runtime
    dtype = input_dtype(ctx)
    knl = rt.kernel(_LRN_SOURCE, "lrn", build_options(dtype))
    what = _what(ctx, "LRN")
    t = dtype.type
    args = (np.int32((size - 1) // 2), np.int32(size - 1 - (size - 1) // 2), t(alpha / size), t(beta), t(bias))

    def run(x: Array) -> Array:
        if x.ndim < 2:
            raise InvalidArgument(f"{what}: input X of shape {x.shape} has no channel dimension")
        y = rt.empty(x.shape, x.dtype)
        if x.size == 0:
            return y
        inner = math.prod(x.shape[2:])
        rt.launch(knl, (x.size,), None, x.data, y.data, np.int64(x.shape[1]), np.int64(inner),
                  np.int64(x.size), *args)
        return y

    return run


# -- Layer / Instance normalization ------------------------------------------------------

_ROW_SOURCE = FP64_PRAGMA + r"""
/* Row r of n elements: y = (x - mean) * invstd * scale + bias.
   scale/bias index: r % C when per_channel (instance norm), else j % size (layer norm,
   parameters broadcast from the trailing dims). */
#define SCALE(j) scale[per_channel ? r % C : (j) % scale_size]
#define BIAS(j) (has_bias ? bias[per_channel ? r % C : (j) % bias_size] : (T)0)

__kernel void rownorm_serial(__global const T* restrict x, __global T* restrict y,
                             __global const T* restrict scale, __global const T* restrict bias,
                             __global T* restrict mean_out, __global T* restrict inv_out,
                             long rows, long n, long C, int per_channel, long scale_size,
                             long bias_size, int has_bias, int stats, T eps)
{
    long r = get_global_id(0);
    if (r >= rows) return;
    __global const T* row = x + r * n;
    T s = 0;
    for (long j = 0; j < n; ++j) s += row[j];
    T mean = s / (T)n;
    T q = 0;
    for (long j = 0; j < n; ++j) { T d = row[j] - mean; q += d * d; }
    T inv = (T)1 / sqrt(q / (T)n + eps);
    for (long j = 0; j < n; ++j) y[r * n + j] = (row[j] - mean) * inv * SCALE(j) + BIAS(j);
    if (stats) { mean_out[r] = mean; inv_out[r] = inv; }
}

__kernel void rownorm_group(__global const T* restrict x, __global T* restrict y,
                            __global const T* restrict scale, __global const T* restrict bias,
                            __global T* restrict mean_out, __global T* restrict inv_out,
                            long n, long C, int per_channel, long scale_size,
                            long bias_size, int has_bias, int stats, T eps)
{
    __local T part[LOCAL];
    long r = get_group_id(0);
    int lid = get_local_id(0);
    int ls = get_local_size(0);
    __global const T* row = x + r * n;
    T s = 0;
    for (long j = lid; j < n; j += ls) s += row[j];
    part[lid] = s;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int k = ls / 2; k > 0; k /= 2) {
        if (lid < k) part[lid] += part[lid + k];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    T mean = part[0] / (T)n;
    barrier(CLK_LOCAL_MEM_FENCE);
    T q = 0;
    for (long j = lid; j < n; j += ls) { T d = row[j] - mean; q += d * d; }
    part[lid] = q;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int k = ls / 2; k > 0; k /= 2) {
        if (lid < k) part[lid] += part[lid + k];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    T inv = (T)1 / sqrt(part[0] / (T)n + eps);
    for (long j = lid; j < n; j += ls) y[r * n + j] = (row[j] - mean) * inv * SCALE(j) + BIAS(j);
    if (stats && lid == 0) { mean_out[r] = mean; inv_out[r] = inv; }
}
"""


class _RowNorm:
    """The compiled row-normalization kernels for one dtype."""

    def __init__(self, ctx: Any) -> None:
        self.rt = ctx.provider.runtime
        self.dtype = input_dtype(ctx)
        opts = build_options(self.dtype)
        self.serial = self.rt.kernel(_ROW_SOURCE, "rownorm_serial", opts)
        self.group = self.rt.kernel(_ROW_SOURCE, "rownorm_group", opts)
        self.local = group_size(self.rt, self.group)

    def __call__(self, x: Array, y: Array, scale: Array, bias: Array | None, rows: int, n: int, *,
                 channels: int = 1, per_channel: bool = False, eps: float,
                 stats: tuple[Array, Array] | None = None) -> None:
        common = (
            scale.data, None if bias is None else bias.data,
            None if stats is None else stats[0].data, None if stats is None else stats[1].data,
        )
        tail = (
            np.int64(n), np.int64(channels), np.int32(per_channel), np.int64(max(scale.size, 1)),
            np.int64(1 if bias is None else max(bias.size, 1)), np.int32(bias is not None),
            np.int32(stats is not None), self.dtype.type(eps),
        )
        if n >= GROUP_THRESHOLD:
            self.rt.launch(self.group, (rows * self.local,), (self.local,), x.data, y.data, *common, *tail)
        else:
            self.rt.launch(self.serial, (rows,), None, x.data, y.data, *common, np.int64(rows), *tail)


def _trailing_broadcast(param_shape: tuple[int, ...], norm_shape: tuple[int, ...]) -> bool:
    """Whether indexing the parameter by (position in row) % size equals numpy broadcasting."""
    if len(param_shape) > len(norm_shape):
        return False
    dims = list(param_shape)
    while dims and dims[0] == 1:
        dims.pop(0)
    return not dims or tuple(dims) == tuple(norm_shape[len(norm_shape) - len(dims):])


def _layer_norm_supported(node: Any, input_types: list[Any]) -> str | None:
    outputs = [bool(o) for o in node.outputs]
    x = input_types[0] if input_types else None
    if any(outputs[1:]) and (x is None or x.dtype != np.float32):
        return "Mean/InvStdDev outputs are produced for float32 inputs only"
    if node.attrs.get("stash_type", 1) != 1:
        return f"stash_type={node.attrs.get('stash_type')} is not implemented"
    return None


@kernel("LayerNormalization", since=17, dtypes=_FLOAT, factory=True, multi_output=True,
        supports=_layer_norm_supported)
def layer_norm(ctx: Any, *, axis: int = -1, epsilon: float = 1e-5, stash_type: int = 1) -> Callable[..., tuple]:
    """LayerNormalization-17, with the optional Mean and InvStdDev outputs."""
    rt = ctx.provider.runtime
    norm = _RowNorm(ctx)
    wanted = _outputs_wanted(ctx)
    what = _what(ctx, "LayerNormalization")

    def run(x: Array, scale: Array, bias: Array | None = None) -> tuple[Array, ...]:
        rank = x.ndim
        if not -rank <= axis < max(rank, 1):
            raise InvalidArgument(f"{what}: axis {axis} is out of range for input X of shape {x.shape}")
        ax = axis + rank if axis < 0 else axis
        norm_shape = x.shape[ax:]
        for name, p in (("Scale", scale), ("B", bias)):
            if p is not None and not _trailing_broadcast(p.shape, norm_shape):
                raise InvalidArgument(
                    f"{what}: {name} of shape {p.shape} does not broadcast to the normalized shape {norm_shape}"
                )
        n = math.prod(norm_shape)
        rows = math.prod(x.shape[:ax])
        y = rt.empty(x.shape, x.dtype)
        stat_shape = x.shape[:ax] + (1,) * (rank - ax)
        stats = (rt.empty(stat_shape, x.dtype), rt.empty(stat_shape, x.dtype)) if any(wanted[1:]) else None
        if x.size:
            norm(x, y, scale, bias, rows, n, eps=epsilon, stats=stats)
        if stats is None:
            return (y,) + (None,) * (len(wanted) - 1)
        return (y, *stats)[: len(wanted)]

    return run


@kernel("InstanceNormalization", since=1, dtypes=_FLOAT, factory=True)
@kernel("InstanceNormalization", since=6, dtypes=_FLOAT, factory=True)
@kernel("InstanceNormalization", since=22, dtypes=_FLOAT, factory=True)
def instance_norm(ctx: Any, *, epsilon: float = 1e-5, consumed_inputs: list[int] | None = None) -> Callable[..., Array]:
    """InstanceNormalization-1/6/22: every (n, c) plane normalized, then scale[c] and bias[c]."""
    rt = ctx.provider.runtime
    norm = _RowNorm(ctx)
    what = _what(ctx, "InstanceNormalization")

    def run(x: Array, scale: Array, bias: Array) -> Array:
        if x.ndim < 3:
            raise InvalidArgument(f"{what}: input of shape {x.shape} has no spatial dimensions")
        channels = x.shape[1]
        for name, p in (("scale", scale), ("B", bias)):
            if p.size != channels:
                raise InvalidArgument(f"{what}: {name} has {p.size} elements, expected {channels}")
        y = rt.empty(x.shape, x.dtype)
        n = math.prod(x.shape[2:])
        if x.size:
            norm(x, y, scale, bias, x.shape[0] * channels, n, channels=channels, per_channel=True, eps=epsilon)
        return y

    return run
