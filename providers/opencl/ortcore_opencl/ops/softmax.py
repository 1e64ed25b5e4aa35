"""Softmax and LogSoftmax in OpenCL C, numerically stable (the row maximum is subtracted).

Opset 13 normalizes along one axis: the input is seen as [outer, n, inner]
and every (outer, inner) pair is one row of n elements at stride inner.
Opsets 1..12 coerce the input to 2-D at ``axis``: that is the same kernel
with inner = 1 and n = the product of the dims from ``axis`` on.

Long contiguous rows (a 1000-class classifier head) get one work-group each
with the max and the sum reduced in local memory; other rows get one
work-item each.
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

_SOURCE = FP64_PRAGMA + r"""
/* y = exp(x - max) / sum, or for LOG: x - max - log(sum) */
__kernel void softmax_serial(__global const T* restrict x, __global T* restrict y,
                             long rows, long n, long inner)
{
    long r = get_global_id(0);
    if (r >= rows) return;
    long base = (r / inner) * n * inner + r % inner;
    T m = -INFINITY;
    for (long j = 0; j < n; ++j) m = fmax(m, x[base + j * inner]);
    T s = 0;
#ifdef LOG
    for (long j = 0; j < n; ++j) s += exp(x[base + j * inner] - m);
    T shift = m + log(s);
    for (long j = 0; j < n; ++j) y[base + j * inner] = x[base + j * inner] - shift;
#else
    for (long j = 0; j < n; ++j) { T e = exp(x[base + j * inner] - m); y[base + j * inner] = e; s += e; }
    T inv = (T)1 / s;
    for (long j = 0; j < n; ++j) y[base + j * inner] *= inv;
#endif
}

/* one work-group per contiguous row (inner == 1) */
__kernel void softmax_group(__global const T* restrict x, __global T* restrict y, long n)
{
    __local T part[LOCAL];
    long base = get_group_id(0) * n;
    int lid = get_local_id(0);
    int ls = get_local_size(0);
    T m = -INFINITY;
    for (long j = lid; j < n; j += ls) m = fmax(m, x[base + j]);
    part[lid] = m;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int s = ls / 2; s > 0; s /= 2) {
        if (lid < s) part[lid] = fmax(part[lid], part[lid + s]);
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    m = part[0];
    barrier(CLK_LOCAL_MEM_FENCE);
    T s = 0;
    for (long j = lid; j < n; j += ls) s += exp(x[base + j] - m);
    part[lid] = s;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int k = ls / 2; k > 0; k /= 2) {
        if (lid < k) part[lid] += part[lid + k];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    s = part[0];
#ifdef LOG
    T shift = m + log(s);
    for (long j = lid; j < n; j += ls) y[base + j] = x[base + j] - shift;
#else
    T inv = (T)1 / s;
    for (long j = lid; j < n; j += ls) y[base + j] = exp(x[base + j] - m) * inv;
#endif
}
"""


def _make(ctx: Any, axis: int, log: bool, coerce_2d: bool) -> Callable[[Array], Array]:
    rt = ctx.provider.runtime
    dtype = input_dtype(ctx)
    opts = build_options(dtype) + (["-DLOG"] if log else [])
    serial = rt.kernel(_SOURCE, "softmax_serial", opts)
    group = rt.kernel(_SOURCE, "softmax_group", opts)
    local = group_size(rt, group)
    what = ctx.node.describe() if ctx.node is not None else ("LogSoftmax" if log else "Softmax")

    def run(x: Array) -> Array:
        rank = max(x.ndim, 1)
        if not -rank <= axis < rank:
            raise InvalidArgument(f"{what}: axis {axis} is out of range for an input of shape {x.shape}")
        ax = axis + rank if axis < 0 else axis
        shape = x.shape or (1,)
        if coerce_2d:
            n, inner = math.prod(shape[ax:]), 1
        else:
            n, inner = shape[ax], math.prod(shape[ax + 1:])
        y = rt.empty(x.shape, x.dtype)
        if x.size == 0:
            return y
        rows = x.size // n
        if inner == 1 and n >= GROUP_THRESHOLD:
            rt.launch(group, (rows * local,), (local,), x.data, y.data, np.int64(n))
        else:
            rt.launch(serial, (rows,), None, x.data, y.data, np.int64(rows), np.int64(n), np.int64(inner))
        return y

    return run


@kernel("Softmax", since=1, dtypes=_FLOAT, factory=True)
@kernel("Softmax", since=11, dtypes=_FLOAT, factory=True)
def softmax_2d(ctx: Any, *, axis: int = 1) -> Callable[[Array], Array]:
    """Softmax-1/11: the input coerced to 2-D at ``axis``, normalized along the second dim."""
    return _make(ctx, axis, log=False, coerce_2d=True)


@kernel("Softmax", since=13, dtypes=_FLOAT, factory=True)
def softmax(ctx: Any, *, axis: int = -1) -> Callable[[Array], Array]:
    """Softmax-13: normalized along ``axis``."""
    return _make(ctx, axis, log=False, coerce_2d=False)


@kernel("LogSoftmax", since=1, dtypes=_FLOAT, factory=True)
@kernel("LogSoftmax", since=11, dtypes=_FLOAT, factory=True)
def log_softmax_2d(ctx: Any, *, axis: int = 1) -> Callable[[Array], Array]:
    """LogSoftmax-1/11: the input coerced to 2-D at ``axis``."""
    return _make(ctx, axis, log=True, coerce_2d=True)


@kernel("LogSoftmax", since=13, dtypes=_FLOAT, factory=True)
def log_softmax(ctx: Any, *, axis: int = -1) -> Callable[[Array], Array]:
    """LogSoftmax-13: along ``axis``."""
    return _make(ctx, axis, log=True, coerce_2d=False)
