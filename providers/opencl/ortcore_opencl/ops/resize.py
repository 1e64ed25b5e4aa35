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

from ortcore.errors import InvalidArgument
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


@dataclass(frozen=True)
class _Settings:
    mode: str = "nearest"
    coord: str = "half_pixel"
    nearest: str = "round_prefer_floor"
    cubic_a: float = -0.75
    exclude_outside: bool = False
    antialias: bool = False
    extrapolation_value: float = 0.0
    axes: tuple[int, ...] | None = None
    policy: str = "stretch"


@dataclass
class _AxisPass:
    axis: int
    out_len: int
    ntaps: int
    taps: Array
    weights: Array


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _coordinates(s: _Settings, out_len: int, in_len: int, scale: float, roi: tuple[float, float]) -> np.ndarray:
    """Source coordinate of every output position (coordinate_transformation_mode).

    As in onnx.reference, align_corners/pytorch_half_pixel/tf_crop_and_resize use
    the fractional output width ``scale * in_len``.
    """
    y = np.arange(out_len, dtype=np.float64)
    width = scale * in_len
    mode = s.coord
    if mode == "half_pixel":
        return (y + 0.5) / scale - 0.5
    if mode == "asymmetric":
        return y / scale
    if mode == "pytorch_half_pixel":
        return (y + 0.5) / scale - 0.5 if width != 1 else np.full_like(y, -0.5)
    if mode == "align_corners":
        return y * (in_len - 1) / (width - 1) if width != 1 else np.zeros_like(y)
    if mode == "tf_half_pixel_for_nn":
        return (y + 0.5) / scale
    if mode == "half_pixel_symmetric":
        return in_len / 2 * (1 - out_len / width) + (y + 0.5) / scale - 0.5
    if mode == "tf_crop_and_resize":
        start, end = roi
        if width != 1:
            return y * (end - start) * (in_len - 1) / (width - 1) + start * (in_len - 1)
        return np.full_like(y, (end - start) * (in_len - 1) / 2) + start * (in_len - 1)
    raise InvalidArgument(f"Resize: unknown coordinate_transformation_mode {mode!r}")


def _nearest(rule: str, x: np.ndarray, scale: float) -> np.ndarray:
    if rule == "simple":  # Resize-10 / Upsample: floor when enlarging, ceil when shrinking
        rule = "ceil" if scale < 1 else "floor"
    if rule == "round_prefer_floor":
        return np.ceil(x - 0.5)
    if rule == "round_prefer_ceil":
        return np.floor(x + 0.5)
    if rule == "floor":
        return np.floor(x)
    if rule == "ceil":
        return np.ceil(x)
    raise InvalidArgument(f"Resize: unknown nearest_mode {rule!r}")


def _filter(s: _Settings, x: np.ndarray, in_len: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """(taps, weights), each [out_len, n], of linear or cubic interpolation at coordinates ``x``.

    With antialias a shrinking axis stretches the filter by 1/scale (more taps,
    weights renormalized); exclude_outside drops taps outside the input.
    """
    support = 1.0 if s.mode == "linear" else 2.0
    stretch = min(scale, 1.0) if s.antialias else 1.0
    first = math.floor(-support / stretch) + 1
    offsets = np.arange(first, 2 - first, dtype=np.float64)
    # base + 1 is the first tap at or above x; the ratio is in (0, 1] like the reference
    base = np.ceil(x) - 1
    t = np.abs((offsets[None, :] - (x - base)[:, None]) * stretch)
    if s.mode == "linear":
        w = np.maximum(1.0 - t, 0.0)
    else:
        a = s.cubic_a
        w = np.where(t <= 1, ((a + 2) * t - (a + 3)) * t * t + 1,
                     np.where(t < 2, ((a * t - 5 * a) * t + 8 * a) * t - 4 * a, 0.0))
    if s.antialias:
        w = w / w.sum(axis=1, keepdims=True)
    taps = base[:, None] + offsets[None, :]
    if s.exclude_outside:
        w = np.where((taps < 0) | (taps > in_len - 1), 0.0, w)
        total = w.sum(axis=1, keepdims=True)
        w = w / np.where(total == 0, 1.0, total)
    return np.clip(taps, 0, in_len - 1).astype(np.int32), w


def _values(a: Any) -> list[float] | None:
    if a is None or np.asarray(a).size == 0:
        return None
    return np.asarray(a, dtype=np.float64).reshape(-1).tolist()


def _plan(rt: Runtime, s: _Settings, dtype: np.dtype, shape: tuple[int, ...], roi: Any, scales: Any,
          sizes: Any, what: str) -> tuple[tuple[int, ...], list[_AxisPass]]:
    """(output shape, one pass per axis that changes), the tables uploaded to the device."""
    rank = len(shape)
    if s.axes is None:
        axes = list(range(rank))
    else:
        axes = [a + rank if a < 0 else a for a in s.axes]
        if any(not 0 <= a < rank for a in axes) or len(set(axes)) != len(axes):
            raise InvalidArgument(f"{what}: axes {list(s.axes)} are invalid for an input of rank {rank}")
    in_lens = [shape[a] for a in axes]
    size_list, scale_list = _values(sizes), _values(scales)
    if size_list is not None:
        if len(size_list) != len(axes):
            raise InvalidArgument(f"{what}: sizes has {len(size_list)} values, expected {len(axes)}")
        out_lens = [int(v) for v in size_list]
        ratios = [o / i if i else 1.0 for o, i in zip(out_lens, in_lens)]
        if s.policy != "stretch":
            common = min(ratios) if s.policy == "not_larger" else max(ratios)
            ratios = [common] * len(axes)
            out_lens = [int(common * i + 0.5) for i in in_lens]
    elif scale_list is not None:
        if len(scale_list) != len(axes):
            raise InvalidArgument(f"{what}: scales has {len(scale_list)} values, expected {len(axes)}")
        if any(r <= 0 for r in scale_list):
            raise InvalidArgument(f"{what}: scales must be positive, got {scale_list}")
        ratios = scale_list
        out_lens = [math.floor(i * r) for i, r in zip(in_lens, ratios)]
    else:
        raise InvalidArgument(f"{what}: one of scales and sizes must be given")
    if any(o < 0 for o in out_lens):
        raise InvalidArgument(f"{what}: sizes must not be negative, got {out_lens}")
    roi_list = None
    if s.coord == "tf_crop_and_resize" and roi is not None and np.asarray(roi).size:
        roi_list = list(np.asarray(roi).reshape(-1))  # kept in its own dtype, as the reference does
        if len(roi_list) != 2 * len(axes):
            raise InvalidArgument(f"{what}: roi has {len(roi_list)} values, expected {2 * len(axes)}")
    out_shape = list(shape)
    passes = []
    for k, axis in enumerate(axes):
        in_len, out_len, scale = in_lens[k], out_lens[k], ratios[k]
        out_shape[axis] = out_len
        bounds = (roi_list[k], roi_list[len(axes) + k]) if roi_list else (0.0, 1.0)
        if out_len == in_len and math.isclose(scale, 1.0) and tuple(bounds) == (0.0, 1.0):
            continue  # an unscaled axis is a copy, whatever the coordinate mode says
        if out_len == 0 or in_len == 0:
            continue  # nothing to sample: the output is empty
        x = _coordinates(s, out_len, in_len, scale, bounds)
        outside = (x < 0) | (x > in_len - 1) if s.coord == "tf_crop_and_resize" else None
        if s.mode == "nearest":
            taps = np.clip(_nearest(s.nearest, x, scale), 0, in_len - 1).astype(np.int32)
            if outside is None and out_len == in_len and np.array_equal(taps, np.arange(out_len)):
                continue
            taps, w = taps[:, None], np.ones((out_len, 1))
        else:
            taps, w = _filter(s, x, in_len, scale)
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


def _resizer(ctx: Any, s: _Settings, n_inputs: int, fixed: dict[int, np.ndarray] | None = None) -> Callable[..., Array]:
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


def _legacy(mode: Any) -> _Settings:
    mode = _text(mode)
    return _Settings(mode="linear" if mode in ("linear", "bilinear") else mode, coord="asymmetric", nearest="simple")


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
    return _resizer(ctx, _Settings(_text(mode), _text(coordinate_transformation_mode), _text(nearest_mode),
                                   float(cubic_coeff_a), bool(exclude_outside), False, float(extrapolation_value)), 4)


@kernel("Resize", since=18, dtypes=_NEAREST, factory=True, supports=_supported)
@kernel("Resize", since=19, dtypes=_NEAREST, factory=True, supports=_supported)
def resize(ctx: Any, *, mode: str = "nearest", coordinate_transformation_mode: str = "half_pixel",
           nearest_mode: str = "round_prefer_floor", cubic_coeff_a: float = -0.75, exclude_outside: int = 0,
           extrapolation_value: float = 0.0, antialias: int = 0, axes: list[int] | None = None,
           keep_aspect_ratio_policy: str = "stretch") -> Callable[..., Array]:
    """Resize-18/19: adds axes and keep_aspect_ratio_policy (half_pixel_symmetric in 19)."""
    return _resizer(ctx, _Settings(_text(mode), _text(coordinate_transformation_mode), _text(nearest_mode),
                                   float(cubic_coeff_a), bool(exclude_outside), bool(antialias),
                                   float(extrapolation_value), None if axes is None else tuple(int(a) for a in axes),
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
