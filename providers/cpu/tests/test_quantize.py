"""QuantizeLinear, DequantizeLinear, DynamicQuantizeLinear, QLinearMatMul, QLinearConv:
what the ONNX node cases leave out.

Per-axis and blocked (including a short last block) scales for every integer
type, int4/int2 initializers packed in TensorProto, float8 with and without
saturation, float4/float6, float16/bfloat16 inputs and scales, ``precision``,
``output_dtype``, float8e8m0 scales, every schema version; QLinearMatMul and
QLinearConv with per-column/per-channel parameters, groups, pads, strides and
dilations. Truth is onnxruntime where its CPU provider has the kernel, else
onnx.reference, else closed-form numpy written here.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np
import onnx
import onnxruntime
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

import ortcore
from ortcore.dtypes import onnx_elem_type
from ortcore.testing import compare_outputs

RNG = np.random.default_rng(5)


def _model(op, inputs, attrs, opset, constant=(), n_out=1):
    names = [f"x{i}" if v is not None else "" for i, v in enumerate(inputs)]
    while names and not names[-1]:
        names.pop()
    outputs = [f"y{i}" for i in range(n_out)]
    node = helper.make_node(op, names, outputs, **attrs)
    feeds = {n: v for i, (n, v) in enumerate(zip(names, inputs)) if n and i not in constant}
    inits = [numpy_helper.from_array(inputs[i], names[i]) for i in constant if i < len(names) and names[i]]
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info(n, onnx_elem_type(v.dtype), v.shape) for n, v in feeds.items()],
        [onnx.ValueInfoProto(name=o) for o in outputs],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 10
    return model, feeds


def run(op, inputs, attrs=None, *, opset, constant=(), n_out=1):
    model, feeds = _model(op, inputs, attrs or {}, opset, constant, n_out)
    sess = ortcore.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def reference(op, inputs, attrs=None, *, opset, n_out=1):
    model, feeds = _model(op, inputs, attrs or {}, opset, (), n_out)
    return [np.asarray(v) for v in ReferenceEvaluator(model).run(None, feeds)]


def onnxruntime_run(op, inputs, attrs=None, *, opset, n_out=1):
    model, feeds = _model(op, inputs, attrs or {}, opset, (), n_out)
    sess = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def same(expected, actual):
    """Quantized values compare exactly; dequantized ones within float rounding."""
    for e, a in zip(expected, actual):
        compare_outputs(np.asarray(e), a, rtol=1e-6, atol=0)


def integers(shape, dtype, lo=None, hi=None):
    info = ml_dtypes.iinfo(dtype)
    lo = info.min if lo is None else lo
    hi = info.max if hi is None else hi
    return RNG.integers(lo, hi + 1, shape).astype(np.int64).astype(dtype)


INT_TYPES = [np.uint8, np.int8, np.uint16, np.int16, ml_dtypes.uint4, ml_dtypes.int4, ml_dtypes.uint2, ml_dtypes.int2]
# (opset, type) pairs of QuantizeLinear-21+: the 2-bit types arrive with opset 25
INT_VERSIONS = [
    pytest.param(opset, dtype, id=f"{opset}-{np.dtype(dtype).name}")
    for opset in (21, 23, 25)
    for dtype in INT_TYPES
    if opset >= 25 or not np.dtype(dtype).name.endswith("int2")
]
X = (RNG.standard_normal((3, 8, 5)) * 6).astype(np.float32)


# -- per-axis and blocked round trips ---------------------------------------------------------


@pytest.mark.parametrize("opset", [13, 19, 21, 23, 25])
@pytest.mark.parametrize("axis", [0, 1, 2, -1])
@pytest.mark.parametrize("dtype", [np.uint8, np.int8])
def test_per_axis_against_onnxruntime(opset, axis, dtype):
    n = X.shape[axis]
    scale = RNG.uniform(0.02, 0.2, n).astype(np.float32)
    zp = integers(n, dtype, -10 if dtype == np.int8 else 0, 20)
    same(onnxruntime_run("QuantizeLinear", [X, scale, zp], {"axis": axis}, opset=opset),
         run("QuantizeLinear", [X, scale, zp], {"axis": axis}, opset=opset))
    q = integers(X.shape, dtype)
    same(onnxruntime_run("DequantizeLinear", [q, scale, zp], {"axis": axis}, opset=opset),
         run("DequantizeLinear", [q, scale, zp], {"axis": axis}, opset=opset, constant=(1, 2)))


@pytest.mark.parametrize("opset, dtype", INT_VERSIONS)
@pytest.mark.parametrize("axis", [1, -1])
def test_per_axis_round_trip_against_reference(opset, dtype, axis):
    n = X.shape[axis]
    scale = RNG.uniform(0.5, 2.0, n).astype(np.float32)
    zp = integers(n, dtype, 0, 1)
    q = run("QuantizeLinear", [X, scale, zp], {"axis": axis}, opset=opset)
    same(reference("QuantizeLinear", [X, scale, zp], {"axis": axis}, opset=opset), q)
    dq = run("DequantizeLinear", [q[0], scale, zp], {"axis": axis}, opset=opset)
    same(reference("DequantizeLinear", [q[0], scale, zp], {"axis": axis}, opset=opset), dq)


@pytest.mark.parametrize("opset, dtype", INT_VERSIONS)
@pytest.mark.parametrize("axis, block_size", [(0, 2), (1, 3), (1, 8), (2, 2), (-1, 4)])
def test_blocked_round_trip_against_reference(opset, dtype, axis, block_size):
    """Blocks along every axis, with a shorter last block where block_size does not divide."""
    shape = list(X.shape)
    shape[axis] = -(-shape[axis] // block_size)
    scale = RNG.uniform(0.5, 3.0, shape).astype(np.float32)
    zp = integers(shape, dtype, 0, 1)
    attrs = {"axis": axis, "block_size": block_size}
    q = run("QuantizeLinear", [X, scale, zp], attrs, opset=opset)
    same(reference("QuantizeLinear", [X, scale, zp], attrs, opset=opset), q)
    dq = run("DequantizeLinear", [q[0], scale, zp], attrs, opset=opset, constant=(1, 2))
    same(reference("DequantizeLinear", [q[0], scale, zp], attrs, opset=opset), dq)


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.uint16])
def test_blocked_against_onnxruntime(dtype):
    scale = RNG.uniform(0.02, 0.2, (3, 3, 5)).astype(np.float32)
    zp = integers((3, 3, 5), dtype, 0, 9)
    attrs = {"axis": 1, "block_size": 3}
    same(onnxruntime_run("QuantizeLinear", [X, scale, zp], attrs, opset=21),
         run("QuantizeLinear", [X, scale, zp], attrs, opset=21))


def test_bad_block_shape_is_rejected():
    scale = np.ones((3, 2, 5), np.float32)  # 8 / 2 blocks would need 4
    with pytest.raises(ortcore.errors.OrtCoreError):
        run("QuantizeLinear", [X, scale, np.zeros((3, 2, 5), np.uint8)], {"axis": 1, "block_size": 2}, opset=21)


# -- sub-byte types packed in TensorProto --------------------------------------------------------


@pytest.mark.parametrize("dtype, opset", [(ml_dtypes.int4, 21), (ml_dtypes.uint4, 21), (ml_dtypes.int2, 25),
                                          (ml_dtypes.uint2, 25)], ids=["int4", "uint4", "int2", "uint2"])
def test_packed_sub_byte_initializer(dtype, opset):
    """An odd-sized sub-byte initializer is stored packed (2 or 4 per byte) and unpacks exactly."""
    q = integers((3, 7), dtype)
    tensor = numpy_helper.from_array(q, "x0")
    assert len(tensor.raw_data) < q.size  # packed
    scale = RNG.uniform(0.5, 1.5, 7).astype(np.float32)
    zp = integers(7, dtype)
    (y,) = run("DequantizeLinear", [q, scale, zp], {"axis": 1}, opset=opset, constant=(0, 2))
    expected = (q.astype(np.float32) - zp.astype(np.float32)) * scale
    compare_outputs(expected, y, rtol=1e-6, atol=0)


@pytest.mark.parametrize("dtype, opset", [(ml_dtypes.int4, 21), (ml_dtypes.uint4, 23), (ml_dtypes.int2, 25)],
                         ids=["int4", "uint4", "int2"])
def test_sub_byte_output_saturates(dtype, opset):
    x = np.array([-100, -8.6, -2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 7.4, 100, np.inf, -np.inf], np.float32)
    (y,) = run("QuantizeLinear", [x, np.array(1.0, np.float32), np.zeros((), dtype)], opset=opset)
    info = ml_dtypes.iinfo(dtype)
    expected = np.clip(np.rint(x), info.min, info.max)  # ties to even; infinities saturate
    assert y.dtype == dtype
    np.testing.assert_array_equal(y.astype(np.float32), expected)


# -- float8 / float4 / float6 ------------------------------------------------------------------------

FLOAT8 = ["FLOAT8E4M3FN", "FLOAT8E4M3FNUZ", "FLOAT8E5M2", "FLOAT8E5M2FNUZ"]
XF = np.concatenate([(RNG.standard_normal(40) * 300).astype(np.float32),
                     np.array([1e6, -1e6, 0.0, np.nan, np.inf, -np.inf], np.float32)])


# float4e2m1 arrives with opset 23, the float6 types with 28
FLOAT_VERSIONS = [(name, opset) for name in FLOAT8 for opset in (19, 21, 23, 28)] + [
    ("FLOAT4E2M1", 23), ("FLOAT4E2M1", 28), ("FLOAT6E2M3", 28), ("FLOAT6E3M2", 28)]


@pytest.mark.parametrize("name, opset", FLOAT_VERSIONS)
@pytest.mark.parametrize("saturate", [0, 1])
def test_float_outputs_against_reference(name, saturate, opset):
    dtype = helper.tensor_dtype_to_np_dtype(getattr(TensorProto, name))
    scale = np.array(2.0, np.float32)
    if opset == 19:  # no output_dtype yet: the zero point's type says it
        inputs, attrs = [XF, scale, np.zeros((), dtype)], {"saturate": saturate}
    else:
        inputs, attrs = [XF, scale], {"output_dtype": getattr(TensorProto, name), "saturate": saturate}
    actual = run("QuantizeLinear", inputs, attrs, opset=opset)
    assert actual[0].dtype == dtype
    same(reference("QuantizeLinear", inputs, attrs, opset=opset), actual)
    dq = run("DequantizeLinear", [actual[0], scale], {}, opset=opset)
    same(reference("DequantizeLinear", [actual[0], scale], {}, opset=opset), dq)


@pytest.mark.parametrize("name", FLOAT8)
def test_float8_saturation_closed_form(name):
    dtype = helper.tensor_dtype_to_np_dtype(getattr(TensorProto, name))
    x = np.array([1e6, -1e6, 3.0], np.float32)
    (sat,) = run("QuantizeLinear", [x, np.array(1.0, np.float32), np.zeros((), dtype)], opset=19)
    info = ml_dtypes.finfo(dtype)
    np.testing.assert_array_equal(sat.astype(np.float32), [float(info.max), float(info.min), 3.0])
    (raw,) = run("QuantizeLinear", [x, np.array(1.0, np.float32), np.zeros((), dtype)], {"saturate": 0}, opset=19)
    expected = x.astype(dtype)  # inf where the type has it, NaN otherwise
    np.testing.assert_array_equal(raw.astype(np.float32), expected.astype(np.float32))


@pytest.mark.parametrize("xdt", [np.float16, ml_dtypes.bfloat16, np.float32], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("sdt", [np.float16, ml_dtypes.bfloat16, np.float32], ids=lambda d: np.dtype(d).name)
def test_half_inputs_and_scales(xdt, sdt):
    x = (RNG.standard_normal((6, 7)) * 10).astype(xdt)
    scale = np.array([0.07], sdt)
    zp = np.array([3], np.uint8)
    same(reference("QuantizeLinear", [x, scale, zp], opset=23), run("QuantizeLinear", [x, scale, zp], opset=23))
    q = integers((6, 7), np.uint8)
    for out in (0, TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.BFLOAT16):
        attrs = {"output_dtype": out} if out else {}
        actual = run("DequantizeLinear", [q, scale, zp], attrs, opset=23)
        assert actual[0].dtype == (helper.tensor_dtype_to_np_dtype(out) if out else np.dtype(sdt))
        same(reference("DequantizeLinear", [q, scale, zp], attrs, opset=23), actual)


@pytest.mark.parametrize("precision", [TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.BFLOAT16,
                                       TensorProto.DOUBLE])
def test_precision_attribute(precision):
    x = (RNG.standard_normal(200) * 10).astype(np.float32)
    attrs = {"precision": precision, "output_dtype": TensorProto.INT8}
    scale = np.array(0.0371, np.float32)
    same(reference("QuantizeLinear", [x, scale], attrs, opset=23), run("QuantizeLinear", [x, scale], attrs, opset=23))


def test_float8e8m0_scales():
    scale = np.array([0.25, 2, 4, 0.5], np.float32).astype(ml_dtypes.float8_e8m0fnu)
    x = (RNG.standard_normal((3, 4)) * 10).astype(np.float32)
    zp = np.zeros(4, np.int8)
    same(reference("QuantizeLinear", [x, scale, zp], {"axis": 1}, opset=24),
         run("QuantizeLinear", [x, scale, zp], {"axis": 1}, opset=24))
    q = integers((3, 4), np.int8)
    attrs = {"axis": 1, "output_dtype": TensorProto.FLOAT}
    same(reference("DequantizeLinear", [q, scale], attrs, opset=24),
         run("DequantizeLinear", [q, scale], attrs, opset=24))


@pytest.mark.parametrize("opset", [10, 13, 19])
def test_int32_and_defaults_against_onnxruntime(opset):
    """Opset 10's per-tensor form, uint8 without a zero point, int32 dequantization."""
    x = (RNG.standard_normal((4, 5)) * 50).astype(np.float32)
    scale = np.array(0.7, np.float32)
    same(onnxruntime_run("QuantizeLinear", [x, scale], opset=opset), run("QuantizeLinear", [x, scale], opset=opset))
    xi = integers((4, 5), np.int32, -100000, 100000)
    same(onnxruntime_run("DequantizeLinear", [xi, scale], opset=opset),
         run("DequantizeLinear", [xi, scale], opset=opset))
    q = integers((4, 5), np.int8)
    zp = np.array(-3, np.int8)
    same(onnxruntime_run("DequantizeLinear", [q, scale, zp], opset=opset),
         run("DequantizeLinear", [q, scale, zp], opset=opset, constant=(1, 2)))


def test_output_dtype_without_zero_point():
    (y,) = run("QuantizeLinear", [X, np.array(0.1, np.float32)], {"output_dtype": TensorProto.INT16}, opset=21)
    np.testing.assert_array_equal(y, np.clip(np.rint(X / np.float32(0.1)), -32768, 32767).astype(np.int16))


# -- DynamicQuantizeLinear -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["mixed", "positive", "negative", "zeros", "constant"])
def test_dynamic_quantize_linear(kind):
    x = {
        "mixed": RNG.standard_normal((3, 40)) * 5,
        "positive": np.abs(RNG.standard_normal(30)),
        "negative": -np.abs(RNG.standard_normal(30)),
        "zeros": np.zeros((2, 3)),  # onnxruntime's scale 1.0 for an empty range
        "constant": np.full(5, 2.5),
    }[kind].astype(np.float32)
    expected = onnxruntime_run("DynamicQuantizeLinear", [x], opset=11, n_out=3)
    actual = run("DynamicQuantizeLinear", [x], opset=11, n_out=3)
    assert [a.shape for a in actual] == [x.shape, (), ()]
    same(expected, actual)


# -- QLinearMatMul ---------------------------------------------------------------------------------


def _qmm_inputs(adt, bdt, ydt, a_shape, b_shape):
    k = a_shape[-1]
    return [
        integers(a_shape, adt), np.array(0.02, np.float32), integers((), adt),
        integers(b_shape, bdt), np.array(0.03, np.float32), integers((), bdt),
        np.array(0.02 * 0.03 * 128 * np.sqrt(k), np.float32), integers((), ydt),
    ]


SHAPES = [((5, 7), (7, 3)), ((2, 5, 300), (300, 4)), ((2, 1, 4, 6), (3, 6, 2)), ((4, 1200), (1200, 3))]


@pytest.mark.parametrize("opset", [10, 21])
@pytest.mark.parametrize("bdt", [np.uint8, np.int8])
@pytest.mark.parametrize("shapes", SHAPES, ids=str)
@pytest.mark.parametrize("constant", [(), (3, 4, 5)], ids=["runtime", "constant-b"])
def test_qlinear_matmul_against_onnxruntime(opset, bdt, shapes, constant):
    inputs = _qmm_inputs(np.uint8, bdt, np.uint8, *shapes)
    same(onnxruntime_run("QLinearMatMul", inputs, opset=opset),
         run("QLinearMatMul", inputs, opset=opset, constant=constant))


@pytest.mark.parametrize("ydt", [np.uint8, np.int8])
@pytest.mark.parametrize("shapes", SHAPES[:3], ids=str)
def test_qlinear_matmul_int8_a_against_reference(ydt, shapes):
    inputs = _qmm_inputs(np.int8, np.int8, ydt, *shapes)
    same(reference("QLinearMatMul", inputs, opset=21), run("QLinearMatMul", inputs, opset=21))


def test_qlinear_matmul_per_row_and_column():
    """Per-row a parameters (an M vector is a column) and per-column b parameters, closed form."""
    a, b = integers((4, 6), np.uint8), integers((6, 5), np.int8)
    a_scale, a_zp = RNG.uniform(0.01, 0.05, 4).astype(np.float32), integers(4, np.uint8, 100, 150)
    b_scale, b_zp = RNG.uniform(0.01, 0.05, 5).astype(np.float32), integers(5, np.int8, -5, 5)
    y_scale, y_zp = np.array(0.05, np.float32), np.array(10, np.uint8)
    (y,) = run("QLinearMatMul", [a, a_scale, a_zp, b, b_scale, b_zp, y_scale, y_zp], opset=21)
    real = ((a - a_zp[:, None].astype(np.float64)) * a_scale[:, None]) @ ((b - b_zp.astype(np.float64)) * b_scale)
    expected = np.clip(np.rint(real / y_scale) + 10, 0, 255)
    assert y.dtype == np.uint8
    assert np.abs(y.astype(np.int64) - expected).max() <= 1  # the spec's float rounding order is free


def test_qlinear_matmul_float8():
    """Opset 21 float8: dequantize, multiply, saturate into the output float8 type."""
    f8 = ml_dtypes.float8_e4m3fn
    a = RNG.standard_normal((3, 8)).astype(f8)
    b = RNG.standard_normal((8, 4)).astype(f8)
    one = np.array(1.0, np.float32)
    y_scale = np.array(0.5, np.float32)
    zero = np.zeros((), f8)
    (y,) = run("QLinearMatMul", [a, one, zero, b, one, zero, y_scale, zero], opset=21)
    expected = np.clip(a.astype(np.float32) @ b.astype(np.float32) / 0.5, -448, 448).astype(f8)
    assert y.dtype == f8
    compare_outputs(expected, y, rtol=0.07, atol=0)


# -- QLinearConv -------------------------------------------------------------------------------------

CONVS = [
    ({}, (1, 3, 7, 7), (4, 3, 3, 3)),
    ({"pads": [1, 1, 1, 1], "strides": [2, 2]}, (2, 4, 8, 9), (6, 4, 3, 3)),
    ({"group": 2, "dilations": [2, 1], "pads": [0, 1, 2, 1]}, (1, 4, 9, 8), (6, 2, 2, 3)),
    ({"auto_pad": "SAME_UPPER", "group": 4}, (1, 4, 6, 6), (4, 1, 3, 3)),
    ({"auto_pad": "SAME_LOWER", "strides": [2, 1]}, (1, 2, 5, 6), (3, 2, 2, 2)),
    ({"strides": [2]}, (2, 3, 11), (5, 3, 3)),
    ({}, (1, 64, 6, 6), (8, 64, 3, 3)),  # 576 taps: float64 accumulation
    ({"kernel_shape": [1, 1]}, (2, 5, 4, 4), (7, 5, 1, 1)),
]


def _qconv_inputs(xdt, wdt, x_shape, w_shape, per_channel, bias):
    m = w_shape[0]
    w_scale = RNG.uniform(0.005, 0.02, m).astype(np.float32) if per_channel else np.array(0.01, np.float32)
    if wdt == np.int8:  # onnxruntime wants symmetric int8 weights
        w_zp = np.zeros(m if per_channel else (), wdt)
    else:
        w_zp = integers(m if per_channel else (), wdt)
    k = w_shape[1] * int(np.prod(w_shape[2:]))
    return [
        integers(x_shape, xdt), np.array(0.05, np.float32), integers((), xdt),
        integers(w_shape, wdt), w_scale, w_zp,
        np.array(0.05 * 0.01 * 60 * np.sqrt(k), np.float32), integers((), xdt),
        RNG.integers(-5000, 5000, m).astype(np.int32) if bias else None,
    ]


@pytest.mark.parametrize("attrs, x_shape, w_shape", CONVS, ids=[str(c[0]) for c in CONVS])
@pytest.mark.parametrize("wdt", [np.uint8, np.int8])
@pytest.mark.parametrize("per_channel", [False, True])
@pytest.mark.parametrize("bias", [False, True])
def test_qlinear_conv_against_onnxruntime(attrs, x_shape, w_shape, wdt, per_channel, bias):
    inputs = _qconv_inputs(np.uint8, wdt, x_shape, w_shape, per_channel, bias)
    same(onnxruntime_run("QLinearConv", inputs, attrs, opset=10),
         run("QLinearConv", inputs, attrs, opset=10, constant=(3, 4, 5, 8)))


@pytest.mark.parametrize("attrs, x_shape, w_shape", [c for c in CONVS if len(c[1]) == 4], ids=str)
@pytest.mark.parametrize("bias", [False, True])
def test_qlinear_conv_int8_input_against_reference(attrs, x_shape, w_shape, bias):
    inputs = _qconv_inputs(np.int8, np.int8, x_shape, w_shape, True, bias)
    same(reference("QLinearConv", inputs, attrs, opset=10), run("QLinearConv", inputs, attrs, opset=10))
