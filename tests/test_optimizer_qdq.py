"""QDQ -> integer kernels: models quantized by onnxruntime's own tool, in QDQ format.

The truth is the same model run without optimization (float ops between
DequantizeLinear/QuantizeLinear, onnx semantics) and onnxruntime. Integer
kernels may round an intermediate differently by one quantization step, so
outputs are compared within two steps of the output scale.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import ortcore
from ortcore.testing import make_model

quantization = pytest.importorskip("onnxruntime.quantization")
RNG = np.random.default_rng(7)


def _float_model():
    """Conv 3->8 (3x3) -> Relu -> Conv 8->4 (1x1, stride 2) -> Flatten -> MatMul -> 10 classes."""
    inits = [
        numpy_helper.from_array((RNG.standard_normal((8, 3, 3, 3)) * 0.3).astype(np.float32), "w1"),
        numpy_helper.from_array(RNG.uniform(-0.1, 0.1, 8).astype(np.float32), "b1"),
        numpy_helper.from_array((RNG.standard_normal((4, 8, 1, 1)) * 0.3).astype(np.float32), "w2"),
        numpy_helper.from_array(RNG.uniform(-0.1, 0.1, 4).astype(np.float32), "b2"),
        numpy_helper.from_array((RNG.standard_normal((64, 10)) * 0.2).astype(np.float32), "w3"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], strides=[2, 2], name="conv2"),
        helper.make_node("Flatten", ["c2"], ["f"], name="flatten"),
        helper.make_node("MatMul", ["f", "w3"], ["y"], name="fc"),
    ]
    return make_model(
        nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])], inits, opset=13,
    )


class _Reader(quantization.CalibrationDataReader):
    def __init__(self):
        self.batches = iter([{"x": RNG.random((1, 3, 8, 8), np.float32)} for _ in range(16)])

    def get_next(self):
        return next(self.batches, None)


@pytest.fixture(scope="module", params=[False, True], ids=["per-tensor", "per-channel"])
def qdq_model(request, tmp_path_factory):
    d = tmp_path_factory.mktemp("qdq")
    onnx.save(_float_model(), d / "float.onnx")
    quantization.quantize_static(
        str(d / "float.onnx"), str(d / "qdq.onnx"), _Reader(), quant_format=quantization.QuantFormat.QDQ,
        activation_type=quantization.QuantType.QUInt8, weight_type=quantization.QuantType.QInt8,
        per_channel=request.param,
    )
    return str(d / "qdq.onnx"), d


def _ops(sess):
    return [a.node.op_type for a in sess.get_partition().assignments]


def _output_scale(path):
    model = onnx.load(path)
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    last_dq = next(n for n in reversed(model.graph.node) if n.op_type == "DequantizeLinear")
    return float(inits[last_dq.input[1]])


def test_conv_and_matmul_run_as_integer_kernels(qdq_model):
    path, _ = qdq_model
    sess = ortcore.InferenceSession(path)
    ops = _ops(sess)
    assert ops.count("QLinearConv") == 2 and ops.count("QLinearMatMul") == 1, ops
    assert "Conv" not in ops and "MatMul" not in ops
    assert any(line.startswith("qdq_fusion: 3") for line in sess.get_optimization_log())


def test_integer_kernels_match_the_float_qdq_path_and_onnxruntime(qdq_model):
    import onnxruntime

    path, _ = qdq_model
    step = _output_scale(path)
    x = RNG.random((1, 3, 8, 8), np.float32)
    options = ortcore.SessionOptions()
    options.graph_optimization_level = ortcore.GraphOptimizationLevel.ORT_DISABLE_ALL
    unfused = ortcore.InferenceSession(path, options).run(None, {"x": x})[0]
    fused = ortcore.InferenceSession(path).run(None, {"x": x})[0]
    ort = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    assert np.abs(fused - unfused).max() <= 2 * step + 1e-6
    assert np.abs(fused - ort).max() <= 2 * step + 1e-6
    assert np.abs(unfused).max() > 10 * step  # the comparison is not trivially within tolerance


def test_saved_optimized_model_runs_in_onnxruntime(qdq_model):
    import onnxruntime

    path, d = qdq_model
    options = ortcore.SessionOptions()
    options.optimized_model_filepath = str(d / "optimized.onnx")
    sess = ortcore.InferenceSession(path, options)
    saved = onnx.load(str(d / "optimized.onnx"))
    onnx.checker.check_model(saved, full_check=True)
    assert "QLinearConv" in {n.op_type for n in saved.graph.node}
    x = RNG.random((1, 3, 8, 8), np.float32)
    ort = onnxruntime.InferenceSession(str(d / "optimized.onnx"), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(ort.run(None, {"x": x})[0], sess.run(None, {"x": x})[0], atol=2 * _output_scale(path) + 1e-6)


def test_basic_level_keeps_the_qdq_form_and_its_numbers(qdq_model):
    path, _ = qdq_model
    options = ortcore.SessionOptions()
    options.graph_optimization_level = ortcore.GraphOptimizationLevel.ORT_ENABLE_BASIC
    sess = ortcore.InferenceSession(path, options)
    assert "QLinearConv" not in _ops(sess) and "Conv" in _ops(sess)
