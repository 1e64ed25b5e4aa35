"""GridSample, AffineGrid, RoiAlign, NonMaxSuppression, Col2Im, CenterCropPad and DeformConv:
what the ONNX node cases leave out.

Random shapes for every mode and padding mode against onnx.reference and onnxruntime,
N-D forms (3-D GridSample cubic, 3-D Col2Im, 3-D DeformConv) against onnx.reference or
closed forms (DeformConv with zero offsets is a Conv). Expected values never come
from ortcore.
"""

from __future__ import annotations

import numpy as np
import pytest

from ortcore.testing import compare_outputs, run_onnxruntime, run_ortcore, run_reference
from ortcore.testing import single_node_model as make_model

RNG = np.random.default_rng(11)
F32 = np.float32


# --- GridSample -----------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["nearest", "linear", "cubic"])
@pytest.mark.parametrize("padding_mode", ["zeros", "border", "reflection"])
@pytest.mark.parametrize("align_corners", [0, 1])
def test_grid_sample_2d_against_reference(mode, padding_mode, align_corners):
    x = RNG.standard_normal((2, 3, 5, 6)).astype(F32)
    grid = RNG.uniform(-1.6, 1.6, (2, 4, 3, 2)).astype(F32)
    inputs = {"x": x, "grid": grid}
    model = make_model("GridSample", inputs, [F32], opset=22, mode=mode, padding_mode=padding_mode, align_corners=align_corners)
    actual = run_ortcore(model, inputs)[0]
    compare_outputs(run_reference(model, inputs)[0], actual, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("mode", ["nearest", "bilinear", "bicubic"])
@pytest.mark.parametrize("padding_mode", ["zeros", "border", "reflection"])
@pytest.mark.parametrize("align_corners", [0, 1])
def test_grid_sample_16_against_onnxruntime(mode, padding_mode, align_corners):
    x = RNG.standard_normal((2, 2, 7, 5)).astype(F32)
    grid = RNG.uniform(-1.3, 1.3, (2, 6, 4, 2)).astype(F32)
    inputs = {"x": x, "grid": grid}
    model = make_model("GridSample", inputs, [F32], opset=16, mode=mode, padding_mode=padding_mode, align_corners=align_corners)
    actual = run_ortcore(model, inputs)[0]
    if (mode, padding_mode) == ("bicubic", "border"):
        # onnxruntime clamps every axis of a point once any axis is out of range;
        # onnx.reference (whose results the node cases store) clamps only that axis.
        # The two differ for cubic taps, and ortcore follows onnx.reference.
        reference = make_model("GridSample", inputs, [F32], opset=22, mode="cubic", padding_mode="border", align_corners=align_corners)
        compare_outputs(run_reference(reference, inputs)[0], actual, rtol=1e-4, atol=1e-5)
    else:
        compare_outputs(run_onnxruntime(model, inputs)[0], actual, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("mode", ["nearest", "linear", "cubic"])
@pytest.mark.parametrize("padding_mode", ["zeros", "border", "reflection"])
def test_grid_sample_3d_against_reference(mode, padding_mode):
    x = RNG.standard_normal((1, 2, 3, 4, 5)).astype(F32)
    grid = RNG.uniform(-1.3, 1.3, (1, 2, 3, 2, 3)).astype(F32)
    inputs = {"x": x, "grid": grid}
    model = make_model("GridSample", inputs, [F32], opset=20, mode=mode, padding_mode=padding_mode, align_corners=0)
    compare_outputs(run_reference(model, inputs)[0], run_ortcore(model, inputs)[0], rtol=1e-4, atol=1e-5)


def test_grid_sample_1d_linear_is_interp():
    """Rank-1 spatial input, align_corners=1: plain linear interpolation (numpy.interp)."""
    x = RNG.standard_normal((1, 1, 9)).astype(np.float64)
    grid = RNG.uniform(-1, 1, (1, 13, 1))
    inputs = {"x": x, "grid": grid}
    model = make_model("GridSample", inputs, [np.float64], opset=20, mode="linear", align_corners=1)
    expected = np.interp((grid[0, :, 0] + 1) / 2 * 8, np.arange(9), x[0, 0])
    np.testing.assert_allclose(run_ortcore(model, inputs)[0][0, 0], expected, atol=1e-12)


def test_grid_sample_large_batch_is_vectorized_and_matches_onnxruntime():
    x = RNG.standard_normal((4, 16, 32, 32)).astype(F32)
    grid = RNG.uniform(-1.1, 1.1, (4, 24, 24, 2)).astype(F32)
    inputs = {"x": x, "grid": grid}
    model = make_model("GridSample", inputs, [F32], opset=20, mode="cubic", padding_mode="reflection")
    compare_outputs(run_onnxruntime(model, inputs)[0], run_ortcore(model, inputs)[0], rtol=1e-4, atol=1e-4)


def test_grid_sample_integer_input_nearest():
    x = RNG.integers(-50, 50, (1, 2, 4, 4)).astype(np.int32)
    grid = RNG.uniform(-1.2, 1.2, (1, 3, 3, 2)).astype(F32)
    inputs = {"x": x, "grid": grid}
    model = make_model("GridSample", inputs, [np.int32], opset=20, mode="nearest")
    compare_outputs(run_reference(model, inputs)[0], run_ortcore(model, inputs)[0])


# --- AffineGrid -----------------------------------------------------------------------


@pytest.mark.parametrize("size", [(2, 3, 5, 7), (1, 1, 1, 4), (2, 2, 3, 4, 5)])
@pytest.mark.parametrize("align_corners", [0, 1])
def test_affine_grid(size, align_corners):
    rank = len(size) - 2
    theta = RNG.standard_normal((size[0], rank, rank + 1)).astype(F32)
    inputs = {"theta": theta, "size": np.array(size, np.int64)}
    model = make_model("AffineGrid", inputs, [F32], opset=20, initializers=("size",), align_corners=align_corners)
    actual = run_ortcore(model, inputs)[0]
    assert actual.shape == (size[0], *size[2:], rank)
    if align_corners and 1 in size[2:]:
        # A one-pixel axis has no defined spacing: onnx.reference divides by zero and
        # onnxruntime gives +1. PyTorch's affine_grid puts the pixel at 0, i.e. the
        # output is theta applied to a base coordinate of 0 on that axis.
        base = np.stack(np.meshgrid(*[np.linspace(-1, 1, s) if s > 1 else np.zeros(1) for s in size[2:]], indexing="ij")[::-1] + (np.ones(size[2:]),), -1)
        expected = np.einsum("nij,...j->n...i", theta.astype(np.float64), base).astype(F32)
        compare_outputs(expected, actual, rtol=1e-5, atol=1e-6)
        return
    compare_outputs(run_reference(model, inputs)[0], actual, rtol=1e-5, atol=1e-6)
    compare_outputs(run_onnxruntime(model, inputs)[0], actual, rtol=1e-5, atol=1e-6)


# --- RoiAlign -------------------------------------------------------------------------


def random_rois(count, height, width, scale):
    x1 = RNG.uniform(-2, width / scale, count)
    y1 = RNG.uniform(-2, height / scale, count)
    x2 = x1 + RNG.uniform(0, width / scale, count)
    y2 = y1 + RNG.uniform(0, height / scale, count)
    return np.stack([x1, y1, x2, y2], axis=1).astype(F32)


@pytest.mark.parametrize("opset,ctm", [(10, None), (16, "half_pixel"), (16, "output_half_pixel"), (22, "half_pixel")])
@pytest.mark.parametrize("mode", ["avg", "max"])
@pytest.mark.parametrize("sampling_ratio", [0, 2])
def test_roi_align(opset, ctm, mode, sampling_ratio):
    x = RNG.standard_normal((2, 3, 10, 12)).astype(F32)
    rois = random_rois(7, 10, 12, 0.5)
    batch = RNG.integers(0, 2, 7).astype(np.int64)
    inputs = {"x": x, "rois": rois, "batch": batch}
    attrs = dict(mode=mode, sampling_ratio=sampling_ratio, output_height=3, output_width=4, spatial_scale=0.5)
    if ctm is not None:
        attrs["coordinate_transformation_mode"] = ctm
    model = make_model("RoiAlign", inputs, [F32], opset=opset, **attrs)
    actual = run_ortcore(model, inputs)[0]
    if opset > 10:  # onnx.reference applies the half-pixel shift at opset 10 too, which RoiAlign-10 has not
        compare_outputs(run_reference(model, inputs)[0], actual, rtol=1e-4, atol=1e-5)
    if opset < 22:
        compare_outputs(run_onnxruntime(model, inputs)[0], actual, rtol=1e-4, atol=1e-5)


def test_roi_align_many_rois_against_onnxruntime():
    x = RNG.standard_normal((2, 8, 20, 24)).astype(F32)
    rois = random_rois(60, 20, 24, 1.0)
    batch = RNG.integers(0, 2, 60).astype(np.int64)
    inputs = {"x": x, "rois": rois, "batch": batch}
    model = make_model("RoiAlign", inputs, [F32], opset=16, output_height=5, output_width=5)
    compare_outputs(run_onnxruntime(model, inputs)[0], run_ortcore(model, inputs)[0], rtol=1e-4, atol=1e-5)


def test_roi_align_no_rois():
    inputs = {"x": RNG.standard_normal((1, 2, 4, 4)).astype(F32), "rois": np.zeros((0, 4), F32), "batch": np.zeros(0, np.int64)}
    model = make_model("RoiAlign", inputs, [F32], opset=16, output_height=2, output_width=2)
    assert run_ortcore(model, inputs)[0].shape == (0, 2, 2, 2)


# --- NonMaxSuppression ----------------------------------------------------------------


@pytest.mark.parametrize("opset", [10, 11])
@pytest.mark.parametrize("center_point_box", [0, 1])
@pytest.mark.parametrize("with_score_threshold", [False, True])
def test_non_max_suppression(opset, center_point_box, with_score_threshold):
    batches, classes, count = 2, 3, 40
    centers = RNG.uniform(0, 10, (batches, count, 2))
    sizes = RNG.uniform(0.5, 4, (batches, count, 2))
    if center_point_box:
        boxes = np.concatenate([centers, sizes], axis=-1)
    else:  # corners in either order
        a, b = centers - sizes / 2, centers + sizes / 2
        flip = RNG.random((batches, count, 1)) < 0.5
        boxes = np.concatenate([np.where(flip, b, a)[..., ::-1], np.where(flip, a, b)[..., ::-1]], axis=-1)
    scores = RNG.random((batches, classes, count)).astype(F32)
    scores[0, 0, 5] = scores[0, 0, 6]  # a tie: the lower index wins
    inputs = {
        "boxes": boxes.astype(F32),
        "scores": scores,
        "max": np.array([6], np.int64),
        "iou": np.array([0.3], F32),
        "score": np.array([0.2], F32) if with_score_threshold else None,
    }
    model = make_model("NonMaxSuppression", inputs, [np.int64], opset=opset, initializers=("max", "iou", "score"), center_point_box=center_point_box)
    actual = run_ortcore(model, inputs)[0]
    compare_outputs(run_reference(model, inputs)[0], actual)
    compare_outputs(run_onnxruntime(model, inputs)[0], actual)


def test_non_max_suppression_defaults_select_nothing():
    inputs = {"boxes": RNG.random((1, 4, 4)).astype(F32), "scores": RNG.random((1, 1, 4)).astype(F32)}
    model = make_model("NonMaxSuppression", inputs, [np.int64], opset=11)
    assert run_ortcore(model, inputs)[0].shape == (0, 3)


# --- Col2Im ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "image,block,attrs",
    [
        ((5, 5), (2, 2), {}),
        ((6, 7), (3, 2), {"strides": [2, 1]}),
        ((6, 7), (3, 3), {"pads": [1, 0, 2, 1]}),
        ((9, 8), (2, 3), {"dilations": [2, 3], "strides": [1, 2], "pads": [0, 1, 1, 0]}),
        ((4, 5, 6), (2, 2, 3), {"strides": [1, 2, 1], "pads": [1, 0, 0, 0, 1, 1]}),
    ],
)
def test_col2im(image, block, attrs):
    rank = len(image)
    strides = attrs.get("strides", [1] * rank)
    dilations = attrs.get("dilations", [1] * rank)
    pads = attrs.get("pads", [0] * (2 * rank))
    cols = [(image[i] + pads[i] + pads[i + rank] - dilations[i] * (block[i] - 1) - 1) // strides[i] + 1 for i in range(rank)]
    x = RNG.standard_normal((2, 3 * int(np.prod(block)), int(np.prod(cols)))).astype(F32)
    inputs = {"x": x, "image": np.array(image, np.int64), "block": np.array(block, np.int64)}
    model = make_model("Col2Im", inputs, [F32], opset=18, initializers=("image", "block"), **attrs)
    actual = run_ortcore(model, inputs)[0]
    compare_outputs(run_reference(model, inputs)[0], actual, rtol=1e-5, atol=1e-5)
    if rank == 2:
        compare_outputs(run_onnxruntime(model, inputs)[0], actual, rtol=1e-5, atol=1e-5)


# --- CenterCropPad --------------------------------------------------------------------


@pytest.mark.parametrize(
    "shape,target,axes",
    [
        ((5, 6, 3), (3, 8, 3), None),
        ((4, 7), (7, 2), None),
        ((2, 9, 9, 3), (4, 5), [1, 2]),
        ((2, 9, 9, 3), (10, 1), [-3, -2]),
        ((3, 4), (3, 4), None),
    ],
)
@pytest.mark.parametrize("dtype", [F32, np.int64, np.bool_])
def test_center_crop_pad(shape, target, axes, dtype):
    x = (RNG.standard_normal(shape) * 5).astype(dtype)
    inputs = {"x": x, "shape": np.array(target, np.int64)}
    attrs = {} if axes is None else {"axes": axes}
    model = make_model("CenterCropPad", inputs, [dtype], opset=18, initializers=("shape",), **attrs)
    actual = run_ortcore(model, inputs)[0]
    compare_outputs(run_reference(model, inputs)[0], actual)


def test_center_crop_pad_strings():
    x = np.array([["a", "b", "c"], ["d", "e", "f"]], dtype=object)
    inputs = {"x": x, "shape": np.array([4, 1], np.int64)}
    model = make_model("CenterCropPad", inputs, [object], opset=18, initializers=("shape",))
    assert run_ortcore(model, inputs)[0].tolist() == [[""], ["b"], ["e"], [""]]


# --- DeformConv -----------------------------------------------------------------------


def deform_inputs(n, c, spatial, oc, kernel, group, offset_group, strides, pads, dilations, with_mask, with_bias, scale=1.5):
    rank = len(spatial)
    out = [(spatial[i] + pads[i] + pads[i + rank] - dilations[i] * (kernel[i] - 1) - 1) // strides[i] + 1 for i in range(rank)]
    k = int(np.prod(kernel))
    return {
        "x": RNG.standard_normal((n, c, *spatial)).astype(F32),
        "w": RNG.standard_normal((oc, c // group, *kernel)).astype(F32),
        "offset": (RNG.standard_normal((n, offset_group * k * rank, *out)) * scale).astype(F32),
        "b": RNG.standard_normal(oc).astype(F32) if with_bias else None,
        "mask": RNG.random((n, offset_group * k, *out)).astype(F32) if with_mask else None,
    }


@pytest.mark.parametrize(
    "c,oc,group,offset_group,strides,pads,dilations,with_mask,with_bias",
    [
        (2, 3, 1, 1, [1, 1], [0, 0, 0, 0], [1, 1], False, False),
        (4, 4, 2, 2, [2, 1], [1, 0, 1, 2], [1, 2], True, True),
        (4, 2, 1, 4, [1, 2], [2, 1, 0, 1], [2, 1], True, False),
    ],
)
@pytest.mark.parametrize("opset", [19, 22])
def test_deform_conv_2d_against_reference(c, oc, group, offset_group, strides, pads, dilations, with_mask, with_bias, opset):
    inputs = deform_inputs(1, c, (5, 6), oc, (2, 3), group, offset_group, strides, pads, dilations, with_mask, with_bias)
    attrs = dict(group=group, offset_group=offset_group, strides=strides, pads=pads, dilations=dilations)
    model = make_model("DeformConv", inputs, [F32], opset=opset, **attrs)
    actual = run_ortcore(model, inputs)[0]
    compare_outputs(run_reference(model, inputs)[0], actual, rtol=1e-4, atol=1e-4)
    compare_outputs(run_onnxruntime(model, inputs)[0], actual, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("spatial,kernel", [((7,), (3,)), ((4, 5, 6), (2, 3, 2))])
def test_deform_conv_with_zero_offsets_is_conv(spatial, kernel):
    """Zero offsets and a mask of ones sample exactly the Conv taps, in any rank."""
    rank = len(spatial)
    attrs = dict(group=2, strides=[2] + [1] * (rank - 1), pads=[1] * rank + [0] * rank, dilations=[1] * rank)
    inputs = deform_inputs(2, 4, spatial, 6, kernel, 2, 1, attrs["strides"], attrs["pads"], attrs["dilations"], False, True)
    inputs["offset"] = np.zeros_like(inputs["offset"])
    actual = run_ortcore(make_model("DeformConv", inputs, [F32], opset=22, **attrs), inputs)[0]
    conv_inputs = {"x": inputs["x"], "w": inputs["w"], "b": inputs["b"]}
    expected = run_onnxruntime(make_model("Conv", conv_inputs, [F32], opset=22, **attrs), conv_inputs)[0]
    compare_outputs(expected, actual, rtol=1e-4, atol=1e-4)


def test_deform_conv_integer_offsets_shift_the_taps():
    """An offset of exactly +1 along H reads the Conv input shifted by one row (zeros past the edge)."""
    inputs = deform_inputs(1, 2, (6, 5), 3, (3, 3), 1, 1, [1, 1], [0, 0, 0, 0], [1, 1], False, False)
    offset = np.zeros_like(inputs["offset"]).reshape(1, 9, 2, 4, 3)
    offset[:, :, 0] = 1.0
    inputs["offset"] = offset.reshape(1, 18, 4, 3)
    actual = run_ortcore(make_model("DeformConv", inputs, [F32], opset=22), inputs)[0]
    shifted = np.concatenate([inputs["x"][:, :, 1:], np.zeros_like(inputs["x"][:, :, :1])], axis=2)
    conv_inputs = {"x": shifted, "w": inputs["w"]}
    expected = run_onnxruntime(make_model("Conv", conv_inputs, [F32], opset=22), conv_inputs)[0]
    compare_outputs(expected, actual, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("padding_mode", ["zeros", "border", "reflection"])
def test_grid_sample_bool_input_nearest(padding_mode):
    x = RNG.random((1, 2, 4, 5)) < 0.5
    grid = RNG.uniform(-1.4, 1.4, (1, 3, 3, 2)).astype(F32)
    inputs = {"x": x, "grid": grid}
    model = make_model("GridSample", inputs, [np.bool_], opset=20, mode="nearest", padding_mode=padding_mode)
    compare_outputs(run_reference(model, inputs)[0], run_ortcore(model, inputs)[0])
