"""Resize (opset 10..19) and Upsample in OpenCL C: nearest, N-D linear and cubic.

The three modes are separable, so an N-D resize is a chain of
1-D resizes, one per scaled axis, each a launch of one kernel that sees the
tensor as [outer, in_len, inner] -> [outer, out_len, inner].

Where an output position samples the input along an axis is decided on the
host, once per (input shape, scales/sizes/roi) and cached: a table of source
indices and weights per output position (one tap for nearest, two for
linear, four for cubic, more when antialiasing widens the filter), computed in
float64 with the spec's coordinate formulas, so that the rounding of nearest
ties does not depend on the device's float precision. The tables are
O(output length) per axis and uploaded once; all per-element work happens in
the kernel. A source index of -1 marks a tf_crop_and_resize position outside
the crop box, which takes ``extrapolation_value``.

Interpolating integer tensors (whose rounding the spec leaves open) is
declined; non-constant scales/sizes/roi are read back to the host (a few
numbers) when they change.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ortcore.resize_geometry import (
    ResizeSettings,
    axis_geometry,
    interpolation_taps,
    legacy_settings,
    nearest_index,
    source_coordinates,
)
from ortcore_opencl.ops.reduce import FP64_PRAGMA, build_options, input_dtype
from ortcore_opencl.registry import kernel
from ortcore_opencl.runtime import Array, Runtime

_FLOAT = (np.float32, np.float64)
_NEAREST = (np.float32, np.float64, np.int8, np.uint8, np.int32, np.int64)
_CACHE_SIZE = 16

_SOURCE = FP64_PRAGMA + r"""
/* One output element of [outer, out_len, inner]: output position j reads ntaps source
   positions taps[j * ntaps + k] with weights[j * ntaps + k] (nearest: one tap, copied). */
__kernel void resize_axis(__global const T* restrict x, __global T* restrict y,
                          __global const int* restrict taps, __global const T* restrict weights,
                          long total, long out_len, long in_len, long inner, int ntaps,
                          int interpolate, T extrapolation)
{
    long g = get_global_id(0);
    if (g >= total) return;
    long i = g % inner;
    long t = g / inner;
    long j = t % out_len;
    long src = (t / out_len) * in_len * inner + i;
    __global const int* tp = taps + j * ntaps;
    if (tp[0] < 0) { y[g] = extrapolation; return; }
    if (!interpolate) { y[g] = x[src + (long)tp[0] * inner]; return; }
    __global const T* w = weights + j * ntaps;
    T acc = 0;
    for (int k = 0; k < ntaps; ++k) acc += x[src + (long)tp[k] * inner] * w[k];
    y[g] = acc;
}
"""


@dataclass
class _AxisPass:
    axis: int
    out_len: int
    ntaps: int
    taps: Array
    weights: Array


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _plan(rt: Runtime, s: ResizeSettings, dtype: np.dtype, shape: tuple[int, ...], roi: Any, scales: Any,
          sizes: Any, what: str) -> tuple[tuple[int, ...], list[_AxisPass]]:
    """(output shape, one pass per axis that changes), the tables uploaded to the device."""
    out_shape = list(shape)
    passes = []
    for g in axis_geometry(s, shape, roi, scales, sizes, what):
        axis, in_len, out_len, scale = g.axis, g.in_len, g.out_len, g.scale
        out_shape[axis] = out_len
        if g.unscaled:
            continue
        if out_len == 0 or in_len == 0:
            continue  # nothing to sample: the output is empty
        x = source_coordinates(s, out_len, in_len, scale, g.roi)
        outside = (x < 0) | (x > in_len - 1) if s.coord == "tf_crop_and_resize" else None
        if s.mode == "nearest":
            taps = np.clip(nearest_index(s.nearest, x, scale), 0, in_len - 1).astype(np.int32)
            if outside is None and out_len == in_len and np.array_equal(taps, np.arange(out_len)):
                continue
            taps, w = taps[:, None], np.ones((out_len, 1))
        else:
            taps, w = interpolation_taps(s, x, in_len, scale)
            taps = taps.astype(np.int32)
        if outside is not None:
            taps[outside, 0] = -1
        passes.append(_AxisPass(axis, out_len, taps.shape[1], rt.to_device(np.ascontiguousarray(taps)),
                                rt.to_device(w.astype(dtype))))
    # shrinking axes first, so later passes touch fewer elements
    passes.sort(key=lambda p: p.out_len / shape[p.axis])
    return tuple(out_shape), passes


def _supported(node: Any, input_types: list[Any]) -> str | None:
    attrs = node.attrs
    mode = _text(attrs.get("mode", "nearest"))
    if mode not in ("nearest", "linear", "bilinear", "cubic"):
        return f"mode {mode!r} is not implemented"
    x = input_types[0] if input_types else None
    if mode != "nearest" and x is not None and x.dtype is not None and x.dtype.kind != "f":
        return f"{mode} interpolation of {x.dtype} is not implemented (the rounding of integers is unspecified)"
    return None


def _resizer(ctx: Any, s: ResizeSettings, n_inputs: int, fixed: dict[int, np.ndarray] | None = None) -> Callable[..., Array]:
    """The per-run callable; ``n_inputs`` 2 is (X, scales), 4 is (X, roi, scales, sizes).

    ``fixed`` gives input values known from attributes (Upsample-7's scales).
    """
    rt = ctx.provider.runtime
    dtype = input_dtype(ctx)
    knl = rt.kernel(_SOURCE, "resize_axis", build_options(dtype))
    what = ctx.node.describe() if ctx.node is not None else "Resize"
    cache: dict[Any, tuple[tuple[int, ...], list[_AxisPass]]] = {}
    extrapolation = dtype.type(s.extrapolation_value) if dtype.kind == "f" else dtype.type(0)
    const = {**ctx.constants, **(fixed or {})}

    def host(index: int, value: Array | None) -> np.ndarray | None:
        if index in const:
            return const[index]
        return None if value is None else rt.to_host(value)

    def run(x: Array, *params: Array | None) -> Array:
        params = params + (None,) * (n_inputs - 1 - len(params))
        if n_inputs == 2:
            roi, scales, sizes = None, host(1, params[0]), None
        else:
            # roi only matters to tf_crop_and_resize: other modes never read it back
            roi = host(1, params[0]) if s.coord == "tf_crop_and_resize" else None
            scales, sizes = host(2, params[1]), host(3, params[2])
        key = tuple(None if a is None else (a.dtype.str, a.tobytes()) for a in (roi, scales, sizes))
        key = (x.shape, key)
        plan = cache.get(key)
        if plan is None:
            if len(cache) >= _CACHE_SIZE:
                cache.clear()
            plan = cache[key] = _plan(rt, s, dtype, x.shape, roi, scales, sizes, what)
        out_shape, passes = plan
        if math.prod(out_shape) == 0 or x.size == 0:
            return rt.empty(out_shape, x.dtype)
        cur = x
        for p in passes:
            shape = list(cur.shape)
            in_len = shape[p.axis]
            shape[p.axis] = p.out_len
            y = rt.empty(shape, x.dtype)
            inner = math.prod(shape[p.axis + 1:])
            rt.launch(knl, (y.size,), None, cur.data, y.data, p.taps.data, p.weights.data,
                      np.int64(y.size), np.int64(p.out_len), np.int64(in_len), np.int64(inner),
                      np.int32(p.ntaps), np.int32(s.mode != "nearest"), extrapolation)
            cur = y
        if cur is x:  # every axis unscaled: still a new array, the plan may free the input
            y = rt.empty(x.shape, x.dtype)
            _copy(rt, x, y)
            cur = y
        return cur

    return run


def _copy(rt: Runtime, src: Array, dst: Array) -> None:
    import pyopencl as cl

    cl.enqueue_copy(rt.queue, dst.data, src.data, byte_count=src.nbytes)


def _legacy(mode: Any) -> ResizeSettings:
    return legacy_settings(_text(mode))


@kernel("Resize", since=10, dtypes=_NEAREST, factory=True, supports=_supported)
def resize_10(ctx: Any, *, mode: str = "nearest") -> Callable[..., Array]:
    """Resize-10: (X, scales), asymmetric coordinates."""
    return _resizer(ctx, _legacy(mode), 2)


@kernel("Resize", since=11, dtypes=_NEAREST, factory=True, supports=_supported)
@kernel("Resize", since=13, dtypes=_NEAREST, factory=True, supports=_supported)
def resize_11(ctx: Any, *, mode: str = "nearest", coordinate_transformation_mode: str = "half_pixel",
              nearest_mode: str = "round_prefer_floor", cubic_coeff_a: float = -0.75, exclude_outside: int = 0,
              extrapolation_value: float = 0.0) -> Callable[..., Array]:
    """Resize-11/13: (X, roi, scales, sizes), nearest or linear."""
    return _resizer(ctx, ResizeSettings(_text(mode), _text(coordinate_transformation_mode), _text(nearest_mode),
                                        float(cubic_coeff_a), bool(exclude_outside), float(extrapolation_value)), 4)


@kernel("Resize", since=18, dtypes=_NEAREST, factory=True, supports=_supported)
@kernel("Resize", since=19, dtypes=_NEAREST, factory=True, supports=_supported)
def resize(ctx: Any, *, mode: str = "nearest", coordinate_transformation_mode: str = "half_pixel",
           nearest_mode: str = "round_prefer_floor", cubic_coeff_a: float = -0.75, exclude_outside: int = 0,
           extrapolation_value: float = 0.0, antialias: int = 0, axes: list[int] | None = None,
           keep_aspect_ratio_policy: str = "stretch") -> Callable[..., Array]:
    """Resize-18/19: adds axes and keep_aspect_ratio_policy (half_pixel_symmetric in 19)."""
    return _resizer(ctx, ResizeSettings(_text(mode), _text(coordinate_transformation_mode), _text(nearest_mode),
                                        float(cubic_coeff_a), bool(exclude_outside), float(extrapolation_value),
                                        bool(antialias), None if axes is None else tuple(int(a) for a in axes),
                                        _text(keep_aspect_ratio_policy)), 4)


@kernel("Upsample", since=7, dtypes=_NEAREST, factory=True, supports=_supported)
def upsample_7(ctx: Any, *, scales: Sequence[float], mode: str = "nearest") -> Callable[..., Array]:
    """Upsample-7: the scales attribute."""
    run = _resizer(ctx, _legacy(mode), 2, {1: np.asarray(scales, dtype=np.float32)})
    return lambda x: run(x, None)


@kernel("Upsample", since=9, dtypes=_NEAREST, factory=True, supports=_supported)
@kernel("Upsample", since=10, dtypes=_NEAREST, factory=True, supports=_supported)
def upsample(ctx: Any, *, mode: str = "nearest") -> Callable[..., Array]:
    """Upsample-9/10: the scales input."""
    return _resizer(ctx, _legacy(mode), 2)
