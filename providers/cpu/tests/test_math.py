"""MatMul, Gemm, MatMulInteger, Einsum and Det: what the ONNX node cases leave out.

Every schema version, float16/float64/integer dtypes, constant (pre-packed)
and runtime B and C, C broadcasting, zero points per row and column,
implicit/explicit/ellipsis einsum equations and batched determinants. Expected
values are closed-form numpy in float64.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

import ortcore
from ortcore.dtypes import onnx_elem_type
from ortcore.testing import compare_outputs

RNG = np.random.default_rng(3)


def run(op, inputs, attrs=None, *, opset, constant=()):
    names = [f"x{i}" if v is not None else "" for i, v in enumerate(inputs)]
    node = helper.make_node(op, names, ["y"], **(attrs or {}))
    feeds = {n: v for i, (n, v) in enumerate(zip(names, inputs)) if v is not None and i not in constant}
    inits = [numpy_helper.from_array(v, n) for i, (n, v) in enumerate(zip(names, inputs)) if i in constant]
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info(n, onnx_elem_type(v.dtype), v.shape) for n, v in feeds.items()],
        [onnx.ValueInfoProto(name="y")],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    sess = ortcore.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (y,) = sess.run(None, feeds)
    return y


def close(expected, actual, dtype, rtol=1e-3, atol=1e-5):
    assert actual.dtype == dtype, f"dtype {actual.dtype} != {dtype}"
    compare_outputs(np.asarray(expected).astype(dtype), actual, rtol=rtol, atol=atol)


def rand(shape, dtype=np.float32):
    return RNG.standard_normal(shape).astype(dtype)


# -- MatMul ----------------------------------------------------------------------------------


@pytest.mark.parametrize("opset", [1, 9, 13])
@pytest.mark.parametrize(
    "a_shape, b_shape",
    [((3, 4), (4, 5)), ((2, 3, 4), (4, 5)), ((4,), (4, 5)), ((2, 1, 3, 4), (5, 4, 2)), ((4,), (4,)), ((3, 4), (4,))],
)
def test_matmul_shapes(opset, a_shape, b_shape):
    a, b = rand(a_shape), rand(b_shape)
    y = run("MatMul", [a, b], opset=opset)
    close(np.matmul(a.astype(np.float64), b), y, np.float32)


@pytest.mark.parametrize(
    "dtype", [np.float16, np.float64, ml_dtypes.bfloat16, np.int32, np.int64, np.uint32, np.uint64]
)
@pytest.mark.parametrize("constant", [(), (1,)])
def test_matmul_dtypes(dtype, constant):
    if np.dtype(dtype).kind in "iu":
        a, b = RNG.integers(0, 9, (3, 5)).astype(dtype), RNG.integers(0, 9, (5, 2)).astype(dtype)
    else:
        a, b = rand((3, 5), dtype), rand((5, 2), dtype)
    y = run("MatMul", [a, b], opset=13, constant=constant)
    tol = {np.float16: 1e-2, ml_dtypes.bfloat16: 3e-2}.get(dtype, 1e-9)
    close(np.matmul(a.astype(np.float64), b.astype(np.float64)), y, dtype, rtol=tol, atol=tol)


# -- Gemm --------------------------------------------------------------------------------------


@pytest.mark.parametrize("opset", [7, 9, 11, 13])
@pytest.mark.parametrize("trans_a, trans_b", [(0, 0), (1, 0), (0, 1), (1, 1)])
@pytest.mark.parametrize("c_shape", [(), (1,), (5,), (3, 1), (3, 5)])
@pytest.mark.parametrize("constant", [(), (1, 2)], ids=["runtime", "packed"])
def test_gemm(opset, trans_a, trans_b, c_shape, constant):
    a = rand((4, 3) if trans_a else (3, 4))
    b = rand((5, 4) if trans_b else (4, 5))
    c = rand(c_shape)
    attrs = {"alpha": 0.5, "beta": -2.0, "transA": trans_a, "transB": trans_b}
    y = run("Gemm", [a, b, c], attrs, opset=opset, constant=constant)
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    expected = 0.5 * (a64.T if trans_a else a64) @ (b64.T if trans_b else b64) - 2.0 * c
    close(expected, y, np.float32)


@pytest.mark.parametrize("opset", [1, 6])
def test_gemm_legacy_broadcast_attribute(opset):
    a, b, c = rand((2, 3)), rand((3, 4)), rand((4,))
    y = run("Gemm", [a, b, c], {"broadcast": 1, "beta": 0.5}, opset=opset, constant=(1,))
    close(a.astype(np.float64) @ b + 0.5 * c, y, np.float32)


@pytest.mark.parametrize("constant", [(), (1,)])
def test_gemm_without_c(constant):
    a, b = rand((2, 3)), rand((4, 3))
    y = run("Gemm", [a, b], {"transB": 1, "alpha": 2.0}, opset=13, constant=constant)
    close(2.0 * a.astype(np.float64) @ b.T, y, np.float32)


@pytest.mark.parametrize(
    "dtype", [np.float16, np.float64, ml_dtypes.bfloat16, np.int32, np.int64, np.uint32, np.uint64]
)
def test_gemm_dtypes(dtype):
    if np.dtype(dtype).kind in "iu":
        a, b, c = (RNG.integers(0, 7, s).astype(dtype) for s in ((3, 4), (4, 2), (2,)))
    else:
        a, b, c = rand((3, 4), dtype), rand((4, 2), dtype), rand((2,), dtype)
    y = run("Gemm", [a, b, c], opset=13, constant=(1, 2))
    tol = {np.float16: 1e-2, ml_dtypes.bfloat16: 3e-2}.get(dtype, 1e-9)
    close(a.astype(np.float64) @ b.astype(np.float64) + c, y, dtype, rtol=tol, atol=tol)


@pytest.mark.parametrize("constant", [(), (1, 2)])
def test_gemm_beta_zero_ignores_c(constant):
    a, b = rand((2, 3)), rand((3, 4))
    c = np.full((2, 4), np.inf, np.float32)
    y = run("Gemm", [a, b, c], {"beta": 0.0}, opset=13, constant=constant)
    close(a.astype(np.float64) @ b, y, np.float32)


@pytest.mark.parametrize("rows", [1, 4, 5])
def test_gemm_constant_weights_few_rows(monkeypatch, rows):
    """A fully connected layer: up to four rows times a constant B take the GEMM engine's GEMV (where it runs
    in parallel), more rows its GEMM; odd sizes, against float64."""
    from ortcore_cpu.ops import math as math_ops

    engine = math_ops._gemv_engine()
    calls = []

    class Spy:
        def gemv(self, a, w):
            calls.append(("gemv", a.shape))
            return engine.gemv(a, w)

        def __call__(self, panels, bias, x, y):
            calls.append(("gemm", x.shape))
            return engine(panels, bias, x, y)

    monkeypatch.setattr(math_ops, "_gemv_engine", lambda: None if engine is None else Spy())
    a, b, c = rand((rows, 1003)), rand((37, 1003)), rand((37,))
    y = run("Gemm", [a, b, c], {"transB": 1, "alpha": 0.5}, opset=13, constant=(1, 2))
    close(0.5 * a.astype(np.float64) @ b.T + c, y, np.float32, rtol=1e-4, atol=1e-4)
    expected = [("gemv", (rows, 1003))] if rows <= 4 else [("gemm", (1, 1003, rows))]
    assert calls == (expected if engine is not None else [])


@pytest.mark.parametrize(
    "op, a_shape",
    [("Gemm", (3, 1003)), ("Gemm", (37, 1003)), ("MatMul", (3, 1003)), ("MatMul", (37, 1003)), ("MatMul", (2, 5, 1003))],
)
def test_constant_weights_on_the_engine(op, a_shape):
    """A constant float32 B runs on the GEMM engine (GEMV for up to four rows, its GEMM for more), odd sizes,
    against float64; Gemm's alpha, beta and transB fold into its packing."""
    a, b, c = rand(a_shape), rand((1003, 37)), rand((37,))
    if op == "Gemm":
        y = run("Gemm", [a, b.T.copy(), c], {"transB": 1, "alpha": 0.5, "beta": 2.0}, opset=13, constant=(1, 2))
        expected = 0.5 * a.astype(np.float64) @ b + 2.0 * c
    else:
        y = run("MatMul", [a, b], opset=13, constant=(1,))
        expected = a.astype(np.float64) @ b
    close(expected, y, np.float32, rtol=1e-4, atol=1e-4)


def test_gemm_does_not_modify_inputs():
    a, b, c = rand((2, 3)), rand((3, 4)), rand((2, 4))
    keep = [v.copy() for v in (a, b, c)]
    run("Gemm", [a, b, c], {"alpha": 3.0, "beta": 2.0}, opset=13)
    for v, k in zip((a, b, c), keep):
        np.testing.assert_array_equal(v, k)


# -- MatMulInteger --------------------------------------------------------------------------------


@pytest.mark.parametrize("dtypes", [(np.uint8, np.uint8), (np.int8, np.int8), (np.uint8, np.int8)])
@pytest.mark.parametrize("per_axis", [False, True])
def test_matmul_integer(dtypes, per_axis):
    at, bt = dtypes
    a = RNG.integers(np.iinfo(at).min, np.iinfo(at).max, (2, 3, 6), endpoint=True).astype(at)
    b = RNG.integers(np.iinfo(bt).min, np.iinfo(bt).max, (6, 4), endpoint=True).astype(bt)
    if per_axis:
        az, bz = RNG.integers(0, 9, (3,)).astype(at), RNG.integers(0, 9, (4,)).astype(bt)
        expected = (a.astype(np.int64) - az[:, None]) @ (b.astype(np.int64) - bz[None, :])
    else:
        az, bz = np.array(5, at), np.array(2, bt)
        expected = (a.astype(np.int64) - 5) @ (b.astype(np.int64) - 2)
    y = run("MatMulInteger", [a, b, az, bz], opset=10)
    assert y.dtype == np.int32
    np.testing.assert_array_equal(y, expected)


def test_matmul_integer_without_zero_points():
    a = RNG.integers(0, 255, (4, 5)).astype(np.uint8)
    b = RNG.integers(-128, 127, (5, 3)).astype(np.int8)
    np.testing.assert_array_equal(run("MatMulInteger", [a, b], opset=10), a.astype(np.int64) @ b)


# -- Einsum ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("opset", [12, 28])
@pytest.mark.parametrize(
    "equation, shapes, expected",
    [
        ("ij,jk->ik", [(2, 3), (3, 4)], lambda a, b: a @ b),
        ("ij,jk", [(2, 3), (3, 4)], lambda a, b: a @ b),  # implicit: labels once, sorted
        ("ba", [(2, 3)], lambda a: a.T),
        ("ii->i", [(3, 3)], lambda a: np.diag(a)),
        ("ii", [(3, 3)], lambda a: np.trace(a)),
        ("...ij,...jk->...ik", [(2, 2, 3), (2, 3, 4)], lambda a, b: a @ b),
        ("...ij,jk", [(5, 2, 3), (3, 4)], lambda a, b: a @ b),  # implicit output keeps ellipsis first
        ("bI, bJ -> bIJ", [(2, 3), (2, 4)], lambda a, b: a[:, :, None] * b[:, None, :]),
        ("Ab,a", [(2, 3), (4,)], lambda a, b: np.einsum("Ab,a->Aab", a, b)),  # upper case sorts first
        ("i,i,i->", [(3,), (3,), (3,)], lambda a, b, c: np.sum(a * b * c)),
    ],
)
def test_einsum(opset, equation, shapes, expected):
    inputs = [rand(s) for s in shapes]
    y = run("Einsum", inputs, {"equation": equation}, opset=opset)
    close(expected(*(x.astype(np.float64) for x in inputs)), y, np.float32)


@pytest.mark.parametrize("dtype", [np.float16, np.float64, np.int32, np.int64])
def test_einsum_dtypes(dtype):
    a = (RNG.integers(-5, 5, (3, 4)) if np.dtype(dtype).kind == "i" else rand((3, 4))).astype(dtype)
    y = run("Einsum", [a, a], {"equation": "ij,kj->ik"}, opset=12)
    tol = 1e-2 if dtype == np.float16 else 1e-9
    close(a.astype(np.float64) @ a.astype(np.float64).T, y, dtype, rtol=tol, atol=tol)


# -- Det ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("opset", [11, 22])
@pytest.mark.parametrize("shape", [(3, 3), (2, 4, 4), (2, 1, 2, 2), (1, 1)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16, ml_dtypes.bfloat16])
def test_det(opset, shape, dtype):
    if dtype == ml_dtypes.bfloat16 and opset < 22:
        pytest.skip("bfloat16 Det is opset 22")
    x = rand(shape, dtype)
    y = run("Det", [x], opset=opset)
    tol = {np.float16: 1e-2, ml_dtypes.bfloat16: 5e-2}.get(dtype, 1e-5)
    close(np.linalg.det(x.astype(np.float64)), y, dtype, rtol=tol, atol=tol)
    assert y.shape == shape[:-2]
