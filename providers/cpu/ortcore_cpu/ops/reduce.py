"""Reductions (ReduceSum ... ReduceLogSumExp) and ArgMax/ArgMin.

One factory per op serves every version: before opset 18 (13 for ReduceSum)
the axes are an attribute, afterwards an optional input; in both an absent or
empty axes list reduces everything, unless ``noop_with_empty_axes`` is set,
in which case nothing is reduced but the op's elementwise part (``abs`` for
ReduceL1, ``square`` for ReduceSumSquare...) still applies, as in the ops'
function definitions. The reduction cores may compute in a wider type; the
result is cast back to the input's type once, in :func:`_reduction`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from ortcore_cpu.registry import kernel

Core = Callable[[Any, Any, tuple[int, ...], bool], Any]


def _normalize_axes(axes: Any, ndim: int) -> tuple[int, ...]:
    return tuple(sorted({int(a) + ndim if int(a) < 0 else int(a) for a in axes}))


def _empty_result(xp: Any, x: Any, axes: tuple[int, ...], keepdims: bool, value: Any) -> Any:
    """The result of reducing an empty set: the op's identity element ``value`` everywhere."""
    shape = tuple(1 if i in axes else d for i, d in enumerate(x.shape) if keepdims or i not in axes)
    return xp.full(shape, value, dtype=x.dtype)


def _reduction(ctx: Any, core: Core, axes: Any, keepdims: int, noop_with_empty_axes: int) -> Callable[..., Any]:
    """The per-run callable: resolve the axes (attribute, constant input or input), then ``core``."""
    xp = ctx.xp
    keep = bool(keepdims)
    if axes is None and 1 in ctx.constants:
        axes = ctx.constants[1].reshape(-1).tolist()

    def run(data: Any, axes_input: Any = None) -> Any:
        given = axes if axes is not None else ([] if axes_input is None else axes_input.reshape(-1).tolist())
        if not given and noop_with_empty_axes:
            reduced: tuple[int, ...] = ()
        else:
            reduced = _normalize_axes(given or range(data.ndim), data.ndim)
        # float16 and bfloat16 accumulate in float32 (a float16 sum overflows past 65504)
        wide = data.astype(xp.float32) if data.dtype.itemsize < 4 and data.dtype.kind in "fV" else data
        return xp.asarray(core(xp, wide, reduced, keep)).astype(data.dtype, copy=False)

    return run


def _empty_reduced(x: Any, axes: tuple[int, ...]) -> bool:
    return x.size == 0 and any(x.shape[a] == 0 for a in axes)


def _sum(xp: Any, x: Any, axes: tuple[int, ...], keep: bool) -> Any:
    # numpy sums small integers into int64; ONNX keeps the input type.
    return xp.sum(x, axis=axes, keepdims=keep, dtype=x.dtype)


def _mean(xp: Any, x: Any, axes: tuple[int, ...], keep: bool) -> Any:
    count = math.prod(x.shape[a] for a in axes)
    total = _sum(xp, x, axes, keep)
    if x.dtype.kind in "iu":  # truncated toward zero, like C
        return xp.floor_divide(total - xp.fmod(total, count), count) if count else total
    return total / count if count else xp.full_like(total, float("nan"))


def _extreme_value(x: Any, largest: bool) -> Any:
    """+-inf for floats, the type's bounds for integers (and bool)."""
    if x.dtype == np.bool_:
        return largest
    if x.dtype.kind in "iu":
        info = np.iinfo(x.dtype)
        return info.max if largest else info.min
    return math.inf if largest else -math.inf


def _max(xp: Any, x: Any, axes: tuple[int, ...], keep: bool) -> Any:
    if _empty_reduced(x, axes):
        return _empty_result(xp, x, axes, keep, _extreme_value(x, largest=False))
    return xp.max(x, axis=axes, keepdims=keep)


def _min(xp: Any, x: Any, axes: tuple[int, ...], keep: bool) -> Any:
    if _empty_reduced(x, axes):
        return _empty_result(xp, x, axes, keep, _extreme_value(x, largest=True))
    return xp.min(x, axis=axes, keepdims=keep)


def _prod(xp: Any, x: Any, axes: tuple[int, ...], keep: bool) -> Any:
    return xp.prod(x, axis=axes, keepdims=keep, dtype=x.dtype)


def _l1(xp: Any, x: Any, axes: tuple[int, ...], keep: bool) -> Any:
    return _sum(xp, xp.abs(x), axes, keep)


def _sum_square(xp: Any, x: Any, axes: tuple[int, ...], keep: bool) -> Any:
    return _sum(xp, x * x, axes, keep)


def _l2(xp: Any, x: Any, axes: tuple[int, ...], keep: bool) -> Any:
    return xp.sqrt(_sum_square(xp, x, axes, keep))


def _log_sum(xp: Any, x: Any, axes: tuple[int, ...], keep: bool) -> Any:
    return xp.log(_sum(xp, x, axes, keep))


def _log_sum_exp(xp: Any, x: Any, axes: tuple[int, ...], keep: bool) -> Any:
    """log(sum(exp(x))) shifted by the finite maximum, so large inputs do not overflow."""
    if _empty_reduced(x, axes):
        return _empty_result(xp, x, axes, keep, -math.inf)
    if not axes:
        return x.copy()
    peak = xp.max(x, axis=axes, keepdims=True)
    peak = xp.where(xp.isfinite(peak), peak, 0)
    out = xp.log(xp.sum(xp.exp(x - peak), axis=axes, keepdims=True)) + peak
    return out if keep else xp.squeeze(out, axis=axes)


@kernel("ReduceSum", since=1, factory=True)
@kernel("ReduceSum", since=11, factory=True)
@kernel("ReduceSum", since=13, factory=True)
def reduce_sum(ctx, *, axes=None, keepdims=1, noop_with_empty_axes=0):
    """ReduceSum (axes an input since 13)."""
    return _reduction(ctx, _sum, axes, keepdims, noop_with_empty_axes)


@kernel("ReduceMean", since=1, factory=True)
@kernel("ReduceMean", since=11, factory=True)
@kernel("ReduceMean", since=13, factory=True)
@kernel("ReduceMean", since=18, factory=True)
def reduce_mean(ctx, *, axes=None, keepdims=1, noop_with_empty_axes=0):
    """ReduceMean (axes an input since 18; integer means truncate)."""
    return _reduction(ctx, _mean, axes, keepdims, noop_with_empty_axes)


@kernel("ReduceMax", since=1, factory=True)
@kernel("ReduceMax", since=11, factory=True)
@kernel("ReduceMax", since=12, factory=True)
@kernel("ReduceMax", since=13, factory=True)
@kernel("ReduceMax", since=18, factory=True)
@kernel("ReduceMax", since=20, factory=True)
def reduce_max(ctx, *, axes=None, keepdims=1, noop_with_empty_axes=0):
    """ReduceMax: an empty set gives -inf (or the type's minimum)."""
    return _reduction(ctx, _max, axes, keepdims, noop_with_empty_axes)


@kernel("ReduceMin", since=1, factory=True)
@kernel("ReduceMin", since=11, factory=True)
@kernel("ReduceMin", since=12, factory=True)
@kernel("ReduceMin", since=13, factory=True)
@kernel("ReduceMin", since=18, factory=True)
@kernel("ReduceMin", since=20, factory=True)
def reduce_min(ctx, *, axes=None, keepdims=1, noop_with_empty_axes=0):
    """ReduceMin: an empty set gives +inf (or the type's maximum)."""
    return _reduction(ctx, _min, axes, keepdims, noop_with_empty_axes)


@kernel("ReduceProd", since=1, factory=True)
@kernel("ReduceProd", since=11, factory=True)
@kernel("ReduceProd", since=13, factory=True)
@kernel("ReduceProd", since=18, factory=True)
def reduce_prod(ctx, *, axes=None, keepdims=1, noop_with_empty_axes=0):
    """ReduceProd."""
    return _reduction(ctx, _prod, axes, keepdims, noop_with_empty_axes)


@kernel("ReduceL1", since=1, factory=True)
@kernel("ReduceL1", since=11, factory=True)
@kernel("ReduceL1", since=13, factory=True)
@kernel("ReduceL1", since=18, factory=True)
def reduce_l1(ctx, *, axes=None, keepdims=1, noop_with_empty_axes=0):
    """ReduceL1: sum(|x|)."""
    return _reduction(ctx, _l1, axes, keepdims, noop_with_empty_axes)


@kernel("ReduceL2", since=1, factory=True)
@kernel("ReduceL2", since=11, factory=True)
@kernel("ReduceL2", since=13, factory=True)
@kernel("ReduceL2", since=18, factory=True)
def reduce_l2(ctx, *, axes=None, keepdims=1, noop_with_empty_axes=0):
    """ReduceL2: sqrt(sum(x^2))."""
    return _reduction(ctx, _l2, axes, keepdims, noop_with_empty_axes)


@kernel("ReduceSumSquare", since=1, factory=True)
@kernel("ReduceSumSquare", since=11, factory=True)
@kernel("ReduceSumSquare", since=13, factory=True)
@kernel("ReduceSumSquare", since=18, factory=True)
def reduce_sum_square(ctx, *, axes=None, keepdims=1, noop_with_empty_axes=0):
    """ReduceSumSquare: sum(x^2)."""
    return _reduction(ctx, _sum_square, axes, keepdims, noop_with_empty_axes)


@kernel("ReduceLogSum", since=1, factory=True)
@kernel("ReduceLogSum", since=11, factory=True)
@kernel("ReduceLogSum", since=13, factory=True)
@kernel("ReduceLogSum", since=18, factory=True)
@kernel("ReduceLogSum", since=28, factory=True)
def reduce_log_sum(ctx, *, axes=None, keepdims=1, noop_with_empty_axes=0):
    """ReduceLogSum: log(sum(x)); an empty set gives -inf."""
    return _reduction(ctx, _log_sum, axes, keepdims, noop_with_empty_axes)


@kernel("ReduceLogSumExp", since=1, factory=True)
@kernel("ReduceLogSumExp", since=11, factory=True)
@kernel("ReduceLogSumExp", since=13, factory=True)
@kernel("ReduceLogSumExp", since=18, factory=True)
@kernel("ReduceLogSumExp", since=28, factory=True)
def reduce_log_sum_exp(ctx, *, axes=None, keepdims=1, noop_with_empty_axes=0):
    """ReduceLogSumExp: log(sum(exp(x))); an empty set gives -inf."""
    return _reduction(ctx, _log_sum_exp, axes, keepdims, noop_with_empty_axes)


# -- ArgMax / ArgMin ----------------------------------------------------------------------


def _arg_extreme(xp: Any, pick: Any, x: Any, axis: int, keepdims: int, select_last_index: int) -> Any:
    """Index (int64) of the first, or with select_last_index the last, extreme along ``axis``."""
    axis = axis + x.ndim if axis < 0 else axis
    if select_last_index:
        index = x.shape[axis] - 1 - pick(xp.flip(x, axis=axis), axis=axis)
    else:
        index = pick(x, axis=axis)
    index = xp.asarray(index).astype(xp.int64, copy=False)
    return xp.expand_dims(index, axis) if keepdims else index


@kernel("ArgMax", since=1, xp=True)
@kernel("ArgMax", since=11, xp=True)
@kernel("ArgMax", since=12, xp=True)
@kernel("ArgMax", since=13, xp=True)
def argmax(xp, x, /, *, axis=0, keepdims=1, select_last_index=0):
    """ArgMax (select_last_index since 12)."""
    return _arg_extreme(xp, xp.argmax, x, axis, keepdims, select_last_index)


@kernel("ArgMin", since=1, xp=True)
@kernel("ArgMin", since=11, xp=True)
@kernel("ArgMin", since=12, xp=True)
@kernel("ArgMin", since=13, xp=True)
def argmin(xp, x, /, *, axis=0, keepdims=1, select_last_index=0):
    """ArgMin (select_last_index since 12)."""
    return _arg_extreme(xp, xp.argmin, x, axis, keepdims, select_last_index)
