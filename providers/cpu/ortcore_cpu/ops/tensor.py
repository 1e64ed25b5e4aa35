"""Tensor selection and rearrangement: Concat, Split, Slice, Gather*, Scatter*, Pad, Tile, TopK,
OneHot, NonZero, CumSum, Trilu, Compress, ReverseSequence, Unique.

Most kernels are array-module generic (``xp``); the scatters (``ufunc.at``), TopK (stable
sort) and Unique are numpy only.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ortcore_cpu.registry import kernel


def _ints(value: Any) -> list[int] | None:
    """A 1-D integer tensor (numpy or CuPy) or attribute list as Python ints."""
    if value is None:
        return None
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, (int, float)):
        return [int(value)]
    return [int(v) for v in value]


def _axis(axis: int, rank: int) -> int:
    return axis + rank if axis < 0 else axis


def _open_grid(xp, shape, axis, indices):
    """Index tuple addressing every position of ``shape`` with ``indices`` along ``axis``."""
    rank = len(shape)
    grid = [
        xp.arange(n).reshape([n if d == i else 1 for i in range(rank)])
        for d, n in enumerate(shape)
    ]
    grid[axis] = indices
    return tuple(grid)


# --- Concat / Split -------------------------------------------------------------------------


@kernel("Concat", since=1, xp=True)
def concat_1(xp, /, *inputs, axis=1):
    """Concat-1: axis defaults to 1."""
    return xp.concatenate(inputs, axis=axis)


@kernel("Concat", since=4, xp=True)
@kernel("Concat", since=11, xp=True)
@kernel("Concat", since=13, xp=True)
def concat(xp, /, *inputs, axis):
    """Concat-4+: concatenate along axis (negative from 11)."""
    return xp.concatenate(inputs, axis=axis)


def _split_sizes(dim: int, n: int) -> list[int]:
    chunk = -(-dim // n)
    return [chunk] * (n - 1) + [dim - chunk * (n - 1)]


def _splitter(xp, axis, split, n_outputs):
    def run(x, split_in=None, /):
        ax = _axis(axis, x.ndim)
        sizes = split or _ints(split_in) or _split_sizes(x.shape[ax], n_outputs)
        offsets = np.cumsum(sizes[:-1]).tolist()
        return tuple(xp.split(x, offsets, axis=ax))

    return run


@kernel("Split", since=1, factory=True, multi_output=True)
def split_1(ctx, /, *, axis=0, split=None):
    """Split-1: sizes from the attribute or the optional second input."""
    return _splitter(ctx.xp, axis, split, ctx.n_outputs)


@kernel("Split", since=2, factory=True, multi_output=True)
@kernel("Split", since=11, factory=True, multi_output=True)
def split_2(ctx, /, *, axis=0, split=None):
    """Split-2/11: sizes attribute, else equal parts."""
    return _splitter(ctx.xp, axis, split, ctx.n_outputs)


@kernel("Split", since=13, factory=True, multi_output=True)
def split_13(ctx, /, *, axis=0):
    """Split-13: sizes as optional input 1, else equal parts."""
    return _splitter(ctx.xp, axis, _ints(ctx.constants.get(1)), ctx.n_outputs)


@kernel("Split", since=18, factory=True, multi_output=True)
def split(ctx, /, *, axis=0, num_outputs=None):
    """Split-18: sizes input, or num_outputs parts of ceil(dim / n) with a smaller last one."""
    return _splitter(ctx.xp, axis, _ints(ctx.constants.get(1)), num_outputs or ctx.n_outputs)


# --- Slice --------------------------------------------------------------------------------


def _clamped_slice(start: int, end: int, step: int, dim: int) -> slice:
    """ONNX Slice bounds: negatives count from the end, then clamp by step direction."""
    if start < 0:
        start += dim
    if end < 0:
        end += dim
    if step > 0:
        return slice(min(max(start, 0), dim), min(max(end, 0), dim), step)
    start = min(max(start, 0), dim - 1)
    end = min(max(end, -1), dim - 1)
    return slice(start, None if end < 0 else end, step)


def _slice(x, starts, ends, axes, steps):
    index = [slice(None)] * x.ndim
    axes = range(len(starts)) if axes is None else axes
    steps = steps or [1] * len(starts)
    for start, end, axis, step in zip(starts, ends, axes, steps):
        axis = _axis(axis, x.ndim)
        index[axis] = _clamped_slice(start, end, step, x.shape[axis])
    return x[tuple(index)]


@kernel("Slice", since=1)
def slice_1(x, /, *, starts, ends, axes=None):
    """Slice-1: bounds as attributes; a view."""
    return _slice(x, starts, ends, axes, None)


@kernel("Slice", since=10, factory=True)
@kernel("Slice", since=11, factory=True)
@kernel("Slice", since=13, factory=True)
def slice_(ctx, /):
    """Slice-10+: bounds, axes and steps as inputs (negative steps allowed); a view."""
    const = [None] + [_ints(ctx.constants.get(i)) for i in range(1, 5)]  # input 0 is data

    def run(x, starts, ends, axes=None, steps=None, /):
        return _slice(
            x,
            const[1] or _ints(starts),
            const[2] or _ints(ends),
            const[3] if const[3] is not None else _ints(axes),
            const[4] or _ints(steps),
        )

    return run


# --- Gather -------------------------------------------------------------------------------


@kernel("Gather", since=1, xp=True)
@kernel("Gather", since=11, xp=True)
@kernel("Gather", since=13, xp=True)
def gather(xp, x, indices, /, *, axis=0):
    """Gather: take along axis; negative indices count from the end."""
    return xp.asarray(xp.take(x, indices, axis=axis))  # a 0-d index on 1-D data gives a scalar


@kernel("GatherElements", since=11, xp=True)
@kernel("GatherElements", since=13, xp=True)
def gather_elements(xp, x, indices, /, *, axis=0):
    """GatherElements: out[i][j] = x[indices[i][j]][j] (for axis 0)."""
    return x[_open_grid(xp, indices.shape, _axis(axis, x.ndim), indices)]


@kernel("GatherND", since=11, xp=True)
@kernel("GatherND", since=12, xp=True)
@kernel("GatherND", since=13, xp=True)
def gather_nd(xp, x, indices, /, *, batch_dims=0):
    """GatherND: index tuples in the last axis of indices, after batch_dims shared dims."""
    b, k = batch_dims, indices.shape[-1]
    nb, m = math.prod(x.shape[:b]), math.prod(indices.shape[b:-1])
    flat_x = x.reshape((nb,) + x.shape[b:])
    flat_i = indices.reshape(nb, m, k)
    index = (xp.arange(nb).reshape(nb, 1),) + tuple(flat_i[..., j] for j in range(k))
    return flat_x[index].reshape(indices.shape[:-1] + x.shape[b + k :])


# --- Scatter ------------------------------------------------------------------------------

_REDUCE_AT = {"add": np.add.at, "mul": np.multiply.at, "max": np.maximum.at, "min": np.minimum.at}


def _scatter(x, index, updates, reduction):
    out = x.copy()
    if reduction == "none":
        out[index] = updates
    else:
        _REDUCE_AT[reduction](out, index, updates)
    return out


def _scatter_elements(x, indices, updates, axis, reduction):
    index = _open_grid(np, indices.shape, _axis(axis, x.ndim), indices)
    return _scatter(x, index, updates, reduction)


@kernel("Scatter", since=9)
@kernel("Scatter", since=11)
@kernel("ScatterElements", since=11)
@kernel("ScatterElements", since=13)
def scatter_elements_11(x, indices, updates, /, *, axis=0):
    """ScatterElements-11/13 and deprecated Scatter: out[indices[i][j]][j] = updates[i][j]."""
    return _scatter_elements(x, indices, updates, axis, "none")


@kernel("ScatterElements", since=16)
@kernel("ScatterElements", since=18)
def scatter_elements(x, indices, updates, /, *, axis=0, reduction="none"):
    """ScatterElements-16+: with reduction none/add/mul (max/min from 18)."""
    return _scatter_elements(x, indices, updates, axis, reduction)


def _nd_index(indices):
    return tuple(indices[..., j] for j in range(indices.shape[-1]))


@kernel("ScatterND", since=11)
@kernel("ScatterND", since=13)
def scatter_nd_11(x, indices, updates, /):
    """ScatterND-11/13: out[indices[i]] = updates[i]."""
    return _scatter(x, _nd_index(indices), updates, "none")


@kernel("ScatterND", since=16)
@kernel("ScatterND", since=18)
def scatter_nd(x, indices, updates, /, *, reduction="none"):
    """ScatterND-16+: with reduction none/add/mul (max/min from 18)."""
    return _scatter(x, _nd_index(indices), updates, reduction)


# --- Pad / Tile ---------------------------------------------------------------------------


def _pad(xp, x, pads, mode, value, axes=None):
    rank = x.ndim
    axes = range(rank) if axes is None else [_axis(a, rank) for a in axes]
    half = len(pads) // 2
    width = [(0, 0)] * rank
    for i, axis in enumerate(axes):
        width[axis] = (pads[i], pads[half + i])
    if any(b < 0 or e < 0 for b, e in width):
        # Negative pads remove elements; crop first, then pad the rest.
        x = x[tuple(slice(max(-b, 0), n - max(-e, 0)) for (b, e), n in zip(width, x.shape))]
        width = [(max(b, 0), max(e, 0)) for b, e in width]
    if mode == "constant":
        return xp.pad(x, width, mode="constant", constant_values=value)
    return xp.pad(x, width, mode=mode)


@kernel("Pad", since=1, xp=True)
def pad_1(xp, x, /, *, paddings, mode="constant", value=0.0):
    """Pad-1: pads named paddings."""
    return _pad(xp, x, paddings, mode, value)


@kernel("Pad", since=2, xp=True)
def pad_2(xp, x, /, *, pads, mode="constant", value=0.0):
    """Pad-2: pads and value as attributes."""
    return _pad(xp, x, pads, mode, value)


def _pad_value(x, constant_value):
    if constant_value is None or constant_value.size == 0:
        return "" if x.dtype == object else 0
    return constant_value.reshape(-1)[0]


@kernel("Pad", since=11, xp=True)
@kernel("Pad", since=13, xp=True)
def pad_11(xp, x, pads, constant_value=None, /, *, mode="constant"):
    """Pad-11/13: pads and constant value as inputs."""
    return _pad(xp, x, _ints(pads), mode, _pad_value(x, constant_value))


@kernel("Pad", since=18, xp=True)
@kernel("Pad", since=19, xp=True)
@kernel("Pad", since=21, xp=True)
@kernel("Pad", since=23, xp=True)
@kernel("Pad", since=24, xp=True)
@kernel("Pad", since=25, xp=True)
def pad(xp, x, pads, constant_value=None, axes=None, /, *, mode="constant"):
    """Pad-18+: optional axes input; wrap mode from 19."""
    return _pad(xp, x, _ints(pads), mode, _pad_value(x, constant_value), _ints(axes))


@kernel("Tile", since=1, xp=True)
def tile_1(xp, x, tiles, axis, /):
    """Tile-1: repeat ``tiles`` times along one ``axis``."""
    reps = [1] * x.ndim
    reps[_axis(int(axis), x.ndim)] = int(tiles)
    return xp.tile(x, reps)


@kernel("Tile", since=6, xp=True)
@kernel("Tile", since=13, xp=True)
def tile(xp, x, repeats, /):
    """Tile-6+: repeats per dimension."""
    return xp.tile(x, tuple(_ints(repeats)))


# --- TopK ---------------------------------------------------------------------------------


def _topk(x, k, axis, largest):
    axis = _axis(axis, x.ndim)
    if largest:
        # Stable descending order with ties kept by ascending index: sort the reversed
        # axis stably, reverse the order, and map positions back.
        flipped = np.argsort(np.flip(x, axis), axis=axis, kind="stable")
        order = (x.shape[axis] - 1) - np.flip(flipped, axis)
    else:
        order = np.argsort(x, axis=axis, kind="stable")
    index = [slice(None)] * x.ndim
    index[axis] = slice(0, k)
    order = order[tuple(index)]
    return np.take_along_axis(x, order, axis=axis), order.astype(np.int64, copy=False)


@kernel("TopK", since=1, multi_output=True)
def topk_1(x, /, *, k, axis=-1):
    """TopK-1: k as an attribute; largest values, sorted."""
    return _topk(x, k, axis, True)


@kernel("TopK", since=10, multi_output=True)
def topk_10(x, k, /, *, axis=-1):
    """TopK-10: k as input; largest values, sorted."""
    return _topk(x, int(k.reshape(-1)[0]), axis, True)


@kernel("TopK", since=11, multi_output=True)
@kernel("TopK", since=24, multi_output=True)
def topk(x, k, /, *, axis=-1, largest=1, sorted=1):  # noqa: A002 (the spec's name)
    """TopK-11+: largest or smallest; always sorted (allowed for sorted=0)."""
    return _topk(x, int(k.reshape(-1)[0]), axis, largest)


# --- OneHot, NonZero, CumSum, Trilu, Compress, ReverseSequence ----------------------------


@kernel("OneHot", since=9, xp=True)
@kernel("OneHot", since=11, xp=True)
@kernel("OneHot", since=28, xp=True)
def one_hot(xp, indices, depth, values, /, *, axis=-1):
    """OneHot: values[1] where index matches (negatives wrap once), else values[0]."""
    d = int(depth.reshape(-1)[0])
    rank = indices.ndim
    axis = _axis(axis, rank + 1)
    idx = indices.astype(xp.int64)
    idx = xp.where(idx < 0, idx + d, idx)
    hot = xp.expand_dims(idx, axis) == xp.arange(d).reshape((d,) + (1,) * (rank - axis))
    return xp.where(hot, values[1], values[0])


@kernel("NonZero", since=9, xp=True)
@kernel("NonZero", since=13, xp=True)
def non_zero(xp, x, /):
    """NonZero: indices of nonzero elements, shape (rank, count), int64."""
    if x.ndim == 0:
        return xp.zeros((0, int(bool(x))), dtype=xp.int64)
    return xp.stack(xp.nonzero(x)).astype(xp.int64, copy=False)


@kernel("CumSum", since=11, xp=True)
@kernel("CumSum", since=14, xp=True)
def cum_sum(xp, x, axis, /, *, exclusive=0, reverse=0):
    """CumSum along a 0-d axis input, optionally exclusive and/or reversed."""
    ax = _axis(int(axis), x.ndim)
    if reverse:
        x = xp.flip(x, ax)
    out = xp.cumsum(x, axis=ax, dtype=x.dtype)
    if exclusive:
        head = [slice(None)] * x.ndim
        head[ax] = slice(0, -1)
        zero = xp.zeros_like(xp.take(x, xp.arange(min(1, x.shape[ax])), axis=ax))
        out = xp.concatenate([zero, out[tuple(head)]], axis=ax)
    return xp.flip(out, ax) if reverse else out


@kernel("Trilu", since=14, xp=True)
def trilu(xp, x, k=None, /, *, upper=1):
    """Trilu: upper or lower triangle (of the last two dims) from diagonal k."""
    k = 0 if k is None else int(k)
    return xp.triu(x, k) if upper else xp.tril(x, k)


@kernel("Compress", since=9, xp=True)
@kernel("Compress", since=11, xp=True)
@kernel("Compress", since=28, xp=True)
def compress(xp, x, condition, /, *, axis=None):
    """Compress: slices where condition is true (flattened input when axis is omitted)."""
    return xp.compress(condition, x, axis=axis)


@kernel("ReverseSequence", since=10, xp=True)
@kernel("ReverseSequence", since=28, xp=True)
def reverse_sequence(xp, x, sequence_lens, /, *, batch_axis=1, time_axis=0):
    """ReverseSequence: reverse the first sequence_lens[b] steps of each batch entry."""
    rank = x.ndim
    t = xp.arange(x.shape[time_axis]).reshape([-1 if d == time_axis else 1 for d in range(rank)])
    lens = sequence_lens.astype(xp.int64).reshape([-1 if d == batch_axis else 1 for d in range(rank)])
    source = xp.where(t < lens, lens - 1 - t, t)
    return xp.take_along_axis(x, xp.broadcast_to(source, x.shape), axis=time_axis)


# --- Unique -------------------------------------------------------------------------------


@kernel("Unique", since=11, multi_output=True)
@kernel("Unique", since=28, multi_output=True)
def unique(x, /, *, axis=None, sorted=1):  # noqa: A002 (the spec's name)
    """Unique: values, first indices, inverse indices and counts (int64)."""
    if axis is None:
        x = x.reshape(-1)  # np.unique's axis=None path also serves strings
    y, first, inverse, counts = np.unique(
        x, return_index=True, return_inverse=True, return_counts=True, axis=axis
    )
    inverse = inverse.reshape(-1)
    if not sorted:
        order = np.argsort(first, kind="stable")
        rank = np.empty_like(order)
        rank[order] = np.arange(order.size)
        first, counts, inverse = first[order], counts[order], rank[inverse]
        y = np.take(x, first, axis=0 if axis is None else axis)
    i64 = np.int64
    return y, first.astype(i64), inverse.astype(i64), counts.astype(i64)
