"""Tensor kernels (Concat, Split, Slice, Gather*, Scatter*, Pad, Tile, TopK, ...): what the
ONNX node cases leave out.

Negative axes and indices, empty tensors, clamping, legacy attribute forms, duplicate
scatter indices and inputs known at session creation. Expected values come from
onnx.reference or closed-form numpy, never from ortcore itself.
"""

from __future__ import annotations

import numpy as np
import pytest

from ortcore.testing import check_node as check

RNG = np.random.default_rng(0)
I64 = np.int64
I32 = np.int32


def rand(shape, dtype=np.float32):
    dtype = np.dtype(dtype)
    if dtype.kind in "iu":
        return RNG.integers(0 if dtype.kind == "u" else -5, 6, size=shape).astype(dtype)
    return RNG.standard_normal(shape).astype(dtype)


# --- Concat / Split -----------------------------------------------------------------------


@pytest.mark.parametrize("axis", [0, 1, -1, -2])
def test_concat_negative_axis_and_empty(axis):
    a, b = rand((2, 3), I32), rand((2, 3), I32)
    empty = np.zeros((0, 3) if axis in (0, -2) else (2, 0), I32)
    check("Concat", [a, empty, b], {"axis": axis}, opset=13)


def test_concat_opset1_default_axis():
    a, b = rand((2, 3)), rand((2, 1))
    check("Concat", [a, b], opset=1, expected=np.concatenate([a, b], axis=1))


@pytest.mark.parametrize("const", [(), (1,)])
def test_split_input_sizes(const):
    x = rand((7, 2))
    check("Split", [x, np.array([2, 0, 5], I64)], {"axis": -2}, opset=13, n_out=3, const=const)


@pytest.mark.parametrize("dim, n", [(7, 3), (6, 3), (5, 4), (2, 2)])
def test_split_num_outputs_uneven(dim, n):
    x = rand((2, dim))
    chunk = -(-dim // n)
    bounds = [min(i * chunk, dim) for i in range(1, n)]
    check("Split", [x], {"axis": 1, "num_outputs": n}, opset=18, n_out=n, expected=np.split(x, bounds, axis=1))


def test_split_legacy_forms():
    x = rand((6, 2))
    check("Split", [x], {"split": [1, 5]}, opset=2, n_out=2, expected=np.split(x, [1]))
    check("Split", [x], {"axis": -1}, opset=11, n_out=2, expected=np.split(x, 2, axis=1))
    check("Split", [x], opset=13, n_out=3, expected=np.split(x, 3))


# --- Slice --------------------------------------------------------------------------------

BIG = np.iinfo(I64).max


@pytest.mark.parametrize(
    "starts, ends, axes, steps",
    [
        ([-1], [-BIG], [0], [-1]),
        ([BIG], [0], [1], [-2]),
        ([1, -100], [100, 3], [0, 1], [1, 1]),
        ([0, 3], [-1, -100], [-2, -1], [2, -1]),
        ([2], [1], [0], [1]),
        ([0], [5], None, None),
        ([-3, 1], [BIG, BIG], None, [1, 3]),
    ],
)
@pytest.mark.parametrize("const", [(), (1, 2, 3, 4)])
def test_slice_clamping_and_negative_steps(starts, ends, axes, steps, const):
    x = rand((5, 6), I32)
    inputs = [x, np.array(starts, I64), np.array(ends, I64)]
    if axes is not None or steps is not None:
        inputs.append(np.array(axes if axes is not None else range(len(starts)), I64))
    if steps is not None:
        inputs.append(np.array(steps, I64))
    check("Slice", inputs, opset=13, const=tuple(i for i in const if i < len(inputs)))


def test_slice_negative_step_start_below_range_clamps_to_zero():
    # The spec clamps starts to [0, dim - 1] for negative steps (Python slicing would be empty).
    x = np.arange(5, dtype=I32)
    args = [np.array([-10], I64), np.array([-20], I64), np.array([0], I64), np.array([-1], I64)]
    check("Slice", [x, *args], opset=13, expected=np.array([0], I32))


def test_slice_opset1_attributes_and_view():
    x = rand((4, 5))
    check("Slice", [x], {"starts": [1, -2], "ends": [3, 100]}, opset=1, expected=x[1:3, -2:])
    check("Slice", [x], {"starts": [1], "ends": [-1], "axes": [1]}, opset=1, expected=x[:, 1:-1])


def test_slice_empty_input():
    x = np.zeros((0, 3), np.float32)
    check("Slice", [x, np.array([1], I64), np.array([3], I64), np.array([1], I64)], opset=13,
          expected=x[:, 1:3])


# --- Gather -------------------------------------------------------------------------------


@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("indices", [np.array([-1, 0, -2], I64), np.array(-1, I32), np.array([[0, -1], [1, 1]], I32)])
def test_gather_negative_indices(axis, indices):
    check("Gather", [rand((3, 4)), indices], {"axis": axis}, opset=13)


def test_gather_empty_indices():
    x = rand((3, 4))
    check("Gather", [x, np.zeros((0,), I64)], {"axis": 1}, opset=11, expected=np.zeros((3, 0), np.float32))


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_gather_elements_smaller_indices(axis):
    x = rand((4, 5))
    indices = np.array([[0, -1, 2], [-4, 3, 1]], I64) if axis == 0 else np.array([[-1, 0], [4, -5], [2, 2]], I64)
    # onnx.reference needs equal non-axis sizes; the spec only needs indices to fit.
    ax = axis % 2
    grid = list(np.ogrid[tuple(slice(n) for n in indices.shape)])
    grid[ax] = np.where(indices < 0, indices + x.shape[ax], indices)
    check("GatherElements", [x, indices], {"axis": axis}, opset=13, expected=x[tuple(grid)])


@pytest.mark.parametrize(
    "data_shape, indices, batch_dims",
    [
        ((2, 3, 4), [[[1]], [[0]]], 1),
        ((2, 3, 4), [[[1, -1], [0, 2]], [[2, 3], [-3, 0]]], 1),
        ((2, 2, 4), [[[0], [1]], [[3], [-1]]], 2),
        ((3, 4), [[0, 1], [-1, -1]], 0),
        ((3, 4), [[2], [0]], 0),
    ],
)
def test_gather_nd_batch_dims(data_shape, indices, batch_dims):
    check("GatherND", [rand(data_shape), np.array(indices, I64)], {"batch_dims": batch_dims}, opset=13)


# --- Scatter ------------------------------------------------------------------------------


@pytest.mark.parametrize("reduction", ["none", "add", "mul", "max", "min"])
@pytest.mark.parametrize("axis", [0, -1])
def test_scatter_elements_reductions_with_duplicates(reduction, axis):
    data = rand((3, 4), I32)
    indices = np.array([[1, 1, -1], [0, 0, 2]], I64) if axis == -1 else np.array([[1, 1, 2], [1, -2, 0]], I64)
    updates = rand(indices.shape, I32)
    attrs = {"axis": axis} if reduction == "none" else {"axis": axis, "reduction": reduction}
    if reduction == "none":  # duplicate targets are unspecified: make them unique
        indices = np.array([[1, 2, 0], [0, 1, 2]], I64) if axis == -1 else np.array([[1, 0, 2], [2, 1, 0]], I64)
    check("ScatterElements", [data, indices, updates], attrs, opset=18)


def test_scatter_deprecated_and_does_not_modify_input():
    data = rand((3, 3))
    before = data.copy()
    indices = np.array([[1, 0, 2]], I64)
    updates = rand((1, 3))
    expected = data.copy()
    expected[indices[0], np.arange(3)] = updates[0]
    check("Scatter", [data, indices, updates], opset=9, expected=expected)
    check("ScatterElements", [data, indices, updates], opset=11, expected=expected)
    np.testing.assert_array_equal(data, before)


@pytest.mark.parametrize("reduction", ["add", "mul", "max", "min"])
def test_scatter_nd_reductions_with_duplicates(reduction):
    data = rand((4, 3), np.float32)
    indices = np.array([[1], [-1], [1], [0]], I64)
    updates = rand((4, 3), np.float32)
    expected = data.copy()
    ufunc = {"add": np.add, "mul": np.multiply, "max": np.maximum, "min": np.minimum}[reduction]
    ufunc.at(expected, indices[:, 0], updates)
    check("ScatterND", [data, indices, updates], {"reduction": reduction}, opset=18, expected=expected)


def test_scatter_nd_element_indices():
    data = rand((2, 3, 4))
    indices = np.array([[0, 1, 2], [1, -1, -1]], I64)
    check("ScatterND", [data, indices, np.array([5.0, 6.0], np.float32)], opset=13)


# --- Pad, Tile ----------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["constant", "reflect", "edge", "wrap"])
@pytest.mark.parametrize("axes", [None, [-1], [0, -1]])
def test_pad_modes_and_axes(mode, axes):
    x = rand((3, 4))
    n = 2 if axes is None else len(axes)
    pads = np.array([1, 2, 2, 1][: 2 * n] if n == 2 else [2, 3], I64)
    inputs = [x, pads, np.array(1.5, np.float32) if mode == "constant" else None]
    if axes is not None:
        inputs.append(np.array(axes, I64))
    check("Pad", inputs, {"mode": mode}, opset=19)


@pytest.mark.parametrize("mode", ["constant", "edge", "reflect"])
def test_pad_negative_pads_crop(mode):
    x = rand((4, 5))
    pads = np.array([-1, 2, 1, -2], I64)  # crop one row at the top, two columns at the right
    cropped = x[1:, :3]
    expected = np.pad(cropped, [(0, 1), (2, 0)], mode=mode)
    check("Pad", [x, pads], {"mode": mode}, opset=13, expected=expected)


def test_pad_legacy_attributes_and_int_dtype():
    x = rand((2, 3), I32)
    check("Pad", [x.astype(np.float32)], {"paddings": [0, 1, 1, 0], "value": 2.0}, opset=1,
          expected=np.pad(x.astype(np.float32), [(0, 1), (1, 0)], constant_values=2.0))
    check("Pad", [x.astype(np.float32)], {"pads": [1, 0, 0, 2], "mode": "edge"}, opset=2,
          expected=np.pad(x.astype(np.float32), [(1, 0), (0, 2)], mode="edge"))
    check("Pad", [x, np.array([1, 1, 1, 1], I64), np.array([7], I32)], opset=11)


@pytest.mark.parametrize("repeats", [[1, 1], [2, 3], [0, 2]])
def test_tile(repeats):
    x = rand((2, 3), I64)
    check("Tile", [x, np.array(repeats, I64)], opset=13, expected=np.tile(x, repeats))


# --- TopK ---------------------------------------------------------------------------------


@pytest.mark.parametrize("largest", [0, 1])
@pytest.mark.parametrize("axis", [0, -1])
@pytest.mark.parametrize("k", [0, 1, 3, 5])
def test_topk_ties_prefer_lower_index(largest, axis, k):
    x = np.array([[3, 1, 3, 2, 1], [0, 0, 5, 0, 5], [2, 2, 2, 2, 2], [1, 3, 1, 3, 1], [4, 4, 1, 1, 0]], np.float32)
    check("TopK", [x, np.array([k], I64)], {"axis": axis, "largest": largest}, opset=11, n_out=2)


@pytest.mark.parametrize("dtype", [np.uint8, np.int32, np.float64])
def test_topk_dtypes(dtype):
    x = rand((3, 6), dtype)
    check("TopK", [x, np.array([4], I64)], {"largest": 1}, opset=24, n_out=2)
    check("TopK", [x, np.array([4], I64)], {"largest": 0}, opset=24, n_out=2)


def test_topk_legacy_forms():
    x = np.array([[1, 4, 4, 2]], np.float32)
    expected = [np.array([[4, 4]], np.float32), np.array([[1, 2]], I64)]
    check("TopK", [x], {"k": 2}, opset=1, n_out=2, expected=expected)
    check("TopK", [x, np.array([2], I64)], opset=10, n_out=2, expected=expected)


# --- OneHot, NonZero, CumSum, Trilu, Compress, ReverseSequence, Unique --------------------


@pytest.mark.parametrize("axis", [0, 1, -1, -2])
def test_one_hot_negative_and_out_of_range(axis):
    indices = np.array([[0, -1, 3], [5, -4, 2]], I64)
    values = np.array([2, 9], I32)
    check("OneHot", [indices, np.array(4.0, np.float32), values], {"axis": axis}, opset=11)


def test_one_hot_float_indices():
    indices = np.array([0.0, 2.7, -1.0], np.float32)
    expected = np.array([[1, 0, 0], [0, 0, 1], [0, 0, 1]], np.float32)
    check("OneHot", [indices, np.array([3], I64), np.array([0.0, 1.0], np.float32)], opset=9, expected=expected)


@pytest.mark.parametrize("x", [np.array(3.0, np.float32), np.array(0, I32), np.zeros((2, 0), np.float32),
                               np.array([[0, 1], [2, 0]], np.uint8), np.array([True, False, True])])
def test_non_zero(x):
    check("NonZero", [x], opset=13)


@pytest.mark.parametrize("exclusive", [0, 1])
@pytest.mark.parametrize("reverse", [0, 1])
@pytest.mark.parametrize("axis", [np.array(-1, I64), np.array(0, I32)])
def test_cum_sum(exclusive, reverse, axis):
    x = rand((3, 4), I32)
    check("CumSum", [x, axis], {"exclusive": exclusive, "reverse": reverse}, opset=14)


def test_cum_sum_empty_axis():
    x = np.zeros((2, 0), np.float32)
    check("CumSum", [x, np.array(1, I64)], {"exclusive": 1}, opset=11, expected=x)


@pytest.mark.parametrize("upper", [0, 1])
@pytest.mark.parametrize("k", [None, -5, -1, 0, 2, 10])
def test_trilu_batched(upper, k):
    x = rand((2, 3, 4), I64)
    inputs = [x] if k is None else [x, np.array(k, I64)]
    check("Trilu", inputs, {"upper": upper}, opset=14)


@pytest.mark.parametrize("axis", [None, 0, -1])
def test_compress_short_condition(axis):
    x = rand((3, 4))
    cond = np.array([True, False])
    attrs = {} if axis is None else {"axis": axis}
    check("Compress", [x, cond], attrs, opset=11, expected=np.compress(cond, x, axis=axis))


def test_reverse_sequence_batch_first():
    x = rand((3, 5, 2))
    lens = np.array([5, 1, 3], I64)
    expected = x.copy()
    for b, n in enumerate(lens):
        expected[b, :n] = x[b, :n][::-1]
    check("ReverseSequence", [x, lens], {"batch_axis": 0, "time_axis": 1}, opset=10, expected=expected)


@pytest.mark.parametrize("sorted_", [0, 1])
def test_unique_flat_and_axis(sorted_):
    x = np.array([[2, 1, 2], [0, 1, 2], [2, 1, 2]], I64)
    check("Unique", [x], {"sorted": sorted_, "axis": 0}, opset=11, n_out=4)
    check("Unique", [x], {"sorted": sorted_, "axis": -1}, opset=11, n_out=4)
    if sorted_:  # onnx.reference mishandles flattening with sorted=0; see the next test
        check("Unique", [x], {"sorted": sorted_}, opset=11, n_out=4)


def test_unique_unsorted_first_occurrence_order():
    x = np.array([3.0, 1.0, 3.0, 0.5, 1.0], np.float32)
    expected = [
        np.array([3.0, 1.0, 0.5], np.float32),
        np.array([0, 1, 3], I64),
        np.array([0, 1, 0, 2, 1], I64),
        np.array([2, 2, 1], I64),
    ]
    check("Unique", [x], {"sorted": 0}, opset=28, n_out=4, expected=expected)


def test_unique_strings():
    x = np.array(["b", "a", "b", "c"], dtype=object)
    expected = [
        np.array(["a", "b", "c"], dtype=object),
        np.array([1, 0, 3], I64),
        np.array([1, 0, 1, 2], I64),
        np.array([1, 2, 1], I64),
    ]
    check("Unique", [x], opset=11, n_out=4, expected=expected)
