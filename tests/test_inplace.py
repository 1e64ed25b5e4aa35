"""Dead buffers reused in place: an elementwise kernel writes into an input at its last use."""

from __future__ import annotations

import tracemalloc

import numpy as np
import onnx
from onnx import TensorProto, helper

import ortcore
from ortcore.testing import make_model

N = 1 << 22  # 16 MiB of float32
SMALL = 1 << 15  # 128 KiB of float32: large enough to be offered for reuse


def _relu_chain(length: int):
    nodes = [helper.make_node("Relu", [f"t{i}"], [f"t{i + 1}"]) for i in range(length)]
    return make_model(
        nodes, [helper.make_tensor_value_info("t0", TensorProto.FLOAT, [N])],
        [helper.make_tensor_value_info(f"t{length}", TensorProto.FLOAT, [N])],
    )


def _session(model):
    options = ortcore.SessionOptions()
    options.graph_optimization_level = ortcore.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ortcore.InferenceSession(model.SerializeToString(), options)


def test_a_chain_of_ten_relus_needs_one_buffer():
    sess = _session(_relu_chain(10))
    x = np.random.default_rng(0).standard_normal(N).astype(np.float32)
    kept = x.copy()
    tracemalloc.start()
    try:
        y = sess.run(None, {"t0": x})[0]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    np.testing.assert_array_equal(y, np.maximum(kept, 0))
    np.testing.assert_array_equal(x, kept)  # the caller's input is never written
    assert peak < 1.5 * x.nbytes, f"peak {peak / 2**20:.1f} MiB for a {x.nbytes / 2**20:.0f} MiB chain"


def test_a_buffer_another_live_value_views_is_not_overwritten():
    # b is a view of a (Reshape); a dies at the Relu while b is still needed by the Sub
    shape = onnx.numpy_helper.from_array(np.array([2, SMALL // 2], np.int64), "shape")
    model = make_model(
        [helper.make_node("Neg", ["x"], ["a"]),
         helper.make_node("Reshape", ["a", "shape"], ["b"]),
         helper.make_node("Relu", ["a"], ["c"]),
         helper.make_node("Reshape", ["c", "shape"], ["d"]),
         helper.make_node("Sub", ["b", "d"], ["y"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [SMALL])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, SMALL // 2])],
        [shape],
    )
    sess = _session(model)
    assert "out=" in sess.plan.source  # the Relu is offered its input; the run-time check must refuse it
    x = np.random.default_rng(1).standard_normal(SMALL).astype(np.float32)
    expected = (-x - np.maximum(-x, 0)).reshape(2, SMALL // 2)
    np.testing.assert_array_equal(sess.run(None, {"x": x})[0], expected)


def test_a_value_read_again_later_is_not_donated():
    model = make_model(
        [helper.make_node("Neg", ["x"], ["a"]),
         helper.make_node("Relu", ["a"], ["r"]),
         helper.make_node("Add", ["r", "a"], ["y"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [SMALL])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [SMALL])],
    )
    sess = _session(model)
    relu_line = next(line for line in sess.plan.source.splitlines() if line.strip().startswith("v1 ="))
    assert "out=" not in relu_line  # a is read again by the Add
    x = np.random.default_rng(2).standard_normal(SMALL).astype(np.float32)
    np.testing.assert_array_equal(sess.run(None, {"x": x})[0], np.maximum(-x, 0) - x)


def test_small_values_are_not_offered_for_reuse():
    """Below 64 KiB a fresh array is cheaper than numpy's out= handling: no donation is planned."""
    sess = _session(_relu_chain(3))
    assert "out=" in sess.plan.source
    small = make_model(
        [helper.make_node("Relu", ["t0"], ["t1"]), helper.make_node("Relu", ["t1"], ["t2"])],
        [helper.make_tensor_value_info("t0", TensorProto.FLOAT, [1000])],
        [helper.make_tensor_value_info("t2", TensorProto.FLOAT, [1000])],
    )
    assert "out=" not in _session(small).plan.source
