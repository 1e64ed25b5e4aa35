"""Resize and Upsample on the OpenCL provider, against the CPU provider, onnxruntime and
onnx.reference."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pyopencl")

import ortcore
from ortcore.errors import OrtCoreError
from ortcore.testing import (
    compare_outputs,
    run_onnxruntime,
    run_ortcore,
    run_reference,
    single_node_model,
)

OCL = "OpenCLExecutionProvider"
RNG = np.random.default_rng(3)
X = RNG.standard_normal((2, 3, 5, 6)).astype(np.float32)
UP = np.array([1, 1, 2.0, 1.5], np.float32)
DOWN = np.array([1, 1, 0.7, 0.5], np.float32)  # no nearest ties that float32 and float64 round apart


def session(model):
    return ortcore.InferenceSession(model.SerializeToString(), providers=[OCL, "CPUExecutionProvider"])


def check(model, feeds, *, truth=run_ortcore, rtol=1e-3, atol=1e-5):
    sess = session(model)
    where = [a.provider.name for a in sess.get_partition().assignments]
    assert where == [OCL] * len(where), where
    got = sess.run(None, feeds)
    want = truth(model, feeds)
    for i, (w, g) in enumerate(zip(want, got)):
        compare_outputs(w, g, rtol=rtol, atol=atol, name=f"output {i}")
    return got[0]


def resize_model(x, *, scales=None, sizes=None, roi=None, opset=19, constant=True, **attrs):
    inputs = {"x": x, "roi": roi, "scales": scales, "sizes": sizes}
    consts = tuple(k for k in ("roi", "scales", "sizes") if inputs[k] is not None) if constant else ()
    return single_node_model("Resize", inputs, [x.dtype], opset=opset, initializers=consts, **attrs)


@pytest.mark.parametrize("coord", ["half_pixel", "asymmetric", "align_corners", "pytorch_half_pixel",
                                   "tf_half_pixel_for_nn", "half_pixel_symmetric"])
@pytest.mark.parametrize("nearest_mode", ["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"])
def test_nearest_modes(coord, nearest_mode):
    for scales in (UP, DOWN):
        model = resize_model(X, scales=scales, mode="nearest", coordinate_transformation_mode=coord,
                             nearest_mode=nearest_mode)
        # onnx.reference lacks tf_half_pixel_for_nn
        check(model, {"x": X}, truth=run_onnxruntime if coord == "tf_half_pixel_for_nn" else run_reference)


@pytest.mark.parametrize("coord", ["half_pixel", "asymmetric", "align_corners", "pytorch_half_pixel",
                                   "half_pixel_symmetric"])
def test_linear_and_cubic(coord):
    for mode in ("linear", "cubic"):
        for scales in (UP, DOWN):
            model = resize_model(X, scales=scales, mode=mode, coordinate_transformation_mode=coord)
            check(model, {"x": X}, truth=run_reference)


def test_bilinear_by_sizes_matches_onnxruntime():
    sizes = np.array([2, 3, 9, 4], np.int64)
    model = resize_model(X, sizes=sizes, opset=13, mode="linear", coordinate_transformation_mode="half_pixel")
    check(model, {"x": X}, truth=run_onnxruntime)


def test_trilinear_3d_and_all_axes_scaled():
    x = RNG.standard_normal((2, 3, 4, 5, 3)).astype(np.float32)
    model = resize_model(x, scales=np.array([1.5, 1, 2, 0.8, 2], np.float32), mode="linear",
                         coordinate_transformation_mode="align_corners")
    check(model, {"x": x})


def test_cubic_options_and_antialias():
    check(resize_model(X, scales=DOWN, mode="cubic", cubic_coeff_a=-0.5, exclude_outside=1), {"x": X},
          truth=run_reference)
    for mode in ("linear", "cubic"):
        check(resize_model(X, scales=DOWN, mode=mode, antialias=1), {"x": X}, truth=run_reference)


def test_axes_and_keep_aspect_ratio():
    sizes = np.array([8, 7], np.int64)
    for policy in ("stretch", "not_larger", "not_smaller"):
        model = resize_model(X, sizes=sizes, axes=[3, 2], keep_aspect_ratio_policy=policy, mode="nearest")
        check(model, {"x": X}, truth=run_reference)


def test_tf_crop_and_resize_extrapolates():
    roi = np.array([0, 0, 0.4, 0.6, 1, 1, 1.2, 0.7], np.float32)
    sizes = np.array([2, 3, 3, 3], np.int64)
    for mode in ("linear", "nearest"):
        model = resize_model(X, roi=roi, sizes=sizes, opset=13, mode=mode,
                             coordinate_transformation_mode="tf_crop_and_resize", extrapolation_value=10.0)
        got = check(model, {"x": X}, truth=run_reference)
        assert np.any(got == 10.0)


def test_integer_nearest_and_float64():
    xi = RNG.integers(0, 255, (1, 2, 4, 4)).astype(np.uint8)
    check(resize_model(xi, scales=np.array([1, 1, 2, 3], np.float32), mode="nearest"), {"x": xi}, rtol=0, atol=0)
    x64 = RNG.standard_normal((1, 2, 4, 4))
    check(resize_model(x64, scales=np.array([1, 1, 1.5, 2], np.float32), mode="linear"), {"x": x64},
          rtol=1e-9, atol=1e-12)


def test_scales_fed_at_run_time():
    model = resize_model(X, scales=UP, mode="linear", constant=False)
    check(model, {"x": X, "scales": UP})
    check(model, {"x": X, "scales": DOWN})


def test_opset10_and_upsample():
    for mode in ("nearest", "linear"):
        model = single_node_model("Resize", {"x": X, "scales": UP}, [np.float32], opset=10, initializers=("scales",),
                                  mode=mode)
        check(model, {"x": X}, truth=run_onnxruntime)
    scales = np.array([1, 1, 2, 3], np.float32)
    model = single_node_model("Upsample", {"x": X, "scales": scales}, [np.float32], opset=9, initializers=("scales",),
                              mode="nearest")
    check(model, {"x": X}, truth=run_onnxruntime)
    model = single_node_model("Upsample", {"x": X}, [np.float32], opset=7, scales=[1.0, 1.0, 2.0, 2.0], mode="linear")
    check(model, {"x": X})


def test_identity_scales_still_give_a_new_array():
    got = check(resize_model(X, scales=np.ones(4, np.float32), mode="linear"), {"x": X})
    np.testing.assert_array_equal(got, X)


def test_integer_linear_is_declined():
    xi = RNG.integers(0, 255, (1, 1, 4, 4)).astype(np.uint8)
    sess = session(resize_model(xi, scales=np.array([1, 1, 2, 2], np.float32), mode="linear"))
    a = sess.get_partition().assignments[0]
    assert a.provider.name == "CPUExecutionProvider"
    assert "uint8" in a.declined[OCL]


def test_wrong_scales_length_raises_an_ortcore_error():
    model = resize_model(X, scales=np.array([2, 2], np.float32), mode="nearest", constant=False)
    with pytest.raises(OrtCoreError, match="scales has 2 values, expected 4"):
        session(model).run(None, {"x": X, "scales": np.array([2, 2], np.float32)})
