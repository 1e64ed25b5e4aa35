"""Losses (NegativeLogLikelihoodLoss, SoftmaxCrossEntropyLoss) and the optimizer steps of
ai.onnx.preview.training (Adagrad, Adam, Momentum): what the ONNX node cases leave out.

Losses: every reduction with and without weights, ignore_index inside, outside
and below the class range (also in the mean's denominator), int32 targets,
float16/float64, the log_prob output, and out-of-range targets. onnxruntime
is the truth for losses; the optimizers (which onnxruntime's inference build
lacks) are checked against onnx.reference and the spec's formulas in numpy.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime
import pytest
from onnx import helper
from onnx.reference import ReferenceEvaluator

import ortcore
from ortcore.dtypes import onnx_elem_type
from ortcore.testing import compare_outputs

RNG = np.random.default_rng(0)
F32 = np.float32
TRAINING = "ai.onnx.preview.training"


def _model(op, inputs, n_out, attrs, opset, domain=""):
    names = [f"x{i}" for i in range(len(inputs))]
    node = helper.make_node(op, names, [f"y{i}" for i in range(n_out)], domain=domain, **attrs)
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info(n, onnx_elem_type(v.dtype), v.shape) for n, v in zip(names, inputs)],
        [onnx.ValueInfoProto(name=f"y{i}") for i in range(n_out)],
    )
    opsets = [helper.make_opsetid("", opset)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    return helper.make_model(graph, opset_imports=opsets, ir_version=8)


def run(op, inputs, *, n_out=1, opset=13, domain="", truth="ort", cast_reference=False, **attrs):
    """Run one node in ortcore and in onnxruntime (or onnx.reference); compare; return ortcore's."""
    model = _model(op, inputs, n_out, attrs, opset, domain)
    feeds = {f"x{i}": v for i, v in enumerate(inputs)}
    data, cpu = model.SerializeToString(), ["CPUExecutionProvider"]
    actual = ortcore.InferenceSession(data, providers=cpu).run(None, feeds)
    if truth == "ort":
        expected = onnxruntime.InferenceSession(data, providers=cpu).run(None, feeds)
    else:
        expected = ReferenceEvaluator(model).run(None, feeds)
        if cast_reference:
            expected = [np.asarray(e).astype(a.dtype) for e, a in zip(expected, actual)]
    rtol = 1e-2 if inputs[0].dtype == np.float16 else 1e-4
    for i, (e, a) in enumerate(zip(expected, actual)):
        compare_outputs(e, a, rtol=rtol, atol=1e-5 if rtol < 1e-2 else 1e-3, name=f"{op} output {i}")
    return actual


def _scores(shape, dtype=F32):
    return RNG.standard_normal(shape).astype(dtype)


def _labels(shape, classes, ignore=None, dtype=np.int64):
    labels = RNG.integers(0, classes, shape).astype(dtype)
    if ignore is not None:
        labels.reshape(-1)[:: 3] = ignore  # every third target is ignored
    return labels


# -- NegativeLogLikelihoodLoss / SoftmaxCrossEntropyLoss ----------------------------------------

SHAPES = [(6, 5), (3, 5, 4), (2, 5, 3, 2)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("ignore_index", [None, 2, -1, 7])
def test_nll_loss(shape, reduction, weighted, ignore_index):
    x = np.log(np.abs(_scores(shape)) + 0.1).astype(F32)
    target = _labels((shape[0], *shape[2:]), shape[1], ignore_index)
    inputs = [x, target] + ([RNG.uniform(0.5, 2.0, shape[1]).astype(F32)] if weighted else [])
    attrs = {"reduction": reduction} | ({"ignore_index": ignore_index} if ignore_index is not None else {})
    run("NegativeLogLikelihoodLoss", inputs, **attrs)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("ignore_index", [None, 0, -5])
def test_softmax_cross_entropy_loss(shape, reduction, weighted, ignore_index):
    x = _scores(shape)
    target = _labels((shape[0], *shape[2:]), shape[1], ignore_index)
    inputs = [x, target] + ([RNG.uniform(0.5, 2.0, shape[1]).astype(F32)] if weighted else [])
    attrs = {"reduction": reduction} | ({"ignore_index": ignore_index} if ignore_index is not None else {})
    run("SoftmaxCrossEntropyLoss", inputs, n_out=2, **attrs)
    run("SoftmaxCrossEntropyLoss", inputs, n_out=1, **attrs)


@pytest.mark.parametrize("dtype", [np.float16, np.float64])
def test_losses_other_dtypes_and_int32_targets(dtype):
    x = _scores((4, 3, 2), dtype)
    target = _labels((4, 2), 3, 1, np.int32)
    w = RNG.uniform(0.5, 2.0, 3).astype(dtype)
    for reduction in ("none", "mean"):
        loss, log_prob = run("SoftmaxCrossEntropyLoss", [x, target, w], n_out=2, reduction=reduction, ignore_index=1)
        assert loss.dtype == log_prob.dtype == dtype
        (nll,) = run("NegativeLogLikelihoodLoss", [x, target, w], reduction=reduction, ignore_index=1)
        assert nll.dtype == dtype


def test_nll_mean_closed_form_counts_only_kept_targets():
    x = np.log(np.array([[0.2, 0.8], [0.6, 0.4], [0.5, 0.5]], F32))
    target = np.array([1, 0, -100], np.int64)  # the last one is ignored
    w = np.array([2.0, 3.0], F32)
    (loss,) = run("NegativeLogLikelihoodLoss", [x, target, w], reduction="mean", ignore_index=-100)
    expected = -(3.0 * np.log(0.8) + 2.0 * np.log(0.6)) / 5.0
    compare_outputs(np.array(expected, F32), loss)
    (loss,) = run("NegativeLogLikelihoodLoss", [x, target], reduction="mean", ignore_index=-100)
    compare_outputs(np.array(-(np.log(0.8) + np.log(0.6)) / 2.0, F32), loss)


def test_nll_opset_22():
    x, target = _scores((4, 3)), _labels(4, 3)
    for reduction in ("none", "sum", "mean"):
        run("NegativeLogLikelihoodLoss", [x, target], opset=22, reduction=reduction)


def test_target_out_of_range_fails():
    model = _model("NegativeLogLikelihoodLoss", [_scores((2, 3)), np.array([0, 3], np.int64)], 1, {}, 13)
    sess = ortcore.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    with pytest.raises(ortcore.Fail, match=r"NegativeLogLikelihoodLoss.*target value 3 is out of range"):
        sess.run(None, {"x0": _scores((2, 3)), "x1": np.array([0, 3], np.int64)})


# -- optimizers ----------------------------------------------------------------------------------


def _opt_inputs(n_tensors, n_states, t):
    shapes = [(3,), (2, 2)][:n_tensors]
    r, t = np.array(0.1, F32), np.array(t, np.int64)
    xs = [_scores(s) for s in shapes]
    gs = [_scores(s) for s in shapes]
    states = [[np.abs(_scores(s)) for s in shapes] for _ in range(n_states)]
    return r, t, xs, gs, states


@pytest.mark.parametrize("t", [0, 3])
@pytest.mark.parametrize("n", [1, 2])
def test_adagrad(t, n):
    r, t, xs, gs, (hs,) = _opt_inputs(n, 1, t)
    attrs = {"decay_factor": 0.1, "epsilon": 1e-5, "norm_coefficient": 0.01}
    out = run("Adagrad", [r, t, *xs, *gs, *hs], n_out=2 * n, domain=TRAINING, truth="reference", **attrs)
    lr = 0.1 / (1 + int(t) * 0.1)
    for i in range(n):
        g = 0.01 * xs[i] + gs[i]
        h = hs[i] + g * g
        compare_outputs(xs[i] - lr * g / (np.sqrt(h) + 1e-5), out[i], rtol=1e-5)
        compare_outputs(h, out[n + i], rtol=1e-5)


@pytest.mark.parametrize("mode", ["standard", "nesterov"])
@pytest.mark.parametrize("t", [0, 3])
@pytest.mark.parametrize("n", [1, 2])
def test_momentum(mode, t, n):
    r, t, xs, gs, (vs,) = _opt_inputs(n, 1, t)
    attrs = {"alpha": 0.9, "beta": 0.5, "mode": mode, "norm_coefficient": 0.01}
    out = run("Momentum", [r, t, *xs, *gs, *vs], n_out=2 * n, domain=TRAINING, truth="reference", **attrs)
    beta = 0.5 if int(t) > 0 else 1.0
    for i in range(n):
        g = 0.01 * xs[i] + gs[i]
        v = 0.9 * vs[i] + beta * g
        x = xs[i] - 0.1 * (v if mode == "standard" else g + 0.9 * v)
        compare_outputs(x, out[i], rtol=1e-5)
        compare_outputs(v, out[n + i], rtol=1e-5)


@pytest.mark.parametrize("t", [0, 3])
@pytest.mark.parametrize("n", [1, 2])
def test_adam(t, n):
    r, t, xs, gs, (vs, hs) = _opt_inputs(n, 2, t)
    attrs = {"alpha": 0.8, "beta": 0.95, "epsilon": 1e-4, "norm_coefficient": 0.01, "norm_coefficient_post": 0.02}
    # onnx.reference's single-tensor Adam returns float64 when T > 0; the dtype is checked below
    inputs = [r, t, *xs, *gs, *vs, *hs]
    out = run("Adam", inputs, n_out=3 * n, domain=TRAINING, truth="reference", cast_reference=True, **attrs)
    k = int(t)
    lr = 0.1 * float(np.sqrt(1 - 0.95**k)) / (1 - 0.8**k) if k > 0 else 0.1
    for i in range(n):
        g = 0.01 * xs[i] + gs[i]
        v = 0.8 * vs[i] + 0.2 * g
        h = 0.95 * hs[i] + 0.05 * g * g
        x = (1 - 0.02) * (xs[i] - lr * v / (np.sqrt(h) + 1e-4))
        compare_outputs(x, out[i], rtol=1e-5)
        compare_outputs(v, out[n + i], rtol=1e-5)
        compare_outputs(h, out[2 * n + i], rtol=1e-5)
    assert all(o.dtype == F32 for o in out)
