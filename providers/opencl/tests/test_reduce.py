"""Reductions and ArgMax/ArgMin on the OpenCL provider, against the CPU provider (numpy)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pyopencl")

import ortcore
from ortcore.errors import OrtCoreError
from ortcore.testing import compare_outputs, run_ortcore, single_node_model

OCL = "OpenCLExecutionProvider"
RNG = np.random.default_rng(20240611)

OPS = ("ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceSumSquare",
       "ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp")


def session(model):
    return ortcore.InferenceSession(model.SerializeToString(), providers=[OCL, "CPUExecutionProvider"])


def check(model, feeds, *, rtol=1e-3, atol=1e-4):
    """Run on OpenCL (asserting every node ran there) and compare with the CPU provider."""
    sess = session(model)
    where = [a.provider.name for a in sess.get_partition().assignments]
    assert where == [OCL] * len(where), where
    got = sess.run(None, feeds)
    want = run_ortcore(model, feeds)
    assert len(got) == len(want)
    for i, (w, g) in enumerate(zip(want, got)):
        compare_outputs(w, g, rtol=rtol, atol=atol, name=f"output {i}")
    return got


def data(op, shape, dtype=np.float32):
    if np.dtype(dtype).kind in "iu":
        return RNG.integers(0 if np.dtype(dtype).kind == "u" else -3, 4, shape).astype(dtype)
    if op == "ReduceLogSum":  # log needs a positive sum
        return RNG.uniform(0.1, 1.0, shape).astype(dtype)
    if op == "ReduceProd":  # keep products of many factors near 1
        return RNG.uniform(0.8, 1.25, shape).astype(dtype)
    return RNG.standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("op", OPS)
def test_axes_and_keepdims_opset13_attribute(op):
    x = data(op, (3, 4, 5, 6))
    for axes, keep in (([1], 1), ([0, 2], 0), ([-1], 1), ([1, 3], 1), (None, 0), ([0, 1, 2, 3], 1)):
        attrs = {"keepdims": keep} if axes is None else {"axes": axes, "keepdims": keep}
        if op == "ReduceSum":  # ReduceSum takes axes as an input from opset 13 on: use 11 here
            model = single_node_model(op, {"x": x}, [np.float32], opset=11, **attrs)
        else:
            model = single_node_model(op, {"x": x}, [np.float32], opset=13, **attrs)
        check(model, {"x": x})


@pytest.mark.parametrize("op", OPS)
def test_long_rows_use_work_group_reduction(op):
    """Rows of >= 256 elements reduce in local memory; reducing everything too."""
    x = data(op, (3, 1000))
    check(single_node_model(op, {"x": x}, [np.float32], opset=11, axes=[1]), {"x": x})
    check(single_node_model(op, {"x": x}, [np.float32], opset=11, keepdims=0), {"x": x})


def test_axes_input_constant_and_dynamic():
    x = data("ReduceMean", (2, 3, 4))
    axes = np.array([0, -1], dtype=np.int64)
    check(single_node_model("ReduceMean", {"x": x, "axes": axes}, [np.float32], opset=18, initializers=("axes",)),
          {"x": x})
    # axes fed at run time
    check(single_node_model("ReduceMean", {"x": x, "axes": axes}, [np.float32], opset=18), {"x": x, "axes": axes})
    check(single_node_model("ReduceSum", {"x": x, "axes": axes}, [np.float32], opset=13, keepdims=0),
          {"x": x, "axes": axes})


def test_noop_with_empty_axes_keeps_the_elementwise_part():
    x = data("ReduceL1", (2, 3))
    empty = np.array([], dtype=np.int64)
    for op in ("ReduceSum", "ReduceL1", "ReduceL2", "ReduceSumSquare", "ReduceLogSumExp"):
        opset = 13 if op == "ReduceSum" else 18
        model = single_node_model(op, {"x": x, "axes": empty}, [np.float32], opset=opset,
                                  initializers=("axes",), noop_with_empty_axes=1)
        got = check(model, {"x": x})[0]
        assert got.shape == x.shape


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint32])
@pytest.mark.parametrize("op", ["ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1"])
def test_integer_reductions_are_exact(op, dtype):
    x = data(op, (4, 5, 6), dtype)
    for axes in ([1], [0, 2], None):
        attrs = {} if axes is None else {"axes": axes}
        check(single_node_model(op, {"x": x}, [dtype], opset=11, **attrs), {"x": x})


def test_small_integer_and_bool_max_min():
    x8 = RNG.integers(-128, 128, (3, 300)).astype(np.int8)
    xu = RNG.integers(0, 256, (3, 7)).astype(np.uint8)
    xb = RNG.random((3, 7)) > 0.5
    check(single_node_model("ReduceMax", {"x": x8}, [np.int8], opset=13, axes=[1]), {"x": x8})
    check(single_node_model("ReduceMin", {"x": xu}, [np.uint8], opset=13, axes=[0]), {"x": xu})
    axes = np.array([1], dtype=np.int64)
    check(single_node_model("ReduceMax", {"x": xb, "axes": axes}, [np.bool_], opset=20, initializers=("axes",)),
          {"x": xb})


def test_float64():
    x = RNG.standard_normal((5, 300)).astype(np.float64)
    for op in ("ReduceSum", "ReduceLogSumExp", "ReduceMax"):
        check(single_node_model(op, {"x": x}, [np.float64], opset=11, axes=[1]), {"x": x}, rtol=1e-9, atol=1e-9)


def test_empty_sets_give_identity_values():
    x = np.zeros((2, 0, 3), dtype=np.float32)
    for op, expect in (("ReduceSum", 0.0), ("ReduceProd", 1.0), ("ReduceMax", -np.inf), ("ReduceMin", np.inf),
                       ("ReduceLogSumExp", -np.inf), ("ReduceL2", 0.0)):
        got = check(single_node_model(op, {"x": x}, [np.float32], opset=11, axes=[1]), {"x": x})[0]
        assert got.shape == (2, 1, 3)
        assert np.all(got == expect), (op, got)


def test_nan_propagates_through_max():
    x = RNG.standard_normal((2, 400)).astype(np.float32)
    x[0, 123] = np.nan
    got = check(single_node_model("ReduceMax", {"x": x}, [np.float32], opset=13, axes=[1]), {"x": x})[0]
    assert np.isnan(got[0, 0]) and not np.isnan(got[1, 0])


def test_large_values_log_sum_exp_is_stable():
    x = (RNG.standard_normal((4, 50)) * 100 + 1000).astype(np.float32)
    got = check(single_node_model("ReduceLogSumExp", {"x": x}, [np.float32], opset=13, axes=[1]), {"x": x})[0]
    assert np.all(np.isfinite(got))


@pytest.mark.parametrize("op", ["ArgMax", "ArgMin"])
def test_arg_reductions(op):
    x = RNG.integers(0, 4, (3, 5, 6)).astype(np.float32)  # many ties
    for axis, keep, last in ((0, 1, 0), (1, 0, 1), (-1, 1, 1), (2, 0, 0)):
        model = single_node_model(op, {"x": x}, [np.int64], opset=13, axis=axis, keepdims=keep,
                                  select_last_index=last)
        check(model, {"x": x})
    for dtype in (np.int64, np.int16, np.uint8):
        xi = RNG.integers(0, 9, (4, 7)).astype(dtype)
        check(single_node_model(op, {"x": xi}, [np.int64], opset=13, axis=1), {"x": xi})


def test_bad_axis_raises_an_ortcore_error():
    x = data("ReduceSum", (2, 3))
    sess = session(single_node_model("ReduceMean", {"x": x}, [np.float32], opset=13, axes=[5]))
    with pytest.raises(OrtCoreError, match="axis 5"):
        sess.run(None, {"x": x})


def test_unsupported_dtype_falls_back_to_cpu():
    x = RNG.integers(0, 5, (2, 3)).astype(np.uint32)
    sess = session(single_node_model("ReduceLogSum", {"x": x}, [np.uint32], opset=11, axes=[1]))
    assert sess.get_partition().assignments[0].provider.name == "CPUExecutionProvider"
