"""MaxPool, AveragePool, LpPool and the global pools on the OpenCL provider, against the
CPU provider (numpy) and onnxruntime."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pyopencl")

import ortcore
from ortcore.errors import OrtCoreError
from ortcore.testing import (
    compare_outputs,
    run_onnxruntime,
    run_ortcore,
    single_node_model,
)

OCL = "OpenCLExecutionProvider"
RNG = np.random.default_rng(5)
X2 = RNG.standard_normal((2, 3, 11, 10)).astype(np.float32)

WINDOWS = [
    {"kernel_shape": [3, 3]},
    {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]},
    {"kernel_shape": [2, 3], "strides": [2, 1], "pads": [0, 1, 1, 2]},
    {"kernel_shape": [3, 3], "strides": [2, 2], "ceil_mode": 1},
    {"kernel_shape": [3, 2], "strides": [2, 3], "pads": [1, 0, 1, 1], "ceil_mode": 1},
    {"kernel_shape": [3, 3], "strides": [2, 2], "auto_pad": "SAME_UPPER"},
    {"kernel_shape": [2, 2], "strides": [1, 1], "auto_pad": "SAME_LOWER"},
    {"kernel_shape": [3, 3], "auto_pad": "VALID", "strides": [3, 2]},
    {"kernel_shape": [2, 2], "dilations": [2, 3], "pads": [1, 1, 1, 0]},
]


def session(model):
    return ortcore.InferenceSession(model.SerializeToString(), providers=[OCL, "CPUExecutionProvider"])


def check(model, feeds, *, truth=run_ortcore, rtol=1e-3, atol=1e-5):
    sess = session(model)
    where = [a.provider.name for a in sess.get_partition().assignments]
    assert where == [OCL] * len(where), where
    got = sess.run(None, feeds)
    want = truth(model, feeds)
    assert len(got) == len(want)
    for i, (w, g) in enumerate(zip(want, got)):
        compare_outputs(w, g, rtol=rtol, atol=atol, name=f"output {i}")
    return got


@pytest.mark.parametrize("window", WINDOWS, ids=lambda w: "-".join(f"{k}{v}" for k, v in w.items()))
def test_max_pool_2d(window):
    check(single_node_model("MaxPool", {"x": X2}, [np.float32], opset=12, **window), {"x": X2}, truth=run_onnxruntime)


@pytest.mark.parametrize("window", WINDOWS, ids=lambda w: "-".join(f"{k}{v}" for k, v in w.items()))
def test_average_pool_2d(window):
    for include in (0, 1):
        check(single_node_model("AveragePool", {"x": X2}, [np.float32], opset=19, count_include_pad=include,
                                **window), {"x": X2})


@pytest.mark.parametrize("storage_order", [0, 1])
def test_max_pool_indices(storage_order):
    x = RNG.permutation(2 * 3 * 9 * 8).reshape(2, 3, 9, 8).astype(np.float32)  # no ties
    model = single_node_model("MaxPool", {"x": x}, [np.float32, np.int64], opset=12, kernel_shape=[3, 2],
                              strides=[2, 2], pads=[1, 0, 1, 1], storage_order=storage_order)
    check(model, {"x": x}, truth=run_onnxruntime)


def test_max_pool_1d_and_3d_and_small_integers():
    x1 = RNG.standard_normal((2, 3, 17)).astype(np.float32)
    check(single_node_model("MaxPool", {"x": x1}, [np.float32], opset=12, kernel_shape=[4], strides=[3], pads=[1, 2]),
          {"x": x1})
    x3 = RNG.standard_normal((1, 2, 6, 7, 5)).astype(np.float32)
    check(single_node_model("MaxPool", {"x": x3}, [np.float32], opset=12, kernel_shape=[2, 3, 2],
                            strides=[2, 1, 2], dilations=[1, 2, 1], pads=[0, 1, 1, 1, 1, 0]), {"x": x3})
    check(single_node_model("AveragePool", {"x": x3}, [np.float32], opset=19, kernel_shape=[3, 2, 2],
                            strides=[2, 2, 1], pads=[1, 0, 1, 1, 1, 0], ceil_mode=1), {"x": x3})
    for dtype in (np.int8, np.uint8):
        xi = RNG.integers(np.iinfo(dtype).min, np.iinfo(dtype).max, (1, 2, 7, 7)).astype(dtype)
        check(single_node_model("MaxPool", {"x": xi}, [dtype], opset=12, kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
              {"x": xi})


def test_max_pool_float64():
    x = RNG.standard_normal((1, 2, 8, 8))
    check(single_node_model("MaxPool", {"x": x}, [np.float64], opset=12, kernel_shape=[2, 2], strides=[2, 2]),
          {"x": x}, rtol=0, atol=0)


@pytest.mark.parametrize("p", [1, 2, 3])
def test_lp_pool(p):
    check(single_node_model("LpPool", {"x": X2}, [np.float32], opset=18, p=p, kernel_shape=[3, 2], strides=[2, 2],
                            pads=[1, 0, 1, 1]), {"x": X2})


@pytest.mark.parametrize("shape", [(2, 3, 7, 7), (1, 4, 56, 56), (2, 3, 9)])
def test_global_pools(shape):
    x = RNG.standard_normal(shape).astype(np.float32)
    check(single_node_model("GlobalAveragePool", {"x": x}, [np.float32], opset=1), {"x": x}, truth=run_onnxruntime)
    check(single_node_model("GlobalMaxPool", {"x": x}, [np.float32], opset=1), {"x": x}, truth=run_onnxruntime)
    check(single_node_model("GlobalLpPool", {"x": x}, [np.float32], opset=2), {"x": x})


def test_pool_of_wrong_rank_raises_an_ortcore_error():
    model = single_node_model("MaxPool", {"x": X2}, [np.float32], opset=12, kernel_shape=[2, 2])
    sess = session(model)
    with pytest.raises(OrtCoreError, match="rank 4"):
        sess.run(None, {"x": X2[0]})


def test_window_larger_than_input_raises_an_ortcore_error():
    sess = session(single_node_model("AveragePool", {"x": X2}, [np.float32], opset=19, kernel_shape=[12, 2]))
    with pytest.raises(OrtCoreError, match="does not fit"):
        sess.run(None, {"x": X2})
