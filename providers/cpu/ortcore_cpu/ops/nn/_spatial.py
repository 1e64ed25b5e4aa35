"""Sliding-window ops (Conv, pooling) on numpy: padding and the strided views of kernel taps.

The geometry itself (output sizes, pads, ceil_mode) is the spec's, resolved by
:mod:`ortcore.window_geometry` for every provider.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ortcore.window_geometry import Window, window

__all__ = ["Window", "pad_input", "patches", "taps", "window"]


def _pad_plan(shape: tuple[int, ...], win: Window, axis: int) -> tuple[Any, ...] | None:
    """(crop index or None, padded shape or None, interior index, border indices) for pad_input."""
    nd = len(win.kernel)
    spatial = range(axis, axis + nd)
    after = [need - shape[a] - b for need, a, b in zip(win.needed, spatial, win.begin)]
    crop = None
    if any(e < 0 for e in after):
        index = [slice(None)] * len(shape)
        for a, e in zip(spatial, after):
            index[a] = slice(0, shape[a] + min(e, 0))
        crop = tuple(index)
        shape = tuple(i.stop if isinstance(i, slice) and i.stop is not None else n for i, n in zip(index, shape))
        after = [max(e, 0) for e in after]
    if not any(win.begin) and not any(after):
        return crop, None, None, ()
    padded = list(shape)
    inner = [slice(None)] * len(shape)
    borders = []
    for a, b, e in zip(spatial, win.begin, after):
        padded[a] += b + e
        inner[a] = slice(b, b + shape[a])
        if b:
            borders.append(tuple(slice(0, b) if i == a else slice(None) for i in range(len(shape))))
        if e:
            borders.append(tuple(slice(padded[a] - e, None) if i == a else slice(None) for i in range(len(shape))))
    return crop, tuple(padded), tuple(inner), tuple(borders)


def pad_input(x: np.ndarray, win: Window, value: float = 0, axis: int = 2) -> np.ndarray:
    """Pad (or crop) the spatial dims ``axis..`` of ``x`` to exactly the extent the windows read.

    Only the border slabs are filled, so the cost is one copy of ``x``.
    """
    crop, padded, inner, borders = _pad_plan(x.shape, win, axis)
    if crop is not None:
        x = x[crop]
    if padded is None:
        return x
    out = np.empty(padded, dtype=x.dtype)
    out[inner] = x
    for border in borders:
        out[border] = value
    return out


def taps(xp: np.ndarray, win: Window, axis: int = 2) -> Iterator[tuple[tuple[int, ...], np.ndarray]]:
    """For each kernel tap, the strided view of padded ``xp`` it reads for every output."""
    lead = (slice(None),) * axis
    for tap in itertools.product(*(range(k) for k in win.kernel)):
        index = tuple(
            slice(t * d, t * d + (o - 1) * s + 1, s) for t, d, o, s in zip(tap, win.dilations, win.out, win.strides)
        )
        yield tap, xp[lead + index]


def patches(xp: np.ndarray, win: Window) -> np.ndarray:
    """Read-only view ``[..., *kernel, *out]`` of padded ``xp`` (im2col without copying)."""
    nd = len(win.kernel)
    lead, spatial = xp.strides[:-nd], xp.strides[-nd:]
    shape = xp.shape[:-nd] + win.kernel + win.out
    strides = (
        lead
        + tuple(st * d for st, d in zip(spatial, win.dilations))
        + tuple(st * s for st, s in zip(spatial, win.strides))
    )
    if xp.flags.c_contiguous and xp.size:  # np.ndarray over the buffer is ~5x cheaper than as_strided
        return np.ndarray(shape, xp.dtype, buffer=xp, strides=strides)
    return as_strided(xp, shape, strides, writeable=False)


def size(shape: Sequence[int]) -> int:
    """Number of elements of a shape."""
    return math.prod(shape)
