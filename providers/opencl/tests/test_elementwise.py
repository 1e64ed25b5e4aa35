"""Elementwise kernels of the OpenCL provider against the CPU provider and numpy closed forms."""

from __future__ import annotations

import numpy as np
import pytest

from ortcore.errors import OrtCoreError
from ortcore.testing import single_node_model

rng = np.random.default_rng(1234)
X = rng.standard_normal((2, 3, 4)).astype(np.float32)
POS = (np.abs(X) + 0.1).astype(np.float32)
Y = rng.standard_normal((3, 1)).astype(np.float32)
I32 = rng.integers(-50, 50, (2, 3, 4)).astype(np.int32)
I64 = I32.astype(np.int64)
B = rng.random((2, 3, 4)) > 0.5
B2 = rng.random((3, 4)) > 0.5


def _model(op, inputs, out, *, opset=17, initializers=(), **attrs):
    return single_node_model(op, inputs, [out], opset=opset, initializers=initializers, **attrs)


UNARY = ["Neg", "Abs", "Exp", "Floor", "Ceil", "Sign", "Sin", "Cos", "Tanh", "Sigmoid", "Erf",
         "Relu", "Elu", "Selu", "HardSigmoid", "HardSwish", "Softplus", "Softsign", "Mish", "Celu",
         "Round", "Tan", "Atan", "Sinh", "Cosh", "Asinh"]


@pytest.mark.parametrize("op", UNARY)
def test_unary_float32(ocl, op):
    x = np.concatenate([X.reshape(-1), [0.0, 30.0, -30.0]]).astype(np.float32)
    ocl.check(_model(op, {"x": x}, np.float32, opset=18), {"x": x})


@pytest.mark.parametrize("op", ["Sqrt", "Log", "Reciprocal", "Acosh"])
def test_unary_positive_domain(ocl, op):
    x = POS + 1 if op == "Acosh" else POS
    ocl.check(_model(op, {"x": x}, np.float32), {"x": x})


def test_round_halves_to_even_and_nan_inf_tests(ocl):
    x = np.array([0.5, 1.5, 2.5, -0.5, -1.5, 2.4999, np.inf, -np.inf, np.nan], np.float32)
    out, _ = ocl.check(_model("Round", {"x": x}, np.float32), {"x": x})
    np.testing.assert_array_equal(out[0][:6], [0, 2, 2, -0.0, -2, 2])
    ocl.check(_model("IsNaN", {"x": x}, np.bool_, opset=20), {"x": x})
    for neg, pos in ((1, 1), (1, 0), (0, 1)):
        ocl.check(_model("IsInf", {"x": x}, np.bool_, opset=20, detect_negative=neg, detect_positive=pos), {"x": x})


@pytest.mark.parametrize("op", ["BitwiseAnd", "BitwiseOr", "BitwiseXor"])
def test_bitwise(ocl, op):
    ocl.check(_model(op, {"a": I32, "b": I32[0]}, np.int32, opset=18), {"a": I32, "b": I32[0]})


def test_bitwise_not_and_shift(ocl):
    ocl.check(_model("BitwiseNot", {"a": I64}, np.int64, opset=18), {"a": I64})
    a = np.array([1, 255, 16, 7, 9], np.uint8)
    s = np.array([1, 3, 8, 0, 200], np.uint8)
    for direction in ("LEFT", "RIGHT"):
        out, _ = ocl.check(_model("BitShift", {"a": a, "s": s}, np.uint8, opset=11, direction=direction), {"a": a, "s": s})
        assert out[0][2] == 0 and out[0][4] == 0  # shifts of 8 or more bits empty the value


def test_shrink_and_swish(ocl):
    ocl.check(_model("Shrink", {"x": X}, np.float32, opset=9, bias=0.25, lambd=0.4), {"x": X})
    out, _ = ocl.check(_model("Swish", {"x": X}, np.float32, opset=24, alpha=1.5), {"x": X})
    np.testing.assert_allclose(out[0], X / (1 + np.exp(-1.5 * X)), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("op", ["Neg", "Abs", "Sign", "Relu"])
def test_unary_int32(ocl, op):
    ocl.check(_model(op, {"x": I32}, np.int32), {"x": I32})


def test_nan_passes_through_relu_sign_and_max(ocl):
    x = np.array([np.nan, -1.0, 2.0], np.float32)
    out, _ = ocl.check(_model("Relu", {"x": x}, np.float32), {"x": x})
    assert np.isnan(out[0][0]) and out[0][1] == 0
    y = np.array([0.0, np.nan, 1.0], np.float32)
    out, _ = ocl.check(_model("Max", {"x": x, "y": y}, np.float32), {"x": x, "y": y})
    assert np.isnan(out[0][:2]).all() and out[0][2] == 2


@pytest.mark.parametrize(
    "op,attrs",
    [("LeakyRelu", {"alpha": 0.3}), ("Elu", {"alpha": 0.5}), ("ThresholdedRelu", {"alpha": 0.2}),
     ("HardSigmoid", {"alpha": 0.3, "beta": 0.4}), ("Celu", {"alpha": 2.0}), ("Selu", {"alpha": 1.5, "gamma": 2.0})],
)
def test_activation_attributes(ocl, op, attrs):
    ocl.check(_model(op, {"x": X}, np.float32, **attrs), {"x": X})


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu(ocl, approximate):
    x = X * 3
    sess_out, _ = ocl.check(_model("Gelu", {"x": x}, np.float32, opset=20, approximate=approximate), {"x": x})
    from math import erf, pi, sqrt, tanh

    xs = x.astype(np.float64).reshape(-1)
    if approximate == "none":
        closed = [0.5 * v * (1 + erf(v / sqrt(2))) for v in xs]
    else:
        closed = [0.5 * v * (1 + tanh(sqrt(2 / pi) * (v + 0.044715 * v**3))) for v in xs]
    np.testing.assert_allclose(sess_out[0].reshape(-1), closed, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "PRelu"])
def test_binary_float_broadcast(ocl, op):
    a = POS if op == "Pow" else X
    ocl.check(_model(op, {"a": a, "b": Y}, np.float32), {"a": a, "b": Y})


@pytest.mark.parametrize("shape_b", [(2, 3, 4), (), (1, 1, 4), (2, 1, 1)])
def test_add_shapes_flat_scalar_and_strided(ocl, shape_b):
    b = rng.standard_normal(shape_b).astype(np.float32)
    ocl.check(_model("Add", {"a": X, "b": b}, np.float32), {"a": X, "b": b})


def test_bidirectional_broadcast_with_constant(ocl):
    a = rng.standard_normal((4, 1, 5)).astype(np.float32)
    c = rng.standard_normal((3, 1)).astype(np.float32)
    out, _ = ocl.check(_model("Mul", {"a": a, "c": c}, np.float32, initializers=("c",)), {"a": a})
    assert out[0].shape == (4, 3, 5)


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div", "Max", "Min"])
def test_binary_integers_exact(ocl, op, dtype):
    a = I32.astype(dtype)
    b = rng.integers(1, 9, (3, 1)).astype(dtype) * np.where(rng.random((3, 1)) > 0.5, 1, -1).astype(dtype)
    ocl.check(_model(op, {"a": a, "b": b}, dtype), {"a": a, "b": b})


def test_integer_division_truncates_toward_zero(ocl):
    a = np.array([7, -7, 7, -7, 0, -2147483648], np.int32)
    b = np.array([2, 2, -2, -2, 5, -1], np.int32)
    out, _ = ocl.check(_model("Div", {"a": a, "b": b}, np.int32), {"a": a, "b": b})
    np.testing.assert_array_equal(out[0][:5], [3, -3, -3, 3, 0])


def test_integer_pow_and_mod(ocl):
    a = np.array([2, -3, 5, 1, -1, 7], np.int64)
    b = np.array([10, 3, 0, -2, -3, 2], np.int64)
    out, _ = ocl.check(_model("Pow", {"a": a, "b": b}, np.int64, opset=15), {"a": a, "b": b})
    np.testing.assert_array_equal(out[0], [1024, -27, 1, 1, -1, 49])
    m = np.array([5, -5, 5, -5], np.int32)
    d = np.array([3, 3, -3, -3], np.int32)
    for fmod, expected in ((0, [2, 1, -1, -2]), (1, [2, -2, 2, -2])):
        out, _ = ocl.check(_model("Mod", {"m": m, "d": d}, np.int32, fmod=fmod), {"m": m, "d": d})
        np.testing.assert_array_equal(out[0], expected)


@pytest.mark.parametrize("op", ["Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual"])
def test_comparisons(ocl, op):
    a = np.round(X * 2).astype(np.float32)
    b = np.round(Y * 2).astype(np.float32)
    ocl.check(_model(op, {"a": a, "b": b}, np.bool_), {"a": a, "b": b})
    ocl.check(_model(op, {"a": I64, "b": I64[0]}, np.bool_), {"a": I64, "b": I64[0]})


@pytest.mark.parametrize("op", ["And", "Or", "Xor", "Equal"])
def test_logic(ocl, op):
    ocl.check(_model(op, {"a": B, "b": B2}, np.bool_), {"a": B, "b": B2})


def test_not(ocl):
    ocl.check(_model("Not", {"a": B}, np.bool_), {"a": B})


@pytest.mark.parametrize("op", ["Sum", "Mean", "Max", "Min"])
def test_variadic(ocl, op):
    c = rng.standard_normal((4,)).astype(np.float32)
    feeds = {"a": X, "b": Y, "c": c}
    ocl.check(single_node_model(op, feeds, [np.float32], opset=13), feeds)
    ocl.check(single_node_model(op, {"a": X}, [np.float32], opset=13), {"a": X})


def test_where(ocl):
    feeds = {"c": B2, "x": X, "y": Y}
    ocl.check(single_node_model("Where", feeds, [np.float32], opset=16), feeds)
    feeds = {"c": B, "x": I64, "y": np.array(-1, np.int64)}
    ocl.check(single_node_model("Where", feeds, [np.int64], opset=16), feeds)


CAST_TYPES = [np.float32, np.float64, np.float16, np.int32, np.int64, np.int8, np.uint8, np.bool_]


@pytest.mark.parametrize("to", CAST_TYPES)
@pytest.mark.parametrize("src", [np.float32, np.int64, np.bool_])
def test_cast(ocl, src, to):
    from ortcore.dtypes import onnx_elem_type

    base = np.array([0.0, 1.5, -2.7, 100.2, -0.4, 3.0], np.float32)
    x = base.astype(src) if src is not np.bool_ else base > 0
    m = single_node_model("Cast", {"x": x}, [to], opset=19, to=onnx_elem_type(np.dtype(to)))
    out, _ = ocl.check(m, {"x": x}, expected=[x.astype(to)])
    assert out[0].dtype == np.dtype(to)


def test_cast_declines_string_target(ocl):
    from onnx import TensorProto

    m = single_node_model("Cast", {"x": X}, [np.str_], opset=19, to=TensorProto.STRING)
    sess = ocl.session(m)
    assert ocl.providers_of(sess) == ["CPUExecutionProvider"]


def test_clip_forms(ocl):
    lo, hi = np.array(-0.5, np.float32), np.array(0.7, np.float32)
    ocl.check(single_node_model("Clip", {"x": X, "lo": lo, "hi": hi}, [np.float32], opset=13), {"x": X, "lo": lo, "hi": hi})
    ocl.check(single_node_model("Clip", {"x": X, "lo": None, "hi": hi}, [np.float32], opset=13), {"x": X, "hi": hi})
    ocl.check(
        single_node_model("Clip", {"x": X, "lo": lo}, [np.float32], opset=13, initializers=("lo",)), {"x": X}
    )
    ocl.check(single_node_model("Clip", {"x": X}, [np.float32], opset=6, min=-0.2, max=0.3), {"x": X})
    ocl.check(single_node_model("Clip", {"x": I32, "lo": np.array(-3, np.int32), "hi": np.array(4, np.int32)},
                                [np.int32], opset=13), {"x": I32, "lo": np.array(-3, np.int32), "hi": np.array(4, np.int32)})


def test_min_above_max_gives_max(ocl):
    feeds = {"x": X, "lo": np.array(2.0, np.float32), "hi": np.array(1.0, np.float32)}
    out, _ = ocl.check(single_node_model("Clip", feeds, [np.float32], opset=13), feeds)
    assert (out[0] == 1.0).all()


def test_identity_and_dropout(ocl):
    ocl.check(single_node_model("Identity", {"x": X}, [np.float32], opset=21), {"x": X})
    m = single_node_model("Dropout", {"x": X}, [np.float32, np.bool_], opset=13)
    out, _ = ocl.check(m, {"x": X})
    assert out[1].dtype == np.bool_ and out[1].all()
    m = single_node_model("Dropout", {"x": X}, [np.float32, np.float32], opset=7)
    out, _ = ocl.check(m, {"x": X})
    assert (out[1] == 1).all()


def test_dropout_with_training_mode_is_not_claimed(ocl):
    feeds = {"x": X, "r": np.array(0.5, np.float32), "t": np.array(True)}
    m = single_node_model("Dropout", feeds, [np.float32], opset=13, initializers=("r", "t"))
    sess = ocl.session(m, optimize=False)
    assert ocl.providers_of(sess) == ["CPUExecutionProvider"]


def test_zero_size_and_zero_d(ocl):
    e = np.zeros((0, 3), np.float32)
    out, _ = ocl.check(_model("Add", {"a": e, "b": Y[:, 0]}, np.float32), {"a": e, "b": Y[:, 0]})
    assert out[0].shape == (0, 3)
    s = np.array(1.5, np.float32)
    out, _ = ocl.check(_model("Mul", {"a": s, "b": s}, np.float32), {"a": s, "b": s})
    assert out[0].shape == () and out[0] == 2.25


def test_rank_above_kernel_limit_merges_dims(ocl):
    a = rng.standard_normal((2, 1, 3, 2, 2, 1, 2, 3)).astype(np.float32)
    b = rng.standard_normal((3, 2, 2, 1, 2, 3)).astype(np.float32)
    ocl.check(_model("Add", {"a": a, "b": b}, np.float32), {"a": a, "b": b})


def test_incompatible_shapes_raise_invalid_argument(ocl):
    from onnx import TensorProto, helper

    from ortcore.testing import make_model

    dyn = [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("a", "b")]
    m = make_model([helper.make_node("Add", ["a", "b"], ["y"])], dyn,
                   [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    sess = ocl.session(m)
    with pytest.raises(OrtCoreError, match=r"node 'y' \(Add\).*cannot be broadcast"):
        sess.run(None, {"a": X, "b": np.zeros((5, 1), np.float32)})
    # the session still works afterwards
    assert sess.run(None, {"a": X, "b": Y})[0].shape == (2, 3, 4)


def test_program_is_shared_across_shapes_and_attributes(ocl, runtime):
    m1 = _model("LeakyRelu", {"x": X}, np.float32, alpha=0.1)
    ocl.check(m1, {"x": X})
    before = runtime.compiles
    x2 = rng.standard_normal((7, 5)).astype(np.float32)
    ocl.check(_model("LeakyRelu", {"x": x2}, np.float32, alpha=0.7), {"x": x2})
    assert runtime.compiles == before
