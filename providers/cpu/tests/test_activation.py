"""Activation and Softmax-family kernels: what the ONNX node cases leave out.

Dtypes (float16, float64, bfloat16, integers), 0-d and empty tensors, extreme
inputs, the pre-13 "coerce to 2-D" Softmax/LogSoftmax/Hardmax semantics and
legacy PRelu slopes. Expected values come from onnx.reference or closed-form
math in float64.
"""

from __future__ import annotations

import math

import ml_dtypes
import numpy as np
import onnx
import pytest
from onnx import helper
from onnx.reference import ReferenceEvaluator

import ortcore
from ortcore.dtypes import onnx_elem_type
from ortcore.testing import compare_outputs

RNG = np.random.default_rng(1)


def _model(op, inputs, attrs, opset):
    names = [f"x{i}" for i in range(len(inputs))]
    node = helper.make_node(op, names, ["y"], **attrs)
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info(n, onnx_elem_type(v.dtype), v.shape) for n, v in zip(names, inputs)],
        [onnx.ValueInfoProto(name="y")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def check(op, inputs, attrs=None, *, opset, expected=None, rtol=1e-3, atol=1e-5):
    """Run one node in ortcore; compare with ``expected`` or else onnx.reference."""
    model = _model(op, inputs, attrs or {}, opset)
    feeds = {f"x{i}": v for i, v in enumerate(inputs)}
    sess = ortcore.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (actual,) = sess.run(None, feeds)
    if expected is None:
        (expected,) = ReferenceEvaluator(model).run(None, feeds)
    compare_outputs(expected, actual, rtol=rtol, atol=atol, name=op)
    return actual


def rand(shape, dtype=np.float32, scale=3.0):
    return (RNG.standard_normal(shape) * scale).astype(dtype)


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def _softplus(x):
    return np.logaddexp(0, x)


# op -> (latest opset, attributes, float64 closed form)
CLOSED_FORM = {
    "Relu": (14, {}, lambda x: np.maximum(x, 0)),
    "LeakyRelu": (16, {"alpha": 0.2}, lambda x: np.where(x < 0, 0.2 * x, x)),
    "Sigmoid": (13, {}, _sigmoid),
    "HardSigmoid": (22, {"alpha": 0.3, "beta": 0.4}, lambda x: np.clip(0.3 * x + 0.4, 0, 1)),
    "HardSwish": (22, {}, lambda x: x * np.clip(x / 6 + 0.5, 0, 1)),
    "Tanh": (13, {}, np.tanh),
    "Elu": (22, {"alpha": 0.7}, lambda x: np.where(x < 0, 0.7 * np.expm1(x), x)),
    "Selu": (22, {}, lambda x: 1.0507009873554805 * np.where(x > 0, x, 1.6732632423543772 * np.expm1(x))),
    "Celu": (28, {"alpha": 2.0}, lambda x: np.maximum(x, 0) + np.minimum(0, 2.0 * np.expm1(x / 2.0))),
    "Softplus": (22, {}, _softplus),
    "Softsign": (22, {}, lambda x: x / (1 + np.abs(x))),
    "ThresholdedRelu": (22, {"alpha": 0.5}, lambda x: np.where(x > 0.5, x, 0)),
    "Gelu": (20, {}, lambda x: 0.5 * x * (1 + np.vectorize(math.erf, otypes=[float])(x / math.sqrt(2)))),
    "Mish": (22, {}, lambda x: x * np.tanh(_softplus(x))),
    "Swish": (24, {"alpha": 0.8}, lambda x: x * _sigmoid(0.8 * x)),
    "Shrink": (9, {"bias": 0.3, "lambd": 0.6}, lambda x: np.where(x < -0.6, x + 0.3, np.where(x > 0.6, x - 0.3, 0))),
}


@pytest.mark.parametrize("op", sorted(CLOSED_FORM))
@pytest.mark.parametrize("dtype", ["float32", "float64", "float16"])
@pytest.mark.parametrize("shape", [(3, 4, 5), (), (0, 3)], ids=str)
def test_activation_closed_form(op, dtype, shape):
    opset, attrs, fn = CLOSED_FORM[op]
    x = rand(shape, dtype)
    expected = np.asarray(fn(x.astype(np.float64))).astype(dtype)
    check(op, [x], attrs, opset=opset, expected=expected, rtol=1e-3 if dtype != "float16" else 4e-3, atol=1e-5)


@pytest.mark.parametrize("op", sorted(CLOSED_FORM))
def test_activation_bfloat16(op):
    opset, attrs, fn = CLOSED_FORM[op]
    x = rand((4, 8), ml_dtypes.bfloat16)
    expected = np.asarray(fn(x.astype(np.float64))).astype(ml_dtypes.bfloat16)
    check(op, [x], attrs, opset=opset, expected=expected, rtol=2e-2, atol=1e-2)


@pytest.mark.parametrize("op", ["Sigmoid", "Softplus", "Mish", "Swish", "Elu", "Selu", "Celu", "Gelu"])
def test_activation_extreme_inputs_do_not_overflow(op):
    opset, attrs, fn = CLOSED_FORM[op]
    x = np.array([-1e4, -100.0, -30.0, 0.0, 30.0, 100.0, 1e4], dtype=np.float32)
    with np.errstate(all="ignore"):
        expected = np.asarray(fn(x.astype(np.float64))).astype(np.float32)
    actual = check(op, [x], attrs, opset=opset, expected=expected)
    assert np.isfinite(actual).all()


def test_gelu_tanh_approximation():
    x = rand((5, 6))
    x64 = x.astype(np.float64)
    expected = 0.5 * x64 * (1 + np.tanh(math.sqrt(2 / math.pi) * (x64 + 0.044715 * x64**3)))
    check("Gelu", [x], {"approximate": "tanh"}, opset=20, expected=expected.astype(np.float32))


@pytest.mark.parametrize(
    "op",
    ["LeakyRelu", "Sigmoid", "HardSigmoid", "Elu", "Selu", "Softsign", "Softplus", "ThresholdedRelu", "Shrink", "Celu"],
)
def test_activation_against_reference(op):
    opset, attrs, _ = CLOSED_FORM[op]
    check(op, [rand((2, 3, 4))], attrs, opset=opset)


@pytest.mark.parametrize("dtype", ["int8", "int32", "int64"])
def test_relu_integers(dtype):
    x = RNG.integers(-50, 50, size=(3, 4)).astype(dtype)
    check("Relu", [x], opset=14, expected=np.maximum(x, 0).astype(dtype))


@pytest.mark.parametrize("dtype", ["int8", "int32", "uint8"])
def test_shrink_integers(dtype):
    x = RNG.integers(0 if dtype == "uint8" else -10, 10, size=(3, 4)).astype(dtype)
    check("Shrink", [x], {"bias": 2.0, "lambd": 3.0}, opset=9)


@pytest.mark.parametrize("slope_shape", [(1,), (5,), (4, 1), (3, 4, 5), ()], ids=str)
@pytest.mark.parametrize("dtype", ["float32", "float16", "int32"])
def test_prelu_broadcast(slope_shape, dtype):
    x = rand((3, 4, 5)).astype(dtype)
    slope = (RNG.random(slope_shape) * (2 if dtype == "int32" else 0.5) + (1 if dtype == "int32" else 0)).astype(dtype)
    check("PRelu", [x, slope], opset=16, expected=np.where(x < 0, x * slope, x).astype(dtype))


def test_prelu_legacy_channel_slope():
    x = rand((2, 3, 4, 5))
    slope = np.array([0.1, 0.2, 0.3], dtype=np.float32)
    expected = np.where(x < 0, x * slope[None, :, None, None], x)
    check("PRelu", [x, slope], opset=6, expected=expected)
    check("PRelu", [x, slope[:1]], opset=1, expected=np.where(x < 0, x * 0.1, x))


SOFTMAX_FAMILY = ["Softmax", "LogSoftmax", "Hardmax"]


def _softmax_2d(x, axis):
    rows = math.prod(x.shape[:axis])
    flat = x.reshape(rows, -1).astype(np.float64)
    e = np.exp(flat - flat.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True)).reshape(x.shape)


def _hardmax_2d(x, axis):
    rows = math.prod(x.shape[:axis])
    flat = x.reshape(rows, -1)
    out = np.zeros_like(flat)
    out[np.arange(rows), flat.argmax(axis=1)] = 1
    return out.reshape(x.shape)


LEGACY_2D = {
    "Softmax": _softmax_2d,
    "LogSoftmax": lambda x, axis: np.log(_softmax_2d(x, axis)),
    "Hardmax": _hardmax_2d,
}


@pytest.mark.parametrize("op", SOFTMAX_FAMILY)
@pytest.mark.parametrize("axis", [None, 0, 1, 2, 3, -1, -3])
def test_softmax_family_axes(op, axis):
    x = rand((2, 3, 4, 5))
    attrs = {} if axis is None else {"axis": axis}
    check(op, [x], attrs, opset=13)
    # onnx.reference applies the opset-13 semantics to every version, so the
    # older versions are checked against the 2-D coercion written out here.
    legacy_axis = 1 if axis is None else axis % 4
    expected = LEGACY_2D[op](x, legacy_axis).astype(np.float32)
    check(op, [x], attrs, opset=11, expected=expected)
    if axis is None or axis >= 0:
        check(op, [x], attrs, opset=1, expected=expected)


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_softmax_before_13_coerces_to_2d(axis):
    x = rand((2, 3, 4))
    expected = _softmax_2d(x, axis)
    check("Softmax", [x], {"axis": axis}, opset=11, expected=expected.astype(np.float32))
    check("LogSoftmax", [x], {"axis": axis}, opset=11, expected=np.log(expected).astype(np.float32))
    # from 13 the same axis means one dimension only, which differs unless axis is the last
    if axis < 2:
        got = check("Softmax", [x], {"axis": axis}, opset=13)
        assert not np.allclose(got, expected)


@pytest.mark.parametrize("dtype", ["float16", "float64"])
@pytest.mark.parametrize("op", SOFTMAX_FAMILY)
def test_softmax_family_dtypes(op, dtype):
    check(op, [rand((3, 7), dtype)], opset=13, rtol=4e-3 if dtype == "float16" else 1e-3)


def test_softmax_large_inputs_and_empty():
    x = np.array([[1000.0, 1001.0, -1e30], [-1000.0, -1000.0, -1000.0]], dtype=np.float32)
    expected = _softmax_2d(x.astype(np.float64), 1).astype(np.float32)
    check("Softmax", [x], opset=13, expected=expected)
    x64 = x.astype(np.float64)
    shifted = x64 - x64.max(axis=1, keepdims=True)
    log_expected = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    check("LogSoftmax", [x], opset=13, expected=log_expected.astype(np.float32))
    for op in SOFTMAX_FAMILY:
        check(op, [np.zeros((0, 3), np.float32)], opset=13, expected=np.zeros((0, 3), np.float32))
        check(op, [np.zeros((2, 0), np.float32)], {"axis": 1}, opset=11, expected=np.zeros((2, 0), np.float32))


@pytest.mark.parametrize("opset", [11, 13])
def test_hardmax_ties_pick_the_first(opset):
    x = np.array([[3.0, 1.0, 3.0], [2.0, 2.0, 2.0]], dtype=np.float32)
    expected = np.array([[1, 0, 0], [1, 0, 0]], dtype=np.float32)
    check("Hardmax", [x], {"axis": 1} if opset < 13 else {}, opset=opset, expected=expected)
