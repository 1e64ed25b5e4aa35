"""The template device's kernels: Add, Mul, Relu, MatMul, Softmax, Transpose.

Each kernel is the "device code" of one op: it receives DeviceArrays and
returns one. On a real device each body would enqueue a device kernel; here
it computes with numpy on the device buffers. One decorator per ONNX schema
version the function implements; ``dtypes`` lists what the device supports,
so the partitioner passes other dtypes to the next provider.
"""

from __future__ import annotations

import numpy as np

from ortcore.kernels import KernelRegistry
from ortcore_provider_template.device import DeviceArray

registry = KernelRegistry("TemplateExecutionProvider")
kernel = registry.kernel

FLOATS = (np.float16, np.float32, np.float64)
NUMBERS = (*FLOATS, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64)


def _out(value: np.ndarray, dtype: np.dtype) -> DeviceArray:
    # numpy turns 0-d results into scalars and may widen; the device keeps the op's dtype
    return DeviceArray(np.asarray(value, dtype=dtype))


@kernel("Add", since=7, dtypes=NUMBERS)
@kernel("Add", since=13, dtypes=NUMBERS)
@kernel("Add", since=14, dtypes=NUMBERS)
def add(a: DeviceArray, b: DeviceArray, /) -> DeviceArray:
    """Add-7/13/14: elementwise sum with numpy broadcasting; integers wrap around."""
    with np.errstate(over="ignore"):
        return _out(a.data + b.data, a.dtype)


@kernel("Mul", since=7, dtypes=NUMBERS)
@kernel("Mul", since=13, dtypes=NUMBERS)
@kernel("Mul", since=14, dtypes=NUMBERS)
def mul(a: DeviceArray, b: DeviceArray, /) -> DeviceArray:
    """Mul-7/13/14: elementwise product with numpy broadcasting; integers wrap around."""
    with np.errstate(over="ignore"):
        return _out(a.data * b.data, a.dtype)


@kernel("Relu", since=6, dtypes=FLOATS)
@kernel("Relu", since=13, dtypes=FLOATS)
@kernel("Relu", since=14, dtypes=(*FLOATS, np.int8, np.int16, np.int32, np.int64))
def relu(x: DeviceArray, /) -> DeviceArray:
    """Relu-6/13/14: max(x, 0)."""
    return _out(np.maximum(x.data, 0), x.dtype)


@kernel("MatMul", since=9, dtypes=(*FLOATS, np.int32, np.int64, np.uint32, np.uint64))
@kernel("MatMul", since=13, dtypes=(*FLOATS, np.int32, np.int64, np.uint32, np.uint64))
def matmul(a: DeviceArray, b: DeviceArray, /) -> DeviceArray:
    """MatMul-9/13: numpy.matmul semantics (1-D operands promoted and squeezed)."""
    return _out(np.matmul(a.data, b.data), a.dtype)


@kernel("Softmax", since=13, dtypes=FLOATS)
def softmax(x: DeviceArray, /, *, axis: int = -1) -> DeviceArray:
    """Softmax-13: exp(x - max) / sum along ``axis``; float16 accumulates in float32."""
    data = x.data.astype(np.float32) if x.dtype == np.float16 else x.data
    e = np.exp(data - data.max(axis=axis, keepdims=True)) if data.size else data
    return _out(e / e.sum(axis=axis, keepdims=True) if data.size else e, x.dtype)


@kernel("Transpose", since=1)
@kernel("Transpose", since=13)
def transpose(x: DeviceArray, /, *, perm: list[int] | None = None) -> DeviceArray:
    """Transpose-1/13: permute axes (reversed when ``perm`` is not given); any dtype."""
    return DeviceArray(np.transpose(x.data, perm).copy())  # a copy: the device buffer is its own
