"""Resize and Upsample: what the ONNX node cases leave out.

Every coordinate mode with every interpolation mode on uneven scales, integer and
low-precision dtypes, axes subsets, opset 11/13 input forms, dynamic shapes through one
session, and the legacy (Resize-10, Upsample) rounding rules. Expected values come from
onnx.reference or closed-form numpy, never from ortcore itself.
"""

from __future__ import annotations

import itertools

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper
from onnx.reference import ReferenceEvaluator

import ortcore
from ortcore.dtypes import onnx_elem_type
from ortcore.kernels import NodeContext
from ortcore.testing import compare_outputs
from ortcore_cpu import ops
from ortcore_cpu.registry import registry

RNG = np.random.default_rng(0)
F32 = np.float32
COORDS = ["half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners", "asymmetric", "tf_crop_and_resize"]
NEAREST = ["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"]


def resize_model(x, attrs, *, opset=19, roi=None, scales=None, sizes=None, op="Resize"):
    """One Resize node; roi/scales/sizes become initializers (None: input omitted)."""
    inits, names = [], ["x"]
    legacy = op == "Upsample" or opset < 11  # inputs (X, scales)
    slots = (("scales", scales),) if legacy else (("roi", roi), ("scales", scales), ("sizes", sizes))
    for name, value in slots:
        if value is None:
            names.append("")
        else:
            inits.append(numpy_helper.from_array(value, name))
            names.append(name)
    while names[-1] == "":
        names.pop()
    node = helper.make_node(op, names, ["y"], **attrs)
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", onnx_elem_type(x.dtype), x.shape)],
        [onnx.ValueInfoProto(name="y")], inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def run(model, x):
    sess = ortcore.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x})[0]


def check(x, attrs, *, expected=None, rtol=1e-3, atol=1e-5, **kw):
    model = resize_model(x, attrs, **kw)
    actual = run(model, x)
    if expected is None:
        # onnx.reference does not accept negative axes: give it the same axes, counted forward.
        ref_attrs = dict(attrs, axes=[a % x.ndim for a in attrs["axes"]]) if "axes" in attrs else attrs
        expected = ReferenceEvaluator(resize_model(x, ref_attrs, **kw)).run(None, {"x": x})[0]
    compare_outputs(expected, actual, rtol=rtol, atol=atol, name="Resize")
    return actual


def rand(shape, dtype=F32):
    dtype = np.dtype(dtype)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return RNG.integers(info.min, int(info.max) + 1, size=shape).astype(dtype)
    return (RNG.standard_normal(shape) * 10).astype(dtype)


# --- every mode against onnx.reference ---------------------------------------------------


@pytest.mark.parametrize("coord", COORDS)
@pytest.mark.parametrize("nearest_mode", NEAREST)
@pytest.mark.parametrize("scales", [[1, 1, 0.6, 1.7], [1, 1, 2.5, 0.5], [1, 1, 1, 3]])
def test_nearest_every_mode(coord, nearest_mode, scales):
    x = rand((2, 3, 5, 4))
    roi = np.array([0, 0, 0.1, -0.2, 1, 1, 0.8, 1.1], F32) if coord == "tf_crop_and_resize" else None
    attrs = {"mode": "nearest", "coordinate_transformation_mode": coord, "nearest_mode": nearest_mode,
             "extrapolation_value": -7.0}
    check(x, attrs, roi=roi, scales=np.array(scales, F32))


@pytest.mark.parametrize("coord", COORDS)
@pytest.mark.parametrize("mode, extra", [("linear", {}), ("cubic", {}), ("cubic", {"exclude_outside": 1, "cubic_coeff_a": -0.5})])
@pytest.mark.parametrize("sizes", [[2, 3, 7, 3], [2, 3, 1, 9], [2, 3, 4, 4]])
def test_filters_every_mode(coord, mode, extra, sizes):
    x = rand((2, 3, 4, 6))
    roi = np.array([0, 0, 0.2, -0.1, 1, 1, 0.7, 0.9], F32) if coord == "tf_crop_and_resize" else None
    attrs = {"mode": mode, "coordinate_transformation_mode": coord, **extra}
    check(x, attrs, roi=roi, sizes=np.array(sizes, np.int64))


@pytest.mark.parametrize("mode", ["linear", "cubic"])
@pytest.mark.parametrize("scales", [[1, 1, 0.3, 0.55], [1, 1, 0.5, 2.0], [1, 1, 0.25, 1]])
def test_antialias_downscale(mode, scales):
    check(rand((1, 2, 12, 9)), {"mode": mode, "antialias": 1}, scales=np.array(scales, F32))


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int32, np.float16, np.float64])
@pytest.mark.parametrize("mode", ["nearest", "linear", "cubic"])
def test_dtypes_round_and_saturate(dtype, mode):
    x = rand((1, 2, 5, 5), dtype)
    atol = 1 if np.dtype(dtype).kind in "iu" else 2e-2 if dtype == np.float16 else 1e-5
    actual = run(resize_model(x, {"mode": mode}, scales=np.array([1, 1, 1.6, 0.6], F32)), x)
    expected = ReferenceEvaluator(resize_model(x, {"mode": mode}, scales=np.array([1, 1, 1.6, 0.6], F32))).run(None, {"x": x})[0]
    assert actual.dtype == expected.dtype and actual.shape == expected.shape
    # Integers: a float rounding difference may move a value across .5, never further.
    np.testing.assert_allclose(actual.astype(np.float64), expected.astype(np.float64), rtol=1e-3, atol=atol)


def test_extrapolation_value_saturates_for_integers():
    x = rand((1, 1, 4, 4), np.uint8)
    roi = np.array([0, 0, -0.5, 0.2, 1, 1, 1.5, 0.8], F32)
    attrs = {"mode": "linear", "coordinate_transformation_mode": "tf_crop_and_resize", "extrapolation_value": -5.0}
    y = check(x, attrs, roi=roi, sizes=np.array([1, 1, 6, 3], np.int64))
    assert (y[0, 0, 0] == 0).all()


@pytest.mark.parametrize("axes", [[2, 3], [3, 2], [-1], [0, -2], [1]])
@pytest.mark.parametrize("policy", ["stretch", "not_larger", "not_smaller"])
def test_axes_and_aspect_ratio_policy(axes, policy):
    x = rand((2, 3, 4, 5))
    sizes = np.array([7, 3][: len(axes)], np.int64)
    check(x, {"mode": "linear", "axes": axes, "keep_aspect_ratio_policy": policy}, sizes=sizes)
    check(x, {"mode": "nearest", "axes": axes}, scales=np.array([1.5, 0.5][: len(axes)], F32))


@pytest.mark.parametrize("opset", [11, 13])
def test_opset11_13_input_forms(opset):
    x = rand((1, 2, 3, 4))
    empty = np.zeros(0, F32)
    # Opset 11 needs roi and scales inputs; an empty scales tensor means "use sizes".
    check(x, {"mode": "linear"}, opset=opset, roi=empty, scales=np.array([1, 1, 2, 0.5], F32))
    check(x, {"mode": "cubic"}, opset=opset, roi=empty, scales=empty, sizes=np.array([1, 2, 5, 7], np.int64))


def test_tf_half_pixel_for_nn():
    # (y + 0.5) / scale, then the nearest rule; onnx.reference does not know this mode.
    x = np.arange(8, dtype=F32).reshape(1, 1, 1, 8)
    attrs = {"mode": "nearest", "coordinate_transformation_mode": "tf_half_pixel_for_nn", "nearest_mode": "floor"}
    expected = x[..., np.floor((np.arange(12) + 0.5) / 1.5).astype(int)]
    check(x, attrs, opset=11, roi=np.zeros(0, F32), scales=np.array([1, 1, 1, 1.5], F32), expected=expected)


# --- legacy versions (closed form) ----------------------------------------------------------


@pytest.mark.parametrize("scale", [0.6, 0.8, 1.5, 2.0, 2.5])
def test_resize10_nearest_floor_up_ceil_down(scale):
    x = rand((1, 2, 3, 10))
    out = int(np.floor(10 * np.float32(scale)))
    src = np.arange(out) / np.float64(np.float32(scale))
    index = np.ceil(src) if scale < 1 else np.floor(src)
    expected = x[..., np.minimum(index.astype(int), 9)]
    check(x, {"mode": "nearest"}, opset=10, scales=np.array([1, 1, 1, scale], F32), expected=expected)


def test_resize10_linear_asymmetric():
    x = rand((1, 1, 2, 5))
    src = np.arange(8) / np.float64(np.float32(1.6))
    lo = np.minimum(np.floor(src).astype(int), 4)
    hi = np.minimum(lo + 1, 4)
    frac = (src - np.floor(src)).astype(F32)
    expected = x[..., lo] * (1 - frac) + x[..., hi] * frac
    check(x, {"mode": "linear"}, opset=10, scales=np.array([1, 1, 1, 1.6], F32), expected=expected)


@pytest.mark.parametrize("opset", [7, 9, 10])
def test_upsample_integer_scales_repeat(opset):
    x = rand((2, 3, 4, 5), np.int64)
    expected = x.repeat(2, axis=2).repeat(3, axis=3)
    scales = [1.0, 1.0, 2.0, 3.0]
    if opset == 7:
        check(x, {"mode": "nearest", "scales": scales}, op="Upsample", opset=7, expected=expected)
    else:
        check(x, {"mode": "nearest"}, op="Upsample", opset=opset, scales=np.array(scales, F32), expected=expected)


def test_upsample1_bilinear():
    x = rand((1, 1, 2, 2))
    src = np.arange(4) / 2.0
    lo, hi, frac = np.floor(src).astype(int), np.minimum(np.floor(src).astype(int) + 1, 1), (src % 1).astype(F32)
    rows = x[:, :, lo] * (1 - frac)[:, None] + x[:, :, hi] * frac[:, None]
    expected = rows[..., lo] * (1 - frac) + rows[..., hi] * frac
    attrs = {"mode": "bilinear", "height_scale": 2.0, "width_scale": 2.0}
    check(x, attrs, op="Upsample", opset=1, expected=expected)


# --- plans, views and shapes -----------------------------------------------------------------


def test_dynamic_shapes_through_one_session():
    x0 = rand((1, 3, 4, 4))
    model = resize_model(x0, {"mode": "linear"}, scales=np.array([1, 1, 1.5, 2], F32))
    model.graph.input[0].type.tensor_type.ClearField("shape")
    sess = ortcore.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    reference = ReferenceEvaluator(model)
    for shape in [(1, 3, 4, 4), (2, 1, 6, 3), (1, 3, 4, 4), (1, 1, 1, 7)]:
        x = rand(shape)
        compare_outputs(reference.run(None, {"x": x})[0], sess.run(None, {"x": x})[0])


def _kernel(opset, attrs):
    ops.load_all()
    ctx = NodeContext(node=None, opset=opset, input_types=[None] * 4, output_types=[None], n_outputs=1,
                      xp=np, provider=None)
    return registry.lookup("", "Resize", opset).instantiate(ctx, attrs)


@pytest.mark.parametrize("mode", ["nearest", "linear"])
@pytest.mark.parametrize("scales", [[1, 1, 1, 1], [1, 1, 0.5, 0.5], [1, 1, 2, 2]])
def test_output_owns_its_data_and_input_untouched(mode, scales):
    x = np.ascontiguousarray(rand((1, 2, 4, 6)).transpose(0, 1, 3, 2))[..., ::1].transpose(0, 1, 3, 2)
    before = x.copy()
    y = _kernel(19, {"mode": mode})(x, None, np.array(scales, F32))
    assert not np.shares_memory(x, y) and y.flags.writeable
    model = resize_model(before, {"mode": mode}, scales=np.array(scales, F32))
    compare_outputs(ReferenceEvaluator(model).run(None, {"x": before})[0], y)
    np.testing.assert_array_equal(x, before)


def test_zero_sized_output_axis():
    x = rand((1, 1, 3, 4))
    y = run(resize_model(x, {"mode": "linear"}, scales=np.array([1, 1, 0.2, 1], F32)), x)
    assert y.shape == (1, 1, 0, 4) and y.dtype == F32


@pytest.mark.parametrize("coord, mode", list(itertools.product(["half_pixel", "asymmetric"], ["nearest", "linear"])))
def test_large_batch_blocks_match_reference(coord, mode):
    # Many (N, C) rows: the filter runs block by block; results must not depend on blocks.
    x = rand((3, 40, 17, 23))
    check(x, {"mode": mode, "coordinate_transformation_mode": coord}, scales=np.array([1, 1, 2.0, 1.5], F32))
