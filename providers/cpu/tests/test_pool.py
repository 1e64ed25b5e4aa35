"""Pooling kernels: what the ONNX node cases leave out.

Random kernels, strides, pads, dilations, ceil_mode and auto_pad over 1-D, 2-D
and 3-D inputs, the MaxPool Indices output in both storage orders, every
schema version, and MaxRoiPool/MaxUnpool. Expected values come from
onnx.reference, onnxruntime or direct loops written here.

2-D MaxPool and AveragePool have a compiled loop (with numba) and a numpy
path: their cases run on both, and a spy on the compiled loops checks which
path ran.
"""

from __future__ import annotations

import itertools

import ml_dtypes
import numpy as np
import onnx
import pytest
from onnx import helper
from onnx.reference import ReferenceEvaluator

import ortcore
from ortcore.dtypes import onnx_elem_type
from ortcore.testing import compare_outputs
from ortcore_cpu.ops.nn import _pool_loops

RNG = np.random.default_rng(11)


def run(op, inputs, attrs=None, *, opset=22, n_out=1):
    names = [f"x{i}" for i in range(len(inputs))]
    node = helper.make_node(op, names, [f"y{i}" for i in range(n_out)], **(attrs or {}))
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info(n, onnx_elem_type(v.dtype), v.shape) for n, v in zip(names, inputs)],
        [onnx.ValueInfoProto(name=f"y{i}") for i in range(n_out)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    feeds = dict(zip(names, inputs))
    sess = ortcore.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds), model, feeds


def check(op, inputs, attrs=None, *, opset=22, n_out=1, expected=None, rtol=1e-3, atol=1e-5):
    actual, model, feeds = run(op, inputs, attrs, opset=opset, n_out=n_out)
    if expected is None:
        expected = ReferenceEvaluator(model).run(None, feeds)
    else:  # closed-form values are float64; the dtype is checked against the input instead
        assert actual[0].dtype == inputs[0].dtype
        expected = [np.asarray(e).astype(a.dtype) for e, a in zip(expected, actual)]
    for e, a in zip(expected, actual):
        compare_outputs(np.asarray(e), a, rtol=rtol, atol=atol, name=op)
    return actual


def rand(shape, dtype=np.float32):
    return RNG.standard_normal(shape).astype(dtype)


def _random_pool_attrs(rng, nd, *, dilations=True):
    kernel = [int(k) for k in rng.integers(1, 4, nd)]
    strides = [int(s) for s in rng.integers(1, 4, nd)]
    attrs = {"kernel_shape": kernel, "strides": strides}
    dil = [int(d) for d in rng.integers(1, 3, nd)] if dilations else [1] * nd
    if dilations:
        attrs["dilations"] = dil
    if rng.random() < 0.7:
        attrs["pads"] = [int(rng.integers(0, k)) for k in kernel * 2]
        attrs["ceil_mode"] = int(rng.integers(0, 2))
    else:
        attrs["auto_pad"] = str(rng.choice(["SAME_UPPER", "SAME_LOWER", "VALID"]))
        if attrs["auto_pad"] != "VALID":
            attrs["dilations"] = [1] * nd
            dil = [1] * nd
    spatial = [int(rng.integers((k - 1) * d + 1, 9)) for k, d in zip(kernel, dil)]
    return (int(rng.integers(1, 3)), int(rng.integers(1, 4)), *spatial), attrs


def window_loop(x, attrs, reduce):
    """Apply ``reduce(values, n_in_pads)`` to each window, explicit pads and floor mode only."""
    nd = x.ndim - 2
    k, s = attrs["kernel_shape"], attrs.get("strides", [1] * nd)
    d, p = attrs.get("dilations", [1] * nd), attrs.get("pads", [0] * 2 * nd)
    out = [(x.shape[2 + i] + p[i] + p[nd + i] - (k[i] - 1) * d[i] - 1) // s[i] + 1 for i in range(nd)]
    y = np.zeros((*x.shape[:2], *out))
    for nc in itertools.product(*map(range, x.shape[:2])):
        for pos in itertools.product(*map(range, out)):
            vals, padded = [], 0
            for tap in itertools.product(*map(range, k)):
                idx = [pos[i] * s[i] - p[i] + tap[i] * d[i] for i in range(nd)]
                if all(0 <= j < x.shape[2 + i] for i, j in enumerate(idx)):
                    vals.append(x[(*nc, *idx)])
                else:
                    padded += 1
            y[(*nc, *pos)] = reduce(np.array(vals, dtype=np.float64), padded)
    return y


# -- MaxPool ---------------------------------------------------------------------------


def explicit_same_pads(shape, attrs):
    """The spec's SAME pads: out = ceil(in / stride), the odd pad at the end (UPPER) or start (LOWER)."""
    nd = len(shape) - 2
    k, s = attrs["kernel_shape"], attrs.get("strides", [1] * nd)
    total = [max(0, (-(-n // st) - 1) * st + kk - n) for n, st, kk in zip(shape[2:], s, k)]
    small, big = [t // 2 for t in total], [t - t // 2 for t in total]
    pads = small + big if attrs["auto_pad"] == "SAME_UPPER" else big + small
    return {key: v for key, v in attrs.items() if key != "auto_pad"} | {"pads": pads}


@pytest.mark.parametrize("seed", range(24))
def test_max_pool_random_vs_reference(seed):
    rng = np.random.default_rng(seed)
    shape, attrs = _random_pool_attrs(rng, [1, 2, 3][seed % 3])
    x = rand(shape)
    if attrs.get("auto_pad", "").startswith("SAME"):
        # onnx.reference's MaxPool mis-sizes SAME_LOWER; compare with the spec's explicit pads
        # (its 1-D path fails on pads, so the direct loop serves there)
        explicit = explicit_same_pads(shape, attrs)
        _, model, feeds = run("MaxPool", [x], explicit)
        if len(shape) == 3:
            expected = [window_loop(x, explicit, lambda v, _: v.max())]
        else:
            expected = ReferenceEvaluator(model).run(None, feeds)
        check("MaxPool", [x], attrs, expected=expected)
    else:
        check("MaxPool", [x], attrs)


@pytest.mark.parametrize("seed", range(12))
def test_average_pool_random_vs_reference(seed):
    rng = np.random.default_rng(100 + seed)
    shape, attrs = _random_pool_attrs(rng, [1, 2, 3][seed % 3])
    attrs["count_include_pad"] = seed % 2
    check("AveragePool", [rand(shape)], attrs)


@pytest.mark.parametrize("count_include_pad", [0, 1])
def test_average_pool_vs_window_loop(count_include_pad):
    x = rand((2, 3, 7, 6))
    attrs = {
        "kernel_shape": [3, 2],
        "strides": [2, 1],
        "pads": [1, 0, 2, 1],
        "dilations": [1, 2],
        "count_include_pad": count_include_pad,
    }

    def mean(vals, padded):
        return vals.sum() / (len(vals) + (padded if count_include_pad else 0))

    check("AveragePool", [x], attrs, expected=[window_loop(x, attrs, mean)])


@pytest.mark.parametrize("storage_order", [0, 1])
@pytest.mark.parametrize(
    "shape, attrs",
    [
        ((2, 3, 6, 5), {"kernel_shape": [3, 2], "strides": [2, 2], "pads": [1, 0, 1, 1]}),
        ((1, 2, 5, 6, 4), {"kernel_shape": [2, 3, 2], "strides": [1, 2, 2], "pads": [0, 1, 1, 1, 1, 0]}),
        ((2, 2, 7, 7), {"kernel_shape": [3, 3], "strides": [2, 2], "dilations": [2, 1], "ceil_mode": 1}),
    ],
)
def test_max_pool_indices(shape, attrs, storage_order):
    """Indices are flat positions in x ([N, C, *spatial]; spatial column-major for storage_order=1)."""
    x = rand(shape)
    y, idx = run("MaxPool", [x], dict(attrs, storage_order=storage_order), opset=12, n_out=2)[0]
    assert idx.dtype == np.int64 and idx.shape == y.shape
    spatial = x.shape[2:]
    for nc in itertools.product(*map(range, x.shape[:2])):
        for pos in itertools.product(*map(range, y.shape[2:])):
            flat = idx[(*nc, *pos)] - (nc[0] * x.shape[1] + nc[1]) * int(np.prod(spatial))
            order = "C" if storage_order == 0 else "F"
            where = np.unravel_index(flat, spatial, order=order)
            assert x[(*nc, *where)] == y[(*nc, *pos)]
    # the values themselves match the reference
    check("MaxPool", [x], attrs)


def test_max_pool_indices_first_maximum_on_ties():
    x = np.zeros((1, 1, 3, 3), np.float32)
    _, idx = run("MaxPool", [x], {"kernel_shape": [2, 2]}, opset=12, n_out=2)[0]
    np.testing.assert_array_equal(idx[0, 0], [[0, 1], [3, 4]])


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.float16, np.float64])
def test_max_pool_dtypes_pad_with_lowest(dtype):
    info = np.iinfo(dtype) if np.dtype(dtype).kind in "iu" else None
    x = (RNG.integers(info.min, info.max, (1, 2, 5, 5), endpoint=True) if info else rand((1, 2, 5, 5))).astype(dtype)
    if info is not None:
        x[..., 0, 0] = info.min
    attrs = {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1], "strides": [2, 2]}
    (y,) = check("MaxPool", [x], attrs, expected=[window_loop(x, attrs, lambda v, p: v.max())])
    assert y.dtype == dtype


@pytest.mark.parametrize("opset", [1, 8, 10, 11, 12, 22])
def test_max_pool_every_version(opset):
    x = rand((1, 2, 5, 5))
    attrs = {"kernel_shape": [2, 2], "strides": [2, 2], "pads": [0, 0, 1, 1]}
    check("MaxPool", [x], attrs, opset=opset, expected=[window_loop(x, attrs, lambda v, p: v.max())])


@pytest.mark.parametrize("opset", [1, 7, 10, 11, 19, 22])
def test_average_pool_every_version(opset):
    x = rand((1, 2, 5, 5))
    attrs = {"kernel_shape": [2, 2], "strides": [2, 2], "pads": [0, 0, 1, 1]}
    check("AveragePool", [x], attrs, opset=opset, expected=[window_loop(x, attrs, lambda v, p: v.mean())])


def test_average_pool_ceil_mode_counts_only_real_pads():
    """With count_include_pad, the ceil_mode overhang beyond the pads is not counted."""
    x = np.arange(25, dtype=np.float32).reshape(1, 1, 5, 5)
    attrs = {"kernel_shape": [2, 2], "strides": [2, 2], "ceil_mode": 1, "count_include_pad": 1}
    (y,) = check("AveragePool", [x], attrs)
    assert y.shape == (1, 1, 3, 3)
    assert y[0, 0, 2, 2] == 24.0


# -- 2-D MaxPool and AveragePool: compiled loops and the numpy path ----------------------


@pytest.fixture(params=[True, False], ids=["compiled", "numpy"])
def loops(request, record_loops):
    """Compiled loops on or off, and the compiled pool loops that ran (see conftest.record_loops)."""
    return record_loops(request.param, _pool_loops)


def ran(loops, op, kind):
    """The compiled loops a 2-D ``op`` calls on the fixture's path: its ``kind`` one ("rows",
    "planes") once, or none for the numpy path and for windows that take the Global pool."""
    if not loops.on or kind is None:
        return []
    return [f"{LOOP_OF[op]}_{kind}"]


def ort_run(op, x, attrs, opset=22):
    """``op`` on ``x`` through onnxruntime (IR 8: the installed build reads IR <= 13)."""
    ort = pytest.importorskip("onnxruntime")
    node = helper.make_node(op, ["x"], ["y"], **attrs)
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", onnx_elem_type(x.dtype), x.shape)],
        [helper.make_tensor_value_info("y", onnx_elem_type(x.dtype), None)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x})


K3S2 = {"kernel_shape": [3, 3], "strides": [2, 2]}
K3S1P1 = {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}
LOOP_OF = {"MaxPool": "max_pool_2d", "AveragePool": "average_pool_2d"}
# (shape, attributes, the compiled loop that takes them): "planes" for stride 1 with the output
# as wide as the input, "rows" otherwise, None where the window is the whole image
POOL_2D = [
    pytest.param((1, 4, 14, 14), K3S2 | {"pads": [1, 1, 1, 1]}, "rows", id="3x3-s2-p1"),
    pytest.param((1, 3, 13, 12), K3S2 | {"ceil_mode": 1}, "rows", id="3x3-s2-ceil"),
    pytest.param((1, 3, 15, 15), K3S2 | {"ceil_mode": 1, "pads": [1, 0, 1, 1]}, "rows", id="3x3-s2-ceil-pads"),
    pytest.param((1, 3, 9, 8), K3S1P1, "planes", id="3x3-s1-p1"),
    pytest.param((1, 3, 7, 7), K3S1P1 | {"count_include_pad": 1}, "planes", id="3x3-s1-p1-include-pad"),
    pytest.param((1, 2, 6, 5), {"kernel_shape": [3, 3], "pads": [0, 2, 2, 0]}, "planes", id="3x3-s1-pads-one-side"),
    pytest.param((1, 2, 6, 9), {"kernel_shape": [2, 5], "pads": [1, 1, 0, 3]}, "planes", id="2x5-s1-same-width"),
    pytest.param((1, 3, 10, 9), K3S2 | {"pads": [0, 0, 1, 1]}, "rows", id="pads-end-only"),
    pytest.param(
        (1, 2, 9, 11), {"kernel_shape": [3, 4], "pads": [2, 0, 0, 3], "count_include_pad": 1}, "planes", id="pads-asym"
    ),
    pytest.param(
        (1, 2, 9, 11),
        {"kernel_shape": [3, 4], "pads": [2, 0, 0, 1], "count_include_pad": 1},
        "rows",
        id="pads-asym-narrower",
    ),
    pytest.param((1, 2, 8, 9), {"kernel_shape": [3, 3]}, "rows", id="3x3-s1-unpadded"),
    pytest.param((1, 2, 10, 10), {"kernel_shape": [3, 3], "strides": [3, 3]}, "rows", id="stride-3"),
    pytest.param(
        (1, 2, 11, 13), {"kernel_shape": [4, 5], "strides": [3, 2], "pads": [1, 2, 2, 1]}, "rows", id="kernel>stride"
    ),
    pytest.param((1, 2, 8, 8), {"kernel_shape": [2, 2], "strides": [2, 2]}, "rows", id="2x2-s2"),
    pytest.param(
        (1, 2, 9, 12), {"kernel_shape": [3, 2], "strides": [1, 2], "pads": [1, 0, 1, 0]}, "rows", id="strides-1x2"
    ),
    pytest.param((1, 2, 12, 9), {"kernel_shape": [1, 3], "strides": [2, 1], "ceil_mode": 1}, "rows", id="strides-2x1"),
    pytest.param((1, 2, 6, 17), {"kernel_shape": [5, 1], "strides": [1, 3], "pads": [2, 0, 2, 0]}, "rows", id="5x1-s3"),
    pytest.param((2, 3, 8, 8), K3S2 | {"pads": [1, 1, 1, 1], "count_include_pad": 1}, "rows", id="batch-2"),
    pytest.param((2, 3, 8, 8), K3S1P1 | {"count_include_pad": 1}, "planes", id="batch-2-s1"),
    pytest.param((1, 3, 7, 9), K3S2 | {"pads": [1, 1, 1, 1], "ceil_mode": 1}, "rows", id="7x9"),
    pytest.param((1, 2, 1, 1), K3S1P1, "planes", id="1x1"),
    pytest.param((1, 2, 1, 1), {"kernel_shape": [1, 1], "strides": [2, 2]}, None, id="1x1-k1"),
    pytest.param((1, 2, 7, 7), {"kernel_shape": [7, 7]}, None, id="whole-image"),
    pytest.param((1, 8, 7, 6), {"kernel_shape": [7, 6], "strides": [2, 2]}, None, id="whole-image-strided"),
    pytest.param(
        (1, 2, 7, 7), {"kernel_shape": [7, 7], "pads": [0, 0, 1, 1], "ceil_mode": 1}, "rows", id="whole-image-padded"
    ),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, attrs, kind", POOL_2D)
@pytest.mark.parametrize("op", ["MaxPool", "AveragePool"])
def test_pool_2d(op, shape, attrs, kind, dtype, loops):
    """Against onnxruntime, or onnx.reference for float64 AveragePool (which onnxruntime lacks).

    onnx.reference is not the first choice: its MaxPool mis-sizes some asymmetric pads.
    """
    if op == "MaxPool":
        attrs = {k: v for k, v in attrs.items() if k != "count_include_pad"}
    x = rand(shape, dtype)
    expected = ort_run(op, x, attrs) if op == "MaxPool" or dtype == np.float32 else None
    check(op, [x], attrs, expected=expected, rtol=1e-5 if dtype == np.float32 else 1e-12)
    assert loops.calls == ran(loops, op, kind)


@pytest.mark.parametrize(
    "attrs, kind",
    [
        ({"kernel_shape": [3, 3], "dilations": [2, 2], "pads": [2, 2, 2, 2]}, "planes"),
        ({"kernel_shape": [2, 3], "dilations": [3, 2], "pads": [2, 1, 1, 3]}, "planes"),
        ({"kernel_shape": [2, 3], "dilations": [3, 1], "strides": [2, 2]}, "rows"),
        ({"kernel_shape": [3, 2], "dilations": [1, 3], "strides": [1, 2], "pads": [0, 1, 1, 2]}, "rows"),
        ({"kernel_shape": [3, 3], "dilations": [2, 2], "strides": [2, 2], "ceil_mode": 1}, "rows"),
    ],
)
@pytest.mark.parametrize("op", ["MaxPool", "AveragePool"])
def test_pool_2d_dilations(op, attrs, kind, loops):
    x = rand((1, 3, 11, 10))
    if op == "MaxPool":
        check(op, [x], attrs)
    else:  # onnx.reference's AveragePool ignores dilations; count only the taps inside the input
        attrs = attrs | {"count_include_pad": 0}
        if attrs.get("ceil_mode"):
            return
        check(op, [x], attrs, expected=[window_loop(x, attrs, lambda v, _: v.mean())])
    assert loops.calls == ran(loops, op, kind)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "attrs, kind",
    [
        (K3S2 | {"pads": [1, 1, 1, 1]}, "rows"),
        (K3S1P1, "planes"),
        ({"kernel_shape": [2, 3], "pads": [1, 0, 0, 2]}, "planes"),
        ({"kernel_shape": [2, 2], "strides": [2, 2]}, "rows"),
        ({"kernel_shape": [3, 4], "strides": [3, 3], "pads": [1, 2, 1, 0]}, "rows"),
    ],
)
def test_max_pool_2d_propagates_nan(attrs, kind, dtype, loops):
    """A NaN anywhere in a window gives NaN (numpy's maximum), including next to the pads and -inf."""
    x = rand((1, 2, 9, 10), dtype)
    x[0, 0, 0, 0] = x[0, 0, 4, 5] = x[0, 1, 8, 9] = x[0, 1, 3, 0] = np.nan
    x[0, 1, 0, :] = -np.inf
    x[0, 1, 1, 1] = np.nan
    expected = window_loop(x, attrs, lambda v, _: v.max())
    (y,) = check("MaxPool", [x], attrs, expected=[expected])
    np.testing.assert_array_equal(np.isnan(y), np.isnan(expected))
    assert np.isnan(y).any()
    assert loops.calls == ran(loops, "MaxPool", kind)


def test_pool_2d_reads_strided_inputs(loops):
    x = rand((1, 3, 12, 10))[:, :, ::2, 1:]
    for op in ("MaxPool", "AveragePool"):
        check(op, [x], K3S1P1)
    assert loops.calls == ran(loops, "MaxPool", "planes") + ran(loops, "AveragePool", "planes")


@pytest.mark.parametrize(
    "op, x, attrs, n_out",
    [
        ("MaxPool", rand((1, 2, 9)), {"kernel_shape": [3], "strides": [2]}, 1),
        ("AveragePool", rand((1, 2, 5, 6, 7)), {"kernel_shape": [3, 3, 3], "pads": [1] * 6}, 1),
        ("MaxPool", rand((1, 2, 7, 7)).astype(np.float16), K3S2, 1),
        ("AveragePool", rand((1, 2, 7, 7)).astype(ml_dtypes.bfloat16), K3S2, 1),
        ("MaxPool", rand((1, 2, 7, 7)), K3S2, 2),
    ],
    ids=["1-D", "3-D", "float16", "bfloat16", "with-indices"],
)
def test_pool_numpy_path_outside_2d_float(op, x, attrs, n_out, loops):
    """Other ranks and dtypes, and MaxPool with Indices, take the numpy path whether or not numba is on."""
    expected = [window_loop(x.astype(np.float64), attrs, lambda v, _: v.max() if op == "MaxPool" else v.mean())]
    (y, *_), _, _ = run(op, [x], attrs, n_out=n_out)
    compare_outputs(expected[0].astype(x.dtype), y, rtol=1e-2, atol=1e-2)
    assert loops.calls == []


# -- LpPool and global pools ------------------------------------------------------------


@pytest.mark.parametrize("p", [1, 2, 3])
def test_lp_pool_vs_window_loop(p):
    x = rand((2, 3, 6, 7))
    attrs = {"kernel_shape": [3, 2], "strides": [2, 2], "pads": [1, 1, 0, 1], "p": p}
    expected = window_loop(x, attrs, lambda v, _: np.sum(np.abs(v) ** p) ** (1 / p))
    check("LpPool", [x], attrs, opset=18, expected=[expected])


@pytest.mark.parametrize("opset", [1, 2, 11, 18, 22])
def test_lp_pool_every_version(opset):
    x = rand((1, 2, 4, 4))
    attrs = {"kernel_shape": [2, 2], "strides": [2, 2], "p": 2.0 if opset == 1 else 2}
    expected = window_loop(x, attrs, lambda v, _: np.sqrt(np.sum(v**2)))
    check("LpPool", [x], attrs, opset=opset, expected=[expected])


@pytest.mark.parametrize("shape", [(2, 3, 5), (1, 4, 3, 5), (2, 2, 2, 3, 4)])
@pytest.mark.parametrize("opset", [1, 22])
def test_global_pools(shape, opset):
    x = rand(shape)
    axes = tuple(range(2, x.ndim))
    check("GlobalAveragePool", [x], opset=opset, expected=[x.mean(axis=axes, keepdims=True)])
    check("GlobalMaxPool", [x], opset=opset, expected=[x.max(axis=axes, keepdims=True)])
    lp = np.sum(np.abs(x.astype(np.float64)) ** 3, axis=axes, keepdims=True) ** (1 / 3)
    check("GlobalLpPool", [x], {"p": 3.0 if opset == 1 else 3}, opset=opset, expected=[lp])


@pytest.mark.parametrize("op", ["MaxPool", "AveragePool", "LpPool"])
def test_pools_bfloat16(op):
    x = rand((1, 2, 6, 6)).astype(ml_dtypes.bfloat16)
    attrs = {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}
    reduce = {
        "MaxPool": lambda v, _: v.max(),
        "AveragePool": lambda v, _: v.mean(),
        "LpPool": lambda v, _: np.sqrt(np.sum(v**2)),
    }[op]
    (y,) = check(op, [x], attrs, expected=[window_loop(x.astype(np.float64), attrs, reduce)], rtol=2e-2, atol=2e-2)
    assert y.dtype == ml_dtypes.bfloat16
    for gop, fn in [("GlobalMaxPool", np.max), ("GlobalAveragePool", np.mean)]:
        check(gop, [x], expected=[fn(x.astype(np.float64), axis=(2, 3), keepdims=True)], rtol=2e-2, atol=2e-2)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_global_average_pool_many_channels_and_special_values(dtype):
    # the models' channel counts; NaN and inf as a mean gives them
    x = rand((2, 1000, 13, 13), dtype)
    x[0, 3, 2, 2] = np.nan
    x[1, 7] = np.inf
    x[1, 8, 0, 0], x[1, 8, 1, 1] = -np.inf, np.inf
    with np.errstate(invalid="ignore"):
        expected = x.astype(np.float64).mean(axis=(2, 3), keepdims=True)
        x7 = np.ascontiguousarray(x[:, :, :7, :7])
        expected7 = x7.astype(np.float64).mean(axis=(2, 3), keepdims=True)
    (y,) = check("GlobalAveragePool", [x], expected=[expected])
    assert np.isnan(y[0, 3, 0, 0]) and np.isnan(y[1, 8, 0, 0]) and y[1, 7, 0, 0] == np.inf
    # AveragePool whose one window is the whole image takes the same path
    check("AveragePool", [x7], {"kernel_shape": [7, 7]}, expected=[expected7])


def test_global_average_pool_float16():
    x = rand((1, 3, 40, 40), np.float16) + np.float16(100)
    (y,) = check("GlobalAveragePool", [x], expected=[x.astype(np.float64).mean(axis=(2, 3), keepdims=True)])
    assert y.dtype == np.float16


# -- MaxRoiPool and MaxUnpool ------------------------------------------------------------


@pytest.mark.parametrize("opset", [1, 22])
def test_max_roi_pool(opset):
    x = np.arange(2 * 2 * 6 * 8, dtype=np.float32).reshape(2, 2, 6, 8) % 17
    rois = np.array([[0, 0, 0, 7, 5], [1, 2, 1, 5, 4], [0, 1, 1, 2, 2]], np.float32)
    (y,), _, _ = run("MaxRoiPool", [x, rois], {"pooled_shape": [2, 2], "spatial_scale": 1.0}, opset=opset)
    assert y.shape == (3, 2, 2, 2)
    # roi 0 spans the whole 6x8 image: bins are rows [0,3)/[3,6) x cols [0,4)/[4,8)
    np.testing.assert_array_equal(
        y[0, 0], [[x[0, 0, :3, :4].max(), x[0, 0, :3, 4:].max()], [x[0, 0, 3:, :4].max(), x[0, 0, 3:, 4:].max()]]
    )
    # roi 1 is x 2..5, y 1..4 of image 1: a 4x4 region, bins of 2x2
    region = x[1, 1, 1:5, 2:6]
    np.testing.assert_array_equal(y[1, 1], region.reshape(2, 2, 2, 2).max(axis=(1, 3)))
    # roi 2 is a 2x2 region: one pixel per bin
    np.testing.assert_array_equal(y[2, 0], x[0, 0, 1:3, 1:3])


@pytest.mark.parametrize("opset", [9, 11, 22])
def test_max_unpool_inverts_max_pool(opset):
    x = rand((2, 3, 4, 6))
    attrs = {"kernel_shape": [2, 2], "strides": [2, 2]}
    y, idx = run("MaxPool", [x], attrs, opset=12, n_out=2)[0]
    (z,), _, _ = run("MaxUnpool", [y, idx], attrs, opset=opset)
    expected = np.zeros_like(x).ravel()
    expected[idx.ravel()] = y.ravel()
    np.testing.assert_array_equal(z, expected.reshape(x.shape))
    (z2,), _, _ = run("MaxUnpool", [y, idx, np.array([2, 3, 5, 7], np.int64)], attrs, opset=opset)
    assert z2.shape == (2, 3, 5, 7)
    np.testing.assert_array_equal(z2[:, :, :4, :6], z)
