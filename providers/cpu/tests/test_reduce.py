"""Reductions and ArgMax/ArgMin: what the ONNX node cases leave out.

Every op in its attribute-axes and input-axes forms, negative and repeated
axes, keepdims, noop_with_empty_axes, empty sets, 0-d inputs, integer and
bool dtypes, axes given as an initializer, and ties for ArgMax/ArgMin.
Expected values come from onnx.reference or closed-form math.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper
from onnx.reference import ReferenceEvaluator

import ortcore
from ortcore.dtypes import onnx_elem_type
from ortcore.testing import compare_outputs

RNG = np.random.default_rng(2)


def _model(op, inputs, attrs, opset, initializers=()):
    names = [f"x{i}" if v is not None else "" for i, v in enumerate(inputs)]
    node = helper.make_node(op, names, ["y"], **attrs)
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info(n, onnx_elem_type(v.dtype), v.shape)
         for i, (n, v) in enumerate(zip(names, inputs)) if n and i not in initializers],
        [onnx.ValueInfoProto(name="y")],
        initializer=[numpy_helper.from_array(inputs[i], f"x{i}") for i in initializers],
    )  # fmt: skip
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def check(op, inputs, attrs=None, *, opset, expected=None, initializers=(), rtol=1e-3, atol=1e-5):
    """Run one node in ortcore; compare with ``expected`` or else onnx.reference."""
    model = _model(op, inputs, attrs or {}, opset, initializers)
    feeds = {f"x{i}": v for i, v in enumerate(inputs) if v is not None and i not in initializers}
    sess = ortcore.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (actual,) = sess.run(None, feeds)
    if expected is None:
        with np.errstate(all="ignore"):
            (expected,) = ReferenceEvaluator(model).run(None, feeds)
    compare_outputs(expected, actual, rtol=rtol, atol=atol, name=op)
    return actual


# op -> (opsets with attribute axes, opsets with input axes)
REDUCE_OPS = {
    "ReduceSum": ((1, 11), (13,)),
    "ReduceMean": ((11, 13), (18,)),
    "ReduceMax": ((11, 13), (18, 20)),
    "ReduceMin": ((11, 13), (18, 20)),
    "ReduceProd": ((11, 13), (18,)),
    "ReduceL1": ((11, 13), (18,)),
    "ReduceL2": ((11, 13), (18,)),
    "ReduceLogSum": ((11, 13), (18, 28)),
    "ReduceLogSumExp": ((11, 13), (18, 28)),
    "ReduceSumSquare": ((11, 13), (18,)),
}
AXES = [None, [0], [-1], [0, 2], [2, -3], [1, 2, 0]]


def _data(shape=(2, 3, 4), dtype=np.float32):
    return RNG.uniform(0.5, 2.0, size=shape).astype(dtype)


@pytest.mark.parametrize("op", sorted(REDUCE_OPS))
@pytest.mark.parametrize("axes", AXES, ids=str)
@pytest.mark.parametrize("keepdims", [0, 1])
def test_reduce_axes_forms(op, axes, keepdims):
    x = _data()
    attr_opsets, input_opsets = REDUCE_OPS[op]
    for opset in attr_opsets:
        if opset == 1 and axes is not None and min(axes) < 0:
            continue  # negative axes arrived in opset 11
        attrs = {"keepdims": keepdims} | ({} if axes is None else {"axes": axes})
        check(op, [x], attrs, opset=opset)
    for opset in input_opsets:
        given = None if axes is None else np.array(axes, dtype=np.int64)
        check(op, [x, given], {"keepdims": keepdims}, opset=opset)
        if given is not None:
            check(op, [x, given], {"keepdims": keepdims}, opset=opset, initializers=(1,))


@pytest.mark.parametrize("op", sorted(REDUCE_OPS))
@pytest.mark.parametrize("noop", [0, 1])
def test_reduce_empty_axes_input(op, noop):
    x = _data()
    opset = REDUCE_OPS[op][1][-1]
    check(op, [x, np.zeros(0, dtype=np.int64)], {"noop_with_empty_axes": noop}, opset=opset)
    check(op, [x], {"noop_with_empty_axes": noop}, opset=opset)


@pytest.mark.parametrize("op", sorted(REDUCE_OPS))
@pytest.mark.parametrize("keepdims", [0, 1])
def test_reduce_empty_set(op, keepdims):
    x = np.zeros((2, 0, 4), dtype=np.float32)
    opset = REDUCE_OPS[op][1][-1]
    check(op, [x, np.array([1], dtype=np.int64)], {"keepdims": keepdims}, opset=opset)
    check(op, [x, np.array([2], dtype=np.int64)], {"keepdims": keepdims}, opset=opset)


@pytest.mark.parametrize("op", sorted(REDUCE_OPS))
def test_reduce_0d_input(op):
    x = np.array(1.5, dtype=np.float32)
    # onnx.reference fails on a 0-d ReduceLogSumExp; log(exp(1.5)) is 1.5
    expected = x if op == "ReduceLogSumExp" else None
    out = check(op, [x], opset=REDUCE_OPS[op][1][-1], expected=expected)
    assert out.shape == ()


@pytest.mark.parametrize("op", ["ReduceSum", "ReduceProd", "ReduceMax", "ReduceMin", "ReduceL1", "ReduceSumSquare"])
@pytest.mark.parametrize("dtype", ["int32", "int64", "uint32", "uint64"])
def test_reduce_integers_keep_their_type(op, dtype):
    x = RNG.integers(0, 5, size=(3, 4)).astype(dtype)
    # onnx.reference widens ReduceSumSquare of 32-bit integers to 64 bits; the spec keeps T
    expected = (x * x).sum(axis=1, keepdims=True, dtype=dtype) if op == "ReduceSumSquare" else None
    out = check(op, [x, np.array([1], dtype=np.int64)], opset=18, expected=expected)
    assert out.dtype == np.dtype(dtype)


def test_reduce_mean_integers_truncate_toward_zero():
    x = np.array([[-3, -4], [3, 4], [-1, 0]], dtype=np.int32)
    expected = np.array([-3, 3, 0], dtype=np.int32)
    check("ReduceMean", [x, np.array([1], dtype=np.int64)], {"keepdims": 0}, opset=18, expected=expected)


@pytest.mark.parametrize("op", ["ReduceMax", "ReduceMin"])
@pytest.mark.parametrize("dtype", ["int8", "uint8", "bool", "float16"])
def test_reduce_max_min_small_types(op, dtype):
    x = (RNG.integers(0, 2 if dtype == "bool" else 100, size=(3, 5))).astype(dtype)
    check(op, [x, np.array([0], dtype=np.int64)], opset=20)
    check(op, [np.zeros((0, 3), dtype=dtype), np.array([0], dtype=np.int64)], opset=20)


def test_reduce_max_propagates_nan():
    x = np.array([[1.0, np.nan], [2.0, 3.0]], dtype=np.float32)
    expected = np.array([np.nan, 3.0], dtype=np.float32)
    check("ReduceMax", [x, np.array([1], dtype=np.int64)], {"keepdims": 0}, opset=18, expected=expected)


def test_reduce_log_sum_exp_is_stable():
    x = np.array([[1000.0, 1000.0], [-1000.0, -np.inf], [-np.inf, -np.inf]], dtype=np.float32)
    expected = np.array([1000.0 + np.log(2.0), -1000.0, -np.inf], dtype=np.float32)
    with np.errstate(all="ignore"):
        check("ReduceLogSumExp", [x, np.array([1], dtype=np.int64)], {"keepdims": 0}, opset=18, expected=expected)


@pytest.mark.parametrize("dtype", ["float16", "float64"])
@pytest.mark.parametrize("op", ["ReduceSum", "ReduceMean", "ReduceL2", "ReduceLogSumExp"])
def test_reduce_float_types(op, dtype):
    rtol = 4e-3 if dtype == "float16" else 1e-3
    check(op, [_data((4, 6), dtype), np.array([-1], dtype=np.int64)], opset=18, rtol=rtol)


# -- ArgMax / ArgMin -------------------------------------------------------------------------------


@pytest.mark.parametrize("op", ["ArgMax", "ArgMin"])
@pytest.mark.parametrize("axis", [0, 1, -1, 2])
@pytest.mark.parametrize("keepdims", [0, 1])
@pytest.mark.parametrize("opset", [11, 13])
def test_arg_extremes(op, axis, keepdims, opset):
    x = RNG.standard_normal((3, 4, 5)).astype(np.float32)
    check(op, [x], {"axis": axis, "keepdims": keepdims}, opset=opset)


@pytest.mark.parametrize("op", ["ArgMax", "ArgMin"])
@pytest.mark.parametrize("last", [0, 1])
@pytest.mark.parametrize("dtype", ["int8", "uint16", "int64", "float16", "float64"])
def test_arg_extremes_ties(op, last, dtype):
    x = np.array([[2, 5, 5, 1, 1], [3, 3, 3, 3, 3]], dtype=dtype)
    first = {"ArgMax": [1, 0], "ArgMin": [3, 0]}[op]
    final = {"ArgMax": [2, 4], "ArgMin": [4, 4]}[op]
    expected = np.array(final if last else first, dtype=np.int64)[:, None]
    check(op, [x], {"axis": 1, "select_last_index": last}, opset=13, expected=expected)


def test_arg_extremes_default_axis_and_1d():
    x = RNG.standard_normal((4, 3)).astype(np.float32)
    check("ArgMax", [x], opset=1, expected=x.argmax(axis=0)[None, :].astype(np.int64))
    out = check("ArgMin", [x[:, 0]], {"keepdims": 0}, opset=13, expected=np.array(x[:, 0].argmin(), dtype=np.int64))
    assert out.shape == ()


@pytest.mark.parametrize("op", ["ReduceSum", "ReduceMean", "ReduceL2", "ReduceSumSquare", "ReduceLogSumExp"])
def test_reduce_float16_accumulates_without_overflow(op):
    x = np.full((4, 5000), 100.0, dtype=np.float16)  # sums reach 5e5, past float16's 65504
    x64 = x.astype(np.float64)
    expected = {
        "ReduceSum": x64.sum(axis=1),
        "ReduceMean": x64.mean(axis=1),
        "ReduceL2": np.sqrt((x64 * x64).sum(axis=1)),
        "ReduceSumSquare": (x64 * x64).sum(axis=1),
        "ReduceLogSumExp": np.log(np.exp(x64 - 100).sum(axis=1)) + 100,
    }[op]
    with np.errstate(over="ignore"):
        expected = expected.astype(np.float16)  # inf where the true result is not a float16
    check(op, [x, np.array([1], dtype=np.int64)], {"keepdims": 0}, opset=18, expected=expected)
