"""Basic-level passes: before/after graphs and numerical equality with the unoptimized model."""

from __future__ import annotations

import numpy as np
import pytest
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


def _ort_run(model_bytes, feeds):
    return onnxruntime.InferenceSession(model_bytes, providers=["CPUExecutionProvider"]).run(None, feeds)


def test_extended_fusions_on_the_demo_cnn_match_unoptimized_and_onnxruntime(tmp_path):
    from ortcore.demo import build_demo_model

    model = build_demo_model()
    plain = _session(model, ortcore.GraphOptimizationLevel.ORT_DISABLE_ALL)
    opts = ortcore.SessionOptions()
    opts.graph_optimization_level = ortcore.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    opts.optimized_model_filepath = str(tmp_path / "fused.onnx")
    fused = ortcore.InferenceSession(model.SerializeToString(), opts)
    assert _ops(plain)[:4] == ["Conv", "BatchNormalization", "Relu", "MaxPool"]
    assert _ops(fused) == ["FusedConv", "MaxPool", "FusedConv", "GlobalAveragePool", "Flatten", "Gemm", "Softmax"]
    x = np.random.default_rng(5).standard_normal((2, 3, 32, 32)).astype(np.float32)
    expected = _ort_run(model.SerializeToString(), {"image": x})[0]
    np.testing.assert_allclose(fused.run(None, {"image": x})[0], expected, rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(plain.run(None, {"image": x})[0], expected, rtol=1e-3, atol=1e-5)
    # the saved optimized model uses onnxruntime's com.microsoft ops and runs there too
    saved = open(opts.optimized_model_filepath, "rb").read()
    np.testing.assert_allclose(_ort_run(saved, {"image": x})[0], expected, rtol=1e-3, atol=1e-5)


def test_conv_add_and_matmul_add_and_gemm_relu_fusions():
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((4, 2, 3, 3)).astype(np.float32), "w")
    bias = numpy_helper.from_array(rng.standard_normal((1, 4, 1, 1)).astype(np.float32), "bias")
    fc = numpy_helper.from_array(rng.standard_normal((16, 5)).astype(np.float32), "fc")
    fcb = numpy_helper.from_array(rng.standard_normal(5).astype(np.float32), "fcb")
    model = make_model(
        [
            helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
            helper.make_node("Add", ["c", "bias"], ["cb"]),
            helper.make_node("Reshape", ["cb", "shape"], ["flat"]),
            helper.make_node("MatMul", ["flat", "fc"], ["mm"]),
            helper.make_node("Add", ["mm", "fcb"], ["g"]),
            helper.make_node("Relu", ["g"], ["y"]),
        ],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 2, 2, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 5])],
        [w, bias, fc, fcb, numpy_helper.from_array(np.array([3, 16], np.int64), "shape")],
    )
    fused = _session(model, ortcore.GraphOptimizationLevel.ORT_ENABLE_ALL)
    assert _ops(fused) == ["Conv", "Reshape", "FusedGemm"]
    x = rng.standard_normal((3, 2, 2, 2)).astype(np.float32)
    np.testing.assert_allclose(fused.run(None, {"x": x})[0], _ort_run(model.SerializeToString(), {"x": x})[0],
                               rtol=1e-3, atol=1e-5)


def test_shared_intermediate_values_are_not_fused():
    # The Conv output is read twice, so folding the Add into it would change the other reader.
    w = numpy_helper.from_array(np.ones((1, 1, 1, 1), np.float32), "w")
    b = numpy_helper.from_array(np.ones((1, 1, 1, 1), np.float32), "b")
    model = make_model(
        [helper.make_node("Conv", ["x", "w"], ["c"]), helper.make_node("Add", ["c", "b"], ["y"]),
         helper.make_node("Neg", ["c"], ["z"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 2, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 2, 2]),
         helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 1, 2, 2])],
        [w, b],
    )
    sess = _session(model, ortcore.GraphOptimizationLevel.ORT_ENABLE_ALL)
    assert sorted(_ops(sess)) == ["Add", "Conv", "Neg"]
    x = np.arange(4, dtype=np.float32).reshape(1, 1, 2, 2)
    y, z = sess.run(None, {"x": x})
    np.testing.assert_array_equal(y, x + 1)
    np.testing.assert_array_equal(z, -x)


@pytest.mark.parametrize("act, attrs", [("LeakyRelu", {"alpha": 0.3}), ("HardSigmoid", {"alpha": 0.3, "beta": 0.4})])
def test_gemm_activation_with_parameters_fuses_in_onnxruntime_spelling(tmp_path, act, attrs):
    rng = np.random.default_rng(1)
    model = make_model(
        [helper.make_node("Gemm", ["x", "w", "b"], ["g"], transB=1),
         helper.make_node(act, ["g"], ["y"], **attrs)],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 5])],
        [numpy_helper.from_array(rng.standard_normal((5, 6)).astype(np.float32), "w"),
         numpy_helper.from_array(rng.standard_normal(5).astype(np.float32), "b")],
    )
    opts = ortcore.SessionOptions()
    opts.optimized_model_filepath = str(tmp_path / "fused.onnx")
    sess = ortcore.InferenceSession(model.SerializeToString(), opts)
    assert _ops(sess) == ["FusedGemm"]
    x = rng.standard_normal((4, 6)).astype(np.float32)
    expected = _ort_run(model.SerializeToString(), {"x": x})[0]
    np.testing.assert_allclose(sess.run(None, {"x": x})[0], expected, rtol=1e-4, atol=1e-6)
    saved = open(opts.optimized_model_filepath, "rb").read()
    np.testing.assert_allclose(_ort_run(saved, {"x": x})[0], expected, rtol=1e-4, atol=1e-6)
