"""Pooling: MaxPool, AveragePool, LpPool, their Global forms, MaxRoiPool and MaxUnpool.

MaxPool (without Indices) and AveragePool on float32/float64 ``[N, C, H, W]``
inputs run compiled loops where numba is on (:mod:`ortcore_cpu.jit`, loops in
:mod:`._pool_loops`): one output row at a time, or for stride 1 with the
output as wide as the input one whole image at a time; windows are clipped to
the input rather than the input padded. The kernel learns at creation whether
it has the loops; each input shape picks one. A window that is the whole
unpadded image is the Global pool, for every rank and dtype.

Everything else (other ranks and dtypes, Indices, LpPool, or numba off) is
numpy, looping over kernel taps (never over pixels): each tap is one strided
view of the padded input covering every output position. Max and sum are
separable, so without Indices the window is reduced one spatial axis at a
time (k1 + k2 taps instead of k1 * k2).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import ml_dtypes
import numpy as np

from ortcore.errors import InvalidArgument
from ortcore_cpu import jit
from ortcore_cpu.ops.nn import _pool_loops
from ortcore_cpu.ops.nn._spatial import Window, pad_input, taps, window
from ortcore_cpu.registry import kernel

_FLOAT = (np.float16, np.float32, np.float64, ml_dtypes.bfloat16)
_MAXPOOL_TYPES = (*_FLOAT, np.int8, np.uint8)
# dtypes with a compiled 2-D loop (where numba is on); the rest take the numpy path
_COMPILED = (np.dtype(np.float32), np.dtype(np.float64))


def _pool_window(x: np.ndarray, kernel_shape, strides, dilations, pads, auto_pad, ceil_mode) -> Window:
    if not kernel_shape:
        raise InvalidArgument("pooling needs the kernel_shape attribute")
    if x.ndim < 3 or len(kernel_shape) != x.ndim - 2:
        raise InvalidArgument(f"kernel_shape {kernel_shape} does not match input shape {x.shape}")
    return _cached_window(
        x.shape[2:], tuple(kernel_shape), _hashable(strides), _hashable(dilations), _hashable(pads), auto_pad, ceil_mode
    )


def _hashable(values: list[int] | None) -> tuple[int, ...] | None:
    return None if values is None else tuple(values)


@functools.lru_cache(maxsize=1024)
def _cached_window(spatial, kernel_shape, strides, dilations, pads, auto_pad, ceil_mode) -> Window:
    return window(
        spatial, kernel_shape, strides=strides, dilations=dilations, pads=pads, auto_pad=auto_pad, ceil_mode=ceil_mode
    )


def _lowest(dtype: np.dtype) -> Any:
    return np.iinfo(dtype).min if dtype.kind in "iu" else -np.inf


def _flat_indices(win: Window, tap_index: np.ndarray, x_shape: tuple[int, ...], storage_order: int) -> np.ndarray:
    """Flat input positions (spec MaxPool Indices) of the winning taps per output."""
    nd = len(win.kernel)
    spatial = x_shape[2:]
    kernel_pos = np.unravel_index(tap_index, win.kernel)
    flat = np.zeros(tap_index.shape, dtype=np.int64)
    stride = 1
    order = range(nd - 1, -1, -1) if storage_order == 0 else range(nd)
    for axis in order:
        out_pos = np.arange(win.out[axis], dtype=np.int64).reshape((-1,) + (1,) * (nd - 1 - axis))
        pos = out_pos * win.strides[axis] - win.begin[axis] + kernel_pos[axis] * win.dilations[axis]
        flat += pos * stride
        stride *= spatial[axis]
    nc = np.arange(x_shape[0] * x_shape[1], dtype=np.int64).reshape(x_shape[0], x_shape[1], *(1,) * nd)
    return flat + nc * math.prod(spatial)


def _separable(xp: np.ndarray, win: Window, op: np.ufunc) -> np.ndarray:
    """Reduce each window with ``op`` one spatial axis at a time.

    The first axis goes first: its taps are whole contiguous rows, and the strided
    inner-axis taps then run on an array already shrunk by the first stride.
    """
    cur, fresh = xp, False
    nd = len(win.kernel)
    for ax in range(nd):
        k, d, s, o = win.kernel[ax], win.dilations[ax], win.strides[ax], win.out[ax]
        lead = (slice(None),) * (xp.ndim - nd + ax)
        views = [cur[(*lead, slice(t * d, t * d + (o - 1) * s + 1, s))] for t in range(k)]
        if k == 1:
            cur = views[0]
            continue
        acc = op(views[0], views[1])
        for view in views[2:]:
            op(acc, view, out=acc)
        cur, fresh = acc, True
    return cur if fresh else cur.copy()


def _compiled(rows: Callable[..., Any], planes: Callable[..., Any]) -> tuple[Callable[..., Any], ...] | None:
    """A pool's two 2-D loops compiled (per output row, per image), or None where compiled loops are off."""
    rows, planes = jit.loop(rows), jit.loop(planes)
    return None if rows is None or planes is None else (rows, planes)


def _whole_image(win: Window, spatial: tuple[int, ...]) -> bool:
    """The one window is the whole unpadded image: the pool is its Global form."""
    return win.kernel == spatial and not any(win.begin) and not any(win.end)


@functools.lru_cache(maxsize=256)
def _inside(win: Window, width: int) -> np.ndarray:
    """``[kernel_w, OH * OW]``: whether each column tap of each (flat) output lies in its input row."""
    cols = np.arange(win.out[1]) * win.strides[1] - win.begin[1] + np.arange(win.kernel[1])[:, None] * win.dilations[1]
    inside = np.tile((cols >= 0) & (cols < width), (1, win.out[0]))
    inside.flags.writeable = False
    return inside


@functools.lru_cache(maxsize=256)
def _row_taps(win: Window, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Per output row, the kernel rows ``[first, stop)`` whose input rows lie inside the input."""
    top = np.arange(win.out[0]) * win.strides[0] - win.begin[0]
    first = np.maximum(0, -(top // win.dilations[0]))
    stop = np.minimum(win.kernel[0], -((top - height) // win.dilations[0]))
    return first.astype(np.int64), stop.astype(np.int64)


def _run_2d(loops: tuple[Callable[..., Any], ...], x: np.ndarray, win: Window, *extra: Any) -> np.ndarray:
    """The compiled loop that suits ``win`` over ``x[N, C, H, W]``, into a new ``y[N, C, *win.out]``."""
    rows, planes = loops
    x = np.ascontiguousarray(x)
    y = np.empty((*x.shape[:2], *win.out), dtype=x.dtype)
    if win.strides == (1, 1) and win.out[1] == x.shape[3]:
        planes(x, y, *win.kernel, *win.dilations, *win.begin, _inside(win, x.shape[3]), *extra)
    else:
        rows(x, y, *_row_taps(win, x.shape[2]), win.kernel[1], *win.strides, *win.dilations, *win.begin, *extra)
    return y


def _max_pool(x: np.ndarray, win: Window, with_indices: bool) -> tuple[np.ndarray, np.ndarray | None]:
    xp = pad_input(x, win, _lowest(x.dtype))
    if not with_indices:
        return _separable(xp, win, np.maximum), None
    y = best = None
    for i, (_, view) in enumerate(taps(xp, win)):
        if y is None:
            y = view.copy()
            best = np.zeros(y.shape, dtype=np.int64)
        else:
            better = view > y
            np.copyto(y, view, where=better)
            best[better] = i
    return y, best


@kernel("MaxPool", since=1, dtypes=_FLOAT, factory=True, multi_output=True)
@kernel("MaxPool", since=8, dtypes=_FLOAT, factory=True, multi_output=True)
@kernel("MaxPool", since=10, dtypes=_FLOAT, factory=True, multi_output=True)
@kernel("MaxPool", since=11, dtypes=_FLOAT, factory=True, multi_output=True)
@kernel("MaxPool", since=12, dtypes=_MAXPOOL_TYPES, factory=True, multi_output=True)
@kernel("MaxPool", since=22, dtypes=_MAXPOOL_TYPES, factory=True, multi_output=True)
def make_max_pool(
    ctx: Any,
    *,
    auto_pad: str = "NOTSET",
    ceil_mode: int = 0,
    dilations: list[int] | None = None,
    kernel_shape: list[int] | None = None,
    pads: list[int] | None = None,
    storage_order: int = 0,
    strides: list[int] | None = None,
):
    """MaxPool-1..22 with the optional Indices output (flat, row- or column-major)."""
    outputs = ctx.node.outputs if ctx.node is not None else [""] * ctx.n_outputs
    with_indices = len(outputs) > 1 and bool(outputs[1])
    windows: dict[tuple[int, ...], Window] = {}
    loops = None if with_indices else _compiled(_pool_loops.max_pool_2d_rows, _pool_loops.max_pool_2d_planes)

    def run(x: np.ndarray) -> tuple[np.ndarray, ...]:
        win = windows.get(x.shape)
        if win is None:
            win = windows[x.shape] = _pool_window(x, kernel_shape, strides, dilations, pads, auto_pad, ceil_mode)
        if not with_indices and _whole_image(win, x.shape[2:]):
            return (global_max_pool(x),)
        if loops is not None and x.ndim == 4 and x.dtype in _COMPILED:
            return (_run_2d(loops, x, win),)
        # bfloat16 has no fast numpy loops; its values are exact in float32
        y, best = _max_pool(x.astype(np.float32) if x.dtype.kind == "V" else x, win, with_indices)
        y = y.astype(x.dtype, copy=False)
        if not with_indices:
            return (y,)
        return y, _flat_indices(win, best, x.shape, storage_order)

    return run


@functools.lru_cache(maxsize=256)
def _inverse_counts(win: Window, in_shape: tuple[int, ...], include_pad: bool, dtype: np.dtype) -> Any:
    """1 / (taps per output inside the input or, with include_pad, inside the pads).

    A scalar when every window is full; cached per geometry (the array is shared,
    callers only read it).
    """
    full = math.prod(win.kernel)
    if np.all(_counts(win, in_shape, include_pad) == full):
        return dtype.type(1.0 / full)
    return _inverse_grid(win, in_shape, include_pad, dtype)


@functools.lru_cache(maxsize=256)
def _inverse_grid(win: Window, in_shape: tuple[int, ...], include_pad: bool, dtype: np.dtype) -> np.ndarray:
    """:func:`_inverse_counts` as a full ``[*win.out]`` array even where windows are full (read-only)."""
    inverse = (1.0 / _counts(win, in_shape, include_pad)).astype(dtype)
    inverse.flags.writeable = False
    return inverse


def _counts(win: Window, in_shape: tuple[int, ...], include_pad: bool) -> np.ndarray:
    """Taps per output that fall inside the input (or inside the explicit pads)."""
    total = np.ones((), dtype=np.int64)
    for axis, (o, s, k, d) in enumerate(zip(win.out, win.strides, win.kernel, win.dilations)):
        lo = -win.begin[axis] if include_pad else 0
        hi = in_shape[axis] + win.end[axis] if include_pad else in_shape[axis]
        pos = np.arange(o)[:, None] * s - win.begin[axis] + np.arange(k)[None, :] * d
        cnt = ((pos >= lo) & (pos < hi)).sum(axis=1)
        total = total[..., None] * cnt
    return total


def _sum_pool(x: np.ndarray, win: Window) -> np.ndarray:
    return _separable(pad_input(x, win), win, np.add)


@kernel("AveragePool", since=1, dtypes=_FLOAT, factory=True)
@kernel("AveragePool", since=7, dtypes=_FLOAT, factory=True)
@kernel("AveragePool", since=10, dtypes=_FLOAT, factory=True)
@kernel("AveragePool", since=11, dtypes=_FLOAT, factory=True)
@kernel("AveragePool", since=19, dtypes=_FLOAT, factory=True)
@kernel("AveragePool", since=22, dtypes=_FLOAT, factory=True)
def make_average_pool(
    ctx: Any,
    *,
    auto_pad: str = "NOTSET",
    ceil_mode: int = 0,
    count_include_pad: int = 0,
    dilations: list[int] | None = None,
    kernel_shape: list[int] | None = None,
    pads: list[int] | None = None,
    strides: list[int] | None = None,
):
    """AveragePool-1..22: mean over the window; pads count only with count_include_pad."""
    include_pad = bool(count_include_pad)
    windows: dict[tuple[int, ...], Window] = {}
    loops = _compiled(_pool_loops.average_pool_2d_rows, _pool_loops.average_pool_2d_planes)

    def run(x: np.ndarray) -> np.ndarray:
        win = windows.get(x.shape)
        if win is None:
            win = windows[x.shape] = _pool_window(x, kernel_shape, strides, dilations, pads, auto_pad, ceil_mode)
        if _whole_image(win, x.shape[2:]):
            return global_average_pool(x)
        if loops is not None and x.ndim == 4 and x.dtype in _COMPILED:
            return _run_2d(loops, x, win, _inverse_grid(win, x.shape[2:], include_pad, x.dtype))
        acc = x if x.dtype.itemsize >= 4 else x.astype(np.float32)
        y = _sum_pool(acc, win)
        y *= _inverse_counts(win, x.shape[2:], include_pad, y.dtype)
        return y.astype(x.dtype, copy=False)

    return run


@kernel("LpPool", since=1, dtypes=_FLOAT)
@kernel("LpPool", since=2, dtypes=_FLOAT)
@kernel("LpPool", since=11, dtypes=_FLOAT)
@kernel("LpPool", since=18, dtypes=_FLOAT)
@kernel("LpPool", since=22, dtypes=_FLOAT)
def lp_pool(
    x: np.ndarray,
    /,
    *,
    auto_pad: str = "NOTSET",
    ceil_mode: int = 0,
    dilations: list[int] | None = None,
    kernel_shape: list[int] | None = None,
    p: float = 2,
    pads: list[int] | None = None,
    strides: list[int] | None = None,
) -> np.ndarray:
    """LpPool-1..22: (sum over the window of |x|^p)^(1/p); pads contribute zero."""
    win = _pool_window(x, kernel_shape, strides, dilations, pads, auto_pad, ceil_mode)
    acc = np.abs(x.astype(np.float32) if x.dtype.itemsize < 4 else x)
    y = _sum_pool(acc**p if p != 1 else acc, win)
    return (y ** (1.0 / p) if p != 1 else y).astype(x.dtype, copy=False)


@kernel("GlobalAveragePool", since=1, dtypes=_FLOAT)
@kernel("GlobalAveragePool", since=22, dtypes=_FLOAT)
def global_average_pool(x: np.ndarray, /) -> np.ndarray:
    """GlobalAveragePool: mean over all spatial dims, kept as size-1 dims."""
    axes = tuple(range(2, x.ndim))
    return np.mean(x, axis=axes, keepdims=True, dtype=np.float32 if x.dtype.itemsize < 4 else None).astype(
        x.dtype, copy=False
    )


@kernel("GlobalMaxPool", since=1, dtypes=_FLOAT)
@kernel("GlobalMaxPool", since=22, dtypes=_FLOAT)
def global_max_pool(x: np.ndarray, /) -> np.ndarray:
    """GlobalMaxPool: max over all spatial dims, kept as size-1 dims."""
    xw = x.astype(np.float32) if x.dtype.kind == "V" else x
    return np.max(xw, axis=tuple(range(2, x.ndim)), keepdims=True).astype(x.dtype, copy=False)


@kernel("GlobalLpPool", since=1, dtypes=_FLOAT)
@kernel("GlobalLpPool", since=2, dtypes=_FLOAT)
@kernel("GlobalLpPool", since=22, dtypes=_FLOAT)
def global_lp_pool(x: np.ndarray, /, *, p: float = 2) -> np.ndarray:
    """GlobalLpPool: (sum over all spatial dims of |x|^p)^(1/p)."""
    acc = np.abs(x.astype(np.float32) if x.dtype.itemsize < 4 else x)
    s = np.sum(acc**p, axis=tuple(range(2, x.ndim)), keepdims=True)
    return (s ** (1.0 / p)).astype(x.dtype, copy=False)


@kernel("MaxRoiPool", since=1, dtypes=_FLOAT)
@kernel("MaxRoiPool", since=22, dtypes=_FLOAT)
def max_roi_pool(
    x: np.ndarray, rois: np.ndarray, /, *, pooled_shape: list[int] | None = None, spatial_scale: float = 1.0
) -> np.ndarray:
    """MaxRoiPool: max over each of pooled_shape bins of each (batch, x1, y1, x2, y2) roi."""
    if not pooled_shape:
        raise InvalidArgument("MaxRoiPool needs the pooled_shape attribute")
    ph, pw = pooled_shape
    _, c, h, w = x.shape
    y = np.zeros((rois.shape[0], c, ph, pw), dtype=x.dtype)
    for r, roi in enumerate(np.asarray(rois, dtype=np.float64)):
        batch = int(roi[0])
        x1, y1, x2, y2 = (int(np.round(v * spatial_scale)) for v in roi[1:5])
        bin_h = max(y2 - y1 + 1, 1) / ph
        bin_w = max(x2 - x1 + 1, 1) / pw
        for i in range(ph):
            h0 = min(max(math.floor(i * bin_h) + y1, 0), h)
            h1 = min(max(math.ceil((i + 1) * bin_h) + y1, 0), h)
            for j in range(pw):
                w0 = min(max(math.floor(j * bin_w) + x1, 0), w)
                w1 = min(max(math.ceil((j + 1) * bin_w) + x1, 0), w)
                if h1 > h0 and w1 > w0:
                    y[r, :, i, j] = x[batch, :, h0:h1, w0:w1].max(axis=(1, 2))
    return y


@kernel("MaxUnpool", since=9, dtypes=_FLOAT)
@kernel("MaxUnpool", since=11, dtypes=_FLOAT)
@kernel("MaxUnpool", since=22, dtypes=_FLOAT)
def max_unpool(
    x: np.ndarray,
    indices: np.ndarray,
    output_shape: np.ndarray | None = None,
    /,
    *,
    kernel_shape: list[int] | None = None,
    pads: list[int] | None = None,
    strides: list[int] | None = None,
) -> np.ndarray:
    """MaxUnpool: scatter x to the flat positions in indices of a zero tensor."""
    if not kernel_shape:
        raise InvalidArgument("MaxUnpool needs the kernel_shape attribute")
    nd = len(kernel_shape)
    s = strides or [1] * nd
    p = pads or [0] * (2 * nd)
    spatial = [(i - 1) * st - p[a] - p[nd + a] + k for a, (i, st, k) in enumerate(zip(x.shape[2:], s, kernel_shape))]
    inferred = (*x.shape[:2], *spatial)
    shape = inferred if output_shape is None else tuple(int(v) for v in np.asarray(output_shape).ravel())
    # Indices address the inferred (unpadded) output; output_shape only pads or crops its end.
    y = np.zeros(math.prod(inferred), dtype=x.dtype)
    y[np.asarray(indices, dtype=np.int64).ravel()] = x.ravel()
    y = y.reshape(inferred)
    if shape == inferred:
        return y
    out = np.zeros(shape, dtype=x.dtype)
    common = tuple(slice(0, min(a, b)) for a, b in zip(shape, inferred))
    out[common] = y[common]
    return out
