"""Shared geometry of sliding-window ops (Conv, pooling): output sizes, pads, tap views."""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ortcore.errors import InvalidArgument

__all__ = ["Window", "pad_input", "patches", "taps", "window"]


@dataclass(frozen=True)
class Window:
    """Resolved geometry of one N-D sliding window over the spatial dims."""

    kernel: tuple[int, ...]
    strides: tuple[int, ...]
    dilations: tuple[int, ...]
    begin: tuple[int, ...]  # pads before, as the spec resolves them
    end: tuple[int, ...]  # pads after, as the spec resolves them
    out: tuple[int, ...]  # output spatial shape

    @functools.cached_property
    def span(self) -> tuple[int, ...]:
        """Extent of one dilated window."""
        return tuple((k - 1) * d + 1 for k, d in zip(self.kernel, self.dilations))

    @functools.cached_property
    def needed(self) -> tuple[int, ...]:
        """Padded input extent that the output windows read (ceil_mode may exceed the pads)."""
        return tuple((o - 1) * s + sp for o, s, sp in zip(self.out, self.strides, self.span))


def _ints(values: Sequence[int] | None, n: int, default: int) -> tuple[int, ...]:
    return tuple(int(v) for v in values) if values else (default,) * n


def _out_size(padded: int, span: int, stride: int, ceil_mode: bool, limit: int) -> int:
    if ceil_mode:
        out = -(-(padded - span) // stride) + 1
        # the spec drops a last window that would start in the end padding (at or past limit)
        if (out - 1) * stride >= limit:
            out -= 1
        return out
    return (padded - span) // stride + 1


def window(
    in_shape: Sequence[int],
    kernel: Sequence[int],
    *,
    strides: Sequence[int] | None = None,
    dilations: Sequence[int] | None = None,
    pads: Sequence[int] | None = None,
    auto_pad: str = "NOTSET",
    ceil_mode: int = 0,
) -> Window:
    """Resolve auto_pad/pads/ceil_mode into output sizes and pads (Conv/Pool spec formulas)."""
    n = len(in_shape)
    kernel = tuple(int(k) for k in kernel)
    strides = _ints(strides, n, 1)
    dilations = _ints(dilations, n, 1)
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
    spans = [(k - 1) * d + 1 for k, d in zip(kernel, dilations)]
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        out = tuple(-(-size // s) for size, s in zip(in_shape, strides))
        total = [max(0, (o - 1) * s + sp - size) for o, s, sp, size in zip(out, strides, spans, in_shape)]
        small = [t // 2 for t in total]
        big = [t - t // 2 for t in total]
        begin, end = (small, big) if auto_pad == "SAME_UPPER" else (big, small)
        return Window(kernel, strides, dilations, tuple(begin), tuple(end), out)
    if auto_pad == "VALID":
        begin = end = (0,) * n
    elif auto_pad in ("NOTSET", ""):
        p = _ints(pads, 2 * n, 0)
        begin, end = p[:n], p[n:]
    else:
        raise InvalidArgument(f"unknown auto_pad {auto_pad!r}")
    out = tuple(
        _out_size(size + b + e, sp, s, bool(ceil_mode), size + b)
        for size, b, e, sp, s in zip(in_shape, begin, end, spans, strides)
    )
    if any(o <= 0 for o in out):
        raise InvalidArgument(f"window {kernel} does not fit input {tuple(in_shape)} with pads {begin + end}")
    return Window(kernel, strides, dilations, tuple(begin), tuple(end), out)


@functools.lru_cache(maxsize=1024)
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
