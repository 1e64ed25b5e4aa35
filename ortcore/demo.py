"""A small CNN classifier built on the fly: the model the quick start runs."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

__all__ = ["build_demo_model"]


def build_demo_model(seed: int = 0, batch: int | str = "N") -> onnx.ModelProto:
    """Conv-BN-Relu-Pool x2, GlobalAveragePool, Gemm, Softmax over 10 classes, seeded weights."""
    rng = np.random.default_rng(seed)

    def he(*shape: int) -> np.ndarray:
        fan_in = int(np.prod(shape[1:]))
        return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)

    inits = {
        "conv1.w": he(8, 3, 3, 3),
        "conv1.b": np.zeros(8, np.float32),
        "bn1.scale": rng.uniform(0.5, 1.5, 8).astype(np.float32),
        "bn1.bias": rng.uniform(-0.1, 0.1, 8).astype(np.float32),
        "bn1.mean": rng.uniform(-0.1, 0.1, 8).astype(np.float32),
        "bn1.var": rng.uniform(0.5, 1.5, 8).astype(np.float32),
        "conv2.w": he(16, 8, 3, 3),
        "conv2.b": rng.uniform(-0.1, 0.1, 16).astype(np.float32),
        "fc.w": he(10, 16),
        "fc.b": np.zeros(10, np.float32),
    }
    nodes = [
        helper.make_node("Conv", ["image", "conv1.w", "conv1.b"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c1", "bn1.scale", "bn1.bias", "bn1.mean", "bn1.var"], ["b1"], name="bn1"),
        helper.make_node("Relu", ["b1"], ["r1"], name="relu1"),
        helper.make_node("MaxPool", ["r1"], ["p1"], name="pool1", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p1", "conv2.w", "conv2.b"], ["c2"], name="conv2", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        helper.make_node("GlobalAveragePool", ["r2"], ["g"], name="gap"),
        helper.make_node("Flatten", ["g"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "fc.w", "fc.b"], ["logits"], name="fc", transB=1),
        helper.make_node("Softmax", ["logits"], ["probabilities"], name="softmax", axis=-1),
    ]
    graph = helper.make_graph(
        nodes,
        "ortcore_demo_cnn",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [batch, 3, 32, 32])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [batch, 10])],
        initializer=[numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="ortcore-demo")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model
