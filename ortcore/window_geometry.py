"""Sliding-window geometry of Conv, ConvTranspose and the pools, per the ONNX formulas.

Every provider resolves ``auto_pad``, ``pads``, ``strides``, ``dilations`` and
``ceil_mode`` the same way; only how it then moves data differs. These are the
spec's formulas once, with the attribute checks that give a clear
:class:`~ortcore.errors.InvalidArgument` for a malformed node.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ortcore.errors import InvalidArgument

__all__ = ["Window", "transpose_window", "window"]


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


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _ints(values: Sequence[int] | None, n: int, default: int, name: str, op: str) -> tuple[int, ...]:
    if not values:
        return (default,) * n
    values = tuple(int(v) for v in values)
    if len(values) != n:
        raise InvalidArgument(f"{op}: {name} has {len(values)} values, expected {n}")
    return values


def _steps(strides: Sequence[int] | None, dilations: Sequence[int] | None, n: int,
           op: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    s = _ints(strides, n, 1, "strides", op)
    d = _ints(dilations, n, 1, "dilations", op)
    if any(v <= 0 for v in s + d):
        raise InvalidArgument(f"{op}: strides {s} and dilations {d} must be positive")
    return s, d


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
    auto_pad: Any = "NOTSET",
    ceil_mode: int = 0,
    op: str = "window",
) -> Window:
    """Resolve auto_pad/pads/ceil_mode into output sizes and pads (Conv/Pool spec formulas)."""
    n = len(in_shape)
    kernel = tuple(int(k) for k in kernel)
    strides, dilations = _steps(strides, dilations, n, op)
    auto_pad = _text(auto_pad)
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
        p = _ints(pads, 2 * n, 0, "pads", op)
        if any(v < 0 for v in p):
            raise InvalidArgument(f"{op}: pads {list(p)} must be >= 0")
        begin, end = p[:n], p[n:]
    else:
        raise InvalidArgument(f"{op}: unknown auto_pad {auto_pad!r}")
    out = tuple(
        _out_size(size + b + e, sp, s, bool(ceil_mode), size + b)
        for size, b, e, sp, s in zip(in_shape, begin, end, spans, strides)
    )
    if any(o <= 0 for o in out):
        raise InvalidArgument(
            f"{op}: window {kernel} (dilations {dilations}) does not fit input {tuple(in_shape)} "
            f"with pads {begin + end}"
        )
    return Window(kernel, strides, dilations, tuple(begin), tuple(end), out)


def transpose_window(
    in_shape: Sequence[int],
    kernel: Sequence[int],
    *,
    auto_pad: Any = "NOTSET",
    dilations: Sequence[int] | None = None,
    output_padding: Sequence[int] | None = None,
    output_shape: Sequence[int] | None = None,
    pads: Sequence[int] | None = None,
    strides: Sequence[int] | None = None,
) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """(strides, dilations, pads before, output shape) per the ConvTranspose spec."""
    op, nd = "ConvTranspose", len(in_shape)
    s, d = _steps(strides, dilations, nd, op)
    auto_pad = _text(auto_pad) or "NOTSET"
    adj = tuple(int(v) for v in output_padding[-nd:]) if output_padding else (0,) * nd
    full = [st * (i - 1) + a + (k - 1) * dl + 1 for st, i, a, k, dl in zip(s, in_shape, adj, kernel, d)]
    if output_shape:
        out = tuple(int(o) for o in output_shape[-nd:])
    elif auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        out = tuple(i * st for i, st in zip(in_shape, s))
    else:
        p = _ints(pads, 2 * nd, 0, "pads", op) if auto_pad != "VALID" else (0,) * (2 * nd)
        out = tuple(f - p[i] - p[nd + i] for i, f in enumerate(full))
        if any(o <= 0 for o in out):
            raise InvalidArgument(f"{op}: pads {p} leave no output for input {tuple(in_shape)}")
        return s, d, p[:nd], out
    total = [f - o for f, o in zip(full, out)]
    begin = tuple(t // 2 if auto_pad == "SAME_UPPER" else t - t // 2 for t in total)
    if any(o <= 0 for o in out):
        raise InvalidArgument(f"{op}: output_shape {out} must be positive")
    return s, d, begin, out
