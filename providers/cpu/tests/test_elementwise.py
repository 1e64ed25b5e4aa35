"""Elementwise kernels: what the ONNX node cases leave out.

Broadcast shapes, 0-d and empty tensors, integer and low-precision dtypes,
legacy opset versions and Cast corner cases. Expected values come from
onnx.reference or closed-form math, never from ortcore itself.
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

RNG = np.random.default_rng(0)


def _model(op, inputs, attrs, opset, n_out=1):
    names = [f"x{i}" if v is not None else "" for i, v in enumerate(inputs)]
    node = helper.make_node(op, names, [f"y{i}" for i in range(n_out)], **attrs)
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info(n, onnx_elem_type(v.dtype), v.shape) for n, v in zip(names, inputs) if n],
        [onnx.ValueInfoProto(name=f"y{i}") for i in range(n_out)],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def check(op, inputs, attrs=None, *, opset, expected=None, rtol=1e-3, atol=1e-5):
    """Run one node in ortcore; compare with ``expected`` or else onnx.reference."""
    model = _model(op, inputs, attrs or {}, opset)
    feeds = {f"x{i}": v for i, v in enumerate(inputs) if v is not None}
    sess = ortcore.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    actual = sess.run(None, feeds)
    if expected is None:
        expected = ReferenceEvaluator(model).run(None, feeds)
    elif not isinstance(expected, list):
        expected = [expected]
    for e, a in zip(expected, actual):
        compare_outputs(e, a, rtol=rtol, atol=atol, name=op)
    return actual[0]


def rand(shape, dtype, low=-3, high=3):
    dtype = np.dtype(dtype)
    if dtype.kind in "iu":
        low = max(low, 0) if dtype.kind == "u" else low
        return RNG.integers(low, high + 1, size=shape).astype(dtype)
    if dtype == np.bool_:
        return RNG.random(shape) > 0.5
    return RNG.uniform(low, high, size=shape).astype(dtype)


SHAPES = [((2, 3, 4), (4,)), ((2, 1, 4), (3, 1)), ((), (3,)), ((), ()), ((0, 3), (3,)), ((3, 1), (0,))]


@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div"])
@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "int8", "int32", "int64", "uint8", "uint32"])
@pytest.mark.parametrize("shapes", SHAPES, ids=str)
def test_arithmetic_broadcast(op, dtype, shapes):
    a = rand(shapes[0], dtype, 1, 9)
    b = rand(shapes[1], dtype, 1, 9)
    check(op, [a, b], opset=14)


def test_integer_div_truncates_toward_zero():
    a = np.array([7, -7, 7, -7, 0, -1, 5], dtype=np.int32)
    b = np.array([2, 2, -2, -2, 3, 4, -5], dtype=np.int32)
    check("Div", [a, b], opset=14, expected=np.array([3, -3, -3, 3, 0, 0, -1], dtype=np.int32))
    check("Div", [a.astype(np.int64), b.astype(np.int64)], opset=7)


@pytest.mark.parametrize("fmod", [0, 1])
@pytest.mark.parametrize("dtype", ["int8", "int32", "int64", "uint16", "float32", "float64", "float16"])
def test_mod_signs(fmod, dtype):
    if np.dtype(dtype).kind == "f" and not fmod:
        a = rand((4, 5), dtype, -10, 10)
    else:
        a = rand((4, 5), dtype, -10, 10)
    b = rand((5,), dtype, 1, 4) * (np.array([1, -1, 1, -1, 1], dtype=dtype) if np.dtype(dtype).kind != "u" else 1)
    check("Mod", [a, b.astype(dtype)], {"fmod": fmod}, opset=13)


@pytest.mark.parametrize(
    "base, exponent",
    [("float32", "float32"), ("float32", "int64"), ("float64", "int32"), ("int32", "int32"), ("int64", "int64"),
     ("float16", "float16"), ("float16", "float32")],  # fmt: skip
)
def test_pow_result_has_base_type(base, exponent):
    a = rand((3, 4), base, 1, 4)
    b = rand((4,), exponent, 0, 3)
    check("Pow", [a, b], opset=15)


def test_pow_negative_integer_exponent_truncates_like_c():
    a = np.array([2, 1, -1, 4, -2], dtype=np.int64)
    b = np.array([-1, -3, -3, -1, -2], dtype=np.int64)
    check("Pow", [a, b], opset=15, expected=np.array([0, 1, -1, 0, 0], dtype=np.int64))


@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div"])
def test_legacy_broadcast_with_axis(op):
    a = rand((2, 3, 4, 5), np.float32, 1, 3)
    b = rand((3, 4), np.float32, 1, 3)
    fn = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide}[op]
    check(op, [a, b], {"broadcast": 1, "axis": 1}, opset=6, expected=fn(a, b[None, :, :, None]))
    check(op, [a, b[0]], {"broadcast": 1, "axis": -2}, opset=6, expected=fn(a, b[0][None, None, :, None]))
    check(op, [a, a], {"consumed_inputs": [0, 0]}, opset=1, expected=fn(a, a))


@pytest.mark.parametrize(
    "op", ["Neg", "Abs", "Reciprocal", "Sqrt", "Exp", "Log", "Floor", "Ceil", "Sign", "Sin", "Cos", "Tan",
           "Atan", "Sinh", "Cosh", "Asinh", "Erf"],
)  # fmt: skip
@pytest.mark.parametrize("dtype", ["float32", "float64", "float16"])
@pytest.mark.parametrize("shape", [(2, 3), (), (0, 4)], ids=str)
def test_unary_math(op, dtype, shape):
    x = rand(shape, dtype, 0.1, 2.5)
    check(op, [x], opset=13 if op not in ("Sin", "Cos", "Tan", "Atan", "Sinh", "Cosh", "Asinh") else 22)


@pytest.mark.parametrize(
    "op, low, high", [("Asin", -0.99, 0.99), ("Acos", -0.99, 0.99), ("Atanh", -0.99, 0.99), ("Acosh", 1.01, 5)]
)
def test_inverse_trig_domains(op, low, high):
    check(op, [rand((3, 4), np.float32, low, high)], opset=22)


@pytest.mark.parametrize("dtype", ["int8", "int32", "int64"])
def test_integer_abs_neg_sign(dtype):
    x = rand((3, 4), dtype, -5, 5)
    for op in ("Abs", "Neg", "Sign"):
        check(op, [x], opset=13)


def test_erf_float64_is_accurate_to_double_precision():
    x = np.concatenate([np.linspace(-7, 7, 2001), [0.0, -0.0, 1e-300, 3.0, -3.0, np.inf, -np.inf]])
    expected = np.array([math.erf(v) for v in x])
    actual = check("Erf", [x], opset=13, expected=expected, rtol=0, atol=5e-15)
    assert np.isnan(check("Erf", [np.array([np.nan])], opset=13, expected=np.array([np.nan])))[0]
    assert actual.dtype == np.float64


def test_erf_float32_and_bfloat16():
    x = np.linspace(-5, 5, 1001).astype(np.float32)
    expected = np.array([math.erf(v) for v in x.astype(np.float64)])
    check("Erf", [x], opset=13, expected=expected.astype(np.float32), rtol=1e-6, atol=1e-6)
    xb = x.astype(ml_dtypes.bfloat16)
    ref = np.array([math.erf(v) for v in xb.astype(np.float64)]).astype(ml_dtypes.bfloat16)
    check("Erf", [xb], opset=13, expected=ref, rtol=8e-3, atol=1e-2)


def test_round_halves_to_even():
    x = np.array([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 2.3, -2.7, 0.0, np.inf, np.nan], dtype=np.float32)
    check("Round", [x], opset=22, expected=np.array([0, 2, 2, -0, -2, -2, 2, -3, 0, np.inf, np.nan], dtype=np.float32))


@pytest.mark.parametrize("neg, pos", [(1, 1), (1, 0), (0, 1), (0, 0)])
def test_isinf_detect_flags(neg, pos):
    x = np.array([[np.inf, -np.inf, np.nan, 1.0], [0.0, -2.0, np.inf, -np.inf]], dtype=np.float32)
    check("IsInf", [x], {"detect_negative": neg, "detect_positive": pos}, opset=20)


def test_isnan_float16_and_0d():
    check("IsNaN", [np.array([np.nan, 1, np.inf], dtype=np.float16)], opset=20)
    out = check("IsNaN", [np.array(np.nan, dtype=np.float32)], opset=20)
    assert out.shape == ()


@pytest.mark.parametrize("op", ["Equal", "Less", "LessOrEqual", "Greater", "GreaterOrEqual"])
@pytest.mark.parametrize("dtype", ["float32", "int8", "uint64", "float16"])
@pytest.mark.parametrize("shapes", SHAPES[:4], ids=str)
def test_comparisons_broadcast(op, dtype, shapes):
    a = rand(shapes[0], dtype, 0, 3)
    b = rand(shapes[1], dtype, 0, 3)
    check(op, [a, b], opset=16 if "Or" in op else 13)


def test_equal_strings_broadcast():
    a = np.array([["a", "bc"], ["", "d"]], dtype=object)
    b = np.array(["a", "d"], dtype=object)
    check("Equal", [a, b], opset=19, expected=np.array([[True, False], [False, True]]))


@pytest.mark.parametrize("op", ["And", "Or", "Xor"])
@pytest.mark.parametrize("shapes", SHAPES[:5], ids=str)
def test_logic_broadcast(op, shapes):
    check(op, [rand(shapes[0], bool), rand(shapes[1], bool)], opset=7)


def test_not_0d():
    out = check("Not", [np.array(True)], opset=1, expected=np.array(False))
    assert out.shape == ()


@pytest.mark.parametrize("direction", ["LEFT", "RIGHT"])
@pytest.mark.parametrize("dtype", ["uint8", "uint64", "int8", "int32", "int64"])
def test_bitshift_out_of_range_and_signed(direction, dtype):
    bits = np.dtype(dtype).itemsize * 8
    x = np.array([1, 3, 100, 7, 5, 1, 127], dtype=dtype)
    if np.dtype(dtype).kind == "i":
        x = x * np.array([1, -1, 1, -1, -1, 1, -1], dtype=dtype)
    y = np.array([0, 1, 2, bits - 1, bits, bits + 3, 3], dtype=dtype)
    if np.dtype(dtype).kind == "i":
        y[-1] = -1
    check("BitShift", [x, y], {"direction": direction}, opset=28)
    if np.dtype(dtype).kind == "u":
        check("BitShift", [x, y % bits], {"direction": direction}, opset=11)


@pytest.mark.parametrize("op", ["BitwiseAnd", "BitwiseOr", "BitwiseXor"])
@pytest.mark.parametrize("dtype", ["int8", "uint16", "int64"])
def test_bitwise_broadcast(op, dtype):
    check(op, [rand((2, 3), dtype, 0, 100), rand((3,), dtype, 0, 100)], opset=18)


def test_bitwise_not_signed():
    check("BitwiseNot", [np.array([0, -1, 5, 127, -128], dtype=np.int8)], opset=18)


@pytest.mark.parametrize("dtype", ["float32", "int64", "bool"])
def test_where_three_way_broadcast(dtype):
    cond = rand((2, 1, 4), bool)
    check("Where", [cond, rand((3, 1), dtype), rand((4,), dtype)], opset=16)


def test_where_strings_and_0d():
    cond = np.array([True, False])
    check("Where", [cond, np.array(["a", "b"], dtype=object), np.array("z", dtype=object)], opset=16,
          expected=np.array(["a", "z"], dtype=object))  # fmt: skip
    out = check("Where", [np.array(True), np.array(1.0, np.float32), np.array(2.0, np.float32)], opset=16)
    assert out.shape == ()


@pytest.mark.parametrize("op", ["Sum", "Mean", "Max", "Min"])
@pytest.mark.parametrize("n", [1, 2, 3])
def test_variadic_broadcast(op, n):
    inputs = [rand(s, np.float32) for s in [(2, 3, 4), (3, 1), (4,)][:n]]
    check(op, inputs, opset=13)


@pytest.mark.parametrize("op", ["Max", "Min"])
@pytest.mark.parametrize("dtype", ["int8", "uint32", "int64", "float16"])
def test_max_min_integers(op, dtype):
    check(op, [rand((3, 4), dtype, 0, 50), rand((4,), dtype, 0, 50)], opset=13)


def test_max_propagates_nan():
    a = np.array([np.nan, 1.0, 2.0], dtype=np.float32)
    b = np.array([0.0, np.nan, 1.0], dtype=np.float32)
    check("Max", [a, b], opset=13, expected=np.array([np.nan, np.nan, 2.0], dtype=np.float32))


def test_mean_float16_keeps_dtype():
    a, b = rand((3,), np.float16), rand((3,), np.float16)
    check("Mean", [a, b], opset=13)


def test_clip_versions():
    x = np.array([-1e300, -2.0, 0.5, 3.0, 1e300], dtype=np.float64)
    flt_max = float(np.finfo(np.float32).max)
    check("Clip", [x], opset=6, expected=np.clip(x, -flt_max, flt_max))
    check("Clip", [x], opset=1, expected=x)
    check("Clip", [x], {"min": -1.0, "max": 1.0}, opset=6, expected=np.clip(x, -1, 1))
    check("Clip", [x, np.array(0.0)], opset=11, expected=np.maximum(x, 0))
    check("Clip", [x, None, np.array(0.0)], opset=11, expected=np.minimum(x, 0))


@pytest.mark.parametrize("dtype", ["int8", "int32", "uint64", "float16", "float32"])
def test_clip_integers_and_inverted_bounds(dtype):
    x = rand((3, 4), dtype, 0, 20)
    lo, hi = np.array(5, dtype=dtype), np.array(12, dtype=dtype)
    check("Clip", [x, lo, hi], opset=13, expected=np.clip(x, lo, hi))
    check("Clip", [x, hi, lo], opset=13, expected=np.full_like(x, lo))


def test_clip_nan_stays_nan():
    x = np.array([np.nan, -5, 5], dtype=np.float32)
    check("Clip", [x, np.array(-1, np.float32), np.array(1, np.float32)], opset=13,
          expected=np.array([np.nan, -1, 1], dtype=np.float32))  # fmt: skip


# -- Cast ----------------------------------------------------------------------------------------

T = onnx.TensorProto


def test_cast_string_to_numbers():
    s = np.array(["1.5", "-INF", "inf", "+INF", "NaN", "1e-5", "-0"], dtype=object)
    check("Cast", [s], {"to": T.FLOAT}, opset=13)
    check("Cast", [s], {"to": T.DOUBLE}, opset=21)
    big = np.array(["9007199254740993", "-42", "0"], dtype=object)
    check("Cast", [big], {"to": T.INT64}, opset=13, expected=np.array([9007199254740993, -42, 0], dtype=np.int64))
    check("Cast", [big[1:]], {"to": T.UINT8}, opset=13, expected=np.array([214, 0], dtype=np.uint8))


def test_cast_numbers_to_string():
    x = np.array([1.5, -0.1, 1e20, np.inf, -np.inf, np.nan, 3.0], dtype=np.float32)
    expected = np.array(["1.5", "-0.1", "1e+20", "INF", "-INF", "NaN", "3"], dtype=object)
    check("Cast", [x], {"to": T.STRING}, opset=13, expected=expected)
    i = np.array([[-3, 0], [12345678901, 7]], dtype=np.int64)
    check("Cast", [i], {"to": T.STRING}, opset=13, expected=i.astype(str).astype(object))
    # like onnxruntime, doubles are written with 8 significant digits too
    d = np.array([1 / 3, 1e-300, -2.5], dtype=np.float64)
    check("Cast", [d], {"to": T.STRING}, opset=13, expected=np.array(["0.33333333", "1e-300", "-2.5"], dtype=object))


def test_cast_bool_and_to_bool():
    x = np.array([0.0, -0.0, 2.5, np.nan, -1.0], dtype=np.float32)
    check("Cast", [x], {"to": T.BOOL}, opset=13, expected=np.array([False, False, True, True, True]))
    check("Cast", [np.array([True, False])], {"to": T.FLOAT16}, opset=13)
    check("Cast", [np.array([True, False])], {"to": T.STRING}, opset=13, expected=np.array(["1", "0"], dtype=object))


def test_cast_integer_wraps():
    x = np.array([200, -129, 255, 256], dtype=np.int16)
    check("Cast", [x], {"to": T.INT8}, opset=13, expected=np.array([-56, 127, -1, 0], dtype=np.int8))


def test_cast_1_names_the_type():
    x = rand((2, 3), np.float64)
    check("Cast", [x], {"to": "FLOAT"}, opset=1, expected=x.astype(np.float32))


@pytest.mark.parametrize("to", [T.FLOAT8E4M3FN, T.FLOAT8E4M3FNUZ, T.FLOAT8E5M2, T.FLOAT8E5M2FNUZ])
@pytest.mark.parametrize("saturate", [0, 1])
@pytest.mark.parametrize("src", ["float32", "float64", "float16"])
def test_cast_float8_saturation(to, saturate, src):
    x = np.array([0.0, -0.0, 1.3, -7.1, 1e6, -1e6, np.inf, -np.inf, np.nan, 60000.0], dtype=src)
    check("Cast", [x], {"to": to, "saturate": saturate}, opset=19)


@pytest.mark.parametrize("round_mode", ["up", "down", "nearest"])
@pytest.mark.parametrize("saturate", [0, 1])
def test_cast_float8e8m0_round_modes(round_mode, saturate):
    x = np.array([0.0, 0.124, 0.25, 1.1, 1.5, 3.0, 2.0**127 * 1.5, np.inf, np.nan, 1e-39], dtype=np.float32)
    check("Cast", [x], {"to": T.FLOAT8E8M0, "saturate": saturate, "round_mode": round_mode}, opset=24)


@pytest.mark.parametrize("to", [T.INT4, T.UINT4, T.INT2, T.UINT2, T.FLOAT4E2M1, T.BFLOAT16, T.FLOAT16])
def test_cast_to_small_types_from_integers(to):
    check("Cast", [np.array([0, 1, 3, 5], dtype=np.int32)], {"to": to}, opset=25)


def test_cast_0d_and_empty():
    out = check("Cast", [np.array(2.7, dtype=np.float32)], {"to": T.INT32}, opset=21, expected=np.array(2, np.int32))
    assert isinstance(out, np.ndarray) and out.shape == ()
    check("Cast", [np.zeros((0, 3), np.float32)], {"to": T.FLOAT16}, opset=21)


def test_castlike_uses_second_input_type():
    x = rand((3,), np.float32)
    check("CastLike", [x, np.zeros(0, dtype=np.int64)], opset=15)
    check("CastLike", [x, np.zeros(0, dtype=object)], opset=19,
          expected=np.array([f"{v:.8g}" for v in x], dtype=object))  # fmt: skip
    check("CastLike", [x, np.zeros(0, dtype=ml_dtypes.float8_e4m3fn)], {"saturate": 0}, opset=19)


def test_identity_keeps_value():
    x = np.array(3, dtype=np.int8)
    out = check("Identity", [x], opset=21, expected=x)
    assert out.shape == () and out.dtype == np.int8


@pytest.mark.parametrize(
    "src, to, expected",
    [
        (np.array([-1, 3, 7], dtype=ml_dtypes.int4), T.UINT4, np.array([15, 3, 7], dtype=ml_dtypes.uint4)),
        (np.array([1, 2, 3], dtype=ml_dtypes.uint2), T.INT4, np.array([1, 2, 3], dtype=ml_dtypes.int4)),
        (
            np.array([0.5, 2, 4], dtype=ml_dtypes.float8_e8m0fnu),
            T.FLOAT8E4M3FN,
            np.array([0.5, 2, 4], dtype=ml_dtypes.float8_e4m3fn),
        ),
        (np.array([1.5, -3], dtype=ml_dtypes.float6_e2m3fn), T.INT4, np.array([1, -3], dtype=ml_dtypes.int4)),
    ],
    ids=["int4-uint4", "uint2-int4", "e8m0-e4m3fn", "float6-int4"],
)
def test_cast_between_small_types(src, to, expected):
    check("Cast", [src], {"to": to}, opset=25, expected=expected)


@pytest.mark.parametrize("exponent", [2.0, 0.5, 3.0])
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_pow_constant_exponent(exponent, dtype):
    """A constant exponent (an initializer) may take a faster path; results must not change."""
    x = rand((2, 3), dtype, 0.1, 3)
    e = np.array(exponent, dtype=dtype)
    model = _model("Pow", [x, e], {}, 15)
    model.graph.input.pop()
    model.graph.initializer.append(onnx.numpy_helper.from_array(e, "x1"))
    sess = ortcore.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (actual,) = sess.run(None, {"x0": x})
    compare_outputs(np.power(x, e), actual)
