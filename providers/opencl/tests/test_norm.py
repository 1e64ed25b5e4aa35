"""BatchNormalization, LRN, LayerNormalization and InstanceNormalization on the OpenCL
provider, against the CPU provider (numpy) and onnxruntime."""

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
RNG = np.random.default_rng(11)


def session(model):
    return ortcore.InferenceSession(model.SerializeToString(), providers=[OCL, "CPUExecutionProvider"])


def check(model, feeds, *, truth=run_ortcore, rtol=1e-3, atol=1e-4):
    sess = session(model)
    where = [a.provider.name for a in sess.get_partition().assignments]
    assert where == [OCL] * len(where), where
    got = sess.run(None, feeds)
    want = truth(model, feeds)
    assert len(got) == len(want)
    for i, (w, g) in enumerate(zip(want, got)):
        compare_outputs(w, g, rtol=rtol, atol=atol, name=f"output {i}")
    return got


def bn_params(c, dtype=np.float32):
    return {
        "scale": RNG.uniform(0.5, 1.5, c).astype(dtype), "bias": RNG.uniform(-0.5, 0.5, c).astype(dtype),
        "mean": RNG.uniform(-0.5, 0.5, c).astype(dtype), "var": RNG.uniform(0.5, 1.5, c).astype(dtype),
    }


@pytest.mark.parametrize("opset", [9, 15])
@pytest.mark.parametrize("constant", [True, False])
def test_batch_norm_inference(opset, constant):
    x = RNG.standard_normal((2, 5, 6, 7)).astype(np.float32)
    p = bn_params(5)
    inits = tuple(p) if constant else ()
    model = single_node_model("BatchNormalization", {"x": x, **p}, [np.float32], opset=opset,
                              initializers=inits, epsilon=1e-3)
    feeds = {"x": x} if constant else {"x": x, **p}
    check(model, feeds, truth=run_onnxruntime)


def test_batch_norm_2d_and_float64():
    x = RNG.standard_normal((4, 3)).astype(np.float64)
    p = bn_params(3, np.float64)
    check(single_node_model("BatchNormalization", {"x": x, **p}, [np.float64], opset=15), {"x": x, **p},
          rtol=1e-10, atol=1e-12)


def test_batch_norm_training_is_declined():
    x = RNG.standard_normal((2, 3, 4)).astype(np.float32)
    p = bn_params(3)
    model = single_node_model("BatchNormalization", {"x": x, **p}, [np.float32] * 3, opset=15, training_mode=1)
    a = session(model).get_partition().assignments[0]
    assert a.provider.name == "CPUExecutionProvider"
    assert "training_mode" in a.declined[OCL]
    legacy = single_node_model("BatchNormalization", {"x": x, **p}, [np.float32], opset=6)  # is_test=0
    assert session(legacy).get_partition().assignments[0].provider.name == "CPUExecutionProvider"
    check(single_node_model("BatchNormalization", {"x": x, **p}, [np.float32], opset=6, is_test=1),
          {"x": x, **p})


def test_batch_norm_wrong_parameter_size_raises():
    x = RNG.standard_normal((2, 3, 4)).astype(np.float32)
    p = bn_params(4)
    sess = session(single_node_model("BatchNormalization", {"x": x, **p}, [np.float32], opset=15))
    with pytest.raises(OrtCoreError, match="scale has 4 elements, expected 3"):
        sess.run(None, {"x": x, **p})


@pytest.mark.parametrize("size", [1, 3, 4, 5])
def test_lrn(size):
    x = RNG.standard_normal((2, 7, 5, 6)).astype(np.float32)
    check(single_node_model("LRN", {"x": x}, [np.float32], opset=13, size=size, alpha=1e-2, beta=0.75, bias=2.0),
          {"x": x}, truth=run_onnxruntime if size % 2 else run_ortcore)  # onnxruntime rejects even sizes


@pytest.mark.parametrize("axis", [0, 1, -1, 2])
def test_layer_norm_axes_and_stat_outputs(axis):
    x = RNG.standard_normal((3, 4, 5)).astype(np.float32)
    norm = x.shape[axis:]
    scale = RNG.standard_normal(norm).astype(np.float32)
    bias = RNG.standard_normal(norm).astype(np.float32)
    model = single_node_model("LayerNormalization", {"x": x, "scale": scale, "bias": bias},
                              [np.float32] * 3, opset=17, initializers=("scale", "bias"), axis=axis)
    check(model, {"x": x}, truth=run_onnxruntime)


def test_layer_norm_long_rows_broadcast_scale_and_no_bias():
    """768-wide rows use the work-group kernel; a [W] scale broadcasts over [H, W] rows."""
    x = (RNG.standard_normal((6, 768)) * 3 + 1).astype(np.float32)
    scale = RNG.standard_normal(768).astype(np.float32)
    check(single_node_model("LayerNormalization", {"x": x, "scale": scale}, [np.float32], opset=17), {"x": x, "scale": scale},
          truth=run_onnxruntime)
    x3 = RNG.standard_normal((2, 4, 8)).astype(np.float32)
    s3 = RNG.standard_normal((1, 8)).astype(np.float32)
    check(single_node_model("LayerNormalization", {"x": x3, "scale": s3}, [np.float32], opset=17, axis=1,
                            epsilon=1e-3), {"x": x3, "scale": s3})


def test_layer_norm_scale_that_does_not_broadcast_raises():
    x = RNG.standard_normal((2, 4, 8)).astype(np.float32)
    s = RNG.standard_normal((4, 1)).astype(np.float32)
    sess = session(single_node_model("LayerNormalization", {"x": x, "scale": s}, [np.float32], opset=17, axis=1))
    with pytest.raises(OrtCoreError, match="Scale of shape"):
        sess.run(None, {"x": x, "scale": s})


@pytest.mark.parametrize("shape", [(2, 3, 5), (2, 3, 32, 32)])
def test_instance_norm(shape):
    x = (RNG.standard_normal(shape) * 2 + 0.5).astype(np.float32)
    c = shape[1]
    p = {"scale": RNG.uniform(0.5, 1.5, c).astype(np.float32), "bias": RNG.uniform(-1, 1, c).astype(np.float32)}
    check(single_node_model("InstanceNormalization", {"x": x, **p}, [np.float32], opset=6, initializers=tuple(p),
                            epsilon=1e-4), {"x": x}, truth=run_onnxruntime)
