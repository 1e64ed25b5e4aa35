"""Every error category a user meets: class, and a message naming the thing."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import ortcore
from ortcore.testing import make_model


@pytest.fixture
def sess(add_relu_model):
    return ortcore.InferenceSession(add_relu_model.SerializeToString())


def test_unknown_feed_name_suggests_the_right_one(sess):
    with pytest.raises(ortcore.InvalidArgument, match=r"unknown input name 'X'.*did you mean 'x'"):
        sess.run(None, {"X": np.zeros((1, 3), np.float32)})


def test_missing_input_is_named(sess):
    with pytest.raises(ortcore.InvalidArgument, match=r"missing required input\(s\) \['x'\]"):
        sess.run(None, {})


def test_wrong_dtype_names_input_expected_and_given(sess):
    with pytest.raises(ortcore.InvalidArgument, match=r"input 'x': expected tensor\(float\).*got an array of float64"):
        sess.run(None, {"x": np.zeros((1, 3), np.float64)})


def test_wrong_rank(sess):
    with pytest.raises(ortcore.InvalidArgument, match=r"input 'x': expected rank 2.*got rank 1"):
        sess.run(None, {"x": np.zeros(3, np.float32)})


def test_mismatched_static_dim(sess):
    with pytest.raises(ortcore.InvalidArgument, match=r"input 'x': dimension 1 must be 3, got 4"):
        sess.run(None, {"x": np.zeros((2, 4), np.float32)})


def test_symbolic_dim_accepts_any_size(sess):
    out = sess.run(None, {"x": np.zeros((5, 3), np.float32)})[0]
    np.testing.assert_array_equal(out, np.maximum(np.array([1.0, -2.0, 0.5], np.float32), 0)[None].repeat(5, 0))


def test_unknown_output_name(sess):
    with pytest.raises(ortcore.InvalidArgument, match=r"unknown output name 'Y'.*did you mean 'y'"):
        sess.run(["Y"], {"x": np.zeros((1, 3), np.float32)})


def test_errors_are_raised_before_any_kernel_runs(add_relu_model):
    calls = []
    sess = ortcore.InferenceSession(add_relu_model.SerializeToString())
    sess._plan.run = lambda *a: calls.append(a)  # any kernel call would go through here
    with pytest.raises(ortcore.InvalidArgument):
        sess.run(None, {"x": np.zeros((1, 3), np.int32)})
    assert calls == []


def test_missing_file(tmp_path):
    path = tmp_path / "nope.onnx"
    with pytest.raises(ortcore.NoSuchFile, match="nope.onnx"):
        ortcore.InferenceSession(str(path))


def test_file_that_is_not_onnx(tmp_path):
    path = tmp_path / "notes.onnx"
    path.write_text("these are not the bytes of a model\n" * 20)
    with pytest.raises(ortcore.InvalidProtobuf, match="notes.onnx"):
        ortcore.InferenceSession(str(path))


def test_truncated_file(tmp_path):
    from ortcore.demo import build_demo_model

    data = build_demo_model().SerializeToString()
    path = tmp_path / "cut.onnx"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ortcore.InvalidProtobuf, match=r"cut.onnx.*(corrupt or truncated|not an ONNX model)"):
        ortcore.InferenceSession(str(path))


def test_errors_share_one_base_class():
    for cls in (ortcore.InvalidArgument, ortcore.NoSuchFile, ortcore.InvalidProtobuf, ortcore.NotImplemented,
                ortcore.InvalidGraph, ortcore.Fail, ortcore.EPFail):
        assert issubclass(cls, ortcore.OrtCoreError)


def test_unsupported_op_names_op_domain_version_and_providers():
    model = make_model(
        [helper.make_node("FrobnicateTensor", ["x"], ["y"], domain="com.example", name="frob")],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
        domains=["com.example"],
    )
    with pytest.raises(ortcore.NotImplemented) as info:
        ortcore.InferenceSession(model.SerializeToString())
    message = str(info.value)
    for part in ("FrobnicateTensor", "com.example", "opset 1", "CPUExecutionProvider", "'frob'"):
        assert part in message


def test_undefined_value_is_an_invalid_graph():
    model = make_model(
        [helper.make_node("Relu", ["ghost"], ["y"], name="r")],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
    )
    with pytest.raises(ortcore.InvalidGraph, match=r"'r'.*'ghost'"):
        ortcore.InferenceSession(model.SerializeToString())


def test_kernel_error_names_node_op_and_provider_and_chains_cause():
    # Reshape of 6 elements to [5]: numpy raises; the shape is a graph input so nothing folds it.
    model = make_model(
        [helper.make_node("Reshape", ["x", "shape"], ["y"], name="bad_reshape")],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [6]),
         helper.make_tensor_value_info("shape", TensorProto.INT64, ["rank"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    sess = ortcore.InferenceSession(model.SerializeToString())
    with pytest.raises(ortcore.Fail) as info:
        sess.run(None, {"x": np.zeros(6, np.float32), "shape": np.array([5], np.int64)})
    message = str(info.value)
    assert "'bad_reshape'" in message and "Reshape" in message and "CPUExecutionProvider" in message
    assert info.value.__cause__ is not None and not isinstance(info.value.__cause__, ortcore.OrtCoreError)
    # the session stays usable after a failed run
    out = sess.run(None, {"x": np.arange(6, dtype=np.float32), "shape": np.array([2, 3], np.int64)})[0]
    assert out.shape == (2, 3)


def test_unknown_provider_is_an_ep_failure(add_relu_model):
    with pytest.raises(ortcore.EPFail, match="NoSuchExecutionProvider"):
        ortcore.InferenceSession(add_relu_model.SerializeToString(), providers=["NoSuchExecutionProvider"])
