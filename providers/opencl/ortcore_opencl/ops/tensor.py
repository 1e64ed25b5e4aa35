"""Shape and data-movement ops: Reshape, Flatten, Squeeze, Unsqueeze, Shape, Size, Transpose,
Concat, Split, Slice, Gather, Pad, Expand, Tile.

Reshape, Flatten, Squeeze and Unsqueeze return views of their input's buffer
(no kernel, no copy). Shape and Size compute their few integers on the host
and upload them. Everything else moves elements with kernels that copy bits,
so one program per element size serves every dtype.

Shape-like inputs (Reshape's shape, Slice's starts...) are usually
initializers and are read once at session creation; a shape computed at run
time arrives as a device array and is fetched to the host (a few bytes).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pyopencl as cl

from ortcore.errors import InvalidArgument
from ortcore_opencl.codegen import (
    MAX_RANK,
    bits_type,
    buffer_of,
    broadcast_shape,
    contiguous_strides,
    copy_kernel_for,
    strided_copy,
)
from ortcore_opencl.ops.elementwise import ALL
from ortcore_opencl.registry import kernel
from ortcore_opencl.runtime import Array, Runtime

INDEX = (np.dtype(np.int32), np.dtype(np.int64))


def _ints(value: Any) -> list[int] | None:
    if value is None:
        return None
    return [int(v) for v in np.asarray(value).reshape(-1).tolist()]


def _axis(axis: int, rank: int, node: Any) -> int:
    if not -rank <= axis < max(rank, 1):
        raise InvalidArgument(f"{node.describe()}: axis {axis} is out of range for rank {rank}")
    return axis + rank if axis < 0 else axis


def _operand(ctx: Any, i: int) -> Callable[[Any], list[int] | None]:
    """Input ``i`` as host ints: read once when constant, else fetched from the device per run."""
    const = ctx.constants.get(i)
    if const is not None:
        values = _ints(const)
        return lambda arr: values
    rt = ctx.provider.runtime
    return lambda arr: None if arr is None else _ints(rt.to_host(arr))


def _max_rank(limit: int = MAX_RANK) -> Callable[[Any, list[Any]], str | None]:
    def supports(node: Any, input_types: list[Any]) -> str | None:
        t = input_types[0] if input_types else None
        if t is not None and t.kind != "tensor":
            return f"{t.kind} values stay on CPU"
        if t is not None and t.rank is not None and t.rank > limit:
            return f"rank {t.rank} input (kernels index at most {limit} dims)"
        return None

    return supports


_tensor = _max_rank(64)  # views have no rank limit
_ranked = _max_rank()

# -- views ---------------------------------------------------------------------------------------


def _reshape_to(node: Any, shape_in: Sequence[int], spec: Sequence[int], allowzero: int) -> tuple[int, ...]:
    shape = list(spec)
    for i, d in enumerate(shape):
        if d == 0 and not allowzero:
            if i >= len(shape_in):
                raise InvalidArgument(f"{node.describe()}: shape {list(spec)} copies dim {i} of a rank-{len(shape_in)} input")
            shape[i] = shape_in[i]
    total = math.prod(shape_in)
    if shape.count(-1) > 1:
        raise InvalidArgument(f"{node.describe()}: shape {list(spec)} has more than one -1")
    if -1 in shape:
        known = math.prod(d for d in shape if d != -1)
        if known == 0 or total % known:
            raise InvalidArgument(f"{node.describe()}: cannot reshape {tuple(shape_in)} to {list(spec)}")
        shape[shape.index(-1)] = total // known
    if math.prod(shape) != total or any(d < 0 for d in shape):
        raise InvalidArgument(f"{node.describe()}: cannot reshape {tuple(shape_in)} ({total} elements) to {list(spec)}")
    return tuple(shape)


@kernel("Reshape", since=5, factory=True, dtypes=ALL, supports=_tensor)
@kernel("Reshape", since=13, factory=True, dtypes=ALL, supports=_tensor)
@kernel("Reshape", since=14, factory=True, dtypes=ALL, supports=_tensor)
@kernel("Reshape", since=19, factory=True, dtypes=ALL, supports=_tensor)
@kernel("Reshape", since=21, factory=True, dtypes=ALL, supports=_tensor)
@kernel("Reshape", since=23, factory=True, dtypes=ALL, supports=_tensor)
@kernel("Reshape", since=24, factory=True, dtypes=ALL, supports=_tensor)
@kernel("Reshape", since=25, factory=True, dtypes=ALL, supports=_tensor)
def reshape(ctx, /, *, allowzero=0):
    """Reshape: a view; 0 copies the input dim (unless allowzero), -1 is inferred."""
    spec = _operand(ctx, 1)
    node = ctx.node
    return lambda x, shape: x.reshape(_reshape_to(node, x.shape, spec(shape), allowzero))


def _flatten(node: Any, x: Array, axis: int) -> Array:
    a = _axis(axis, x.ndim, node) if axis != x.ndim else axis
    return x.reshape((math.prod(x.shape[:a]), math.prod(x.shape[a:])))


@kernel("Flatten", since=1, factory=True, dtypes=ALL, supports=_tensor)
@kernel("Flatten", since=9, factory=True, dtypes=ALL, supports=_tensor)
@kernel("Flatten", since=11, factory=True, dtypes=ALL, supports=_tensor)
@kernel("Flatten", since=13, factory=True, dtypes=ALL, supports=_tensor)
@kernel("Flatten", since=21, factory=True, dtypes=ALL, supports=_tensor)
@kernel("Flatten", since=23, factory=True, dtypes=ALL, supports=_tensor)
@kernel("Flatten", since=24, factory=True, dtypes=ALL, supports=_tensor)
@kernel("Flatten", since=25, factory=True, dtypes=ALL, supports=_tensor)
def flatten(ctx, /, *, axis=1):
    """Flatten: a 2-D view split before ``axis``."""
    node = ctx.node
    return lambda x: _flatten(node, x, axis)


def _squeeze(node: Any, x: Array, axes: list[int] | None) -> Array:
    if axes is None:
        return x.reshape(tuple(d for d in x.shape if d != 1))
    axes = {_axis(a, x.ndim, node) for a in axes}
    for a in axes:
        if x.shape[a] != 1:
            raise InvalidArgument(f"{node.describe()}: cannot squeeze axis {a} of size {x.shape[a]} (shape {x.shape})")
    return x.reshape(tuple(d for i, d in enumerate(x.shape) if i not in axes))


def _unsqueeze(node: Any, x: Array, axes: list[int] | None) -> Array:
    if axes is None:
        raise InvalidArgument(f"{node.describe()}: Unsqueeze needs axes")
    rank = x.ndim + len(axes)
    where = sorted(_axis(a, rank, node) for a in axes)
    if len(set(where)) != len(where):
        raise InvalidArgument(f"{node.describe()}: repeated axes {axes}")
    dims = iter(x.shape)
    return x.reshape(tuple(1 if i in where else next(dims) for i in range(rank)))


@kernel("Squeeze", since=1, factory=True, dtypes=ALL, supports=_tensor)
@kernel("Squeeze", since=11, factory=True, dtypes=ALL, supports=_tensor)
def squeeze_1(ctx, /, *, axes=None):
    """Squeeze-1/11: axes attribute; all size-1 dims when absent."""
    node, axes = ctx.node, None if axes is None else list(axes)
    return lambda x: _squeeze(node, x, axes)


@kernel("Squeeze", since=13, factory=True, dtypes=ALL, supports=_tensor)
@kernel("Squeeze", since=21, factory=True, dtypes=ALL, supports=_tensor)
@kernel("Squeeze", since=23, factory=True, dtypes=ALL, supports=_tensor)
@kernel("Squeeze", since=24, factory=True, dtypes=ALL, supports=_tensor)
@kernel("Squeeze", since=25, factory=True, dtypes=ALL, supports=_tensor)
def squeeze(ctx, /):
    """Squeeze-13+: axes as an optional input."""
    node, axes = ctx.node, _operand(ctx, 1)
    return lambda x, a=None: _squeeze(node, x, axes(a))


@kernel("Unsqueeze", since=1, factory=True, dtypes=ALL, supports=_tensor)
@kernel("Unsqueeze", since=11, factory=True, dtypes=ALL, supports=_tensor)
def unsqueeze_1(ctx, /, *, axes=None):
    """Unsqueeze-1/11: axes attribute."""
    node, axes = ctx.node, None if axes is None else list(axes)
    return lambda x: _unsqueeze(node, x, axes)


@kernel("Unsqueeze", since=13, factory=True, dtypes=ALL, supports=_tensor)
@kernel("Unsqueeze", since=21, factory=True, dtypes=ALL, supports=_tensor)
@kernel("Unsqueeze", since=23, factory=True, dtypes=ALL, supports=_tensor)
@kernel("Unsqueeze", since=24, factory=True, dtypes=ALL, supports=_tensor)
@kernel("Unsqueeze", since=25, factory=True, dtypes=ALL, supports=_tensor)
def unsqueeze(ctx, /):
    """Unsqueeze-13+: axes as an input."""
    node, axes = ctx.node, _operand(ctx, 1)
    return lambda x, a: _unsqueeze(node, x, axes(a))


# -- Shape and Size: host integers -------------------------------------------------------------


@kernel("Shape", since=1, factory=True, dtypes=ALL, supports=_tensor)
@kernel("Shape", since=13, factory=True, dtypes=ALL, supports=_tensor)
@kernel("Shape", since=15, factory=True, dtypes=ALL, supports=_tensor)
@kernel("Shape", since=19, factory=True, dtypes=ALL, supports=_tensor)
@kernel("Shape", since=21, factory=True, dtypes=ALL, supports=_tensor)
@kernel("Shape", since=23, factory=True, dtypes=ALL, supports=_tensor)
@kernel("Shape", since=24, factory=True, dtypes=ALL, supports=_tensor)
@kernel("Shape", since=25, factory=True, dtypes=ALL, supports=_tensor)
def shape(ctx, /, *, start=0, end=None):
    """Shape: the dims (start:end since opset 15) as int64, uploaded."""
    rt = ctx.provider.runtime
    return lambda x: rt.to_device(np.array(x.shape[start:end], dtype=np.int64))


@kernel("Size", since=1, factory=True, dtypes=ALL, supports=_tensor)
@kernel("Size", since=13, factory=True, dtypes=ALL, supports=_tensor)
@kernel("Size", since=19, factory=True, dtypes=ALL, supports=_tensor)
@kernel("Size", since=21, factory=True, dtypes=ALL, supports=_tensor)
@kernel("Size", since=23, factory=True, dtypes=ALL, supports=_tensor)
@kernel("Size", since=24, factory=True, dtypes=ALL, supports=_tensor)
@kernel("Size", since=25, factory=True, dtypes=ALL, supports=_tensor)
def size(ctx, /):
    """Size: the element count as a 0-d int64, uploaded."""
    rt = ctx.provider.runtime
    return lambda x: rt.to_device(np.array(math.prod(x.shape), dtype=np.int64))


# -- strided copies: Transpose, Slice, Concat, Split, Expand -----------------------------------------


def _copying(ctx: Any) -> Runtime:
    """The runtime, with the copy kernel of the input's element size compiled now."""
    rt = ctx.provider.runtime
    dt = ctx.input_dtypes[0] if ctx.input_dtypes else None
    if dt is not None:
        copy_kernel_for(rt, dt)
    return rt


@kernel("Transpose", since=1, factory=True, dtypes=ALL, supports=_ranked)
@kernel("Transpose", since=13, factory=True, dtypes=ALL, supports=_ranked)
@kernel("Transpose", since=21, factory=True, dtypes=ALL, supports=_ranked)
@kernel("Transpose", since=23, factory=True, dtypes=ALL, supports=_ranked)
@kernel("Transpose", since=24, factory=True, dtypes=ALL, supports=_ranked)
@kernel("Transpose", since=25, factory=True, dtypes=ALL, supports=_ranked)
def transpose(ctx, /, *, perm=None):
    """Transpose: dims reversed unless ``perm`` says otherwise."""
    rt, node = _copying(ctx), ctx.node

    def run(x: Array) -> Array:
        p = list(range(x.ndim))[::-1] if perm is None else [int(a) for a in perm]
        if sorted(p) != list(range(x.ndim)):
            raise InvalidArgument(f"{node.describe()}: perm {p} is not a permutation of {x.ndim} axes")
        out_shape = tuple(x.shape[a] for a in p)
        out = rt.empty(out_shape, x.dtype)
        src = contiguous_strides(x.shape)
        strided_copy(rt, out, 0, contiguous_strides(out_shape), x, 0, [src[a] for a in p], out_shape)
        return out

    return run


def _slice_plan(node: Any, shape: Sequence[int], starts, ends, axes, steps) -> tuple[list[int], list[int], int]:
    """(output shape, per-dim step, element offset of the first element) of an ONNX slice."""
    rank = len(shape)
    axes = list(range(len(starts))) if axes is None else axes
    steps = [1] * len(starts) if steps is None else steps
    if not len(starts) == len(ends) == len(axes) == len(steps):
        raise InvalidArgument(f"{node.describe()}: starts, ends, axes and steps differ in length")
    out, step_of, first = list(shape), [1] * rank, [0] * rank
    seen = set()
    for start, end, axis, step in zip(starts, ends, axes, steps):
        a = _axis(axis, rank, node)
        if a in seen:
            raise InvalidArgument(f"{node.describe()}: axis {axis} repeats")
        seen.add(a)
        if step == 0:
            raise InvalidArgument(f"{node.describe()}: step 0 on axis {axis}")
        dim = shape[a]
        if start < 0:
            start += dim
        if end < 0:
            end += dim
        if step > 0:
            start, end = min(max(start, 0), dim), min(max(end, 0), dim)
        else:
            start, end = min(max(start, 0), dim - 1), min(max(end, -1), dim - 1)
        count = max(0, -(-(end - start) // step)) if dim else 0
        out[a], step_of[a], first[a] = count, step, start if count else 0
    strides = contiguous_strides(shape)
    return out, [s * k for s, k in zip(strides, step_of)], sum(f * s for f, s in zip(first, strides))


def _sliced(rt: Runtime, node: Any, x: Array, starts, ends, axes, steps) -> Array:
    out_shape, src_strides, offset = _slice_plan(node, x.shape, starts, ends, axes, steps)
    out = rt.empty(out_shape, x.dtype)
    strided_copy(rt, out, 0, contiguous_strides(out_shape), x, offset, src_strides, out_shape)
    return out


@kernel("Slice", since=1, factory=True, dtypes=ALL, supports=_ranked)
def slice_1(ctx, /, *, starts, ends, axes=None):
    """Slice-1: bounds as attributes."""
    rt, node = _copying(ctx), ctx.node
    axes = None if axes is None else list(axes)
    return lambda x: _sliced(rt, node, x, list(starts), list(ends), axes, None)


@kernel("Slice", since=10, factory=True, dtypes=ALL, supports=_ranked)
@kernel("Slice", since=11, factory=True, dtypes=ALL, supports=_ranked)
@kernel("Slice", since=13, factory=True, dtypes=ALL, supports=_ranked)
def slice_(ctx, /):
    """Slice-10+: starts, ends, axes, steps as inputs; negative steps walk backwards."""
    rt, node = _copying(ctx), ctx.node
    starts, ends, axes, steps = (_operand(ctx, i) for i in range(1, 5))

    def run(x: Array, s: Any, e: Any, a: Any = None, st: Any = None) -> Array:
        return _sliced(rt, node, x, starts(s), ends(e), axes(a), steps(st))

    return run


def _concat(rt: Runtime, node: Any, xs: Sequence[Array], axis: int) -> Array:
    first = xs[0]
    a = _axis(axis, first.ndim, node)
    for x in xs[1:]:
        if x.ndim != first.ndim or any(d != e for i, (d, e) in enumerate(zip(x.shape, first.shape)) if i != a):
            raise InvalidArgument(
                f"{node.describe()}: cannot concatenate shapes {[x.shape for x in xs]} along axis {axis}"
            )
    out_shape = list(first.shape)
    out_shape[a] = sum(x.shape[a] for x in xs)
    out = rt.empty(out_shape, first.dtype)
    dst = contiguous_strides(out_shape)
    at = 0
    for x in xs:
        strided_copy(rt, out, at * dst[a], dst, x, 0, contiguous_strides(x.shape), x.shape)
        at += x.shape[a]
    return out


@kernel("Concat", since=4, factory=True, dtypes=ALL, supports=_ranked)
@kernel("Concat", since=11, factory=True, dtypes=ALL, supports=_ranked)
@kernel("Concat", since=13, factory=True, dtypes=ALL, supports=_ranked)
def concat(ctx, /, *, axis):
    """Concat: one copy per input into its slab of the output."""
    rt, node = _copying(ctx), ctx.node
    return lambda *xs: _concat(rt, node, xs, axis)


def _split_sizes(node: Any, dim: int, sizes: list[int] | None, parts: int, uneven: bool) -> list[int]:
    if sizes is not None:
        if sum(sizes) != dim or any(s < 0 for s in sizes):
            raise InvalidArgument(f"{node.describe()}: split sizes {sizes} do not add up to {dim}")
        return sizes
    if uneven:
        chunk = -(-dim // parts)
        return [max(0, min(chunk, dim - i * chunk)) for i in range(parts)]
    if dim % parts:
        raise InvalidArgument(f"{node.describe()}: dim {dim} does not split into {parts} equal parts")
    return [dim // parts] * parts


def _splitter(ctx: Any, axis: int, sizes: Callable[[Any], list[int] | None], parts: int, uneven: bool) -> Callable[..., Any]:
    rt, node = _copying(ctx), ctx.node

    def run(x: Array, split: Any = None) -> tuple[Array, ...]:
        a = _axis(axis, x.ndim, node)
        chunks = _split_sizes(node, x.shape[a], sizes(split), parts, uneven)
        if len(chunks) != ctx.n_outputs:
            raise InvalidArgument(f"{node.describe()}: {len(chunks)} split sizes for {ctx.n_outputs} outputs")
        src = contiguous_strides(x.shape)
        outs, at = [], 0
        for c in chunks:
            shape = list(x.shape)
            shape[a] = c
            out = rt.empty(shape, x.dtype)
            strided_copy(rt, out, 0, contiguous_strides(shape), x, at * src[a], src, shape)
            outs.append(out)
            at += c
        return tuple(outs)

    return run


@kernel("Split", since=2, factory=True, multi_output=True, dtypes=ALL, supports=_ranked)
@kernel("Split", since=11, factory=True, multi_output=True, dtypes=ALL, supports=_ranked)
def split_2(ctx, /, *, axis=0, split=None):
    """Split-2/11: sizes attribute, else equal parts."""
    sizes = None if split is None else [int(s) for s in split]
    return _splitter(ctx, axis, lambda _: sizes, ctx.n_outputs, False)


@kernel("Split", since=13, factory=True, multi_output=True, dtypes=ALL, supports=_ranked)
def split_13(ctx, /, *, axis=0):
    """Split-13: sizes as optional input 1, else equal parts."""
    return _splitter(ctx, axis, _operand(ctx, 1), ctx.n_outputs, False)


@kernel("Split", since=18, factory=True, multi_output=True, dtypes=ALL, supports=_ranked)
def split_18(ctx, /, *, axis=0, num_outputs=None):
    """Split-18: sizes input, or num_outputs parts of ceil(dim / n) with a smaller last one."""
    return _splitter(ctx, axis, _operand(ctx, 1), num_outputs or ctx.n_outputs, num_outputs is not None)


@kernel("Expand", since=8, factory=True, dtypes=ALL, supports=_ranked)
@kernel("Expand", since=13, factory=True, dtypes=ALL, supports=_ranked)
def expand(ctx, /):
    """Expand: broadcast to ``shape`` (which may itself be smaller than the input's)."""
    rt, node, target = _copying(ctx), ctx.node, _operand(ctx, 1)

    def run(x: Array, shape: Any) -> Array:
        out_shape = broadcast_shape([x.shape, tuple(target(shape))], node.describe())
        padded = (1,) * (len(out_shape) - x.ndim) + tuple(x.shape)
        src = [0 if d == 1 else s for d, s in zip(padded, contiguous_strides(padded))]
        out = rt.empty(out_shape, x.dtype)
        strided_copy(rt, out, 0, contiguous_strides(out_shape), x, 0, src, out_shape)
        return out

    return run


# -- Gather ----------------------------------------------------------------------------------------

_GATHER_SOURCE = """
__kernel void gather(__global T *dst, __global const T *src, __global const I *idx, const int n,
                     const int inner, const int nidx, const int dim, __global int *bad)
{
    const int g = get_global_id(0);
    if (g >= n) return;
    const int i = g % inner;
    const int r = g / inner;
    const int k = r % nidx;
    const int o = r / nidx;
    long j = idx[k];
    if (j < 0) j += dim;
    if (j < 0 || j >= dim) { bad[0] = 1; dst[g] = 0; return; }
    dst[g] = src[((long)o * dim + j) * inner + i];
}
"""


@kernel("Gather", since=1, factory=True, dtypes={0: ALL, 1: INDEX}, supports=_ranked)
@kernel("Gather", since=11, factory=True, dtypes={0: ALL, 1: INDEX}, supports=_ranked)
@kernel("Gather", since=13, factory=True, dtypes={0: ALL, 1: INDEX}, supports=_ranked)
def gather(ctx, /, *, axis=0):
    """Gather: take along ``axis``; negative indices count from the end, others out of range are errors."""
    rt, node = ctx.provider.runtime, ctx.node
    dt, it = ctx.input_dtypes[0], ctx.input_dtypes[1]
    if dt is None or it is None:
        raise InvalidArgument(f"{node.describe()}: input dtypes are unknown")
    knl = rt.kernel(_GATHER_SOURCE, "gather", (f"-DT={bits_type(dt.itemsize)}", f"-DI={'int' if it == np.int32 else 'long'}"))
    const = ctx.constants.get(1)
    # constant indices are range-checked on the host (no device round trip); others on the device
    lo, hi = (int(const.min()), int(const.max())) if const is not None and const.size else (0, -1)
    spare = rt.empty((1,), np.int32) if const is not None else None  # never written: indices pass the check

    def run(x: Array, indices: Array) -> Array:
        a = _axis(axis, x.ndim, node)
        dim = x.shape[a]
        out_shape = x.shape[:a] + indices.shape + x.shape[a + 1:]
        out = rt.empty(out_shape, x.dtype)
        n = math.prod(out_shape)
        if n == 0:
            return out
        if spare is not None and (hi >= dim or lo < -dim):
            raise InvalidArgument(f"{node.describe()}: indices {lo}..{hi} are out of range for axis {axis} of size {dim}")
        flag = spare if spare is not None else rt.empty((1,), np.int32)
        if spare is None:
            cl.enqueue_fill_buffer(rt.queue, flag.base_data, np.int32(0), 0, 4)
        inner = math.prod(x.shape[a + 1:])
        rt.launch(
            knl, (n,), None, buffer_of(out), buffer_of(x), buffer_of(indices), np.int32(n),
            np.int32(inner), np.int32(max(indices.size, 1)), np.int32(dim), flag.base_data,
        )
        if spare is None and rt.to_host(flag)[0]:
            raise InvalidArgument(f"{node.describe()}: an index is out of range for axis {axis} of size {dim}")
        return out

    return run


# -- Pad and Tile ----------------------------------------------------------------------------------

_PAD_MODES = {
    "constant": "if (j < 0 || j >= ik) { inside = 0; j = 0; }",
    "edge": "j = j < 0 ? 0 : (j >= ik ? ik - 1 : j);",
    "reflect": "if (ik == 1) j = 0; else { const int m = 2 * (ik - 1); j %= m; if (j < 0) j += m; if (j >= ik) j = m - j; }",
    "wrap": "j %= ik; if (j < 0) j += ik;",
}


def _pad_source(mode: str) -> str:
    dims = ", ".join(f"const int d{k}, const int i{k}, const int b{k}, const int s{k}" for k in range(MAX_RANK))
    steps = "\n    ".join(
        f"{{ const int ik = i{k}; const int c = r % d{k}; r /= d{k}; int j = c - b{k}; {_PAD_MODES[mode]} off += j * s{k}; }}"
        for k in reversed(range(MAX_RANK))
    )
    return (
        f"__kernel void pad(__global T *dst, __global const T *src, const int base, const int n, const T value, {dims})\n"
        "{\n    const int g = get_global_id(0);\n    if (g >= n) return;\n"
        f"    int r = g; int off = base; int inside = 1;\n    {steps}\n"
        "    dst[g] = inside ? src[off] : value;\n}\n"
    )


class _Padder:
    """Pads (begin, end per dim; negative crops) with one kernel launch."""

    def __init__(self, rt: Runtime, dtype: np.dtype, mode: str, node: Any) -> None:
        if mode not in _PAD_MODES:
            raise InvalidArgument(f"{node.describe()}: unknown pad mode {mode!r}")
        self.rt, self.mode, self.node = rt, mode, node
        self.bits = np.dtype(f"u{dtype.itemsize}")
        self.kernel = rt.kernel(_pad_source(mode), "pad", (f"-DT={bits_type(dtype.itemsize)}",))

    def __call__(self, x: Array, begin: Sequence[int], end: Sequence[int], value: Any = 0) -> Array:
        rank = x.ndim
        # crop first (negative pads), so edge/reflect/wrap see the cropped input
        crop_b = [max(-b, 0) for b in begin]
        crop_e = [max(-e, 0) for e in end]
        in_dims = [d - cb - ce for d, cb, ce in zip(x.shape, crop_b, crop_e)]
        if any(d < 0 for d in in_dims):
            raise InvalidArgument(f"{self.node.describe()}: pads crop more than the shape {x.shape}")
        begin = [max(b, 0) for b in begin]
        out_shape = [d + b + max(e, 0) for d, b, e in zip(in_dims, begin, end)]
        out = self.rt.empty(out_shape, x.dtype)
        n = math.prod(out_shape)
        if n == 0:
            return out
        if self.mode != "constant" and any(d == 0 and o > 0 for d, o in zip(in_dims, out_shape)):
            raise InvalidArgument(f"{self.node.describe()}: {self.mode} padding of an empty dim")
        if rank > MAX_RANK:
            raise InvalidArgument(f"{self.node.describe()}: rank {rank} exceeds {MAX_RANK}")
        strides = contiguous_strides(x.shape)
        offset = sum(c * s for c, s in zip(crop_b, strides))
        src = x if x.size else self.rt.empty((1,), x.dtype)  # a kernel argument needs a buffer
        pad = MAX_RANK - rank
        args = []
        for k in range(MAX_RANK):
            if k < pad:
                args += [1, 1, 0, 0]
            else:
                i = k - pad
                args += [out_shape[i], max(in_dims[i], 1), begin[i], strides[i]]
        value_bits = np.array(value, dtype=x.dtype).view(self.bits)[()]
        self.rt.launch(
            self.kernel, (n,), None, buffer_of(out), buffer_of(src), np.int32(offset), np.int32(n), value_bits,
            *(np.int32(v) for v in args),
        )
        return out


def _pads_of(node: Any, pads: Sequence[int], rank: int, axes: Sequence[int] | None) -> tuple[list[int], list[int]]:
    axes = list(range(rank)) if axes is None else [_axis(a, rank, node) for a in axes]
    if len(pads) != 2 * len(axes):
        raise InvalidArgument(f"{node.describe()}: {len(pads)} pads for {len(axes)} axes")
    begin, end = [0] * rank, [0] * rank
    for i, a in enumerate(axes):
        begin[a], end[a] = pads[i], pads[len(axes) + i]
    return begin, end


def _pad_supports(node: Any, input_types: list[Any]) -> str | None:
    mode = node.attrs.get("mode", "constant")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    if mode not in _PAD_MODES:
        return f"pad mode {mode!r}"
    return _ranked(node, input_types)


@kernel("Pad", since=2, factory=True, dtypes=ALL, supports=_pad_supports)
def pad_2(ctx, /, *, pads, mode="constant", value=0.0):
    """Pad-2: pads and value as attributes."""
    padder = _Padder(ctx.provider.runtime, ctx.input_dtypes[0], mode, ctx.node)
    node = ctx.node

    def run(x: Array) -> Array:
        begin, end = _pads_of(node, list(pads), x.ndim, None)
        return padder(x, begin, end, value)

    return run


@kernel("Pad", since=11, factory=True, dtypes=ALL, supports=_pad_supports)
@kernel("Pad", since=13, factory=True, dtypes=ALL, supports=_pad_supports)
@kernel("Pad", since=18, factory=True, dtypes=ALL, supports=_pad_supports)
@kernel("Pad", since=19, factory=True, dtypes=ALL, supports=_pad_supports)
@kernel("Pad", since=21, factory=True, dtypes=ALL, supports=_pad_supports)
@kernel("Pad", since=23, factory=True, dtypes=ALL, supports=_pad_supports)
@kernel("Pad", since=24, factory=True, dtypes=ALL, supports=_pad_supports)
@kernel("Pad", since=25, factory=True, dtypes=ALL, supports=_pad_supports)
def pad(ctx, /, *, mode="constant"):
    """Pad-11+: pads, constant_value and (since 18) axes as inputs; wrap mode since 19."""
    if isinstance(mode, bytes):
        mode = mode.decode()
    padder = _Padder(ctx.provider.runtime, ctx.input_dtypes[0], mode, ctx.node)
    node = ctx.node
    pads_of, axes_of = _operand(ctx, 1), _operand(ctx, 3)
    const_value = ctx.constants.get(2)
    rt = ctx.provider.runtime

    def run(x: Array, pads: Any, value: Any = None, axes: Any = None) -> Array:
        begin, end = _pads_of(node, pads_of(pads), x.ndim, axes_of(axes))
        v = const_value if const_value is not None else (None if value is None else rt.to_host(value))
        scalar = 0 if v is None or np.asarray(v).size == 0 else np.asarray(v).reshape(-1)[0]
        return padder(x, begin, end, scalar)

    return run


@kernel("Tile", since=6, factory=True, dtypes=ALL, supports=_ranked)
@kernel("Tile", since=13, factory=True, dtypes=ALL, supports=_ranked)
def tile(ctx, /):
    """Tile: padding in wrap mode by (repeats - 1) copies at the end of each dim."""
    padder = _Padder(ctx.provider.runtime, ctx.input_dtypes[0], "wrap", ctx.node)
    node, repeats_of = ctx.node, _operand(ctx, 1)

    def run(x: Array, repeats: Any) -> Array:
        reps = repeats_of(repeats)
        if len(reps) != x.ndim or any(r < 0 for r in reps):
            raise InvalidArgument(f"{node.describe()}: repeats {reps} do not fit shape {x.shape}")
        if any(r == 0 for r in reps) or x.size == 0:
            return ctx.provider.runtime.empty(tuple(d * r for d, r in zip(x.shape, reps)), x.dtype)
        return padder(x, [0] * x.ndim, [d * (r - 1) for d, r in zip(x.shape, reps)])

    return run
