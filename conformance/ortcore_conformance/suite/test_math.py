"""Randomized differential tests: elementwise ops with broadcasting, reductions, Softmax, MatMul/Gemm, Cast."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, mutually_broadcastable_shapes

from ortcore_conformance.differential import (
    NUMERIC, check_node, examples, schema_dtypes, seeds, start, tolerance, values,
)


def _params(ops):
    return [pytest.param(op, d, id=f"{op}-{d}") for op in ops for d in schema_dtypes(op)]


# op -> the range its inputs are drawn from (kept inside each op's domain)
UNARY = {
    "Abs": (-10, 10), "Neg": (-10, 10), "Sign": (-10, 10), "Exp": (-10, 10), "Log": (0.01, 100),
    "Sqrt": (0, 100), "Reciprocal": (0.1, 10), "Floor": (-10, 10), "Ceil": (-10, 10), "Round": (-10, 10),
    "Relu": (-10, 10), "Sigmoid": (-10, 10), "Tanh": (-5, 5), "Sin": (-10, 10), "Cos": (-10, 10),
    "Erf": (-3, 3), "Not": (0, 1),
}


@pytest.mark.parametrize("op,dtype", _params(UNARY))
def test_unary(target, record_case, op, dtype):
    opset = start(target, record_case, op, [dtype])

    @examples(f"{op}-{dtype}", shape=array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5), seed=seeds)
    def check(shape, seed):
        x = values(np.random.default_rng(seed), shape, dtype, *UNARY[op])
        if op == "Round":
            x = (np.round(x.astype(np.float64) * 2) / 2).astype(dtype)  # ties: ONNX rounds half to even
        check_node(target, op, opset, [x], **tolerance(dtype))

    check()


BINARY = (
    "Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Mod", "Equal", "Less", "Greater", "LessOrEqual",
    "GreaterOrEqual", "And", "Or", "Xor", "BitwiseAnd", "BitwiseOr", "BitwiseXor", "BitShift",
)


def _binary_inputs(op, dtype, rng, shapes):
    a, b = (values(rng, s, dtype) for s in shapes)
    if op == "Pow":  # no integer overflow, no negative integer exponents, real results
        a, b = (values(rng, shapes[0], dtype, 0.1, 4), values(rng, shapes[1], dtype, -3, 3))
        if dtype.kind in "iu":
            b = np.abs(b)
    elif op in ("Div", "Mod") and dtype.kind in "iu":
        b = np.where(b == 0, 1, b).astype(dtype)  # integer division by zero is undefined
    elif op == "BitShift":
        b = values(rng, shapes[1], dtype, 0, 8 * dtype.itemsize - 1)
    return a, b


@pytest.mark.parametrize("op,dtype", _params(BINARY))
def test_binary_broadcasting(target, record_case, op, dtype):
    opset = start(target, record_case, op, [dtype, dtype])
    shapes = mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=4, min_side=0, max_side=4)

    @examples(f"{op}-{dtype}", shapes=shapes, seed=seeds, flag=st.booleans())
    def check(shapes, seed, flag):
        attrs = {}
        if op == "Mod":
            attrs["fmod"] = int(flag or dtype.kind == "f")  # floats require fmod=1
        if op == "BitShift":
            attrs["direction"] = "LEFT" if flag else "RIGHT"
        inputs = _binary_inputs(op, dtype, np.random.default_rng(seed), shapes.input_shapes)
        check_node(target, op, opset, inputs, attrs, **tolerance(dtype))

    check()


REDUCE = {
    "ReduceSum": (-3, 3), "ReduceMean": (-3, 3), "ReduceMax": (-10, 10), "ReduceMin": (-10, 10),
    "ReduceProd": (0.5, 1.5), "ReduceL1": (-3, 3), "ReduceL2": (-3, 3), "ReduceLogSumExp": (-5, 5),
    "ReduceSumSquare": (-3, 3), "ReduceLogSum": (0.1, 10),
}


def _axes_for(rank):
    """Random axes (possibly negative, possibly none), or None for an omitted axes input."""
    subset = st.lists(st.integers(0, rank - 1), unique=True, max_size=rank)
    signed = subset.flatmap(lambda axes: st.tuples(*[st.sampled_from([a, a - rank]) for a in axes]))
    return st.one_of(st.none(), signed.map(list))


@pytest.mark.parametrize("op,dtype", _params(REDUCE))
def test_reduce_over_random_axes(target, record_case, op, dtype):
    opset = start(target, record_case, op, [dtype])
    axes_as_input = "axes" in [i.name for i in onnx.defs.get_schema(op, opset).inputs]
    shapes = array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=4)
    data = shapes.flatmap(lambda s: st.tuples(st.just(s), _axes_for(len(s))))

    @examples(f"{op}-{dtype}", data=data, keepdims=st.booleans(), noop=st.booleans(), seed=seeds)
    def check(data, keepdims, noop, seed):
        shape, axes = data
        x = values(np.random.default_rng(seed), shape, dtype, *REDUCE[op])
        attrs = {"keepdims": int(keepdims)}
        if axes_as_input:
            attrs["noop_with_empty_axes"] = int(noop)
            inputs = [x, None if axes is None else np.array(axes, np.int64)]
        else:
            inputs = [x]
            if axes:
                attrs["axes"] = axes
        check_node(target, op, opset, inputs, attrs, constant=[1], **tolerance(dtype, accumulates=True))

    check()


@pytest.mark.parametrize("op,dtype", _params(("ArgMax", "ArgMin")))
def test_arg_reduce(target, record_case, op, dtype):
    opset = start(target, record_case, op, [dtype])
    shapes = array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=5)
    data = shapes.flatmap(lambda s: st.tuples(st.just(s), st.integers(-len(s), len(s) - 1)))

    @examples(f"{op}-{dtype}", data=data, keepdims=st.booleans(), last=st.booleans(), seed=seeds)
    def check(data, keepdims, last, seed):
        shape, axis = data
        x = values(np.random.default_rng(seed), shape, dtype, 0, 3)
        x = np.floor(x).astype(dtype)  # ties, so that select_last_index matters
        attrs = {"axis": axis, "keepdims": int(keepdims)}
        if opset >= 12:
            attrs["select_last_index"] = int(last)
        check_node(target, op, opset, [x], attrs)

    check()


@pytest.mark.parametrize("op,dtype", _params(("Softmax", "LogSoftmax", "Hardmax")))
def test_softmax(target, record_case, op, dtype):
    opset = start(target, record_case, op, [dtype])
    shapes = array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=5)
    data = shapes.flatmap(lambda s: st.tuples(st.just(s), st.integers(-len(s), len(s) - 1)))

    @examples(f"{op}-{dtype}", data=data, seed=seeds)
    def check(data, seed):
        shape, axis = data
        x = values(np.random.default_rng(seed), shape, dtype, -5, 5)
        check_node(target, op, opset, [x], {"axis": axis}, **tolerance(dtype, accumulates=True))

    check()


def _matmul_shapes():
    """(a shape, b shape): batch dimensions that broadcast, or a 1-D operand on either side."""
    batch = mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=2, max_side=3)

    def build(batch, m, k, n, vector):
        a = (k,) if vector == "a" else (*batch.input_shapes[0], m, k)
        b = (k,) if vector == "b" else (*batch.input_shapes[1], k, n)
        return a, b

    return st.builds(build, batch, *[st.integers(0, 5)] * 3, st.sampled_from(["none", "a", "b"]))


@pytest.mark.parametrize("dtype", schema_dtypes("MatMul"), ids=str)
def test_matmul(target, record_case, dtype):
    opset = start(target, record_case, "MatMul", [dtype, dtype])

    @examples(f"MatMul-{dtype}", shapes=_matmul_shapes(), seed=seeds)
    def check(shapes, seed):
        rng = np.random.default_rng(seed)
        a, b = (values(rng, s, dtype, -3, 3) for s in shapes)
        check_node(target, "MatMul", opset, [a, b], **tolerance(dtype, accumulates=True))

    check()


@pytest.mark.parametrize("dtype", schema_dtypes("Gemm"), ids=str)
def test_gemm_with_transposes(target, record_case, dtype):
    opset = start(target, record_case, "Gemm", [dtype, dtype, dtype])
    scalars = st.sampled_from([1.0, 0.5, -2.0, 0.0]) if dtype.kind == "f" else st.just(1.0)
    c_shapes = st.sampled_from(["none", "scalar", "row", "column", "full"])

    @examples(f"Gemm-{dtype}", mkn=st.tuples(*[st.integers(1, 6)] * 3), trans=st.tuples(st.booleans(), st.booleans()),
              alpha=scalars, beta=scalars, c_shape=c_shapes, seed=seeds)
    def check(mkn, trans, alpha, beta, c_shape, seed):
        (m, k, n), (trans_a, trans_b) = mkn, trans
        rng = np.random.default_rng(seed)
        a = values(rng, (k, m) if trans_a else (m, k), dtype, -3, 3)
        b = values(rng, (n, k) if trans_b else (k, n), dtype, -3, 3)
        shape = {"none": None, "scalar": (), "row": (n,), "column": (m, 1), "full": (m, n)}[c_shape]
        c = None if shape is None else values(rng, shape, dtype, -3, 3)
        attrs = {"transA": int(trans_a), "transB": int(trans_b), "alpha": alpha, "beta": beta}
        check_node(target, "Gemm", opset, [a, b, c], attrs, **tolerance(dtype, accumulates=True))

    check()


def _cast_values(rng, shape, src, dst):
    """Values that survive the cast defined: inside both ranges; specials only between floats."""
    low, high = -1000, 1000
    for d in (src, dst):
        if d.kind in "iu":
            low, high = max(low, np.iinfo(d).min), min(high, np.iinfo(d).max)
    x = values(rng, shape, src, low, high)
    if dst == np.bool_ and src != np.bool_:
        x = np.where(rng.random(shape) < 0.3, 0, x).astype(src)
    if src.kind == "f" and dst.kind == "f":
        with np.errstate(over="ignore"):
            specials = np.array([np.nan, np.inf, -np.inf, -0.0, 1e5, 1e-6]).astype(src)
        x = np.where(rng.random(shape) < 0.2, rng.choice(specials, shape), x).astype(src)
    return x


@pytest.mark.parametrize("src,dst", [
    pytest.param(s, d, id=f"{s}-{d}") for s in schema_dtypes("Cast") for d in NUMERIC
])
def test_cast(target, record_case, src, dst):
    opset = start(target, record_case, "Cast", [src])
    record_case("property", [("ai.onnx", "Cast", opset)], [src.name, dst.name])
    to = onnx.helper.np_dtype_to_tensor_dtype(dst)

    @examples(f"Cast-{src}-{dst}", shape=array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5), seed=seeds)
    def check(shape, seed):
        x = _cast_values(np.random.default_rng(seed), shape, src, dst)
        check_node(target, "Cast", opset, [x], {"to": to}, **tolerance(dst))

    check()

