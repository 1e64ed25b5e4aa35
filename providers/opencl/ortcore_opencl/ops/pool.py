"""Pooling in OpenCL C: MaxPool (with Indices), AveragePool, LpPool and the global pools.

The windowed pools run one work-item per output element. 1-D and 2-D pools
are 3-D pools with leading unit dims, so one program per (op, dtype) serves
every rank, kernel size, stride, padding and dilation: the geometry is passed
as scalar arguments. The window geometry (auto_pad, pads, ceil_mode) is
resolved on the host by :func:`pool_geometry`, following the spec formulas.

The global pools are reductions over the spatial dims and reuse
:mod:`ortcore_opencl.ops.reduce` (a work-group per (n, c) plane when the plane
is large).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ortcore.errors import InvalidArgument
from ortcore.window_geometry import Window, window
from ortcore_opencl.ops.reduce import FP64_PRAGMA, build_options, input_dtype, reducer
from ortcore_opencl.registry import kernel
from ortcore_opencl.runtime import Array

_FLOAT = (np.float32, np.float64)
_MAXPOOL_12 = (np.float32, np.float64, np.int8, np.uint8)
_LOWEST = {"float": "-INFINITY", "double": "-INFINITY", "char": "CHAR_MIN", "uchar": "0"}


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@functools.lru_cache(maxsize=512)
def pool_geometry(spatial: tuple[int, ...], kernel_shape: tuple[int, ...], strides: tuple[int, ...] | None,
                  dilations: tuple[int, ...] | None, pads: tuple[int, ...] | None, auto_pad: str,
                  ceil_mode: int, what: str) -> Window:
    """The pooling window for one input shape (the spec's formulas, cached per geometry)."""
    return window(spatial, kernel_shape, strides=strides, dilations=dilations, pads=pads, auto_pad=auto_pad,
                  ceil_mode=ceil_mode, op=what)


_POOL_SOURCE = FP64_PRAGMA + r"""
#define LOWEST_T {lowest}
#if {is_float}
  #define IS_NAN(v) isnan(v)
#else
  #define IS_NAN(v) 0
#endif
/* One work-item per output element of [NC, OD, OH, OW]. Taps at positions inside the
   input contribute; AVG divides by the taps inside [lo, hi) per axis (the input, or
   the input plus the explicit pads with count_include_pad). */
__kernel void pool(__global const T* restrict x, __global T* restrict y, __global long* restrict ind,
                   long total, int D, int H, int W, int OD, int OH, int OW,
                   int KD, int KH, int KW, int SD, int SH, int SW, int PD, int PH, int PW,
                   int DD, int DH, int DW, int LD, int LH, int LW, int HD, int HH, int HW,
                   int want_indices, int storage_order, T p)
{{
    long g = get_global_id(0);
    if (g >= total) return;
    int ow = g % OW; long t = g / OW;
    int oh = t % OH; t /= OH;
    int od = t % OD; long nc = t / OD;
    int d0 = od * SD - PD, h0 = oh * SH - PH, w0 = ow * SW - PW;
    __global const T* plane = x + nc * (long)D * H * W;
#if {op} == 0
    T best = LOWEST_T;
    long at = -1;
#else
    T acc = 0;
#endif
    for (int kd = 0; kd < KD; ++kd) {{
        int d = d0 + kd * DD;
        if (d < 0 || d >= D) continue;
        for (int kh = 0; kh < KH; ++kh) {{
            int h = h0 + kh * DH;
            if (h < 0 || h >= H) continue;
            for (int kw = 0; kw < KW; ++kw) {{
                int w = w0 + kw * DW;
                if (w < 0 || w >= W) continue;
                T v = plane[((long)d * H + h) * W + w];
#if {op} == 0
                if (at < 0 || v > best || IS_NAN(v)) {{  /* NaN wins, as numpy's maximum */
                    best = v;
                    at = storage_order ? (long)d + (long)D * (h + (long)H * w) : ((long)d * H + h) * W + w;
                }}
#elif {op} == 1
                acc += v;
#else
                acc += pow(fabs(v), p);
#endif
            }}
        }}
    }}
#if {op} == 0
    y[g] = best;
    if (want_indices) ind[g] = nc * (long)D * H * W + (at < 0 ? 0 : at);
#elif {op} == 1
    int cd = 0, ch = 0, cw = 0;
    for (int k = 0; k < KD; ++k) {{ int d = d0 + k * DD; cd += d >= LD && d < HD; }}
    for (int k = 0; k < KH; ++k) {{ int h = h0 + k * DH; ch += h >= LH && h < HH; }}
    for (int k = 0; k < KW; ++k) {{ int w = w0 + k * DW; cw += w >= LW && w < HW; }}
    y[g] = acc / (T)(cd * ch * cw);
#else
    y[g] = pow(acc, (T)1 / p);
#endif
}}
"""

_OPS = {"max": 0, "avg": 1, "lp": 2}


def _supports_pool(node: Any, input_types: list[Any]) -> str | None:
    ks = node.attrs.get("kernel_shape")
    if not ks:
        return "kernel_shape is missing"
    if not 1 <= len(ks) <= 3:
        return f"{len(ks)}-D pooling is not implemented (1-D to 3-D are)"
    x = input_types[0] if input_types else None
    if x is not None and x.shape is not None and len(x.shape) != len(ks) + 2:
        return f"kernel_shape {list(ks)} does not match an input of rank {len(x.shape)}"
    return None


def _pool(ctx: Any, op: str, *, kernel_shape: Sequence[int] | None, strides: Sequence[int] | None,
          pads: Sequence[int] | None, dilations: Sequence[int] | None, auto_pad: Any, ceil_mode: int,
          count_include_pad: int = 0, storage_order: int = 0, p: float = 2.0) -> Callable[[Array], Any]:
    rt = ctx.provider.runtime
    dtype = input_dtype(ctx)
    src = _POOL_SOURCE.format(lowest=_LOWEST.get(_ctype_name(dtype), "-INFINITY"), op=_OPS[op],
                              is_float=int(dtype.kind == "f"))
    knl = rt.kernel(src, "pool", build_options(dtype))
    what = ctx.node.describe() if ctx.node is not None else op
    if not kernel_shape:
        raise InvalidArgument(f"{what}: the kernel_shape attribute is required")
    ks = tuple(int(k) for k in kernel_shape)
    nd = len(ks)
    attrs = (
        None if not strides else tuple(int(s) for s in strides),
        None if not dilations else tuple(int(d) for d in dilations),
        None if not pads else tuple(int(v) for v in pads),
        _text(auto_pad), int(ceil_mode),
    )
    outputs = ctx.node.outputs if ctx.node is not None else [""] * ctx.n_outputs
    with_indices = op == "max" and len(outputs) > 1 and bool(outputs[1])
    pv = dtype.type(p)

    def lead(values: Sequence[int], fill: int) -> list[int]:
        return [fill] * (3 - nd) + list(values)

    def run(x: Array) -> Any:
        if x.ndim != nd + 2:
            raise InvalidArgument(f"{what}: kernel_shape {list(ks)} needs an input of rank {nd + 2}, got shape {x.shape}")
        geo = pool_geometry(tuple(x.shape[2:]), ks, *attrs, what)
        shape = x.shape[:2] + geo.out
        y = rt.empty(shape, x.dtype)
        ind = rt.empty(shape, np.int64) if with_indices else None
        total = y.size
        if total and x.size:
            spatial = lead(x.shape[2:], 1)
            if count_include_pad:
                lo = lead([-b for b in geo.begin], 0)
                hi = lead([s + e for s, e in zip(x.shape[2:], geo.end)], 1)
            else:
                lo, hi = [0, 0, 0], spatial
            rt.launch(knl, (total,), None, x.data, y.data, None if ind is None else ind.data, np.int64(total),
                      *(np.int32(v) for v in spatial + lead(geo.out, 1) + lead(geo.kernel, 1)
                        + lead(geo.strides, 1) + lead(geo.begin, 0) + lead(geo.dilations, 1) + lo + hi),
                      np.int32(with_indices), np.int32(storage_order), pv)
        if op != "max":
            return y
        return (y, ind) if with_indices else (y,) + (None,) * (len(outputs) - 1)

    return run


def _ctype_name(dtype: np.dtype) -> str:
    from ortcore_opencl.runtime import ctype

    return ctype(dtype)


@kernel("MaxPool", since=1, dtypes=_FLOAT, factory=True, multi_output=True, supports=_supports_pool)
@kernel("MaxPool", since=8, dtypes=_FLOAT, factory=True, multi_output=True, supports=_supports_pool)
@kernel("MaxPool", since=10, dtypes=_FLOAT, factory=True, multi_output=True, supports=_supports_pool)
@kernel("MaxPool", since=11, dtypes=_FLOAT, factory=True, multi_output=True, supports=_supports_pool)
@kernel("MaxPool", since=12, dtypes=_MAXPOOL_12, factory=True, multi_output=True, supports=_supports_pool)
@kernel("MaxPool", since=22, dtypes=_MAXPOOL_12, factory=True, multi_output=True, supports=_supports_pool)
def max_pool(ctx: Any, *, auto_pad: str = "NOTSET", ceil_mode: int = 0, dilations: list[int] | None = None,
             kernel_shape: list[int] | None = None, pads: list[int] | None = None, storage_order: int = 0,
             strides: list[int] | None = None) -> Callable[[Array], Any]:
    """MaxPool-1..22, with the optional Indices output (row- or column-major flat positions)."""
    return _pool(ctx, "max", kernel_shape=kernel_shape, strides=strides, pads=pads, dilations=dilations,
                 auto_pad=auto_pad, ceil_mode=ceil_mode, storage_order=storage_order)


@kernel("AveragePool", since=1, dtypes=_FLOAT, factory=True, supports=_supports_pool)
@kernel("AveragePool", since=7, dtypes=_FLOAT, factory=True, supports=_supports_pool)
@kernel("AveragePool", since=10, dtypes=_FLOAT, factory=True, supports=_supports_pool)
@kernel("AveragePool", since=11, dtypes=_FLOAT, factory=True, supports=_supports_pool)
@kernel("AveragePool", since=19, dtypes=_FLOAT, factory=True, supports=_supports_pool)
@kernel("AveragePool", since=22, dtypes=_FLOAT, factory=True, supports=_supports_pool)
def average_pool(ctx: Any, *, auto_pad: str = "NOTSET", ceil_mode: int = 0, count_include_pad: int = 0,
                 dilations: list[int] | None = None, kernel_shape: list[int] | None = None,
                 pads: list[int] | None = None, strides: list[int] | None = None) -> Callable[[Array], Array]:
    """AveragePool-1..22: the mean over the taps inside the input (or inside the pads too)."""
    return _pool(ctx, "avg", kernel_shape=kernel_shape, strides=strides, pads=pads, dilations=dilations,
                 auto_pad=auto_pad, ceil_mode=ceil_mode, count_include_pad=count_include_pad)


@kernel("LpPool", since=1, dtypes=_FLOAT, factory=True, supports=_supports_pool)
@kernel("LpPool", since=2, dtypes=_FLOAT, factory=True, supports=_supports_pool)
@kernel("LpPool", since=11, dtypes=_FLOAT, factory=True, supports=_supports_pool)
@kernel("LpPool", since=18, dtypes=_FLOAT, factory=True, supports=_supports_pool)
@kernel("LpPool", since=22, dtypes=_FLOAT, factory=True, supports=_supports_pool)
def lp_pool(ctx: Any, *, auto_pad: str = "NOTSET", ceil_mode: int = 0, dilations: list[int] | None = None,
            kernel_shape: list[int] | None = None, p: float = 2, pads: list[int] | None = None,
            strides: list[int] | None = None) -> Callable[[Array], Array]:
    """LpPool-1..22: (sum of |x|^p over the window) ^ (1/p); pads count as zeros."""
    return _pool(ctx, "lp", kernel_shape=kernel_shape, strides=strides, pads=pads, dilations=dilations,
                 auto_pad=auto_pad, ceil_mode=ceil_mode, p=float(p))


# -- global pools ---------------------------------------------------------------------------


def _global(ctx: Any, op: str) -> Callable[[Array], Array]:
    red = reducer(ctx.provider.runtime, op, input_dtype(ctx))
    what = ctx.node.describe() if ctx.node is not None else op

    def run(x: Array) -> Array:
        if x.ndim < 2:
            raise InvalidArgument(f"{what}: input of shape {x.shape} has no channel dimension")
        return red(x, tuple(range(2, x.ndim)), True)

    return run


@kernel("GlobalAveragePool", since=1, dtypes=_FLOAT, factory=True)
@kernel("GlobalAveragePool", since=22, dtypes=_FLOAT, factory=True)
def global_average_pool(ctx: Any) -> Callable[[Array], Array]:
    """GlobalAveragePool-1/22: the mean of every (n, c) plane."""
    return _global(ctx, "mean")


@kernel("GlobalMaxPool", since=1, dtypes=_FLOAT, factory=True)
@kernel("GlobalMaxPool", since=22, dtypes=_FLOAT, factory=True)
def global_max_pool(ctx: Any) -> Callable[[Array], Array]:
    """GlobalMaxPool-1/22: the maximum of every (n, c) plane."""
    return _global(ctx, "max")


def _supports_global_lp(node: Any, input_types: list[Any]) -> str | None:
    p = node.attrs.get("p", 2)
    return None if float(p) in (1.0, 2.0) else f"p={p} is not implemented (1 and 2 are)"


@kernel("GlobalLpPool", since=2, dtypes=_FLOAT, factory=True, supports=_supports_global_lp)
@kernel("GlobalLpPool", since=22, dtypes=_FLOAT, factory=True, supports=_supports_global_lp)
def global_lp_pool(ctx: Any, *, p: int = 2) -> Callable[[Array], Array]:
    """GlobalLpPool-2/22 for p = 1 (sum of |x|) and p = 2 (Euclidean norm)."""
    return _global(ctx, "l1" if float(p) == 1.0 else "l2")
