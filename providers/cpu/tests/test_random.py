"""RandomUniform, RandomNormal, their *Like forms, Multinomial and Bernoulli.

Random values have no reference to match, so these check what is certain: dtype
and shape for every version and dtype, seeded nodes that repeat across runs,
sessions and threads, unseeded nodes that do not, and the distribution's moments
on large samples against closed-form values (bounds of six standard errors, so
a correct kernel fails about once in 10**8 runs).
"""

from __future__ import annotations

import threading

import ml_dtypes
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import ortcore
from ortcore.dtypes import onnx_elem_type

FLOATS = [TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16, TensorProto.BFLOAT16]


def session(op, attrs, *, opset=22, x=None):
    inputs = [] if x is None else [helper.make_tensor_value_info("x", onnx_elem_type(x.dtype), x.shape)]
    node = helper.make_node(op, ["x"] if x is not None else [], ["y"], **attrs)
    graph = helper.make_graph([node], "g", inputs, [onnx.ValueInfoProto(name="y")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    return ortcore.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def draw(op, attrs, *, opset=22, x=None):
    (y,) = session(op, attrs, opset=opset, x=x).run(None, {} if x is None else {"x": x})
    return y


def moments_ok(values, mean, std, n=None):
    """Sample mean and standard deviation within six standard errors of the true ones."""
    v = np.asarray(values, dtype=np.float64).ravel()
    n = n or v.size
    assert abs(v.mean() - mean) < 6 * std / np.sqrt(n), (v.mean(), mean)
    # the sample variance's standard error is about std**2 * sqrt(2 / n) (kurtosis <= 3 here)
    assert abs(v.var() - std**2) < 6 * std**2 * np.sqrt(2 / n), (v.std(), std)


# -- dtype and shape ---------------------------------------------------------------------------------


# bfloat16 arrives with opset 22
VERSIONED_FLOATS = [(1, d) for d in FLOATS if d != TensorProto.BFLOAT16] + [(22, d) for d in FLOATS]


@pytest.mark.parametrize("opset, dtype", VERSIONED_FLOATS)
@pytest.mark.parametrize("op", ["RandomUniform", "RandomNormal"])
def test_dtype_and_shape(op, dtype, opset):
    y = draw(op, {"shape": [3, 1, 4], "dtype": dtype, "seed": 1.0}, opset=opset)
    assert y.dtype == helper.tensor_dtype_to_np_dtype(dtype)
    assert y.shape == (3, 1, 4)


def test_default_dtype_is_float32():
    assert draw("RandomUniform", {"shape": [2]}).dtype == np.float32
    assert draw("RandomNormal", {"shape": [2]}).dtype == np.float32


@pytest.mark.parametrize("opset", [1, 22])
@pytest.mark.parametrize("op", ["RandomUniformLike", "RandomNormalLike"])
@pytest.mark.parametrize("x_dtype", [np.float32, np.float64, np.float16, np.int64, np.bool_])
@pytest.mark.parametrize("dtype", [None, TensorProto.FLOAT16, TensorProto.DOUBLE])
def test_like_dtype_and_shape(op, x_dtype, dtype, opset):
    x = np.zeros((2, 0, 3) if x_dtype == np.bool_ else (2, 5, 3), x_dtype)
    attrs = {} if dtype is None else {"dtype": dtype}
    if dtype is None and np.dtype(x_dtype).kind != "f":
        with pytest.raises(ortcore.errors.OrtCoreError):
            draw(op, attrs, opset=opset, x=x)
        return
    y = draw(op, attrs, opset=opset, x=x)
    assert y.shape == x.shape
    assert y.dtype == (x.dtype if dtype is None else helper.tensor_dtype_to_np_dtype(dtype))


def test_like_bfloat16_input():
    y = draw("RandomUniformLike", {}, x=np.zeros((4, 4), ml_dtypes.bfloat16))
    assert y.dtype == ml_dtypes.bfloat16
    assert y.shape == (4, 4)


# -- seeds ------------------------------------------------------------------------------------------

SEEDED = [
    ("RandomUniform", {"shape": [50]}, None),
    ("RandomNormal", {"shape": [50]}, None),
    ("RandomUniformLike", {}, np.zeros(50, np.float32)),
    ("RandomNormalLike", {}, np.zeros(50, np.float32)),
    ("Multinomial", {"sample_size": 50}, np.zeros((2, 10), np.float32)),
    ("Bernoulli", {}, np.full(50, 0.5, np.float32)),
]


@pytest.mark.parametrize("op, attrs, x", SEEDED, ids=[s[0] for s in SEEDED])
def test_seeded_nodes_repeat(op, attrs, x):
    """A seeded node gives the same values on every run, in every session, from every thread."""
    sess = session(op, dict(attrs, seed=3.0), x=x)
    feeds = {} if x is None else {"x": x}
    first = sess.run(None, feeds)[0]
    np.testing.assert_array_equal(first, sess.run(None, feeds)[0])
    np.testing.assert_array_equal(first, session(op, dict(attrs, seed=3.0), x=x).run(None, feeds)[0])
    results = []
    threads = [threading.Thread(target=lambda: results.append(sess.run(None, feeds)[0])) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 8
    for r in results:
        np.testing.assert_array_equal(first, r)
    other = session(op, dict(attrs, seed=3.5), x=x).run(None, feeds)[0]
    assert not np.array_equal(first, other)


@pytest.mark.parametrize("op, attrs, x", SEEDED, ids=[s[0] for s in SEEDED])
def test_unseeded_nodes_vary(op, attrs, x):
    sess = session(op, attrs, x=x)
    feeds = {} if x is None else {"x": x}
    draws = [sess.run(None, feeds)[0] for _ in range(3)]
    assert not (np.array_equal(draws[0], draws[1]) and np.array_equal(draws[1], draws[2]))


# -- moments -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [TensorProto.FLOAT, TensorProto.DOUBLE])
def test_uniform_moments(dtype):
    y = draw("RandomUniform", {"shape": [200_000], "low": -2.0, "high": 5.0, "dtype": dtype, "seed": 7.0})
    assert y.min() >= -2.0 and y.max() < 5.0
    moments_ok(y, 1.5, 7 / np.sqrt(12))


@pytest.mark.parametrize("dtype", [TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16])
def test_normal_moments(dtype):
    y = draw("RandomNormal", {"shape": [400, 500], "mean": 3.0, "scale": 0.5, "dtype": dtype, "seed": 7.0})
    moments_ok(y, 3.0, 0.5)


def test_like_moments():
    x = np.zeros((1000, 200), np.float32)
    moments_ok(draw("RandomUniformLike", {"low": 1.0, "high": 2.0}, x=x), 1.5, 1 / np.sqrt(12))
    moments_ok(draw("RandomNormalLike", {"mean": -1.0, "scale": 2.0}, x=x), -1.0, 2.0)


@pytest.mark.parametrize("opset", [15, 22])
@pytest.mark.parametrize("dtype", [None, TensorProto.BOOL, TensorProto.INT32, TensorProto.FLOAT16])
def test_bernoulli(opset, dtype):
    p = np.repeat(np.array([[0.0], [0.1], [0.5], [0.97], [1.0]], np.float32), 40_000, axis=1)
    y = draw("Bernoulli", {} if dtype is None else {"dtype": dtype}, opset=opset, x=p)
    assert y.dtype == (p.dtype if dtype is None else helper.tensor_dtype_to_np_dtype(dtype))
    assert y.shape == p.shape
    values = y.astype(np.float64)
    assert set(np.unique(values)) <= {0.0, 1.0}
    assert values[0].sum() == 0 and values[4].sum() == p.shape[1]
    for row, prob in zip(values[1:4], (0.1, 0.5, 0.97)):
        assert abs(row.mean() - prob) < 6 * np.sqrt(prob * (1 - prob) / row.size)


@pytest.mark.parametrize("opset", [7, 22])
@pytest.mark.parametrize("dtype", [TensorProto.INT32, TensorProto.INT64])
def test_multinomial(opset, dtype):
    """Class frequencies follow softmax(input) for each row."""
    probs = np.array([[0.1, 0.2, 0.3, 0.4], [0.7, 0.0, 0.0, 0.3], [0.25, 0.25, 0.25, 0.25]])
    with np.errstate(divide="ignore"):
        logits = np.log(probs)  # -inf for the impossible classes
    n = 60_000
    y = draw("Multinomial", {"sample_size": n, "dtype": dtype, "seed": 2.0}, opset=opset,
             x=(logits + 5.0).astype(np.float32))  # unnormalized: any shift is the same distribution
    assert y.dtype == helper.tensor_dtype_to_np_dtype(dtype)
    assert y.shape == (3, n)
    for row, p in zip(y, probs):
        freq = np.bincount(row, minlength=4) / n
        assert (freq[p == 0] == 0).all()
        assert np.all(np.abs(freq - p) < 6 * np.sqrt(p * (1 - p) / n) + 1e-12)


def test_multinomial_default_sample_size():
    y = draw("Multinomial", {}, opset=7, x=np.zeros((5, 3), np.float32))
    assert y.shape == (5, 1) and y.dtype == np.int32
    assert ((y >= 0) & (y < 3)).all()
