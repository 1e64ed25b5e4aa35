"""Randomized differential tests: Transpose, Reshape, Slice, Gather, Concat, Split, Pad over every dtype.

Shape-like inputs (shape, starts, pads...) are initializers, as in exported models.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes

from ortcore_conformance.differential import NUMERIC, check_node, examples, seeds, start, values

INT64 = np.iinfo(np.int64)
I64 = np.dtype(np.int64)
dtypes = pytest.mark.parametrize("dtype", NUMERIC, ids=str)


def _axis(rank):
    return st.integers(-rank, rank - 1)


@dtypes
def test_transpose(target, record_case, dtype):
    opset = start(target, record_case, "Transpose", [dtype])
    shapes = array_shapes(min_dims=0, max_dims=5, min_side=0, max_side=4)
    data = shapes.flatmap(lambda s: st.tuples(st.just(s), st.none() | st.permutations(range(len(s)))))

    @examples(f"Transpose-{dtype}", data=data, seed=seeds)
    def check(data, seed):
        shape, perm = data
        attrs = {} if not perm else {"perm": perm}  # a 0-d tensor has no perm to give
        check_node(target, "Transpose", opset, [values(np.random.default_rng(seed), shape, dtype)], attrs)

    check()


@st.composite
def reshape_target(draw):
    """A shape and a target of the same size, with -1 (inferred) and 0 (copied) entries."""
    shape = draw(array_shapes(min_dims=0, max_dims=4, min_side=1, max_side=4))
    target = []
    for dim, cut in zip(draw(st.permutations(shape)), draw(st.lists(st.booleans(), min_size=4, max_size=4))):
        if cut or not target:
            target.append(dim)
        else:
            target[-1] *= dim
    if target and draw(st.booleans()):
        target[draw(st.integers(0, len(target) - 1))] = -1
    copy = draw(st.booleans())
    target = [0 if copy and i < len(shape) and t == shape[i] else t for i, t in enumerate(target)]
    return shape, target


@dtypes
def test_reshape(target, record_case, dtype):
    opset = start(target, record_case, "Reshape", [dtype, I64])

    @examples(f"Reshape-{dtype}", data=reshape_target(), seed=seeds)
    def check(data, seed):
        shape, to = data
        x = values(np.random.default_rng(seed), shape, dtype)
        check_node(target, "Reshape", opset, [x, np.array(to, np.int64)], constant=[1])

    check()


def _index(rank_dim):
    """A start or end for a dimension: in range, just out of range, or the int64 extremes."""
    return st.integers(-rank_dim - 2, rank_dim + 2) | st.sampled_from([INT64.min, INT64.max])


@st.composite
def slicing(draw):
    """Data shape and Slice's starts, ends, axes (None: omitted) and steps (None: omitted)."""
    shape = draw(array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=6))
    rank = len(shape)
    axes = draw(st.permutations(range(rank)))[: draw(st.integers(1, rank))]
    omit_axes = draw(st.booleans())
    if omit_axes:
        axes = list(range(len(axes)))  # what omitted axes mean
    starts, ends = ([draw(_index(shape[a])) for a in axes] for _ in range(2))
    steps = [draw(st.sampled_from([-3, -2, -1, 1, 2, 3])) for _ in axes]
    # onnx.reference slices nothing when a negative step starts below -dim (it should clamp to 0)
    starts = [max(s, -shape[a]) if step < 0 else s for s, a, step in zip(starts, axes, steps)]
    axes_in = None if omit_axes else [a - rank if draw(st.booleans()) else a for a in axes]
    steps_in = None if all(s == 1 for s in steps) and draw(st.booleans()) else steps
    return shape, starts, ends, axes_in, steps_in


@dtypes
def test_slice(target, record_case, dtype):
    opset = start(target, record_case, "Slice", [dtype, I64, I64], oldest=10)

    @examples(f"Slice-{dtype}", data=slicing(), seed=seeds)
    def check(data, seed):
        shape, *params = data
        x = values(np.random.default_rng(seed), shape, dtype)
        ints = [None if p is None else np.array(p, np.int64) for p in params]
        check_node(target, "Slice", opset, [x, *ints], constant=[1, 2, 3, 4])

    check()


@dtypes
def test_gather(target, record_case, dtype):
    opset = start(target, record_case, "Gather", [dtype, I64])
    shapes = array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=4)
    data = shapes.flatmap(lambda s: st.tuples(st.just(s), _axis(len(s))))
    indices_shapes = array_shapes(min_dims=0, max_dims=2, min_side=0, max_side=3)

    @examples(f"Gather-{dtype}", data=data, indices_shape=indices_shapes, seed=seeds)
    def check(data, indices_shape, seed):
        (shape, axis), rng = data, np.random.default_rng(seed)
        x = values(rng, shape, dtype)
        # negative indices count from the end
        indices = rng.integers(-shape[axis], shape[axis], indices_shape).astype(np.int64)
        check_node(target, "Gather", opset, [x, indices], {"axis": axis})

    check()


@st.composite
def concat_shapes(draw):
    """Shapes equal except along the axis, and the axis."""
    shape = draw(array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=3))
    axis = draw(_axis(len(shape)))
    sizes = draw(st.lists(st.integers(0, 3), min_size=1, max_size=4))
    return [tuple(n if i == axis % len(shape) else d for i, d in enumerate(shape)) for n in sizes], axis


@dtypes
def test_concat(target, record_case, dtype):
    opset = start(target, record_case, "Concat", [dtype])

    @examples(f"Concat-{dtype}", data=concat_shapes(), seed=seeds)
    def check(data, seed):
        shapes, axis = data
        rng = np.random.default_rng(seed)
        check_node(target, "Concat", opset, [values(rng, s, dtype) for s in shapes], {"axis": axis})

    check()


@st.composite
def split_sizes(draw):
    """A shape, an axis, and the sizes of the parts (some may be empty)."""
    shape = draw(array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=6))
    axis = draw(_axis(len(shape)))
    cuts = sorted(draw(st.lists(st.integers(0, shape[axis]), min_size=0, max_size=3)))
    bounds = [0, *cuts, shape[axis]]
    return shape, axis, [b - a for a, b in zip(bounds, bounds[1:])]


@dtypes
def test_split(target, record_case, dtype):
    opset = start(target, record_case, "Split", [dtype, I64], oldest=13)

    @examples(f"Split-{dtype}", data=split_sizes(), by_count=st.booleans(), seed=seeds)
    def check(data, by_count, seed):
        shape, axis, sizes = data
        x = values(np.random.default_rng(seed), shape, dtype)
        if by_count and opset >= 18 and len(sizes) <= shape[axis]:
            # num_outputs: equal parts, the last one smaller
            check_node(target, "Split", opset, [x], {"axis": axis, "num_outputs": len(sizes)}, outputs=len(sizes))
        else:
            check_node(target, "Split", opset, [x, np.array(sizes, np.int64)], {"axis": axis}, constant=[1],
                       outputs=len(sizes))

    check()


@st.composite
def padding(draw, opset):
    """Shape, mode, pads (begin..., end...) and axes (None: all) valid for the mode."""
    shape = draw(array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=5))
    mode = draw(st.sampled_from(["constant", "reflect", "edge"] + ["wrap"] * (opset >= 19)))
    axes = list(range(len(shape)))
    if opset >= 18 and draw(st.booleans()):
        axes = sorted(draw(st.lists(st.integers(0, len(shape) - 1), unique=True, min_size=1)))
    # reflect needs pads below the dimension; the others take any amount
    limit = [shape[a] - 1 if mode == "reflect" else 3 for a in axes]
    pads = [draw(st.integers(0, n)) for n in limit * 2]
    return shape, mode, pads, axes if len(axes) < len(shape) else None


@dtypes
def test_pad(target, record_case, dtype):
    opset = start(target, record_case, "Pad", [dtype, I64], oldest=11)

    @examples(f"Pad-{dtype}", data=padding(opset), with_value=st.booleans(), seed=seeds)
    def check(data, with_value, seed):
        shape, mode, pads, axes = data
        rng = np.random.default_rng(seed)
        value = values(rng, (), dtype) if with_value and mode == "constant" else None
        inputs = [values(rng, shape, dtype), np.array(pads, np.int64), value]
        if axes is not None:
            inputs.append(np.array(axes, np.int64))
        check_node(target, "Pad", opset, inputs, {"mode": mode}, constant=[1, 2, 3])

    check()
