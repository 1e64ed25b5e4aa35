"""Basic-level passes: before/after graphs and numerical equality with the unoptimized model."""

from __future__ import annotations

import numpy as np
import pytest
import onnxruntime
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

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


@pytest.mark.parametrize("mask_read", [False, True])
def test_dropout_with_a_mask_output_is_removed_only_when_nobody_reads_the_mask(mask_read):
    """The light models' Dropout nodes name a mask output that nothing uses."""
    nodes = [helper.make_node("Dropout", ["x"], ["d", "mask"], ratio=0.5), helper.make_node("Relu", ["d"], ["y"])]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])]
    if mask_read:
        nodes.append(helper.make_node("Not", ["mask"], ["kept"]))
        outputs.append(helper.make_tensor_value_info("kept", TensorProto.BOOL, [2, 3]))
    model = make_model(
        nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])], outputs, opset=10, ir_version=5
    )
    optimized = _session(model, ortcore.GraphOptimizationLevel.ORT_ENABLE_BASIC)
    assert ("Dropout" in _ops(optimized)) == mask_read
    x = np.array([[1, -1, 2], [-2, 3, -3]], np.float32)
    # onnx.reference, not onnxruntime: onnxruntime's Dropout-10 gives an all-false inference mask, the spec all-true
    expected = ReferenceEvaluator(model).run(None, {"x": x})
    for e, a in zip(expected, optimized.run(None, {"x": x})):
        np.testing.assert_array_equal(a, e)


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


def _check_against_onnxruntime(model, feeds, tmp_path, expected_ops, level=ortcore.GraphOptimizationLevel.ORT_ENABLE_ALL):
    """The optimized session has ``expected_ops``; it, the saved optimized model in onnxruntime
    and the unoptimized session all match onnxruntime on the original model."""
    opts = ortcore.SessionOptions()
    opts.graph_optimization_level = level
    opts.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    sess = ortcore.InferenceSession(model.SerializeToString(), opts)
    assert _ops(sess) == expected_ops
    expected = _ort_run(model.SerializeToString(), feeds)
    plain = _session(model, ortcore.GraphOptimizationLevel.ORT_DISABLE_ALL)
    saved = open(opts.optimized_model_filepath, "rb").read()
    for got in (sess.run(None, feeds), plain.run(None, feeds), _ort_run(saved, feeds)):
        for g, e in zip(got, expected):
            np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("scale_shape", [(1, 4, 1, 1), (4, 1, 1), (1,), ()])
def test_conv_mul_add_fold_into_conv_weights_and_bias(tmp_path, scale_shape):
    """Conv -> BatchNormalization -> Mul -> Add (DenseNet's Caffe Scale layer) becomes one Conv."""
    rng = np.random.default_rng(2)
    c = lambda *s: rng.uniform(0.5, 1.5, s).astype(np.float32)  # noqa: E731
    model = make_model(
        [
            helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
            helper.make_node("BatchNormalization", ["c", "s", "t", "mu", "var"], ["bn"]),
            helper.make_node("Mul", ["k", "bn"], ["m"]),
            helper.make_node("Add", ["m", "a"], ["y"]),
        ],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 5, 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4, 5, 5])],
        [numpy_helper.from_array(v, n) for n, v in
         dict(w=c(4, 3, 3, 3) - 1, b=c(4), s=c(4), t=c(4), mu=c(4) - 1, var=c(4),
              k=c(*scale_shape), a=c(1, 4, 1, 1)).items()],
    )
    feeds = {"x": rng.standard_normal((2, 3, 5, 5)).astype(np.float32)}
    _check_against_onnxruntime(model, feeds, tmp_path, ["Conv"], ortcore.GraphOptimizationLevel.ORT_ENABLE_EXTENDED)


def test_batchnorm_followed_by_mul_and_add_is_one_batchnorm(tmp_path):
    """Pre-activation BN -> Mul -> Add -> Relu (not after a Conv) folds the affine ops into the BN."""
    rng = np.random.default_rng(3)
    c = lambda *s: rng.uniform(0.5, 1.5, s).astype(np.float32)  # noqa: E731
    model = make_model(
        [
            helper.make_node("BatchNormalization", ["x", "s", "t", "mu", "var"], ["bn"], epsilon=1e-3),
            helper.make_node("Mul", ["bn", "k"], ["m"]),
            helper.make_node("Add", ["m", "a"], ["r"]),
            helper.make_node("Relu", ["r"], ["y"]),
        ],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4, 3, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4, 3, 3])],
        [numpy_helper.from_array(v, n) for n, v in
         dict(s=c(4), t=c(4) - 1, mu=c(4) - 1, var=c(4), k=c(4, 1, 1), a=c(4, 1, 1) - 1).items()],
    )
    feeds = {"x": rng.standard_normal((2, 4, 3, 3)).astype(np.float32)}
    # extended: at level all the CPU provider's own pass goes on to fuse BatchNormalization + Relu
    extended = ortcore.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    _check_against_onnxruntime(model, feeds, tmp_path, ["BatchNormalization", "Relu"], level=extended)


def test_affine_folds_leave_non_per_channel_constants_alone():
    """A Mul by a constant that varies over space is not a per-channel scale: nothing is folded."""
    rng = np.random.default_rng(4)
    model = make_model(
        [
            helper.make_node("Conv", ["x", "w"], ["c"]),
            helper.make_node("Mul", ["c", "k"], ["m"]),
            helper.make_node("BatchNormalization", ["m", "s", "s", "s", "s"], ["bn"]),
            helper.make_node("Mul", ["bn", "k"], ["y"]),
        ],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 3, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 3, 3])],
        [numpy_helper.from_array(rng.uniform(0.5, 1.5, (2, 2, 1, 1)).astype(np.float32), "w"),
         numpy_helper.from_array(rng.uniform(0.5, 1.5, (1, 1, 3, 3)).astype(np.float32), "k"),
         numpy_helper.from_array(np.ones(2, np.float32), "s")],
    )
    sess = _session(model, ortcore.GraphOptimizationLevel.ORT_ENABLE_ALL)
    assert _ops(sess) == ["Conv", "Mul", "BatchNormalization", "Mul"]
    x = rng.standard_normal((1, 2, 3, 3)).astype(np.float32)
    np.testing.assert_allclose(sess.run(None, {"x": x})[0], _ort_run(model.SerializeToString(), {"x": x})[0],
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("add_op, z_first", [("Add", False), ("Sum", True)])
def test_residual_conv_add_relu_becomes_fused_conv_with_z(tmp_path, add_op, z_first):
    """Conv + Add/Sum(skip) + Relu -> FusedConv(X, W, B, Z); Z is computed after the Conv here."""
    rng = np.random.default_rng(5)
    w = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731
    conv = helper.make_node("Conv", ["x", "w1"], ["c"], pads=[1, 1, 1, 1])
    skip = helper.make_node("Conv", ["x", "w2", "b2"], ["z"])
    add = helper.make_node(add_op, ["z", "c"] if z_first else ["c", "z"], ["s"])
    model = make_model(
        [conv, skip, add, helper.make_node("Relu", ["s"], ["y"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 6, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4, 6, 6])],
        [numpy_helper.from_array(w(4, 3, 3, 3), "w1"), numpy_helper.from_array(w(4, 3, 1, 1), "w2"),
         numpy_helper.from_array(w(4), "b2")],
    )
    feeds = {"x": w(2, 3, 6, 6)}
    _check_against_onnxruntime(model, feeds, tmp_path, ["Conv", "FusedConv"])


def test_residual_add_that_broadcasts_is_not_fused_into_conv():
    """Z must have the Conv output's shape: a broadcasting Add stays an Add."""
    rng = np.random.default_rng(6)
    model = make_model(
        [helper.make_node("Conv", ["x", "w"], ["c"]), helper.make_node("Add", ["c", "z"], ["s"]),
         helper.make_node("Relu", ["s"], ["y"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 3, 3]),
         helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 2, 1, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 3, 3])],
        [numpy_helper.from_array(rng.standard_normal((2, 2, 1, 1)).astype(np.float32), "w")],
    )
    assert _ops(_session(model, ortcore.GraphOptimizationLevel.ORT_ENABLE_ALL)) == ["Conv", "Add", "Relu"]
