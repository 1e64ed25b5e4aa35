"""Softmax and LogSoftmax on the OpenCL provider, against the CPU provider and numpy."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pyopencl")

import ortcore
from ortcore.errors import OrtCoreError
from ortcore.testing import compare_outputs, run_ortcore, single_node_model

OCL = "OpenCLExecutionProvider"
RNG = np.random.default_rng(7)


def session(model):
    return ortcore.InferenceSession(model.SerializeToString(), providers=[OCL, "CPUExecutionProvider"])


def check(model, feeds, *, rtol=1e-3, atol=1e-5):
    sess = session(model)
    where = [a.provider.name for a in sess.get_partition().assignments]
    assert where == [OCL] * len(where), where
    got = sess.run(None, feeds)
    want = run_ortcore(model, feeds)
    for i, (w, g) in enumerate(zip(want, got)):
        compare_outputs(w, g, rtol=rtol, atol=atol, name=f"output {i}")
    return got[0]


def np_softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
def test_opset13_along_each_axis(op):
    x = RNG.standard_normal((2, 3, 4, 5)).astype(np.float32)
    for axis in (0, 1, 2, -1):
        got = check(single_node_model(op, {"x": x}, [np.float32], opset=13, axis=axis), {"x": x})
        want = np_softmax(x.astype(np.float64), axis)
        want = np.log(want) if op == "LogSoftmax" else want
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
def test_classifier_rows_use_work_group_reduction(op):
    """1000-class rows: one work-group per row, max and sum reduced in local memory."""
    x = (RNG.standard_normal((3, 1000)) * 5).astype(np.float32)
    got = check(single_node_model(op, {"x": x}, [np.float32], opset=13), {"x": x})
    if op == "Softmax":
        np.testing.assert_allclose(got.sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
def test_opset11_coerces_to_2d(op):
    x = RNG.standard_normal((2, 3, 4)).astype(np.float32)
    for axis in (0, 1, 2, -1):
        got = check(single_node_model(op, {"x": x}, [np.float32], opset=11, axis=axis), {"x": x})
        ax = axis % 3
        flat = x.reshape(int(np.prod(x.shape[:ax])), -1).astype(np.float64)
        want = np_softmax(flat, 1)
        want = (np.log(want) if op == "LogSoftmax" else want).reshape(x.shape)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


def test_large_inputs_are_stable():
    x = np.array([[1000.0, 1001.0, 1002.0], [-1000.0, -1001.0, -1002.0]], dtype=np.float32)
    got = check(single_node_model("Softmax", {"x": x}, [np.float32], opset=13), {"x": x})
    assert np.all(np.isfinite(got))
    got = check(single_node_model("LogSoftmax", {"x": x}, [np.float32], opset=13), {"x": x})
    assert np.all(np.isfinite(got))


def test_float64_and_zero_size():
    x = RNG.standard_normal((4, 300)).astype(np.float64)
    check(single_node_model("Softmax", {"x": x}, [np.float64], opset=13), {"x": x}, rtol=1e-10, atol=1e-12)
    e = np.zeros((0, 5), dtype=np.float32)
    assert check(single_node_model("Softmax", {"x": e}, [np.float32], opset=13), {"x": e}).shape == (0, 5)


def test_bad_axis_raises_an_ortcore_error():
    x = RNG.standard_normal((2, 3)).astype(np.float32)
    sess = session(single_node_model("Softmax", {"x": x}, [np.float32], opset=13, axis=3))
    with pytest.raises(OrtCoreError, match="axis 3"):
        sess.run(None, {"x": x})
