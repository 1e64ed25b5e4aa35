"""ai.onnx.preview.training::Gradient against closed-form derivatives."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

import ortcore

TRAINING = "ai.onnx.preview.training"


def _model(nodes, inputs, outputs):
    graph = helper.make_graph(nodes, "g", inputs, outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(TRAINING, 1)])
    model.ir_version = 8
    return model.SerializeToString()


def test_gradient_with_broadcasting_matches_the_closed_form():
    # y = (a + b) * a / b - a, with b broadcast along rows
    nodes = [
        helper.make_node("Add", ["a", "b"], ["s"]),
        helper.make_node("Mul", ["s", "a"], ["m"]),
        helper.make_node("Div", ["m", "b"], ["q"]),
        helper.make_node("Sub", ["q", "a"], ["y"]),
        helper.make_node("Gradient", ["a", "b"], ["da", "db"], domain=TRAINING, xs=["a", "b"], y="y"),
    ]
    inputs = [helper.make_tensor_value_info("a", TensorProto.FLOAT, [3, 4]),
              helper.make_tensor_value_info("b", TensorProto.FLOAT, [4])]
    outputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("y", "da", "db")]
    sess = ortcore.InferenceSession(_model(nodes, inputs, outputs))
    rng = np.random.default_rng(0)
    a = rng.uniform(0.5, 2.0, (3, 4)).astype(np.float32)
    b = rng.uniform(0.5, 2.0, 4).astype(np.float32)
    y, da, db = sess.run(None, {"a": a, "b": b})
    np.testing.assert_allclose(y, (a + b) * a / b - a, rtol=1e-5)
    np.testing.assert_allclose(da, (2 * a + b) / b - 1, rtol=1e-5)
    np.testing.assert_allclose(db, (a / b - (a + b) * a / b**2).sum(axis=0), rtol=1e-4)
    assert da.shape == a.shape and db.shape == b.shape


def test_gradient_through_an_unsupported_op_is_refused_at_session_creation():
    nodes = [
        helper.make_node("Exp", ["a"], ["y"], name="exp"),
        helper.make_node("Gradient", ["a"], ["da"], domain=TRAINING, xs=["a"], y="y"),
    ]
    inputs = [helper.make_tensor_value_info("a", TensorProto.FLOAT, [2])]
    outputs = [helper.make_tensor_value_info("da", TensorProto.FLOAT, None)]
    with pytest.raises(ortcore.NotImplemented, match=r"Gradient through node 'exp' \(Exp\)"):
        ortcore.InferenceSession(_model(nodes, inputs, outputs))


def test_forward_nodes_only_gradient_reads_survive_optimization():
    nodes = [
        helper.make_node("Mul", ["a", "a"], ["y"]),  # y is no graph output: only Gradient's attribute names it
        helper.make_node("Gradient", ["a"], ["da"], domain=TRAINING, xs=["a"], y="y"),
    ]
    inputs = [helper.make_tensor_value_info("a", TensorProto.FLOAT, [3])]
    outputs = [helper.make_tensor_value_info("da", TensorProto.FLOAT, None)]
    sess = ortcore.InferenceSession(_model(nodes, inputs, outputs))
    a = np.array([1.0, -2.0, 0.5], np.float32)
    np.testing.assert_allclose(sess.run(None, {"a": a})[0], 2 * a)
