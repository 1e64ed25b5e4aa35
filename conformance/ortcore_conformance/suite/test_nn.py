"""Randomized differential tests: Conv, ConvTranspose and pools with random geometry, and Resize.

onnx.reference is the truth here, so the draws stay where it is right (checked
against onnxruntime): ConvTranspose with group 1 and no dilations, pools with
explicit pads (no auto_pad), MaxPool without pads, ceil_mode only for MaxPool,
float pools, integer Resize in nearest mode. The node cases cover the rest of each op.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume
from hypothesis import strategies as st

from ortcore_conformance.differential import (
    FLOATS, check_node, examples, schema_dtypes, seeds, start, tolerance, values,
)


def _per_axis(rank, low, high):
    return st.lists(st.integers(low, high), min_size=rank, max_size=rank)


@st.composite
def geometry(draw, *, dilations=True, padding=True, pads_below_kernel=False, auto_pad=True):
    """Kernel, strides, dilations, pads (or auto_pad) and an input size the dilated kernel fits in."""
    rank = draw(st.integers(1, 3))
    kernel, strides, dilation = (draw(_per_axis(rank, 1, high)) for high in (3, 3, 2 if dilations else 1))
    pads = [draw(st.integers(0, (k - 1 if pads_below_kernel else 2) if padding else 0)) for k in kernel * 2]
    side = 5 if rank == 3 else 8  # keeps 3-D cases small
    spatial = [draw(st.integers((k - 1) * d + 1, (k - 1) * d + side)) for k, d in zip(kernel, dilation)]
    mode = draw(st.sampled_from(["NOTSET"] * 3 + ["SAME_UPPER", "SAME_LOWER", "VALID"])) if auto_pad else "NOTSET"
    attrs = {"kernel_shape": kernel, "strides": strides, "dilations": dilation, "auto_pad": mode}
    if mode == "NOTSET":
        attrs["pads"] = pads
    return spatial, attrs


@pytest.mark.parametrize("dtype", FLOATS, ids=str)
def test_conv(target, record_case, dtype):
    opset = start(target, record_case, "Conv", [dtype, dtype, dtype])

    @examples(f"Conv-{dtype}", geo=geometry(), n=st.integers(1, 2), group=st.integers(1, 3),
              per_group=st.tuples(st.integers(1, 2), st.integers(1, 2)), bias=st.booleans(), seed=seeds)
    def check(geo, n, group, per_group, bias, seed):
        spatial, attrs = geo
        c_in, c_out = group * per_group[0], group * per_group[1]
        rng = np.random.default_rng(seed)
        x = values(rng, (n, c_in, *spatial), dtype, -1, 1)
        w = values(rng, (c_out, c_in // group, *attrs["kernel_shape"]), dtype, -1, 1)
        b = values(rng, (c_out,), dtype, -1, 1) if bias else None
        check_node(target, "Conv", opset, [x, w, b], {**attrs, "group": group}, **tolerance(dtype, accumulates=True))

    check()


@pytest.mark.parametrize("dtype", FLOATS, ids=str)
def test_conv_transpose(target, record_case, dtype):
    opset = start(target, record_case, "ConvTranspose", [dtype, dtype, dtype])

    @examples(f"ConvTranspose-{dtype}", geo=geometry(dilations=False, pads_below_kernel=True), n=st.integers(1, 2),
              channels=st.tuples(st.integers(1, 3), st.integers(1, 3)), bias=st.booleans(),
              output_padding=st.lists(st.integers(0, 2), min_size=3, max_size=3), seed=seeds)
    def check(geo, n, channels, bias, output_padding, seed):
        spatial, attrs = geo
        strides, kernel, pads = attrs["strides"], attrs["kernel_shape"], attrs.get("pads", [0] * 2 * len(spatial))
        attrs["output_padding"] = [min(p, s - 1) for p, s in zip(output_padding, strides)]  # must stay below stride
        sizes = [(i - 1) * s + p + k - b - e for i, s, p, k, b, e in
                 zip(spatial, strides, attrs["output_padding"], kernel, pads, pads[len(spatial):])]
        assume(min(sizes) >= 1)
        rng = np.random.default_rng(seed)
        x = values(rng, (n, channels[0], *spatial), dtype, -1, 1)
        w = values(rng, (*channels, *kernel), dtype, -1, 1)
        b = values(rng, (channels[1],), dtype, -1, 1) if bias else None
        check_node(target, "ConvTranspose", opset, [x, w, b], attrs, **tolerance(dtype, accumulates=True))

    check()


POOLS = {  # op -> (first opset with dilations and ceil_mode, geometry)
    "MaxPool": (10, geometry(padding=False, auto_pad=False)),
    "AveragePool": (10, geometry(pads_below_kernel=True, auto_pad=False)),
    "LpPool": (18, geometry(pads_below_kernel=True, auto_pad=False)),
}


@pytest.mark.parametrize("op,dtype", [  # onnx.reference pads 2-D integer inputs with NaN: floats only
    pytest.param(op, d, id=f"{op}-{d}") for op in POOLS for d in schema_dtypes(op) if d in FLOATS
])
def test_pool(target, record_case, op, dtype):
    oldest, geo = POOLS[op]
    opset = start(target, record_case, op, [dtype], oldest=oldest)

    @examples(f"{op}-{dtype}", geo=geo, n_c=st.tuples(st.integers(1, 2), st.integers(1, 3)),
              ceil_mode=st.booleans(), flag=st.booleans(), seed=seeds)
    def check(geo, n_c, ceil_mode, flag, seed):
        spatial, attrs = geo
        x = values(np.random.default_rng(seed), (*n_c, *spatial), dtype, -10, 10)
        if op == "MaxPool":
            attrs["ceil_mode"] = int(ceil_mode)
        if op == "AveragePool":
            attrs["count_include_pad"] = int(flag)
            if opset < 19:
                del attrs["dilations"]
        if op == "LpPool":
            attrs["p"] = 1 if flag else 2
        check_node(target, op, opset, [x], attrs, **tolerance(dtype, accumulates=True))

    check()


@st.composite
def resize_attrs(draw, opset, modes=("nearest", "linear", "cubic")):
    mode = draw(st.sampled_from(modes))
    ctm = ["half_pixel", "asymmetric", "pytorch_half_pixel", "align_corners"] + ["half_pixel_symmetric"] * (opset >= 19)
    attrs = {"mode": mode, "coordinate_transformation_mode": draw(st.sampled_from(ctm))}
    if mode == "nearest":
        attrs["nearest_mode"] = draw(st.sampled_from(["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"]))
    if mode == "cubic":  # exclude_outside means something for cubic only
        attrs["cubic_coeff_a"] = draw(st.sampled_from([-0.75, -0.5]))
        attrs["exclude_outside"] = draw(st.integers(0, 1))
    if opset >= 18 and mode != "nearest":
        attrs["antialias"] = draw(st.integers(0, 1))
    return attrs


RESIZE_DTYPES = [d for d in schema_dtypes("Resize") if d.kind == "f" or d.name in ("int8", "uint8")]


@pytest.mark.parametrize("dtype", RESIZE_DTYPES, ids=str)
def test_resize(target, record_case, dtype):
    opset = start(target, record_case, "Resize", [dtype], oldest=13)
    modes = ("nearest",) if dtype.kind in "iu" else ("nearest", "linear", "cubic")  # integer rounding is unspecified
    factors = st.sampled_from([0.5, 0.75, 1.0, 1.5, 2.0, 3.0])

    @examples(f"Resize-{dtype}", shape=st.tuples(*[st.integers(1, 2)] * 2, *[st.integers(1, 6)] * 2),
              attrs=resize_attrs(opset, modes), by_scales=st.booleans(), scales=st.tuples(factors, factors),
              sizes=st.tuples(st.integers(1, 10), st.integers(1, 10)), seed=seeds)
    def check(shape, attrs, by_scales, scales, sizes, seed):
        x = values(np.random.default_rng(seed), shape, dtype, -10, 10)
        scales_in = np.array([1, 1, *scales], np.float32) if by_scales else None
        sizes_in = None if by_scales else np.array([*shape[:2], *sizes], np.int64)
        # interpolation weights may be computed in float32 whatever the data's dtype
        tol = tolerance(np.float32 if dtype == np.float64 else dtype, accumulates=True)
        check_node(target, "Resize", opset, [x, None, scales_in, sizes_in], attrs, constant=[2, 3], **tol)

    check()
