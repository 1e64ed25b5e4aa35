"""Shape and data-movement kernels of the OpenCL provider against the CPU provider and numpy."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

from ortcore.errors import OrtCoreError
from ortcore.testing import make_model, single_node_model

rng = np.random.default_rng(99)
X = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
I64 = np.arange(2 * 3 * 4, dtype=np.int64).reshape(2, 3, 4)
BOOL = rng.random((3, 4)) > 0.5


def _i64(*values):
    return np.array(values, np.int64)


def test_views_share_the_buffer(ocl, runtime):
    """Reshape/Flatten/Squeeze/Unsqueeze return views: no kernel runs and the buffer is the input's."""
    from ortcore_opencl.ops.tensor import _flatten, _reshape_to, _squeeze, _unsqueeze
    from ortcore.ir import Node

    node = Node("Reshape", ["x", "s"], ["y"])
    x = runtime.to_device(X)
    before = runtime.launches
    views = [
        x.reshape(_reshape_to(node, x.shape, [0, -1, 5], 0)),
        _flatten(node, x, 2),
        _squeeze(node, x.reshape(1, 2, 3, 1, 20), None),
        _unsqueeze(node, x, [0, -1]),
    ]
    assert runtime.launches == before
    for v in views:
        assert v.base_data == x.base_data and v.offset == 0
    assert views[3].shape == (1, 2, 3, 4, 5, 1)


def test_reshape_family_in_a_session(ocl):
    feeds = {"x": X}
    nodes = [
        helper.make_node("Reshape", ["x", "shape"], ["r"]),
        helper.make_node("Unsqueeze", ["r", "axes"], ["u"]),
        helper.make_node("Squeeze", ["u", "axes"], ["s"]),
        helper.make_node("Flatten", ["s"], ["y"], axis=1),
    ]
    m = make_model(
        nodes,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, X.shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [helper.make_tensor(n, TensorProto.INT64, v.shape, v) for n, v in (("shape", _i64(0, -1, 5)), ("axes", _i64(0, 3)))],
        opset=17,
    )
    out, _ = ocl.check(m, feeds)
    assert out[0].shape == (2, 60)


def test_reshape_with_runtime_shape_and_allowzero(ocl):
    feeds = {"x": X, "s": _i64(6, -1)}
    ocl.check(single_node_model("Reshape", feeds, [np.float32], opset=14), feeds)
    e = np.zeros((0, 4), np.float32)
    feeds = {"x": e, "s": _i64(4, 0)}
    out, _ = ocl.check(single_node_model("Reshape", feeds, [np.float32], opset=14, initializers=("s",), allowzero=1), {"x": e})
    assert out[0].shape == (4, 0)


def test_bad_reshape_names_the_node(ocl):
    feeds = {"x": X, "s": _i64(7, -1)}
    sess = ocl.session(single_node_model("Reshape", feeds, [np.float32], opset=14))
    with pytest.raises(OrtCoreError, match="Reshape.*cannot reshape"):
        sess.run(None, feeds)


def test_shape_and_size(ocl):
    ocl.check(single_node_model("Shape", {"x": X}, [np.int64], opset=15, start=1, end=-1), {"x": X})
    ocl.check(single_node_model("Size", {"x": X}, [np.int64], opset=13), {"x": X})


@pytest.mark.parametrize("perm", [None, [0, 2, 3, 1], [3, 1, 0, 2]])
def test_transpose(ocl, perm):
    attrs = {} if perm is None else {"perm": perm}
    out, _ = ocl.check(single_node_model("Transpose", {"x": X}, [np.float32], opset=13, **attrs), {"x": X})
    np.testing.assert_array_equal(out[0], np.transpose(X, perm))


@pytest.mark.parametrize("dtype", [np.int64, np.bool_, np.float64, np.uint8])
def test_transpose_other_dtypes(ocl, dtype):
    x = (rng.standard_normal((3, 5)) * 10).astype(dtype)
    out, _ = ocl.check(single_node_model("Transpose", {"x": x}, [dtype], opset=13), {"x": x})
    np.testing.assert_array_equal(out[0], x.T)


@pytest.mark.parametrize(
    "starts,ends,axes,steps",
    [
        ([0, 1], [2, 3], [0, 1], [1, 1]),
        ([-1], [-1000], [3], [-1]),
        ([3, 10], [0, -10], [2, 1], [-2, -1]),
        ([1], [2**62], None, None),
        ([0, 0, 0], [2, 3, 4], [0, 1, 2], [2, 2, 3]),
    ],
)
def test_slice(ocl, starts, ends, axes, steps):
    inputs = {"x": X, "starts": _i64(*starts), "ends": _i64(*ends)}
    if axes is not None:
        inputs["axes"] = _i64(*axes)
    if steps is not None:
        inputs["steps"] = _i64(*steps)
    consts = tuple(k for k in inputs if k != "x")
    ocl.check(single_node_model("Slice", inputs, [np.float32], opset=13, initializers=consts), {"x": X})


def test_slice_runtime_bounds_and_attribute_form(ocl):
    feeds = {"x": X, "starts": _i64(1, -2), "ends": _i64(3, 100), "axes": _i64(1, 3)}
    ocl.check(single_node_model("Slice", feeds, [np.float32], opset=13), feeds)
    ocl.check(single_node_model("Slice", {"x": X}, [np.float32], opset=1, starts=[1], ends=[2], axes=[0]), {"x": X})


def test_concat(ocl):
    a, b = X[:, :1], rng.standard_normal((2, 2, 4, 5)).astype(np.float32)
    feeds = {"a": a, "b": b, "c": X}
    ocl.check(single_node_model("Concat", feeds, [np.float32], opset=13, axis=-3), feeds)
    feeds = {"a": I64, "b": I64[:, :, :0], "c": I64}
    ocl.check(single_node_model("Concat", feeds, [np.int64], opset=13, axis=2), feeds)


@pytest.mark.parametrize(
    "opset,attrs,split",
    [(11, {"axis": 1}, None), (11, {"axis": -1, "split": [1, 3, 1]}, None), (13, {"axis": 2}, [1, 3]), (18, {"axis": 3, "num_outputs": 3}, None)],
)
def test_split(ocl, opset, attrs, split):
    n = attrs.get("num_outputs") or (len(attrs["split"]) if "split" in attrs else (len(split) if split else 3))
    inputs = {"x": X} if split is None else {"x": X, "split": _i64(*split)}
    m = single_node_model("Split", inputs, [np.float32] * n, opset=opset, initializers=("split",), **attrs)
    out, _ = ocl.check(m, {"x": X})
    np.testing.assert_array_equal(np.concatenate(out, axis=attrs["axis"]), X)


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_gather(ocl, axis):
    idx = np.array([[0, -1], [1, -2]], np.int64)
    feeds = {"x": X, "i": idx}
    out, _ = ocl.check(single_node_model("Gather", feeds, [np.float32], opset=13, axis=axis), feeds)
    np.testing.assert_array_equal(out[0], np.take(X, idx, axis=axis))


def test_gather_constant_and_scalar_indices(ocl):
    feeds = {"x": I64, "i": np.array(-2, np.int32)}
    out, _ = ocl.check(single_node_model("Gather", feeds, [np.int64], opset=13, axis=1, initializers=("i",)), {"x": I64})
    assert out[0].shape == (2, 4)


def test_gather_out_of_range_is_an_error_not_a_hang(ocl):
    feeds = {"x": X, "i": np.array([0, 7], np.int64)}
    sess = ocl.session(single_node_model("Gather", feeds, [np.float32], opset=13, axis=2))
    with pytest.raises(OrtCoreError, match="out of range"):
        sess.run(None, feeds)
    const = ocl.session(single_node_model("Gather", feeds, [np.float32], opset=13, axis=2, initializers=("i",)))
    with pytest.raises(OrtCoreError, match="out of range"):
        const.run(None, {"x": X})


@pytest.mark.parametrize("mode", ["constant", "edge", "reflect", "wrap"])
def test_pad_modes(ocl, mode):
    x = X[0]
    pads = _i64(1, 0, 2, 0, 2, 3)
    feeds = {"x": x, "pads": pads, "v": np.array(1.5, np.float32)}
    m = single_node_model("Pad", feeds, [np.float32], opset=19, initializers=("pads", "v"), mode=mode)
    out, _ = ocl.check(m, {"x": x})
    width = [(1, 0), (0, 2), (2, 3)]
    expected = np.pad(x, width, mode=mode, **({"constant_values": 1.5} if mode == "constant" else {}))
    np.testing.assert_array_equal(out[0], expected)


def test_pad_negative_axes_and_attribute_form(ocl):
    x = X[0]
    feeds = {"x": x, "pads": _i64(-1, 2, 0, -1), "axes": _i64(0, -1)}
    ocl.check(single_node_model("Pad", {"x": x, "pads": feeds["pads"], "v": None, "axes": feeds["axes"]},
                                [np.float32], opset=18, initializers=("pads", "axes"), mode="reflect"), {"x": x})
    ocl.check(single_node_model("Pad", {"x": I64}, [np.int64], opset=2, pads=[0, 1, 1, 0, 0, 2], value=7.0), {"x": I64})


def test_expand_and_tile(ocl):
    feeds = {"x": BOOL[:, :1], "s": _i64(2, 1, 5)}
    out, _ = ocl.check(single_node_model("Expand", feeds, [np.bool_], opset=13), feeds)
    assert out[0].shape == (2, 3, 5)
    feeds = {"x": I64, "r": _i64(1, 2, 3)}
    out, _ = ocl.check(single_node_model("Tile", feeds, [np.int64], opset=13, initializers=("r",)), {"x": I64})
    np.testing.assert_array_equal(out[0], np.tile(I64, (1, 2, 3)))


def test_zero_size_and_zero_d_tensors(ocl):
    e = np.zeros((2, 0, 3), np.float32)
    ocl.check(single_node_model("Transpose", {"x": e}, [np.float32], opset=13), {"x": e})
    s = np.array(3.0, np.float32)
    ocl.check(single_node_model("Unsqueeze", {"x": s, "a": _i64(0)}, [np.float32], opset=13, initializers=("a",)), {"x": s})
    ocl.check(single_node_model("Reshape", {"x": s, "a": _i64(1, 1)}, [np.float32], opset=13, initializers=("a",)), {"x": s})
