"""Conv, com.microsoft FusedConv and ConvTranspose on the OpenCL provider, against the CPU provider.

Cases cover the three code paths of Conv (im2col + GEMM, 1x1 straight to GEMM,
the direct kernel for depthwise / few-channel groups), 1-D/2-D/3-D, groups,
strides, dilations, explicit pads and every auto_pad, constant and
run-time weights; ConvTranspose with strides, pads, output_padding,
output_shape, auto_pad, dilations and groups. Each asserts that the node ran on
OpenCL; some are also checked against onnxruntime.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pyopencl")

import ortcore
from ortcore.errors import OrtCoreError
from ortcore.testing import compare_outputs, feeds_of, run_onnxruntime, run_ortcore, single_node_model

OPENCL = "OpenCLExecutionProvider"


@pytest.fixture(scope="module", autouse=True)
def _available():
    if OPENCL not in ortcore.get_available_providers():
        pytest.skip("no OpenCL device here")


def _rand(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


def check(op, inputs, *, initializers=(), domain="", opset=17, ort=False, **attrs):
    model = single_node_model(op, inputs, [np.float32], opset=opset, initializers=initializers, domain=domain,
                              **attrs)
    expected = run_ortcore(model, inputs)
    sess = ortcore.InferenceSession(model.SerializeToString(), providers=[OPENCL])
    assignment = sess.get_partition().assignments[0]
    assert assignment.provider.name == OPENCL, f"{op} ran on {assignment.provider.name}"
    actual = sess.run(None, feeds_of(model, inputs))[0]
    compare_outputs(expected[0], actual, rtol=1e-3, atol=1e-4, name=op)
    if ort:
        compare_outputs(run_onnxruntime(model, inputs)[0], actual, rtol=1e-3, atol=1e-4, name=f"{op} vs onnxruntime")
    return actual, sess


# (x shape, w shape, attributes)
CONV_CASES = {
    "3x3": ((1, 8, 12, 12), (16, 8, 3, 3), {"pads": [1, 1, 1, 1]}),
    "batch-stride-asym-pads": ((2, 5, 13, 11), (7, 5, 3, 3), {"strides": [2, 1], "pads": [0, 1, 2, 1]}),
    "dilations": ((1, 4, 15, 14), (9, 4, 3, 2), {"dilations": [2, 3], "pads": [2, 1, 0, 3]}),
    "stem-7x7-s2": ((1, 3, 30, 30), (16, 3, 7, 7), {"strides": [2, 2], "pads": [3, 3, 3, 3]}),
    "pointwise": ((2, 24, 7, 9), (40, 24, 1, 1), {}),
    "pointwise-stride2": ((1, 24, 9, 9), (12, 24, 1, 1), {"strides": [2, 2]}),
    "groups": ((2, 12, 9, 10), (18, 4, 3, 3), {"group": 3, "pads": [1, 1, 1, 1]}),
    "depthwise": ((2, 10, 11, 9), (10, 1, 3, 3), {"group": 10, "pads": [1, 1, 1, 1], "strides": [2, 2]}),
    "depthwise-multiplier": ((1, 6, 8, 8), (12, 1, 5, 5), {"group": 6, "pads": [2, 2, 2, 2]}),
    "same-upper": ((1, 4, 10, 11), (6, 4, 4, 3), {"auto_pad": "SAME_UPPER", "strides": [3, 2]}),
    "same-lower": ((1, 4, 10, 11), (6, 4, 4, 3), {"auto_pad": "SAME_LOWER", "strides": [2, 2]}),
    "valid": ((1, 4, 10, 11), (6, 4, 3, 5), {"auto_pad": "VALID", "strides": [1, 2]}),
    "1d": ((2, 6, 40), (8, 6, 5), {"pads": [2, 1], "strides": [2]}),
    "3d": ((1, 3, 6, 7, 8), (7, 3, 2, 3, 3), {"pads": [0, 1, 1, 1, 0, 1], "strides": [1, 2, 1]}),
    "3d-depthwise": ((1, 4, 5, 6, 6), (4, 1, 3, 3, 3), {"group": 4, "auto_pad": "SAME_UPPER"}),
    "kernel-bigger-than-input-with-pads": ((1, 2, 3, 3), (7, 2, 5, 5), {"pads": [2, 2, 2, 2]}),
}


@pytest.mark.parametrize("case", list(CONV_CASES))
@pytest.mark.parametrize("weights", ["const", "input"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no-bias"])
def test_conv(case, weights, bias):
    x_shape, w_shape, attrs = CONV_CASES[case]
    rng = np.random.default_rng(sum(x_shape) + sum(w_shape))
    inputs = {"x": _rand(rng, *x_shape), "w": _rand(rng, *w_shape), "b": _rand(rng, w_shape[0]) if bias else None}
    check("Conv", inputs, initializers=("w", "b") if weights == "const" else (), ort=case in ("groups", "3d"),
          **attrs)


@pytest.mark.parametrize("opset", [1, 11, 22])
def test_conv_opsets(opset):
    rng = np.random.default_rng(opset)
    check("Conv", {"x": _rand(rng, 1, 3, 8, 8), "w": _rand(rng, 8, 3, 3, 3)}, initializers=("w",), opset=opset,
          kernel_shape=[3, 3], pads=[1, 0, 1, 0])


def test_conv_zero_size_batch():
    rng = np.random.default_rng(0)
    model = single_node_model("Conv", {"x": _rand(rng, 1, 3, 8, 8), "w": _rand(rng, 8, 3, 3, 3)}, [np.float32],
                              opset=17, initializers=("w",))
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "n"
    sess = ortcore.InferenceSession(model.SerializeToString(), providers=[OPENCL])
    y = sess.run(None, {"x": np.zeros((0, 3, 8, 8), np.float32)})[0]
    assert y.shape == (0, 8, 6, 6)


def test_conv_declines_rank_6():
    rng = np.random.default_rng(0)
    model = single_node_model("Conv", {"x": _rand(rng, 1, 1, 3, 3, 3, 3), "w": _rand(rng, 1, 1, 2, 2, 2, 2)},
                              [np.float32], opset=17)
    sess = ortcore.InferenceSession(model.SerializeToString(), providers=[OPENCL, "CPUExecutionProvider"])
    assert sess.get_partition().assignments[0].provider.name == "CPUExecutionProvider"


def test_conv_channel_mismatch_is_an_ortcore_error():
    rng = np.random.default_rng(0)
    model = single_node_model("Conv", {"x": _rand(rng, 1, 4, 8, 8), "w": _rand(rng, 8, 4, 3, 3)}, [np.float32],
                              opset=17)
    model.graph.input[0].type.tensor_type.shape.dim[1].dim_param = "c"
    sess = ortcore.InferenceSession(model.SerializeToString(), providers=[OPENCL])
    with pytest.raises(OrtCoreError, match="channels"):
        sess.run(None, {"x": _rand(rng, 1, 5, 8, 8), "w": _rand(rng, 8, 4, 3, 3)})


FUSED_ACTIVATIONS = [
    ("Relu", None),
    ("LeakyRelu", [0.15]),
    ("Sigmoid", None),
    ("Tanh", None),
    ("Clip", [-0.5, 0.75]),
    ("HardSigmoid", [0.3, 0.45]),
]


@pytest.mark.parametrize("activation,params", FUSED_ACTIVATIONS, ids=[a for a, _ in FUSED_ACTIVATIONS])
@pytest.mark.parametrize("case", ["3x3", "depthwise", "pointwise"])
def test_fused_conv(activation, params, case):
    x_shape, w_shape, attrs = CONV_CASES[case]
    rng = np.random.default_rng(7)
    inputs = {"x": _rand(rng, *x_shape), "w": _rand(rng, *w_shape), "b": _rand(rng, w_shape[0])}
    extra = {"activation_params": params} if params else {}
    check("FusedConv", inputs, initializers=("w", "b"), domain="com.microsoft", activation=activation, **attrs,
          **extra)


@pytest.mark.parametrize("case", ["3x3", "depthwise"])
def test_fused_conv_with_sum_input(case):
    x_shape, w_shape, attrs = CONV_CASES[case]
    rng = np.random.default_rng(8)
    x, w, b = _rand(rng, *x_shape), _rand(rng, *w_shape), _rand(rng, w_shape[0])
    conv_inputs = {"x": x, "w": w, "b": b}
    y_shape = run_ortcore(single_node_model("Conv", conv_inputs, [np.float32], opset=17, **attrs), conv_inputs)[0].shape
    check("FusedConv", {"x": x, "w": w, "b": b, "z": _rand(rng, *y_shape)}, initializers=("w", "b"),
          domain="com.microsoft", activation="Relu", **attrs)


def test_conv_relu_is_fused_by_the_optimizer():
    from onnx import helper, numpy_helper

    from ortcore.testing import make_model

    rng = np.random.default_rng(9)
    w, b, x = _rand(rng, 16, 8, 3, 3), _rand(rng, 16), _rand(rng, 1, 8, 12, 12)
    model = make_model(
        [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c"], ["y"])],
        [helper.make_tensor_value_info("x", 1, [1, 8, 12, 12])],
        [helper.make_tensor_value_info("y", 1, None)],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")],
        opset=17,
    )
    sess = ortcore.InferenceSession(model.SerializeToString(), providers=[OPENCL, "CPUExecutionProvider"])
    ops = {(a.node.op_type, a.provider.name) for a in sess.get_partition().assignments}
    assert ops == {("FusedConv", OPENCL)}
    compare_outputs(run_onnxruntime(model, {"x": x})[0], sess.run(None, {"x": x})[0], rtol=1e-3, atol=1e-4)


# (x shape, w shape [C, M/group, *k], attributes)
CONV_TRANSPOSE_CASES = {
    "plain": ((1, 4, 5, 6), (4, 3, 3, 3), {}),
    "stride2-pads": ((2, 4, 5, 6), (4, 5, 3, 3), {"strides": [2, 2], "pads": [1, 1, 1, 1]}),
    "output-padding": ((1, 3, 4, 5), (3, 2, 3, 3), {"strides": [3, 2], "output_padding": [2, 1]}),
    "output-shape": ((1, 3, 4, 5), (3, 2, 3, 3), {"strides": [2, 2], "output_shape": [10, 8]}),
    "same-upper": ((1, 3, 4, 5), (3, 2, 3, 4), {"strides": [2, 2], "auto_pad": "SAME_UPPER"}),
    "same-lower": ((1, 3, 4, 5), (3, 2, 3, 4), {"strides": [2, 2], "auto_pad": "SAME_LOWER"}),
    "groups-dilations": ((2, 6, 5, 7), (6, 4, 3, 3), {"group": 2, "strides": [2, 3], "dilations": [1, 2],
                                                      "pads": [1, 0, 0, 1], "output_padding": [1, 1]}),
    "depthwise": ((1, 5, 6, 6), (5, 1, 3, 3), {"group": 5, "strides": [2, 2]}),
    "1d": ((2, 3, 9), (3, 4, 4), {"strides": [2], "pads": [1, 2]}),
    "3d": ((1, 2, 3, 4, 4), (2, 3, 2, 3, 3), {"strides": [2, 1, 2], "pads": [0, 1, 1, 1, 0, 0]}),
}


@pytest.mark.parametrize("case", list(CONV_TRANSPOSE_CASES))
@pytest.mark.parametrize("weights", ["const", "input"])
def test_conv_transpose(case, weights):
    x_shape, w_shape, attrs = CONV_TRANSPOSE_CASES[case]
    rng = np.random.default_rng(sum(x_shape) + sum(w_shape))
    group = attrs.get("group", 1)
    inputs = {"x": _rand(rng, *x_shape), "w": _rand(rng, *w_shape), "b": _rand(rng, w_shape[1] * group)}
    check("ConvTranspose", inputs, initializers=("w",) if weights == "const" else (),
          ort=case in ("groups-dilations", "output-shape"), **attrs)


@pytest.mark.parametrize("opset", [1, 11, 22])
def test_conv_transpose_opsets(opset):
    rng = np.random.default_rng(opset)
    check("ConvTranspose", {"x": _rand(rng, 1, 3, 4, 4), "w": _rand(rng, 3, 2, 3, 3)}, opset=opset,
          strides=[2, 2])
