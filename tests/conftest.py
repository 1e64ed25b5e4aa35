from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from ortcore.testing import make_model


@pytest.fixture
def add_relu_model():
    """y = Relu(x + b), x: float [N, 3], b an initializer."""
    b = onnx.numpy_helper.from_array(np.array([1.0, -2.0, 0.5], np.float32), "b")
    return make_model(
        [helper.make_node("Add", ["x", "b"], ["s"], name="add"), helper.make_node("Relu", ["s"], ["y"], name="relu")],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
        [b],
    )
