"""Ops with no family of their own yet: BitCast and CumProd (opset 26).

CumProd is CumSum's sibling; it lives here only because ops/tensor.py, where
CumSum is, belongs to another change.
"""

from __future__ import annotations

import numpy as np
import onnx

from ortcore.dtypes import np_dtype
from ortcore.errors import InvalidArgument
from ortcore_cpu.registry import kernel

# Element widths in bits where numpy's itemsize (one byte per element) says otherwise.
_SUB_BYTE_BITS = {"int4": 4, "uint4": 4, "float4_e2m1fn": 4, "int2": 2, "uint2": 2}


def _bits(dtype: np.dtype) -> int:
    return _SUB_BYTE_BITS.get(dtype.name, dtype.itemsize * 8)


@kernel("BitCast", since=26, factory=True)
def bitcast(ctx, *, to):
    """BitCast-26: reinterpret each element's bits as type ``to`` of the same width."""
    if to == onnx.TensorProto.STRING:
        raise InvalidArgument("BitCast: cannot bit-cast to string")
    target = np_dtype(to)
    source = ctx.input_dtypes[0] if ctx.input_dtypes else None
    if source is not None and _bits(source) != _bits(target):
        raise InvalidArgument(
            f"BitCast: {source} ({_bits(source)} bits) and {target} ({_bits(target)} bits) differ in width"
        )

    def run(x, /):
        if x.dtype.kind in "OUS" or _bits(x.dtype) != _bits(target):
            raise InvalidArgument(f"BitCast: cannot bit-cast {x.dtype} to {target}")
        # sub-byte ml_dtypes keep an element in the low bits of its byte, so a view works there too
        return (x if x.flags.c_contiguous else x.copy()).view(target)

    return run


@kernel("CumProd", since=26, xp=True)
def cumprod(xp, x, axis, /, *, exclusive=0, reverse=0):
    """CumProd-26: running product along a 0-d axis input, optionally exclusive and/or reversed."""
    axis = int(axis.reshape(()))
    if not -x.ndim <= axis < x.ndim:
        raise InvalidArgument(f"CumProd: axis {axis} is out of range for rank {x.ndim}")
    axis %= x.ndim
    work = x if x.dtype.kind in "iuf" and x.dtype.itemsize >= 4 else x.astype(xp.float32)
    if reverse:
        work = xp.flip(work, axis=axis)
    y = xp.cumprod(work, axis=axis, dtype=work.dtype)
    if exclusive:
        # shift by one along axis: the first product is the empty product 1
        shifted = xp.ones_like(y)
        index = [slice(None)] * x.ndim
        source = list(index)
        index[axis], source[axis] = slice(1, None), slice(None, -1)
        shifted[tuple(index)] = y[tuple(source)]
        y = shifted
    if reverse:
        y = xp.flip(y, axis=axis)
    return y.astype(x.dtype, copy=False)
