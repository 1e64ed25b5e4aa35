"""Normalization kernels: what the ONNX node cases leave out.

BatchNormalization in every version (constant-folded and runtime parameters,
old training outputs, spatial=0), float16/float64, Layer/Group/RMS
normalization axes and stash outputs, LRN sizes, LpNormalization zeros and
MeanVarianceNormalization axes. Expected values are closed-form numpy in
float64 or onnx.reference.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper
from onnx.reference import ReferenceEvaluator

import ortcore
from ortcore.dtypes import onnx_elem_type
from ortcore.testing import compare_outputs

RNG = np.random.default_rng(5)


def run(op, inputs, attrs=None, *, opset, n_out=1, constant=(), outputs=None):
    names = [f"x{i}" if v is not None else "" for i, v in enumerate(inputs)]
    out_names = outputs if outputs is not None else [f"y{i}" for i in range(n_out)]
    node = helper.make_node(op, names, out_names, **(attrs or {}))
    feeds = {n: v for i, (n, v) in enumerate(zip(names, inputs)) if v is not None and i not in constant}
    inits = [numpy_helper.from_array(v, n) for i, (n, v) in enumerate(zip(names, inputs)) if i in constant]
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info(n, onnx_elem_type(v.dtype), v.shape) for n, v in feeds.items()],
        [onnx.ValueInfoProto(name=n) for n in out_names if n],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    sess = ortcore.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds), model, feeds


def close(expected, actual, dtype=None, rtol=1e-3, atol=1e-5, name="y"):
    dtype = dtype or actual.dtype
    assert actual.dtype == dtype, f"{name}: dtype {actual.dtype} != {dtype}"
    compare_outputs(np.asarray(expected).astype(dtype), actual, rtol=rtol, atol=atol, name=name)


def rand(shape, dtype=np.float32, scale=1.0, offset=0.0):
    return (RNG.standard_normal(shape) * scale + offset).astype(dtype)


def bn_params(c, dtype=np.float32):
    scale = RNG.uniform(0.5, 1.5, c).astype(dtype)
    bias = rand((c,), dtype)
    mean = rand((c,), dtype)
    var = RNG.uniform(0.5, 1.5, c).astype(dtype)
    return scale, bias, mean, var


def bn_inference(x, scale, bias, mean, var, eps):
    shape = (-1, *(1,) * (x.ndim - 2))
    x64 = x.astype(np.float64)
    s, b, m, v = (np.asarray(p, np.float64).reshape(shape) for p in (scale, bias, mean, var))
    return (x64 - m) / np.sqrt(v + eps) * s + b


# -- BatchNormalization -------------------------------------------------------------------


@pytest.mark.parametrize("opset", [7, 9, 14, 15])
@pytest.mark.parametrize("constant", [(1, 2, 3, 4), ()], ids=["folded", "runtime"])
@pytest.mark.parametrize("shape", [(2, 3), (2, 3, 5), (1, 4, 3, 5), (2, 2, 2, 3, 2)])
def test_batch_norm_inference(opset, constant, shape):
    x = rand(shape)
    params = bn_params(shape[1])
    (y,), _, _ = run("BatchNormalization", [x, *params], {"epsilon": 1e-3}, opset=opset, constant=constant)
    close(bn_inference(x, *params, 1e-3), y)


@pytest.mark.parametrize("opset", [1, 6])
def test_batch_norm_old_versions_test_mode(opset):
    x = rand((2, 3, 4, 4))
    params = bn_params(3)
    attrs = {"is_test": 1, "epsilon": 1e-4}
    if opset == 1:
        attrs["consumed_inputs"] = [0, 0, 0, 1, 1]
    (y,), _, _ = run("BatchNormalization", [x, *params], attrs, opset=opset, constant=(1, 2, 3, 4))
    close(bn_inference(x, *params, 1e-4), y)


@pytest.mark.parametrize("dtype", [np.float16, np.float64, ml_dtypes.bfloat16])
@pytest.mark.parametrize("constant", [(1, 2, 3, 4), ()], ids=["folded", "runtime"])
def test_batch_norm_dtypes(dtype, constant):
    x = rand((2, 3, 4, 4), dtype)
    params = bn_params(3, dtype)
    (y,), _, _ = run("BatchNormalization", [x, *params], opset=15, constant=constant)
    tol = {np.float16: 2e-3, np.float64: 1e-9}.get(dtype, 2e-2)
    close(bn_inference(x, *params, 1e-5), y, rtol=tol, atol=tol)


@pytest.mark.parametrize(
    "op, opset, extra", [("InstanceNormalization", 22, 2), ("LayerNormalization", 17, 1), ("RMSNormalization", 23, 1)]
)
def test_norms_bfloat16(op, opset, extra):
    """bfloat16 is normalized in float32 and rounded once at the end."""
    x = rand((2, 3, 4), ml_dtypes.bfloat16, scale=2.0)
    params = [np.ones(3 if op == "InstanceNormalization" else 4, ml_dtypes.bfloat16)]
    if extra == 2:
        params.append(np.zeros(3, ml_dtypes.bfloat16))
    y = run(op, [x, *params], opset=opset)[0][0]
    x64 = x.astype(np.float64)
    axes = (2,)  # Layer/RMS over the last axis; Instance over the spatial axis, also the last here
    if op == "RMSNormalization":
        expected = x64 / np.sqrt(np.mean(x64**2, axis=axes, keepdims=True) + 1e-5)
    else:
        expected = (x64 - x64.mean(axis=axes, keepdims=True)) / np.sqrt(x64.var(axis=axes, keepdims=True) + 1e-5)
    close(expected, y, ml_dtypes.bfloat16, rtol=2e-2, atol=2e-2)


@pytest.fixture(params=[True, False], ids=["compiled", "numpy"])
def norm_loops(request, record_loops):
    """Compiled loops on or off, and the compiled norm loops that ran (see conftest.record_loops)."""
    from ortcore_cpu.ops.nn import _norm_loops

    return record_loops(request.param, _norm_loops)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(2, 3), (2, 3, 5), (1, 4, 3, 5), (2, 2, 2, 3, 2), (1, 64, 17, 9)])
def test_batch_norm_compiled_and_numpy_paths(norm_loops, dtype, shape):
    """Folded inference BN: the compiled one-pass loop and the numpy path give the closed form."""
    x = rand(shape, dtype)
    params = bn_params(shape[1], dtype)
    (y,), _, _ = run("BatchNormalization", [x, *params], {"epsilon": 1e-3}, opset=15, constant=(1, 2, 3, 4))
    close(bn_inference(x, *params, 1e-3), y, rtol=1e-9 if dtype == np.float64 else 1e-3)
    assert norm_loops.calls == (["channel_affine"] if norm_loops.on else [])


def test_batch_norm_channel_mismatch_is_an_error_on_both_paths(norm_loops):
    """A fed input with more channels than the constant parameters: an error naming both counts, never a read past them."""
    params = [numpy_helper.from_array(p, n) for p, n in zip(bn_params(3), "sbmv")]
    graph = helper.make_graph(
        [helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, "C", 4, 4])],
        [onnx.ValueInfoProto(name="y")],
        params,
    )
    sess = ortcore.InferenceSession(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)]).SerializeToString(),
        providers=["CPUExecutionProvider"],
    )
    with pytest.raises(ortcore.OrtCoreError, match="BatchNormalization.*has 5 channels, the parameters 3"):
        sess.run(None, {"x": rand((1, 5, 4, 4))})
    assert norm_loops.calls == []


def test_batch_norm_does_not_modify_input():
    x = rand((1, 3, 4, 4))
    keep = x.copy()
    run("BatchNormalization", [x, *bn_params(3)], opset=15)
    np.testing.assert_array_equal(x, keep)


def _batch_stats(x, axes):
    x64 = x.astype(np.float64)
    return x64.mean(axis=axes), x64.var(axis=axes)


@pytest.mark.parametrize("opset", [14, 15])
def test_batch_norm_training_mode(opset):
    x = rand((3, 2, 4, 5), scale=2.0, offset=1.0)
    scale, bias, mean, var = bn_params(2)
    (y, rm, rv), model, feeds = run(
        "BatchNormalization", [x, scale, bias, mean, var], {"training_mode": 1, "momentum": 0.8}, opset=opset, n_out=3
    )
    bm, bv = _batch_stats(x, (0, 2, 3))
    close(bn_inference(x, scale, bias, bm, bv, 1e-5), y)
    close(mean * 0.8 + bm * 0.2, rm, name="running_mean")
    close(var * 0.8 + bv * 0.2, rv, name="running_var")
    for e, a in zip(ReferenceEvaluator(model).run(None, feeds), (y, rm, rv)):
        close(e, a)


@pytest.mark.parametrize("opset", [7, 9])
def test_batch_norm_old_training_outputs(opset):
    """Before 14, asking for the statistics outputs selects training mode (5 outputs)."""
    x = rand((4, 3, 2, 2))
    scale, bias, mean, var = bn_params(3)
    y, rm, rv, sm, sv = run("BatchNormalization", [x, scale, bias, mean, var], {"momentum": 0.5}, opset=opset, n_out=5)[
        0
    ]
    bm, bv = _batch_stats(x, (0, 2, 3))
    close(bn_inference(x, scale, bias, bm, bv, 1e-5), y)
    close(mean * 0.5 + bm * 0.5, rm)
    close(var * 0.5 + bv * 0.5, rv)
    close(bm, sm)
    close(bv, sv)


def test_batch_norm_7_not_spatial():
    """spatial=0: statistics per activation (C x D1 x ... shaped parameters)."""
    x = rand((2, 3, 2, 2))
    shape = (3, 2, 2)
    scale, bias = RNG.uniform(0.5, 1.5, shape).astype(np.float32), rand(shape)
    mean, var = rand(shape), RNG.uniform(0.5, 1.5, shape).astype(np.float32)
    (y,), _, _ = run("BatchNormalization", [x, scale, bias, mean, var], {"spatial": 0}, opset=7)
    close((x - mean) / np.sqrt(var + 1e-5) * scale + bias, y)


# -- Instance / Layer / Group / RMS ---------------------------------------------------------


@pytest.mark.parametrize("opset", [1, 6, 22])
@pytest.mark.parametrize("shape", [(2, 3, 5), (2, 3, 4, 5), (1, 2, 3, 2, 4)])
def test_instance_norm(opset, shape):
    x, scale, bias = rand(shape, scale=3.0, offset=2.0), rand(shape[1:2]), rand(shape[1:2])
    attrs = {"epsilon": 1e-3} | ({"consumed_inputs": [0, 0, 0]} if opset == 1 else {})
    (y,), _, _ = run("InstanceNormalization", [x, scale, bias], attrs, opset=opset)
    axes = tuple(range(2, x.ndim))
    x64 = x.astype(np.float64)
    norm = (x64 - x64.mean(axis=axes, keepdims=True)) / np.sqrt(x64.var(axis=axes, keepdims=True) + 1e-3)
    close(norm * scale.reshape(-1, *(1,) * len(axes)) + bias.reshape(-1, *(1,) * len(axes)), y)


@pytest.mark.parametrize("axis", [0, 1, -1, 2, -2])
@pytest.mark.parametrize("with_bias", [True, False])
def test_layer_norm_axes_and_stats(axis, with_bias):
    x = rand((2, 3, 4), scale=2.0, offset=-1.0)
    a = axis % 3
    scale = rand(x.shape[a:])
    bias = rand(x.shape[a:]) if with_bias else None
    outs, _, _ = run("LayerNormalization", [x, scale, bias], {"axis": axis, "epsilon": 1e-4}, opset=17, n_out=3)
    y, mean, inv = outs
    axes = tuple(range(a, 3))
    x64 = x.astype(np.float64)
    m = x64.mean(axis=axes, keepdims=True)
    istd = 1 / np.sqrt(x64.var(axis=axes, keepdims=True) + 1e-4)
    close((x64 - m) * istd * scale + (bias if with_bias else 0), y)
    close(m, mean, np.float32)
    close(istd, inv, np.float32)


def test_layer_norm_float16_stash_outputs_float():
    x = rand((2, 8), np.float16)
    scale = np.ones(8, np.float16)
    y, mean, inv = run("LayerNormalization", [x, scale], opset=17, n_out=3)[0]
    assert y.dtype == np.float16 and mean.dtype == np.float32 and inv.dtype == np.float32
    close(x.astype(np.float64).mean(axis=1, keepdims=True), mean, rtol=1e-3, atol=1e-3)


def test_layer_norm_only_y_requested():
    x = rand((3, 4))
    (y,), _, _ = run("LayerNormalization", [x, np.ones(4, np.float32)], opset=17, outputs=["y", "", ""])
    close((x - x.mean(1, keepdims=True)) / np.sqrt(x.var(1, keepdims=True) + 1e-5), y)


def _group_norm_ref(x, groups, eps):
    xg = x.astype(np.float64).reshape(x.shape[0], groups, -1)
    norm = (xg - xg.mean(-1, keepdims=True)) / np.sqrt(xg.var(-1, keepdims=True) + eps)
    return norm.reshape(x.shape)


@pytest.mark.parametrize("shape, groups", [((2, 4, 3, 3), 2), ((1, 6, 5), 3), ((2, 4, 2, 2, 2), 4), ((1, 3, 4), 1)])
def test_group_norm_21_per_channel_affine(shape, groups):
    x = rand(shape, scale=2.0)
    scale, bias = rand(shape[1:2]), rand(shape[1:2])
    (y,), _, _ = run("GroupNormalization", [x, scale, bias], {"num_groups": groups, "epsilon": 1e-3}, opset=21)
    cs = (-1, *(1,) * (x.ndim - 2))
    close(_group_norm_ref(x, groups, 1e-3) * scale.reshape(cs) + bias.reshape(cs), y)


def test_group_norm_18_per_group_affine():
    x = rand((2, 6, 3, 2))
    scale, bias = rand((3,)), rand((3,))
    (y,), _, _ = run("GroupNormalization", [x, scale, bias], {"num_groups": 3}, opset=18)
    expanded = (np.repeat(scale, 2).reshape(-1, 1, 1), np.repeat(bias, 2).reshape(-1, 1, 1))
    close(_group_norm_ref(x, 3, 1e-5) * expanded[0] + expanded[1], y)


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_rms_norm(axis):
    x = rand((2, 3, 4), scale=2.0)
    a = axis % 3
    scale = rand(x.shape[a:])
    (y,), _, _ = run("RMSNormalization", [x, scale], {"axis": axis, "epsilon": 1e-3}, opset=23)
    x64 = x.astype(np.float64)
    ms = np.mean(x64**2, axis=tuple(range(a, 3)), keepdims=True)
    close(x64 / np.sqrt(ms + 1e-3) * scale, y)


# -- Lp, LRN, MVN -----------------------------------------------------------------------------


@pytest.mark.parametrize("opset", [1, 22])
@pytest.mark.parametrize("p", [1, 2])
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_lp_norm(opset, p, axis):
    x = rand((3, 4, 2))
    x[0, :, 0] = 0  # a zero row along axis 1 stays zero
    x[:, 0, 0] = 0
    (y,), _, _ = run("LpNormalization", [x], {"p": p, "axis": axis}, opset=opset)
    norm = np.sum(np.abs(x.astype(np.float64)) ** p, axis=axis, keepdims=True) ** (1 / p)
    with np.errstate(invalid="ignore", divide="ignore"):
        expected = np.where(norm == 0, 0, x / norm)
    close(expected, y)


@pytest.mark.parametrize("opset", [1, 13])
@pytest.mark.parametrize("size", [1, 2, 3, 5, 9])
@pytest.mark.parametrize("beta", [0.6, 0.75, 0.5, 1.0])
@pytest.mark.parametrize(
    "shape, dtype", [((2, 7, 3, 3), np.float32), ((1, 4, 5), np.float64), ((3, 6), np.float32)], ids=["4d", "3d-f64", "2d"]
)
def test_lrn(opset, size, beta, shape, dtype):
    x = rand(shape, dtype, scale=2.0)
    attrs = {"size": size, "alpha": 1e-2, "beta": beta, "bias": 1.5}
    (y,), _, _ = run("LRN", [x], attrs, opset=opset)
    c = x.shape[1]
    lo, hi = (size - 1) // 2, size - 1 - (size - 1) // 2
    sq = np.zeros_like(x, dtype=np.float64)
    for i in range(c):
        sq[:, i] = np.sum(x[:, max(0, i - lo) : min(c, i + hi + 1)].astype(np.float64) ** 2, axis=1)
    tol = 1e-10 if dtype == np.float64 else 1e-3
    alpha, beta = (float(np.float32(v)) for v in (1e-2, beta))  # ONNX float attributes are float32
    close(x / (1.5 + alpha / size * sq) ** beta, y, rtol=tol, atol=tol)


@pytest.mark.parametrize("opset", [9, 13])
@pytest.mark.parametrize("axes", [None, [0, 2, 3], [1], [2, 3]])
def test_mean_variance_norm(opset, axes):
    x = rand((2, 3, 4, 5), scale=2.0, offset=1.0)
    attrs = {} if axes is None else {"axes": axes}
    (y,), _, _ = run("MeanVarianceNormalization", [x], attrs, opset=opset)
    ax = tuple(axes or [0, 2, 3])
    x64 = x.astype(np.float64)
    close((x64 - x64.mean(axis=ax, keepdims=True)) / (x64.std(axis=ax, keepdims=True) + 1e-9), y)
