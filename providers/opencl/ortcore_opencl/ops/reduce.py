"""Reductions (ReduceSum ... ReduceLogSumExp) and ArgMax/ArgMin in OpenCL C.

The reduced axes are split off at run time: the input's dims are coalesced
into at most four kept groups and four reduced groups (adjacent dims with the
same role merge), each a (size, stride) pair passed as scalar kernel
arguments, so one program per (op, dtype) serves every shape and axes list.

Two kernels share one program:

* ``reduce_serial``: one work-item per output, nested loops over the reduced
  groups; best when there are many outputs (reducing over channels, over a
  leading axis) or the reduced extent is short;
* ``reduce_group``: one work-group per output, a strided partial reduction
  per work-item and a tree in local memory; used when the reduced dims form a
  single group of at least :data:`GROUP_THRESHOLD` elements (global pooling
  over large maps, whole-tensor reductions).

Accumulation happens in the input's type, as numpy does for ``ReduceSum``
with ``dtype=x.dtype`` (integers wrap, floats round once per add; the tree of
``reduce_group`` only makes float sums more accurate).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ortcore.errors import InvalidArgument
from ortcore_opencl.registry import kernel
from ortcore_opencl.runtime import Array, Runtime, ctype

__all__ = ["FP64_PRAGMA", "GROUP_THRESHOLD", "MAX_GROUPS", "Reducer", "build_options", "group_size", "input_dtype", "reducer"]

#: reduced extents from this length on use one work-group per output
GROUP_THRESHOLD = 256
#: kept (and reduced) dim groups a kernel handles after coalescing
MAX_GROUPS = 4
#: local-memory array length compiled into work-group kernels
LOCAL = 256

_FLOAT = (np.float32, np.float64)
_NUMERIC = (np.float32, np.float64, np.int32, np.int64, np.uint32, np.uint64)
_MINMAX = (*_NUMERIC, np.int8, np.uint8)
_ARG = (*_MINMAX, np.int16, np.uint16)
_MINMAX_20 = (*_MINMAX, np.bool_)

# Per op: (initial accumulator, map of one element v, combine of two accumulators a/b,
# final value from accumulator a and count n). LogSumExp is special-cased in the source.
_OPS: dict[str, tuple[str, str, str, str]] = {
    "sum": ("0", "v", "a + b", "a"),
    "mean": ("0", "v", "a + b", "MEAN(a, n)"),
    "sum_square": ("0", "v * v", "a + b", "a"),
    "l1": ("0", "ABS(v)", "a + b", "a"),
    "l2": ("0", "v * v", "a + b", "SQRT(a)"),
    "log_sum": ("0", "v", "a + b", "log(a)"),
    "prod": ("1", "v", "a * b", "a"),
    "max": ("LOWEST", "v", "MAXOF(a, b)", "a"),
    "min": ("HIGHEST", "v", "MINOF(a, b)", "a"),
    "log_sum_exp": ("0", "exp(v - peak)", "a + b", "log(a) + peak"),
}

_LIMITS = {
    "float": ("-INFINITY", "INFINITY"),
    "double": ("-INFINITY", "INFINITY"),
    "int": ("INT_MIN", "INT_MAX"),
    "long": ("LONG_MIN", "LONG_MAX"),
    "char": ("CHAR_MIN", "CHAR_MAX"),
    "uchar": ("0", "UCHAR_MAX"),
    "short": ("SHRT_MIN", "SHRT_MAX"),
    "ushort": ("0", "USHRT_MAX"),
    "uint": ("0", "UINT_MAX"),
    "ulong": ("0", "ULONG_MAX"),
}

_SOURCE = r"""
#define LOWEST {lowest}
#define HIGHEST {highest}
#if {is_float}
  /* max/min propagate NaN like numpy: once the accumulator is NaN it stays NaN */
  #define MAXOF(a, b) (((b) > (a) || isnan(b)) ? (b) : (a))
  #define MINOF(a, b) (((b) < (a) || isnan(b)) ? (b) : (a))
  #define ABS(v) fabs(v)
  #define SQRT(a) sqrt(a)
  #define MEAN(a, n) ((a) / (T)(n))
#else
  #define MAXOF(a, b) ((b) > (a) ? (b) : (a))
  #define MINOF(a, b) ((b) < (a) ? (b) : (a))
  #if {is_signed}
    #define ABS(v) ((v) < 0 ? -(v) : (v))
  #else
    #define ABS(v) (v)
  #endif
  #ifdef cl_khr_fp64
    #define SQRT(a) ((T)sqrt((double)(a)))
  #else
    #define SQRT(a) ((T)sqrt((float)(a)))
  #endif
  /* integer means truncate toward zero; an empty mean stays 0 */
  #define MEAN(a, n) ((n) ? (a) / (T)(n) : (a))
#endif
#define INIT ({init})
#define MAP(v) ({map})
#define COMBINE(a, b) ({combine})
#define FINAL(a, n) ({final})

/* offset of the first element of output o: o is row-major over the kept groups 0..3 */
inline long kept_offset(long o, long k1, long k2, long k3,
                        long ks0, long ks1, long ks2, long ks3) {{
    long base = (o % k3) * ks3; o /= k3;
    base += (o % k2) * ks2; o /= k2;
    base += (o % k1) * ks1; o /= k1;
    return base + o * ks0;
}}

#define FOR_REDUCED(STMT) \
    for (long i0 = 0; i0 < r0; ++i0) \
    for (long i1 = 0; i1 < r1; ++i1) \
    for (long i2 = 0; i2 < r2; ++i2) \
    for (long i3 = 0; i3 < r3; ++i3) {{ \
        T v = x[base + i0 * rs0 + i1 * rs1 + i2 * rs2 + i3 * rs3]; STMT; }}

__kernel void reduce_serial(
    __global const T* restrict x, __global T* restrict y, long n_out,
    long k1, long k2, long k3, long ks0, long ks1, long ks2, long ks3,
    long r0, long r1, long r2, long r3, long rs0, long rs1, long rs2, long rs3, long n)
{{
    long o = get_global_id(0);
    if (o >= n_out) return;
    long base = kept_offset(o, k1, k2, k3, ks0, ks1, ks2, ks3);
#if {lse}
    T peak = -INFINITY;
    FOR_REDUCED(peak = MAXOF(peak, v))
    /* an all -inf (or +inf, NaN) set: shift by 0 so the result is log(sum(exp(x))) itself */
    if (!isfinite(peak)) peak = 0;
#endif
    T a = INIT;
    FOR_REDUCED(T b = MAP(v); a = COMBINE(a, b))
    y[o] = FINAL(a, n);
}}

/* one work-group per output; the reduced dims form one group (r0 elements, stride rs0) */
__kernel void reduce_group(
    __global const T* restrict x, __global T* restrict y,
    long k1, long k2, long k3, long ks0, long ks1, long ks2, long ks3, long r0, long rs0)
{{
    __local T part[LOCAL];
    long o = get_group_id(0);
    int lid = get_local_id(0);
    int ls = get_local_size(0);
    long base = kept_offset(o, k1, k2, k3, ks0, ks1, ks2, ks3);
    long n = r0;
#if {lse}
    T m = -INFINITY;
    for (long i = lid; i < r0; i += ls) {{ T v = x[base + i * rs0]; m = MAXOF(m, v); }}
    part[lid] = m;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int s = ls / 2; s > 0; s /= 2) {{
        if (lid < s) part[lid] = MAXOF(part[lid], part[lid + s]);
        barrier(CLK_LOCAL_MEM_FENCE);
    }}
    T peak = part[0];
    if (!isfinite(peak)) peak = 0;
    barrier(CLK_LOCAL_MEM_FENCE);
#endif
    T a = INIT;
    for (long i = lid; i < r0; i += ls) {{ T v = x[base + i * rs0]; T b = MAP(v); a = COMBINE(a, b); }}
    part[lid] = a;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int s = ls / 2; s > 0; s /= 2) {{
        if (lid < s) {{ T a = part[lid]; T b = part[lid + s]; part[lid] = COMBINE(a, b); }}
        barrier(CLK_LOCAL_MEM_FENCE);
    }}
    if (lid == 0) {{ T a = part[0]; y[o] = FINAL(a, n); }}
}}
"""


def group_size(rt: Runtime, knl: Any, limit: int = LOCAL) -> int:
    """The largest power of two work-group size that the kernel, the device and ``limit`` allow."""
    import pyopencl as cl

    allowed = min(limit, rt.max_work_group_size,
                  int(knl.get_work_group_info(cl.kernel_work_group_info.WORK_GROUP_SIZE, rt.device)))
    return 1 << (max(allowed, 1).bit_length() - 1)


def build_options(dtype: np.dtype) -> list[str]:
    """Compiler options shared by the programs of this family: element type and local size."""
    return [f"-DT={ctype(dtype)}", f"-DLOCAL={LOCAL}"]


def input_dtype(ctx: Any, index: int = 0) -> np.dtype:
    """The declared dtype of input ``index`` (float32 when the graph does not say)."""
    dtypes = ctx.input_dtypes
    dt = dtypes[index] if index < len(dtypes) else None
    return np.dtype(np.float32) if dt is None else np.dtype(dt)


# double is usable wherever the device has it (float64 tensors, exact integer square roots)
FP64_PRAGMA = "#ifdef cl_khr_fp64\n#pragma OPENCL EXTENSION cl_khr_fp64 : enable\n#endif\n"


def _source(op: str, dtype: np.dtype) -> str:
    init, mapped, combine, final = _OPS[op]
    lowest, highest = _LIMITS[ctype(dtype)]
    if dtype == np.bool_:
        lowest, highest = "0", "1"
    return FP64_PRAGMA + _SOURCE.format(
        lowest=lowest, highest=highest, is_float=int(dtype.kind == "f"), is_signed=int(dtype.kind != "u"),
        init=init, map=mapped, combine=combine, final=final, lse=int(op == "log_sum_exp"),
    )


def _coalesce(shape: Sequence[int], reduced: frozenset[int]) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """(kept groups, reduced groups) as (size, element stride), outermost first.

    Dims of size 1 are dropped; adjacent dims with the same role merge.
    """
    strides = [1] * len(shape)
    for i in range(len(shape) - 2, -1, -1):
        strides[i] = strides[i + 1] * shape[i + 1]
    groups: list[list[Any]] = []  # [is_reduced, size, stride]
    for i, (size, stride) in enumerate(zip(shape, strides)):
        if size == 1:
            continue
        red = i in reduced
        if groups and groups[-1][0] == red and groups[-1][2] == size * stride:
            groups[-1][1] *= size
            groups[-1][2] = stride
        else:
            groups.append([red, size, stride])
    kept = [(g[1], g[2]) for g in groups if not g[0]]
    red = [(g[1], g[2]) for g in groups if g[0]]
    return kept, red


class Reducer:
    """One compiled reduction (op, dtype) on a runtime; ``__call__`` reduces given axes."""

    def __init__(self, rt: Runtime, op: str, dtype: Any) -> None:
        self.rt = rt
        self.op = op
        self.dtype = np.dtype(dtype)
        src = _source(op, self.dtype)
        opts = build_options(self.dtype)
        self.serial = rt.kernel(src, "reduce_serial", opts)
        self.group = rt.kernel(src, "reduce_group", opts)
        self.local = group_size(rt, self.group)

    def __call__(self, x: Array, axes: Sequence[int], keepdims: bool) -> Array:
        """Reduce ``x`` over ``axes`` (normalized, possibly empty: then only map/final apply)."""
        reduced = frozenset(axes)
        out_shape = tuple(1 if i in reduced else d for i, d in enumerate(x.shape) if keepdims or i not in reduced)
        y = self.rt.empty(out_shape, self.dtype)
        n_out = y.size
        if n_out == 0:
            return y
        n = math.prod(x.shape[a] for a in reduced)
        kept, red = _coalesce(x.shape, reduced)
        if len(kept) > MAX_GROUPS or len(red) > MAX_GROUPS:
            raise InvalidArgument(
                f"reduction over axes {sorted(reduced)} of shape {x.shape} needs more than "
                f"{MAX_GROUPS} separate dim groups"
            )
        if n == 0:
            red = [(0, 0)]  # loops run zero times: every output is the op's empty-set value
        kept = [(1, 0)] * (MAX_GROUPS - len(kept)) + kept
        k_sizes = [np.int64(s) for s, _ in kept]
        k_strides = [np.int64(st) for _, st in kept]
        if len(red) == 1 and n >= GROUP_THRESHOLD:
            self.rt.launch(self.group, (n_out * self.local,), (self.local,), x.data, y.data,
                           *k_sizes[1:], *k_strides, np.int64(red[0][0]), np.int64(red[0][1]))
            return y
        red = red + [(1, 0)] * (MAX_GROUPS - len(red))
        self.rt.launch(self.serial, (n_out,), None, x.data, y.data, np.int64(n_out),
                       *k_sizes[1:], *k_strides,
                       *(np.int64(s) for s, _ in red), *(np.int64(st) for _, st in red), np.int64(n))
        return y


def reducer(rt: Runtime, op: str, dtype: Any) -> Reducer:
    """The compiled :class:`Reducer` for (op, dtype) on ``rt`` (programs are cached by the runtime)."""
    return Reducer(rt, op, dtype)


# -- registration ---------------------------------------------------------------------------


def _normalize_axes(axes: Sequence[int], ndim: int, node: str) -> tuple[int, ...]:
    out = set()
    for a in axes:
        a = int(a)
        if not -ndim <= a < max(ndim, 1):
            raise InvalidArgument(f"{node}: axis {a} is out of range for a tensor of rank {ndim}")
        out.add(a + ndim if a < 0 else a)
    return tuple(sorted(out))


def _rank_ok(node: Any, input_types: list[Any]) -> str | None:
    t = input_types[0] if input_types else None
    if t is None or t.shape is None:
        return None  # the coalesced groups are checked at run time
    if len(t.shape) > 2 * MAX_GROUPS:
        return f"rank {len(t.shape)} > {2 * MAX_GROUPS} is not implemented"
    return None


def _reduction(ctx: Any, op: str, axes: Any, keepdims: int, noop_with_empty_axes: int) -> Callable[..., Array]:
    rt = ctx.provider.runtime
    dtype = input_dtype(ctx)
    red = reducer(rt, op, dtype)
    keep = bool(keepdims)
    what = ctx.node.describe() if ctx.node is not None else op
    if axes is None and 1 in ctx.constants:
        axes = np.asarray(ctx.constants[1]).reshape(-1).tolist()

    def run(data: Array, axes_input: Array | None = None) -> Array:
        if axes is not None:
            given = list(axes)
        elif axes_input is None or axes_input.size == 0:
            given = []
        else:  # a non-constant axes input: a few integers read back for the launch geometry
            given = rt.to_host(axes_input).reshape(-1).tolist()
        if not given and noop_with_empty_axes:
            reduced: tuple[int, ...] = ()
        else:
            reduced = _normalize_axes(given, data.ndim, what) if given else tuple(range(data.ndim))
        return red(data, reduced, keep)

    return run


def _register(op_type: str, op: str, versions: Sequence[int], dtypes: Sequence[Any],
              later_dtypes: dict[int, Sequence[Any]] | None = None) -> None:
    def make(ctx: Any, *, axes: list[int] | None = None, keepdims: int = 1, noop_with_empty_axes: int = 0):
        return _reduction(ctx, op, axes, keepdims, noop_with_empty_axes)

    make.__doc__ = f"{op_type}: {op} over the given axes (attribute, or input in newer opsets)."
    make.__name__ = make.__qualname__ = f"reduce_{op}"
    for v in versions:
        types = dtypes
        for since, extra in (later_dtypes or {}).items():
            if v >= since:
                types = extra
        kernel(op_type, since=v, dtypes=types, factory=True, supports=_rank_ok)(make)


_register("ReduceSum", "sum", (1, 11, 13), _NUMERIC)
_register("ReduceMean", "mean", (1, 11, 13, 18), _NUMERIC)
_register("ReduceSumSquare", "sum_square", (1, 11, 13, 18), _NUMERIC)
_register("ReduceL1", "l1", (1, 11, 13, 18), _NUMERIC)
_register("ReduceL2", "l2", (1, 11, 13, 18), _NUMERIC)
_register("ReduceProd", "prod", (1, 11, 13, 18), _NUMERIC)
_register("ReduceLogSum", "log_sum", (1, 11, 13, 18, 28), _FLOAT)
_register("ReduceLogSumExp", "log_sum_exp", (1, 11, 13, 18, 28), _FLOAT)
_register("ReduceMax", "max", (1, 11, 12, 13, 18, 20), _NUMERIC, {12: _MINMAX, 20: _MINMAX_20})
_register("ReduceMin", "min", (1, 11, 12, 13, 18, 20), _NUMERIC, {12: _MINMAX, 20: _MINMAX_20})


# -- ArgMax / ArgMin ------------------------------------------------------------------------

_ARG_SOURCE = r"""
#if {is_float}
  /* the first NaN wins, as numpy's argmax/argmin report it */
  #define BETTER(v, best) ((v) {cmp} (best) || (isnan(v) && !isnan(best)))
#else
  #define BETTER(v, best) ((v) {cmp} (best))
#endif
/* one work-item per output (outer, inner); scans n elements at stride inner */
__kernel void arg_extreme(__global const T* restrict x, __global long* restrict y,
                          long n_out, long n, long inner, int last)
{{
    long o = get_global_id(0);
    if (o >= n_out) return;
    long base = (o / inner) * n * inner + o % inner;
    T best = x[base];
    long at = 0;
    for (long j = 1; j < n; ++j) {{
        T v = x[base + j * inner];
        if (BETTER(v, best) || (last && v == best)) {{ best = v; at = j; }}
    }}
    y[o] = at;
}}
"""


def _arg_factory(cmp: str) -> Callable[..., Any]:
    def make(ctx: Any, *, axis: int = 0, keepdims: int = 1, select_last_index: int = 0) -> Callable[..., Array]:
        rt = ctx.provider.runtime
        dtype = input_dtype(ctx)
        src = FP64_PRAGMA + _ARG_SOURCE.format(is_float=int(dtype.kind == "f"), cmp=cmp)
        knl = rt.kernel(src, "arg_extreme", build_options(dtype))
        what = ctx.node.describe() if ctx.node is not None else "ArgMax/ArgMin"

        def run(x: Array) -> Array:
            (ax,) = _normalize_axes([axis], x.ndim, what)
            n = x.shape[ax]
            shape = x.shape[:ax] + ((1,) if keepdims else ()) + x.shape[ax + 1:]
            y = rt.empty(shape, np.int64)
            if y.size == 0:
                return y
            if n == 0:
                raise InvalidArgument(f"{what}: cannot take the arg of an empty axis {ax} of shape {x.shape}")
            inner = math.prod(x.shape[ax + 1:])
            rt.launch(knl, (y.size,), None, x.data, y.data, np.int64(y.size), np.int64(n),
                      np.int64(inner), np.int32(1 if select_last_index else 0))
            return y

        return run

    return make


_arg_max = _arg_factory(">")
_arg_min = _arg_factory("<")
for _v, _types in ((1, _NUMERIC), (11, _NUMERIC), (12, _ARG), (13, _ARG)):
    kernel("ArgMax", since=_v, dtypes=_types, factory=True)(_arg_max)
    kernel("ArgMin", since=_v, dtypes=_types, factory=True)(_arg_min)
