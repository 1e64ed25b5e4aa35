"""Resize (opset 10-19) and its deprecated alias Upsample, on numpy.

Resizing is separable: each resized axis gets a plan, computed once per (shape, scales,
sizes, roi) and cached by the node's kernel, that maps every output position to source taps
and weights. Running a plan is a handful of whole-array gathers and multiply-adds; integer
nearest upsampling (the usual 2x of a detector neck) is a single broadcast copy.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ortcore.resize_geometry import (
    AxisGeometry,
    ResizeSettings,
    axis_geometry,
    interpolation_taps,
    legacy_settings,
    nearest_index,
    source_coordinates,
)
from ortcore_cpu.registry import kernel

_CACHE_SIZE = 8
_BLOCK_ELEMENTS = 1 << 18  # output elements per block of linear/cubic work


@dataclass(frozen=True)
class _AxisPlan:
    """How one axis is resized: taps (out,) for nearest or (out, n) with weights (out, n)."""

    axis: int
    taps: np.ndarray
    weights: np.ndarray | None
    outside: np.ndarray | None  # tf_crop_and_resize: positions set to extrapolation_value
    repeat: int = 0  # > 0: nearest taps are arange(out) // repeat


# --- Planning -----------------------------------------------------------------------------


def _axis_plan(s: ResizeSettings, g: AxisGeometry, last: bool) -> _AxisPlan | None:
    if g.unscaled:
        return None
    in_len, out_len = g.in_len, g.out_len
    x = source_coordinates(s, out_len, in_len, g.scale, g.roi)
    outside = None
    if s.coord == "tf_crop_and_resize":
        outside = (x < 0) | (x > in_len - 1)
        outside = outside if outside.any() else None
    if outside is None and out_len == in_len and np.array_equal(x, np.arange(out_len)):
        return None
    if s.mode == "nearest":
        taps = np.clip(nearest_index(s.nearest, x, g.scale), 0, max(in_len - 1, 0)).astype(np.intp)
        # A broadcast copy repeats rows fast, but not single elements of the last axis.
        repeat = out_len // in_len if in_len and out_len % in_len == 0 and not last else 0
        if repeat and not np.array_equal(taps, np.arange(out_len) // repeat):
            repeat = 0
        return _AxisPlan(g.axis, taps, None, outside, repeat if outside is None else 0)
    taps, weights = interpolation_taps(s, x, in_len, g.scale)
    return _AxisPlan(g.axis, taps.astype(np.intp), weights, outside)


def _plans(s: ResizeSettings, shape: tuple[int, ...], roi, scales, sizes) -> list[_AxisPlan]:
    plans = []
    for g in axis_geometry(s, shape, roi, scales, sizes):
        plan = _axis_plan(s, g, g.axis == len(shape) - 1)
        if plan is not None:
            plans.append(plan)
    return _cheapest_order(plans, shape)


def _cheapest_order(plans: list[_AxisPlan], shape: tuple[int, ...]) -> list[_AxisPlan]:
    """Order axes by estimated work: shrink early, and gather along the last axis (element
    by element, several times slower than whole rows) while the data is small."""

    def cost(order):
        dims, total = list(shape), 0
        for p in order:
            dims[p.axis] = p.taps.shape[0]
            taps = p.taps.shape[1] if p.taps.ndim == 2 else 1
            total += math.prod(dims) * taps * (4 if p.axis == len(shape) - 1 else 1)
        return total

    if len(plans) > 4:
        return sorted(plans, key=lambda p: p.taps.shape[0] / max(shape[p.axis], 1))
    return list(min(itertools.permutations(plans), key=cost))


# --- Execution ----------------------------------------------------------------------------


def _as_index(taps: np.ndarray) -> slice | np.ndarray:
    """A basic slice when the taps are an arithmetic progression (a view, no gather)."""
    n = taps.shape[0]
    if n == 0:
        return taps
    step = int(taps[1] - taps[0]) if n > 1 else 1
    if step > 0 and np.array_equal(taps, taps[0] + step * np.arange(n)):
        return slice(int(taps[0]), int(taps[0]) + step * (n - 1) + 1, step)
    return taps


def _gather(x: np.ndarray, plans: list[_AxisPlan]) -> np.ndarray:
    """Nearest: basic slices, one take per gathered axis, then one broadcast copy for repeats."""
    index: list[Any] = [slice(None)] * x.ndim
    gathers = []
    for p in plans:
        if not p.repeat:
            selection = _as_index(p.taps)
            if isinstance(selection, slice):
                index[p.axis] = selection
            else:
                gathers.append(p)
    y = x[tuple(index)]
    for p in gathers:
        y = np.take(y, p.taps, axis=p.axis, mode="clip")
    repeats = {p.axis: p.repeat for p in plans if p.repeat}
    if repeats:
        inserted, wide = [], []
        for i, n in enumerate(y.shape):
            inserted += [n, 1] if i in repeats else [n]
            wide += [n, repeats[i]] if i in repeats else [n]
        out = np.empty([n * repeats.get(i, 1) for i, n in enumerate(y.shape)], dtype=y.dtype)
        out.reshape(wide)[...] = y.reshape(inserted)  # one broadcasting copy
        y = out
    return y


def _compute_dtype(dtype: np.dtype) -> np.dtype:
    if dtype == np.float64 or dtype.kind in "iub":
        return np.dtype(np.float64)
    return np.dtype(np.float32)


def _interpolate(x: np.ndarray, plan: _AxisPlan, cdt: np.dtype, out: np.ndarray | None = None):
    """One axis of linear/cubic: sum over taps of gathered slices times their weights."""
    shape = [1] * x.ndim
    shape[plan.axis] = plan.taps.shape[0]
    out_shape = list(x.shape)
    out_shape[plan.axis] = plan.taps.shape[0]
    weights = plan.weights.astype(cdt)
    columns = [j for j in range(weights.shape[1]) if weights[:, j].any()]
    acc = out if out is not None else np.empty(out_shape, dtype=cdt)
    if not columns:
        acc[...] = 0
    tmp = np.empty(out_shape, dtype=cdt) if len(columns) > 1 else None
    for k, j in enumerate(columns):
        dst = tmp if k else acc
        # Taps are already in range: "clip" skips the bounds check and the buffered copy.
        np.take(x, plan.taps[:, j], axis=plan.axis, out=dst, mode="clip")
        dst *= weights[:, j].reshape(shape)
        if k:
            acc += tmp
    return acc


def _mask_outside(y: np.ndarray, plans: list[_AxisPlan], value: float) -> np.ndarray:
    if y.dtype.kind in "iu":  # saturate like the float computation cast back would
        info = np.iinfo(y.dtype)
        value = min(max(round(value), info.min), info.max)
    for p in plans:
        if p.outside is not None:
            index = [slice(None)] * y.ndim
            index[p.axis] = p.outside
            y[tuple(index)] = value
    return y


def _execute(s: ResizeSettings, x: np.ndarray, plans: list[_AxisPlan]) -> np.ndarray:
    if s.mode == "nearest":
        y = _gather(x, plans)
        if np.may_share_memory(y, x):  # only slices were needed: the output owns its data
            y = y.copy()
        if any(p.outside is not None for p in plans):
            y = _mask_outside(y, plans, s.extrapolation_value)
        return y
    if not plans:
        return x.copy()
    # Untouched leading axes (N, C of NCHW) become one axis that is processed in blocks,
    # so each block's intermediates stay in cache instead of streaming through memory.
    lead = min(p.axis for p in plans)
    rows = math.prod(x.shape[:lead])
    flat = x.reshape((rows,) + x.shape[lead:])
    flat_plans = [replace(p, axis=p.axis - lead + 1) for p in plans]
    out_tail = list(flat.shape[1:])
    for p in flat_plans:
        out_tail[p.axis - 1] = p.taps.shape[0]
    out = np.empty([rows] + out_tail, dtype=x.dtype)
    step = max(1, _BLOCK_ELEMENTS // max(math.prod(out_tail), 1))
    for start in range(0, rows, step):
        _filter_block(s, flat[start : start + step], flat_plans, out[start : start + step])
    return out.reshape(x.shape[:lead] + tuple(out_tail))


def _filter_block(s: ResizeSettings, x: np.ndarray, plans: list[_AxisPlan], out: np.ndarray) -> None:
    cdt = _compute_dtype(x.dtype)
    y = x.astype(cdt, copy=False)
    for i, p in enumerate(plans):
        last = i == len(plans) - 1 and out.dtype == cdt
        y = _interpolate(y, p, cdt, out if last else None)
        if p.outside is not None:
            y = _mask_outside(y, [p], s.extrapolation_value)
    if y is out:
        return
    if x.dtype.kind in "iu":
        info = np.iinfo(x.dtype)
        y = np.clip(np.rint(y), info.min, info.max)
    out[...] = y


def _key(a: Any) -> Any:
    return None if a is None else (a.dtype.str, a.shape, a.tobytes())


def _resizer(s: ResizeSettings):
    """The per-run callable: plans cached by shape and the scales/sizes/roi values."""
    cache: dict[Any, list[_AxisPlan]] = {}

    def run(x, roi=None, scales=None, sizes=None, /):
        key = (x.shape, _key(roi), _key(scales), _key(sizes))
        plans = cache.get(key)
        if plans is None:
            if len(cache) >= _CACHE_SIZE:
                cache.clear()
            plans = cache[key] = _plans(s, x.shape, roi, scales, sizes)
        return _execute(s, x, plans)

    return run


# --- Kernels ------------------------------------------------------------------------------


@kernel("Resize", since=10, factory=True)
def resize_10(ctx, /, *, mode="nearest"):
    """Resize-10: scales input; nearest or linear with asymmetric coordinates."""
    run = _resizer(legacy_settings(mode))
    return lambda x, scales, /: run(x, None, scales)


@kernel("Resize", since=11, factory=True)
@kernel("Resize", since=13, factory=True)
def resize_11(ctx, /, *, mode="nearest", coordinate_transformation_mode="half_pixel",
              nearest_mode="round_prefer_floor", cubic_coeff_a=-0.75, exclude_outside=0,
              extrapolation_value=0.0):
    """Resize-11/13: roi, scales or sizes inputs; linear/cubic/nearest."""
    return _resizer(ResizeSettings(mode, coordinate_transformation_mode, nearest_mode, cubic_coeff_a,
                                   bool(exclude_outside), extrapolation_value))


@kernel("Resize", since=18, factory=True)
@kernel("Resize", since=19, factory=True)
def resize(ctx, /, *, mode="nearest", coordinate_transformation_mode="half_pixel",
           nearest_mode="round_prefer_floor", cubic_coeff_a=-0.75, exclude_outside=0,
           extrapolation_value=0.0, antialias=0, axes=None, keep_aspect_ratio_policy="stretch"):
    """Resize-18/19: adds antialias, axes and keep_aspect_ratio_policy (half_pixel_symmetric in 19)."""
    return _resizer(ResizeSettings(mode, coordinate_transformation_mode, nearest_mode, cubic_coeff_a,
                                   bool(exclude_outside), extrapolation_value, bool(antialias),
                                   None if axes is None else tuple(axes), keep_aspect_ratio_policy))


@kernel("Upsample", since=1, factory=True)
def upsample_1(ctx, /, *, height_scale, width_scale, mode="nearest"):
    """Upsample-1: NCHW with height/width scale attributes."""
    run = _resizer(legacy_settings(mode))
    scales = np.array([1.0, 1.0, height_scale, width_scale], dtype=np.float32)
    return lambda x, /: run(x, None, scales)


@kernel("Upsample", since=7, factory=True)
def upsample_7(ctx, /, *, scales, mode="nearest"):
    """Upsample-7: scales attribute."""
    run = _resizer(legacy_settings(mode))
    scale_array = np.asarray(scales, dtype=np.float32)
    return lambda x, /: run(x, None, scale_array)


@kernel("Upsample", since=9, factory=True)
@kernel("Upsample", since=10, factory=True)
def upsample(ctx, /, *, mode="nearest"):
    """Upsample-9/10: scales input."""
    run = _resizer(legacy_settings(mode))
    return lambda x, scales, /: run(x, None, scales)
