"""The CPU provider's own graph passes: before/after graphs, checked against onnxruntime."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime
import pytest
from onnx import TensorProto, helper, numpy_helper

import ortcore
from ortcore.testing import compare_outputs, make_model
from ortcore_cpu import jit

RNG = np.random.default_rng(3)

needs_jit = pytest.mark.skipif(not jit.status()[0], reason=f"compiled loops unavailable: {jit.status()[1]}")


def _bn_act_model(act, *, shape=(2, 5, 6, 7), dtype=TensorProto.FLOAT, extra_reader=False, act_attrs=None):
    c = shape[1]
    np_dtype = helper.tensor_dtype_to_np_dtype(dtype)
    params = [
        numpy_helper.from_array(RNG.uniform(0.5, 1.5, c).astype(np_dtype), "scale"),
        numpy_helper.from_array(RNG.standard_normal(c).astype(np_dtype), "bias"),
        numpy_helper.from_array(RNG.standard_normal(c).astype(np_dtype), "mean"),
        numpy_helper.from_array(RNG.uniform(0.5, 1.5, c).astype(np_dtype), "var"),
    ]
    act_inputs = ["t"]
    if act == "Clip":
        params += [numpy_helper.from_array(np.array(-0.5, np_dtype), "lo"), numpy_helper.from_array(np.array(0.7, np_dtype), "hi")]
        act_inputs += ["lo", "hi"]
    nodes = [
        helper.make_node("BatchNormalization", ["x", "scale", "bias", "mean", "var"], ["t"], epsilon=1e-3),
        helper.make_node(act, act_inputs, ["y"], **(act_attrs or {})),
    ]
    outputs = [helper.make_tensor_value_info("y", dtype, shape)]
    if extra_reader:
        nodes.append(helper.make_node("Neg", ["t"], ["n"]))
        outputs.append(helper.make_tensor_value_info("n", dtype, shape))
    inputs = [helper.make_tensor_value_info("x", dtype, shape)]
    return make_model(nodes, inputs, outputs, params, opset=15), RNG.standard_normal(shape).astype(np_dtype)


def _optimized(model, tmp_path):
    path = tmp_path / "optimized.onnx"
    opts = ortcore.SessionOptions()
    opts.optimized_model_filepath = str(path)
    sess = ortcore.InferenceSession(model.SerializeToString(), opts)
    return sess, onnx.load(str(path))


@needs_jit
@pytest.mark.parametrize(
    "act, attrs",
    [("Relu", None), ("LeakyRelu", {"alpha": 0.2}), ("Clip", None), ("Sigmoid", None), ("HardSigmoid", {"alpha": 0.3})],
)
def test_batchnorm_activation_becomes_a_depthwise_fused_conv(tmp_path, monkeypatch, act, attrs):
    monkeypatch.setenv(jit.ENV, "1")
    model, x = _bn_act_model(act, act_attrs=attrs)
    sess, saved = _optimized(model, tmp_path)
    (node,) = saved.graph.node
    assert (node.domain, node.op_type) == ("com.microsoft", "FusedConv")
    assert helper.get_attribute_value(next(a for a in node.attribute if a.name == "group")) == 5
    expected = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    compare_outputs(expected[0], sess.run(None, {"x": x})[0], rtol=1e-5, atol=1e-6, name=act)
    onnx.checker.check_model(saved)
    reloaded = onnxruntime.InferenceSession(saved.SerializeToString(), providers=["CPUExecutionProvider"])
    compare_outputs(expected[0], reloaded.run(None, {"x": x})[0], rtol=1e-5, atol=1e-6, name=f"{act} in onnxruntime")


@pytest.mark.parametrize(
    "case, kwargs",
    [
        ("compiled loops off", {}),
        ("BN output read twice", {"extra_reader": True}),
        ("3-D input", {"shape": (2, 5, 6)}),
        ("float64", {"dtype": TensorProto.DOUBLE}),
    ],
)
def test_batchnorm_activation_is_left_alone(tmp_path, monkeypatch, case, kwargs):
    monkeypatch.setenv(jit.ENV, "0" if case == "compiled loops off" else "1")
    model, x = _bn_act_model("Relu", **kwargs)
    sess, saved = _optimized(model, tmp_path)
    assert [n.op_type for n in saved.graph.node][:2] == ["BatchNormalization", "Relu"]
    expected = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    for e, a in zip(expected, sess.run(None, {"x": x})):
        compare_outputs(e, a, rtol=1e-5, atol=1e-6, name=case)
