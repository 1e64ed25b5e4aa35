"""Basic-level passes: before/after graphs and numerical equality with the unoptimized model."""

from __future__ import annotations

import numpy as np
import onnxruntime
from onnx import TensorProto, helper, numpy_helper

import ortcore
from ortcore.testing import make_model


def _session(model, level):
    opts = ortcore.SessionOptions()
    opts.graph_optimization_level = level
    return ortcore.InferenceSession(model.SerializeToString(), opts)


def _ops(sess):
    return [a.node.op_type for a in sess.get_partition().assignments]


def _chain_model():
    # y = Relu(x * (c + 1)) with an Identity and a Dropout in the way, plus a dead branch.
    c = numpy_helper.from_array(np.array([1.0, 2.0, 3.0], np.float32), "c")
    one = numpy_helper.from_array(np.array(1.0, np.float32), "one")
    return make_model(
        [
            helper.make_node("Add", ["c", "one"], ["c1"]),
            helper.make_node("Identity", ["c1"], ["c2"]),
            helper.make_node("Mul", ["x", "c2"], ["m"]),
            helper.make_node("Dropout", ["m"], ["d"]),
            helper.make_node("Relu", ["d"], ["y"]),
            helper.make_node("Neg", ["x"], ["unused"]),
        ],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
        [c, one],
        ir_version=3,
    )


def test_basic_passes_fold_constants_and_remove_identity_dropout_and_dead_nodes():
    model = _chain_model()
    unoptimized = _session(model, ortcore.GraphOptimizationLevel.ORT_DISABLE_ALL)
    optimized = _session(model, ortcore.GraphOptimizationLevel.ORT_ENABLE_BASIC)
    assert _ops(unoptimized) == ["Add", "Identity", "Mul", "Dropout", "Relu", "Neg"]
    assert _ops(optimized) == ["Mul", "Relu"]
    x = np.array([[1, -1, 2], [-2, 3, -3]], np.float32)
    expected = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.testing.assert_allclose(optimized.run(None, {"x": x})[0], expected, rtol=1e-6)
    np.testing.assert_allclose(unoptimized.run(None, {"x": x})[0], expected, rtol=1e-6)


def test_overridable_initializers_are_not_folded():
    w = numpy_helper.from_array(np.array([1.0, 2.0], np.float32), "w")
    one = numpy_helper.from_array(np.array(1.0, np.float32), "one")
    model = make_model(
        [helper.make_node("Add", ["w", "one"], ["w1"]), helper.make_node("Mul", ["x", "w1"], ["y"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2]), helper.make_tensor_value_info("w", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
        [w, one],
    )
    sess = _session(model, ortcore.GraphOptimizationLevel.ORT_ENABLE_ALL)
    x = np.array([1.0, 1.0], np.float32)
    np.testing.assert_array_equal(sess.run(None, {"x": x})[0], [2.0, 3.0])
    np.testing.assert_array_equal(sess.run(None, {"x": x, "w": np.array([4.0, 5.0], np.float32)})[0], [5.0, 6.0])


def test_identity_feeding_a_graph_output_is_kept():
    model = make_model(
        [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Identity", ["r"], ["y"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
    )
    sess = _session(model, ortcore.GraphOptimizationLevel.ORT_ENABLE_ALL)
    np.testing.assert_array_equal(sess.run(["y"], {"x": np.array([-1.0, 1.0], np.float32)})[0], [0.0, 1.0])


def test_graph_input_returned_as_output_is_a_copy():
    model = make_model(
        [helper.make_node("Relu", ["x"], ["y"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2]), helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
    )
    x = np.array([-1.0, 1.0], np.float32)
    _, x_out = ortcore.InferenceSession(model.SerializeToString()).run(None, {"x": x})
    assert x_out is not x and not np.shares_memory(x_out, x)
    np.testing.assert_array_equal(x_out, x)


def test_light_model_constant_weights_are_folded_once():
    from ortcore.testing import light_model_path

    sess = ortcore.InferenceSession(str(light_model_path("squeezenet")))
    assert "ConstantOfShape" not in _ops(sess)
