"""Generated OpenCL C for elementwise expressions and strided copies.

An elementwise kernel is a list of :class:`Instr` (one C expression each, whose
operands are kernel inputs or earlier instructions) compiled into one program
with two entry points: ``ew_flat`` for operands that are either the output's
shape or a single element, and ``ew_nd`` for general numpy broadcasting, where
the output dims and each input's strides (0 on broadcast dims) are scalar
arguments. The source depends only on the expressions and dtypes, never on
shapes, so one compile serves every node (and every fused group) with the same
structure. Attribute values (alpha, min...) are kernel arguments for the same
reason.

float16 is stored as ``half`` and moved with ``vload_half``/``vstore_half_rte``
(core OpenCL C, no cl_khr_fp16 needed); it is computed in float. bool is a byte
holding 0 or 1.

The data-movement kernels (strided copy, pad, gather) are specialized on the
element size only: they move bits, so one program serves every dtype of that
size.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyopencl as cl

from ortcore.errors import InvalidArgument, NotImplemented
from ortcore_opencl.runtime import Array, Runtime, ctype

__all__ = [
    "MAX_RANK",
    "Instr",
    "ElementwiseKernel",
    "broadcast_shape",
    "compute_type",
    "compute_dtype",
    "literal",
    "buffer_of",
    "contiguous_strides",
    "strided_copy",
    "copy_kernel_for",
    "bits_type",
]

#: dims a generated kernel indexes after merging contiguous dims
MAX_RANK = 6
_INT_LIMIT = 2**31 - 1  # kernels index with int: cheaper than long on every device

_F16 = np.dtype(np.float16)
_F64 = np.dtype(np.float64)
_BOOL = np.dtype(np.bool_)


def compute_type(dtype: Any) -> str:
    """The C type an element of ``dtype`` is computed in (float16 in float)."""
    dtype = np.dtype(dtype)
    return "float" if dtype == _F16 else ctype(dtype)


def compute_dtype(dtype: Any) -> np.dtype:
    """The numpy dtype matching :func:`compute_type` (for scalar kernel arguments)."""
    dtype = np.dtype(dtype)
    return np.dtype(np.float32) if dtype == _F16 else (np.dtype(np.uint8) if dtype == _BOOL else dtype)


def literal(value: float, dtype: Any) -> str:
    """A C literal of ``value`` in the compute type of ``dtype`` (no double literal in float code)."""
    dtype = np.dtype(dtype)
    if dtype == _F64:
        return repr(float(value))
    if dtype.kind == "f":
        return f"{float(np.float32(value))!r}f"
    return f"(({compute_type(dtype)}){int(value)})"


def bits_type(itemsize: int) -> str:
    return {1: "uchar", 2: "ushort", 4: "uint", 8: "ulong"}[itemsize]


def contiguous_strides(shape: Sequence[int]) -> list[int]:
    """Element strides of a C-contiguous array of ``shape``."""
    strides, step = [], 1
    for d in reversed(shape):
        strides.append(step)
        step *= int(d)
    return strides[::-1]


def broadcast_shape(shapes: Sequence[Sequence[int]], what: str = "inputs") -> tuple[int, ...]:
    """numpy (multidirectional) broadcasting of ``shapes``; InvalidArgument when they clash."""
    rank = max((len(s) for s in shapes), default=0)
    out = [1] * rank
    for shape in shapes:
        for i, d in enumerate(shape, start=rank - len(shape)):
            if d == out[i] or d == 1:
                continue
            if out[i] == 1:
                out[i] = int(d)
            else:
                raise InvalidArgument(
                    f"{what}: shapes {[tuple(s) for s in shapes]} cannot be broadcast together"
                )
    return tuple(out)


def buffer_of(array: Array) -> cl.Buffer:
    """The buffer a kernel reads ``array`` from (element 0 at offset 0)."""
    if array.offset:  # a view into a larger buffer: kernels take plain buffers
        array = array.copy()
    return array.base_data


def _merge_dims(shape: Sequence[int], strides: Sequence[Sequence[int]]) -> tuple[list[int], list[list[int]]]:
    """Drop size-1 dims and merge neighbours every operand walks contiguously."""
    dims: list[int] = []
    out: list[list[int]] = [[] for _ in strides]
    for axis, d in enumerate(shape):
        if d == 1:
            continue
        if dims and all(s[axis] * d == o[-1] for s, o in zip(strides, out)):
            dims[-1] *= d
            for s, o in zip(strides, out):
                o[-1] = s[axis]
            continue
        dims.append(int(d))
        for s, o in zip(strides, out):
            o.append(int(s[axis]))
    if len(dims) > MAX_RANK:
        raise NotImplemented(
            f"the OpenCL provider indexes at most {MAX_RANK} non-mergeable dims; got shape {tuple(shape)}"
        )
    pad = MAX_RANK - len(dims)
    return [1] * pad + dims, [[0] * pad + o for o in out]


# 2-D launch over (innermost dim, rows): the row's offsets are the same for every
# work-item of a row, so the device computes the divisions once per row, not per element.
_ROW_PROLOGUE = [
    "const int i = get_global_id(0);",
    "const int j = get_global_id(1);",
    f"const int g = j * d{MAX_RANK - 1} + i;",
]


def _row_index_code(names: Sequence[str]) -> list[str]:
    """C lines giving one element offset per operand: ``j`` walks the outer dims, ``i`` the last one."""
    last = MAX_RANK - 1
    lines = ["int r = j;"] + [f"int {n} = i * {n}_s{last};" for n in names]
    for k in reversed(range(last)):
        lines.append(f"{{ const int c = r % d{k}; r /= d{k};" + "".join(f" {n} += c * {n}_s{k};" for n in names) + " }")
    return lines


def _dims_params() -> str:
    return ", ".join(f"const int d{k}" for k in range(MAX_RANK))


def _stride_params(name: str) -> str:
    return ", ".join(f"const int {name}_s{k}" for k in range(MAX_RANK))


def _check_size(n: int, what: str) -> None:
    if n > _INT_LIMIT:
        raise NotImplemented(f"{what}: {n} elements exceed the OpenCL provider's 2**31 - 1 index limit")


# -- elementwise expressions -----------------------------------------------------------


@dataclass(frozen=True)
class Instr:
    """One value computed by a generated kernel.

    ``expr`` is C with ``{0}``, ``{1}``... for the operands, ``{p0}``... for
    this instruction's scalar parameters and ``{T}`` for the result's compute
    type. ``operands`` are ``("in", k)`` (kernel input k) or ``("tmp", j)``
    (instruction j's value). ``params`` are (value, dtype) pairs passed as
    kernel arguments, so their values never change the source.
    """

    expr: str
    operands: tuple[tuple[str, int], ...]
    dtype: np.dtype
    params: tuple[tuple[float, np.dtype], ...] = ()


# integer power by squaring; a negative exponent truncates 1 / a**-b toward zero, as C's pow then a cast would
_IPOW = """
static long ipow(long a, long b)
{
    if (b < 0) return a == 1 ? 1 : (a == -1 ? ((b & 1) ? -1 : 1) : 0);
    long r = 1;
    while (b) { if (b & 1) r *= a; a *= a; b >>= 1; }
    return r;
}
"""


class ElementwiseKernel:
    """A compiled elementwise program over broadcast inputs; ``kernel(*arrays)`` returns the outputs."""

    def __init__(
        self,
        runtime: Runtime,
        in_dtypes: Sequence[np.dtype],
        instrs: Sequence[Instr],
        outputs: Sequence[int],
        what: str = "elementwise kernel",
    ) -> None:
        self.runtime = runtime
        self.in_dtypes = [np.dtype(d) for d in in_dtypes]
        self.instrs = list(instrs)
        self.outputs = list(outputs)
        self.out_dtypes = [self.instrs[j].dtype for j in self.outputs]
        self.what = what
        self.params = [
            compute_dtype(dt).type(value) for ins in self.instrs for value, dt in ins.params
        ]
        self.source = self._source()
        self.flat = runtime.kernel(self.source, "ew_flat")
        self.nd = runtime.kernel(self.source, "ew_nd")

    def _source(self) -> str:
        n_in, n_out = len(self.in_dtypes), len(self.outputs)
        head = []
        if _F64 in self.in_dtypes or any(i.dtype == _F64 for i in self.instrs):
            head.append("#pragma OPENCL EXTENSION cl_khr_fp64 : enable")
        if any("ipow(" in i.expr for i in self.instrs):
            head.append(_IPOW)
        params, body = [], []
        counter = 0
        for j, ins in enumerate(self.instrs):
            names = {}
            for k, (_, dt) in enumerate(ins.params):
                params.append(f"const {compute_type(compute_dtype(dt))} p{counter}")
                names[f"p{k}"] = f"p{counter}"
                counter += 1
            ops = [f"a{k}" if kind == "in" else f"t{k}" for kind, k in ins.operands]
            ct = compute_type(ins.dtype)
            body.append(f"const {ct} t{j} = ({ct})({ins.expr.format(*ops, T=ct, **names)});")
        args = [f"__global {ctype(self.out_dtypes[k])} *y{k}" for k in range(n_out)]
        args += [f"__global const {ctype(dt)} *x{k}" for k, dt in enumerate(self.in_dtypes)]
        stores = []
        for k, j in enumerate(self.outputs):
            if self.out_dtypes[k] == _F16:
                stores.append(f"vstore_half_rte(t{j}, g, y{k});")
            else:
                stores.append(f"y{k}[g] = t{j};")

        def loads(index: str) -> list[str]:
            lines = []
            for k, dt in enumerate(self.in_dtypes):
                i = index.format(k=k)
                load = f"vload_half({i}, x{k})" if dt == _F16 else f"x{k}[{i}]"
                lines.append(f"const {compute_type(dt)} a{k} = {load};")
            return lines

        def kernel(name: str, extra: list[str], index_lines: list[str], index: str, prologue: list[str] | None = None) -> str:
            sig = ", ".join(args + ["const int n"] + extra + params)
            lines = prologue or ["const int g = get_global_id(0);", "if (g >= n) return;"]
            lines += index_lines + loads(index) + body + stores
            return f"__kernel void {name}({sig})\n{{\n    " + "\n    ".join(lines) + "\n}\n"

        flat = kernel("ew_flat", [f"const int st{k}" for k in range(n_in)], [], "g * st{k}")
        nd_extra = [_dims_params()] + [_stride_params(f"o{k}") for k in range(n_in)]
        nd = kernel("ew_nd", nd_extra, _row_index_code([f"o{k}" for k in range(n_in)]), "o{k}", _ROW_PROLOGUE[:])
        return "\n".join(head) + "\n" + flat + "\n" + nd

    def output_shape(self, arrays: Sequence[Array]) -> tuple[int, ...]:
        return broadcast_shape([a.shape for a in arrays], self.what)

    def __call__(self, *arrays: Array) -> list[Array]:
        rt = self.runtime
        shape = self.output_shape(arrays)
        outs = [rt.empty(shape, dt) for dt in self.out_dtypes]
        n = math.prod(shape)
        if n == 0:
            return outs
        _check_size(n, self.what)
        bufs = [buffer_of(o) for o in outs] + [buffer_of(a) for a in arrays]
        # an operand with the output's element count has the output's shape up to leading 1s
        if all(a.size == n or a.size == 1 for a in arrays):
            steps = [np.int32(0 if a.size == 1 and n != 1 else 1) for a in arrays]
            rt.launch(self.flat, (n,), None, *bufs, np.int32(n), *steps, *self.params)
            return outs
        rank = len(shape)
        strides = []
        for a in arrays:
            padded = (1,) * (rank - a.ndim) + tuple(a.shape)
            own = contiguous_strides(padded)
            strides.append([0 if d == 1 else s for d, s in zip(padded, own)])
        dims, merged = _merge_dims(shape, strides)
        flat_strides = [np.int32(s) for m in merged for s in m]
        rt.launch(self.nd, (dims[-1], n // dims[-1]), None, *bufs, np.int32(n), *map(np.int32, dims), *flat_strides, *self.params)
        return outs


# -- data movement ---------------------------------------------------------------------

_COPY_SOURCE = """
__kernel void strided_copy(__global T *dst, const int dst_off, __global const T *src, const int src_off,
                           const int n, {dims}, {dst_strides}, {src_strides})
{{
    const int i = get_global_id(0);
    const int j = get_global_id(1);
    {index}
    dst[dst_off + dd] = src[src_off + ss];
}}
"""


def _copy_kernel(rt: Runtime, itemsize: int) -> cl.Kernel:
    source = _COPY_SOURCE.format(
        dims=_dims_params(),
        dst_strides=_stride_params("dd"),
        src_strides=_stride_params("ss"),
        index="\n    ".join(_row_index_code(["dd", "ss"])),
    )
    return rt.kernel(source, "strided_copy", (f"-DT={bits_type(itemsize)}",))


def strided_copy(
    rt: Runtime,
    dst: Array,
    dst_offset: int,
    dst_strides: Sequence[int],
    src: Array,
    src_offset: int,
    src_strides: Sequence[int],
    shape: Sequence[int],
) -> None:
    """Copy the ``shape`` block at element ``src_offset`` (walked with ``src_strides``,
    which may be 0 or negative) into ``dst`` at ``dst_offset`` walked with ``dst_strides``."""
    n = math.prod(shape)
    if n == 0:
        return
    _check_size(max(n, dst.size, src.size), "strided copy")
    dims, (dd, ss) = _merge_dims(shape, [dst_strides, src_strides])
    item = dst.dtype.itemsize
    outer = [(d, a, b) for d, a, b in zip(dims[:-1], dd[:-1], ss[:-1]) if d != 1]
    if dd[-1] == 1 and ss[-1] == 1 and len(outer) <= 1 and dims[-1] >= 16:
        # whole rows are contiguous on both sides: one driver copy (rectangular for many rows)
        rows, dp, sp = outer[0] if outer else (1, 0, 0)
        if rows == 1 or (dp >= dims[-1] and sp >= dims[-1]):
            rt.copy(buffer_of(dst), buffer_of(src), dims[-1] * item, dst_offset * item, src_offset * item,
                    rows, dp * item, sp * item)
            return
    knl = _copy_kernel(rt, item)
    rt.launch(
        knl, (dims[-1], n // dims[-1]), None,
        buffer_of(dst), np.int32(dst_offset), buffer_of(src), np.int32(src_offset), np.int32(n),
        *map(np.int32, dims), *map(np.int32, dd), *map(np.int32, ss),
    )


def copy_kernel_for(rt: Runtime, dtype: Any) -> cl.Kernel:
    """Compile the copy kernel of ``dtype``'s element size now (at session creation)."""
    return _copy_kernel(rt, np.dtype(dtype).itemsize)
