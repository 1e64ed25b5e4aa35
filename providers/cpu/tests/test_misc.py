"""BitCast and CumProd (opset 26): what the ONNX node cases leave out.

BitCast between every pair of equal-width types, the sub-byte ones included,
against numpy views of the same bytes (for sub-byte types, of the same low
bits); widths that differ are refused. CumProd for every dtype, axis,
``exclusive`` and ``reverse`` against onnx.reference or a closed-form loop.
"""

from __future__ import annotations

import itertools

import ml_dtypes
import numpy as np
import onnx
import ortcore_cpu.ops.misc  # noqa: F401  (registers the kernels until "misc" is in OP_MODULES)
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

import ortcore
from ortcore.dtypes import onnx_elem_type
from ortcore.testing import compare_outputs

RNG = np.random.default_rng(9)


def _model(op, inputs, attrs, constant=()):
    names = [f"x{i}" for i in range(len(inputs))]
    node = helper.make_node(op, names, ["y"], **attrs)
    feeds = {n: v for i, (n, v) in enumerate(zip(names, inputs)) if i not in constant}
    inits = [numpy_helper.from_array(inputs[i], names[i]) for i in constant]
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info(n, onnx_elem_type(v.dtype), v.shape) for n, v in feeds.items()],
        [onnx.ValueInfoProto(name="y")],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 26)])
    model.ir_version = 12
    return model, feeds


def run(op, inputs, attrs=None, constant=()):
    model, feeds = _model(op, inputs, attrs or {}, constant)
    sess = ortcore.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)[0]


# -- BitCast -------------------------------------------------------------------------------------

BY_WIDTH = {
    8: [TensorProto.UINT8, TensorProto.INT8, TensorProto.BOOL, TensorProto.FLOAT8E4M3FN, TensorProto.FLOAT8E4M3FNUZ,
        TensorProto.FLOAT8E5M2, TensorProto.FLOAT8E5M2FNUZ, TensorProto.FLOAT8E8M0],
    16: [TensorProto.UINT16, TensorProto.INT16, TensorProto.FLOAT16, TensorProto.BFLOAT16],
    32: [TensorProto.UINT32, TensorProto.INT32, TensorProto.FLOAT],
    64: [TensorProto.UINT64, TensorProto.INT64, TensorProto.DOUBLE, TensorProto.COMPLEX64],
    128: [TensorProto.COMPLEX128],
    4: [TensorProto.UINT4, TensorProto.INT4, TensorProto.FLOAT4E2M1],
    2: [TensorProto.UINT2, TensorProto.INT2],
}
PAIRS = [(a, b) for types in BY_WIDTH.values() for a, b in itertools.product(types, repeat=2)]


def _np(elem):
    return np.dtype(helper.tensor_dtype_to_np_dtype(elem))


def _random_bits(elem, shape):
    dtype = _np(elem)
    if elem == TensorProto.BOOL:
        return RNG.integers(0, 2, shape).astype(np.bool_)
    width = next(w for w, types in BY_WIDTH.items() if elem in types)
    if width < 8:
        return RNG.integers(0, 1 << width, shape).astype(np.uint8).view(dtype)
    raw = RNG.integers(0, 256, (*shape, dtype.itemsize), dtype=np.uint8)
    return raw.view(dtype).reshape(shape)


@pytest.mark.parametrize("source, target", PAIRS, ids=[f"{TensorProto.DataType.Name(a)}-{TensorProto.DataType.Name(b)}"
                                                       for a, b in PAIRS])
def test_bitcast_equal_widths(source, target):
    x = _random_bits(source, (3, 4))
    y = run("BitCast", [x], {"to": target})
    assert y.dtype == _np(target) and y.shape == x.shape
    # the same bytes (sub-byte types: the same low bits of each byte)
    np.testing.assert_array_equal(y.view(np.uint8), x.view(np.uint8))


@pytest.mark.parametrize("shape", [(), (0,), (2, 3, 1)])
def test_bitcast_shapes_and_reference(shape):
    x = RNG.standard_normal(shape).astype(np.float32)
    model, feeds = _model("BitCast", [x], {"to": TensorProto.INT32})
    (expected,) = ReferenceEvaluator(model).run(None, feeds)
    compare_outputs(expected, run("BitCast", [x], {"to": TensorProto.INT32}))


def test_bitcast_constant_input():
    x = RNG.standard_normal(5).astype(np.float64)
    np.testing.assert_array_equal(run("BitCast", [x], {"to": TensorProto.INT64}, constant=(0,)), x.view(np.int64))


WIDTH_MISMATCHES = [(TensorProto.FLOAT, TensorProto.INT16), (TensorProto.INT4, TensorProto.UINT8),
                    (TensorProto.UINT8, TensorProto.INT2), (TensorProto.INT64, TensorProto.COMPLEX128)]


@pytest.mark.parametrize("source, target", WIDTH_MISMATCHES)
def test_bitcast_different_widths_are_refused(source, target):
    with pytest.raises(ortcore.errors.OrtCoreError):
        run("BitCast", [_random_bits(source, (4,))], {"to": target})


# -- CumProd -------------------------------------------------------------------------------------


def cumprod_loop(x, axis, exclusive, reverse):
    """Closed form, one element at a time in float64."""
    x = np.moveaxis(x.astype(np.float64), axis, -1)
    out = np.empty_like(x)
    n = x.shape[-1]
    for index in np.ndindex(x.shape[:-1]):
        order = range(n - 1, -1, -1) if reverse else range(n)
        acc = 1.0
        for j in order:
            if exclusive:
                out[index + (j,)] = acc
                acc *= x[index + (j,)]
            else:
                acc *= x[index + (j,)]
                out[index + (j,)] = acc
    return np.moveaxis(out, -1, axis)


@pytest.mark.parametrize("exclusive, reverse", list(itertools.product([0, 1], repeat=2)))
@pytest.mark.parametrize("axis", [0, 1, 2, -1, -3])
@pytest.mark.parametrize("axis_dtype", [np.int32, np.int64])
@pytest.mark.parametrize("constant_axis", [False, True])
def test_cumprod_axes(exclusive, reverse, axis, axis_dtype, constant_axis):
    x = RNG.uniform(0.5, 1.5, (3, 4, 5)).astype(np.float32)
    a = np.array(axis, axis_dtype)
    attrs = {"exclusive": exclusive, "reverse": reverse}
    y = run("CumProd", [x, a], attrs, constant=(1,) if constant_axis else ())
    model, feeds = _model("CumProd", [x, a], attrs)
    (expected,) = ReferenceEvaluator(model).run(None, feeds)
    compare_outputs(expected, y, rtol=1e-5, atol=0)
    compare_outputs(cumprod_loop(x, axis, exclusive, reverse).astype(np.float32), y, rtol=1e-5, atol=0)


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint32, np.uint64, np.float16, np.float64,
                                   ml_dtypes.bfloat16], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("exclusive, reverse", [(0, 0), (1, 1)])
def test_cumprod_dtypes(dtype, exclusive, reverse):
    if np.dtype(dtype).kind in "iu":
        x = RNG.integers(1, 4, (4, 6)).astype(dtype)
    else:
        x = RNG.uniform(0.8, 1.25, (4, 6)).astype(dtype)
    y = run("CumProd", [x, np.array(1, np.int64)], {"exclusive": exclusive, "reverse": reverse})
    assert y.dtype == x.dtype
    expected = cumprod_loop(x, 1, exclusive, reverse)
    tol = 1e-2 if np.dtype(dtype).itemsize == 2 else 1e-6
    compare_outputs(expected.astype(dtype), y, rtol=tol, atol=0)


def test_cumprod_bad_axis_is_refused():
    with pytest.raises(ortcore.errors.OrtCoreError):
        run("CumProd", [np.ones((2, 3), np.float32), np.array(2, np.int64)])
