"""Shape kernels: what the ONNX node cases leave out.

Views (no copies) for Reshape/Squeeze/Unsqueeze/Flatten/Transpose, negative axes, empty
tensors, legacy attribute forms and inputs known at session creation. Expected values
come from onnx.reference or closed-form numpy, never from ortcore itself.
"""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from ortcore.kernels import NodeContext
from ortcore.testing import check_node as check
from ortcore.testing import compare_outputs
from ortcore_cpu import ops
from ortcore_cpu.registry import registry

RNG = np.random.default_rng(0)
I64 = np.int64


def kernel_fn(op, opset, attrs=None, *, n_inputs=1, n_outputs=1, constants=None):
    """The CPU kernel's per-run callable, built the way a session builds it."""
    ops.load_all()
    kdef = registry.lookup("", op, opset)
    assert kdef is not None, f"no CPU kernel for {op}-{opset}"
    ctx = NodeContext(
        node=None,
        opset=opset,
        input_types=[None] * n_inputs,
        output_types=[None] * n_outputs,
        n_outputs=n_outputs,
        xp=np,
        provider=None,
        constants=constants or {},
    )
    return kdef.instantiate(ctx, attrs or {})


def rand(shape, dtype=np.float32):
    return RNG.standard_normal(shape).astype(dtype)


# --- views ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "op, opset, attrs, extra, expected",
    [
        ("Reshape", 19, {}, [np.array([4, -1], I64)], lambda x: x.reshape(4, -1)),
        ("Reshape", 1, {"shape": [0, 12]}, [], lambda x: x.reshape(4, 12)),
        ("Flatten", 13, {"axis": -1}, [], lambda x: x.reshape(12, 4)),
        ("Squeeze", 13, {}, [np.array([-2], I64)], lambda x: x.reshape(4, 3, 4)),
        ("Squeeze", 11, {"axes": [2]}, [], lambda x: x.reshape(4, 3, 4)),
        ("Unsqueeze", 13, {}, [np.array([-1, 0], I64)], lambda x: x.reshape(1, 4, 3, 1, 4, 1)),
        ("Unsqueeze", 1, {"axes": [1]}, [], lambda x: x.reshape(4, 1, 3, 1, 4)),
        ("Transpose", 13, {"perm": [2, 0, 1, 3]}, [], lambda x: x.transpose(2, 0, 1, 3)),
    ],
)
@pytest.mark.parametrize("constant", [False, True])
def test_views_share_memory(op, opset, attrs, extra, expected, constant):
    x = rand((4, 3, 1, 4))
    consts = {i + 1: v for i, v in enumerate(extra)} if constant else {}
    fn = kernel_fn(op, opset, attrs, n_inputs=1 + len(extra), constants=consts)
    y = fn(x, *extra)
    assert isinstance(y, np.ndarray) and np.shares_memory(x, y)
    compare_outputs(expected(x), y, name=op)


def test_reshape_does_not_modify_input():
    x = rand((2, 6))
    before = x.copy()
    check("Reshape", [x, np.array([3, 4], I64)], opset=19)
    np.testing.assert_array_equal(x, before)


# --- Reshape ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "shape, target, allowzero",
    [
        ((2, 3, 4), [0, -1], 0),
        ((2, 3, 4), [-1], 0),
        ((2, 0, 4), [0, 0, 4], 0),
        ((2, 0, 4), [0, 8], 1),
        ((0, 3), [3, 0], 1),
        ((1,), [], 0),
    ],
)
@pytest.mark.parametrize("const", [(), (1,)])
def test_reshape_zero_and_inferred_dims(shape, target, allowzero, const):
    x = rand(shape)
    check("Reshape", [x, np.array(target, I64)], {"allowzero": allowzero}, opset=19, const=const)


def test_reshape_opset1_attribute_and_opset5_input():
    x = rand((2, 3, 4))
    expected = x.reshape(2, 12)
    check("Reshape", [x], {"shape": [2, -1]}, opset=1, expected=expected)
    check("Reshape", [x, np.array([0, -1], I64)], opset=5, expected=expected)


# --- Flatten, Squeeze, Unsqueeze, Transpose ----------------------------------------------


@pytest.mark.parametrize("axis", [0, 1, 2, 3, -1, -3])
def test_flatten_axes(axis):
    check("Flatten", [rand((2, 3, 4))], {"axis": axis}, opset=13)


def test_flatten_empty():
    x = np.zeros((0, 3, 4), np.float32)
    check("Flatten", [x], {"axis": 2}, opset=13, expected=np.zeros((0, 4), np.float32))
    check("Flatten", [x], {"axis": 0}, opset=9, expected=np.zeros((1, 0), np.float32))


@pytest.mark.parametrize("opset", [1, 11, 13])
def test_squeeze_negative_and_all_axes(opset):
    x = rand((1, 3, 1, 2))
    if opset >= 13:
        check("Squeeze", [x, np.array([-2], I64)], opset=opset, expected=x.reshape(1, 3, 2))
        check("Squeeze", [x], opset=opset, expected=x.reshape(3, 2))
    else:
        axes = [2] if opset == 1 else [-2]
        check("Squeeze", [x], {"axes": axes}, opset=opset, expected=x.reshape(1, 3, 2))
        check("Squeeze", [x], opset=opset, expected=x.reshape(3, 2))


@pytest.mark.parametrize("axes", [[0], [-1], [3, 0], [-1, 1], [1, 3]])
@pytest.mark.parametrize("const", [(), (1,)])
def test_unsqueeze_axes_input(axes, const):
    check("Unsqueeze", [rand((2, 3)), np.array(axes, I64)], opset=13, const=const)


def test_unsqueeze_scalar_and_opset11_negative():
    check("Unsqueeze", [np.float32(2.5).reshape(())], {"axes": [0]}, opset=1, expected=np.array([2.5], np.float32))
    x = rand((2, 3))
    check("Unsqueeze", [x], {"axes": [-1]}, opset=11, expected=x.reshape(2, 3, 1))


def test_transpose_default_reverses():
    x = rand((2, 3, 4))
    check("Transpose", [x], opset=1, expected=x.transpose())
    check("Transpose", [x], {"perm": [1, 0, 2]}, opset=21)


# --- Shape, Size, Expand -----------------------------------------------------------------


@pytest.mark.parametrize("start, end", [(0, None), (1, None), (-1, None), (-10, 2), (1, -1), (3, 1), (0, 100)])
def test_shape_start_end(start, end):
    attrs = {"start": start} if end is None else {"start": start, "end": end}
    x = np.zeros((2, 3, 4, 5), np.float32)
    expected = np.array(x.shape[start:end], I64)
    check("Shape", [x], attrs, opset=15, expected=expected)


def test_shape_and_size_of_scalar_and_empty():
    check("Shape", [np.float32(1).reshape(())], opset=1, expected=np.zeros(0, I64))
    check("Size", [np.zeros((2, 0, 3), np.int8)], opset=13, expected=np.array(0, I64))
    check("Size", [np.float32(1).reshape(())], opset=21, expected=np.array(1, I64))


@pytest.mark.parametrize(
    "shape, target",
    [((3, 1), [2, 1, 6]), ((3, 1), [3]), ((1,), [0]), ((2, 3), [1, 1]), ((), [2, 2])],
)
def test_expand_bidirectional(shape, target):
    x = rand(shape)
    expected = x * np.ones(target, np.float32)
    y = check("Expand", [x, np.array(target, I64)], opset=13, expected=expected)[0]
    assert y.flags.writeable


# --- Dropout ----------------------------------------------------------------------------


@pytest.mark.parametrize("opset, mask_dtype", [(1, np.float32), (6, np.float32), (7, np.float32), (10, np.bool_)])
def test_dropout_legacy_mask(opset, mask_dtype):
    x = rand((2, 3))
    attrs = {"is_test": 1} if opset < 7 else {}
    check("Dropout", [x], attrs, opset=opset, n_out=2, expected=[x, np.ones((2, 3), mask_dtype)])


@pytest.mark.parametrize("opset", [12, 13, 22])
def test_dropout_inference_and_zero_ratio(opset):
    x = rand((3, 4))
    ones = np.ones((3, 4), np.bool_)
    check("Dropout", [x, np.array(0.7, np.float32), np.array(False)], opset=opset, n_out=2, expected=[x, ones])
    check("Dropout", [x, np.array(0.0, np.float32), np.array(True)], opset=opset, n_out=2, expected=[x, ones])
    check("Dropout", [x], opset=opset, expected=x)


def test_dropout_training_seeded_matches_reference():
    x = rand((4, 5))
    check("Dropout", [x, np.array(0.4, np.float32), np.array(True)], {"seed": 3}, opset=13, n_out=2)


# --- Constant, ConstantOfShape ----------------------------------------------------------


@pytest.mark.parametrize(
    "attrs, expected",
    [
        ({"value_float": 1.5}, np.array(1.5, np.float32)),
        ({"value_floats": [1.0, 2.0]}, np.array([1.0, 2.0], np.float32)),
        ({"value_int": -3}, np.array(-3, I64)),
        ({"value_ints": [4, 5]}, np.array([4, 5], I64)),
        ({"value_string": "ab"}, np.array("ab", dtype=object)),
        ({"value_strings": ["a", "bc"]}, np.array(["a", "bc"], dtype=object)),
        ({"value": numpy_helper.from_array(np.arange(6, dtype=np.int8).reshape(2, 3))},
         np.arange(6, dtype=np.int8).reshape(2, 3)),
    ],
)
def test_constant_attribute_kinds(attrs, expected):
    check("Constant", [], attrs, opset=19, expected=expected)


def test_constant_sparse_value():
    sparse = helper.make_sparse_tensor(
        numpy_helper.from_array(np.array([5.0, 7.0], np.float32), "v"),
        numpy_helper.from_array(np.array([1, 4], I64), "i"),
        [2, 3],
    )
    expected = np.zeros((2, 3), np.float32)
    expected.flat[[1, 4]] = [5.0, 7.0]
    check("Constant", [], {"sparse_value": sparse}, opset=13, expected=expected)


def test_constant_opset1():
    value = np.array([[1.0, 2.0]], np.float32)
    check("Constant", [], {"value": numpy_helper.from_array(value)}, opset=1, expected=value)


@pytest.mark.parametrize(
    "shape, value",
    [([2, 3], None), ([], np.array([7], I64)), ([0, 2], np.array([1.5], np.float64)), ([2], np.array([True]))],
)
@pytest.mark.parametrize("const", [(), (0,)])
def test_constant_of_shape(shape, value, const):
    attrs = {} if value is None else {"value": numpy_helper.from_array(value)}
    fill = np.float32(0) if value is None else value[0]
    dtype = np.float32 if value is None else value.dtype
    check("ConstantOfShape", [np.array(shape, I64)], attrs, opset=21, const=const,
          expected=np.full(shape, fill, dtype))


# --- Range, EyeLike ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "start, limit, delta, dtype",
    [
        (1, 10, 3, np.int32),
        (10, 1, -3, I64),
        (5, 5, 1, np.int16),
        (5, 1, 1, I64),
        (0.5, 3.2, 0.7, np.float32),
        (3.0, -1.0, -0.25, np.float64),
    ],
)
def test_range(start, limit, delta, dtype):
    args = [np.array(v, dtype) for v in (start, limit, delta)]
    check("Range", args, opset=11, expected=np.arange(start, limit, delta).astype(dtype))


def test_range_float16_stash_type():
    args = [np.array(v, np.float16) for v in (0.0, 3.0, 0.5)]
    check("Range", args, opset=27)
    check("Range", args, {"stash_type": TensorProto.FLOAT}, opset=27)


@pytest.mark.parametrize("k", [-2, -1, 0, 1, 5])
@pytest.mark.parametrize("shape", [(3, 4), (4, 2), (0, 3)])
def test_eye_like(shape, k):
    x = np.zeros(shape, np.int32)
    check("EyeLike", [x], {"k": k}, opset=22, expected=np.eye(*shape, k=k, dtype=np.int32))
    check("EyeLike", [x], {"k": k, "dtype": TensorProto.DOUBLE}, opset=9,
          expected=np.eye(*shape, k=k, dtype=np.float64))


# --- DepthToSpace, SpaceToDepth ----------------------------------------------------------


@pytest.mark.parametrize("mode", ["DCR", "CRD"])
def test_depth_to_space_modes(mode):
    check("DepthToSpace", [rand((2, 8, 3, 2))], {"blocksize": 2, "mode": mode}, opset=13)


@pytest.mark.parametrize("mode", ["DCR", "CRD"])
def test_space_to_depth_roundtrip(mode):
    x = rand((2, 3, 4, 6))
    attrs = {"blocksize": 2, "mode": mode}
    y = check("SpaceToDepth", [x], attrs, opset=28)[0]
    check("DepthToSpace", [y], attrs, opset=28, expected=x)


def test_space_to_depth_opset1_default_order():
    x = rand((1, 2, 4, 4))
    check("SpaceToDepth", [x], {"blocksize": 2}, opset=1)
