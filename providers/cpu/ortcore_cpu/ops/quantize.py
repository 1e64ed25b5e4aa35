"""Linear quantization: QuantizeLinear, DequantizeLinear, DynamicQuantizeLinear, QLinearMatMul,
QLinearConv (ONNX spec sections of the same names).

Granularity follows the scale's shape: a scalar (or one element) is per tensor, a
1-D scale runs along ``axis``, and with ``block_size`` a scale of the input's rank
is repeated ``block_size`` times along ``axis``. Integer results round half to
even and saturate to the type's range. float8 types go through ml_dtypes' casts
(round to nearest even; with ``saturate`` out-of-range values clip to the largest
finite value first, as ``onnx.numpy_helper.saturate_cast`` does); float4e2m1 and
float6 have no infinity, so ml_dtypes' cast saturates by itself. Sub-byte integer
types (int4, uint4, int2, uint2) are ml_dtypes arrays, one element per byte;
packing two or four to a byte happens only in TensorProto serialization.

QuantizeLinear divides in the type ``precision`` names; without it, in the
scale's type when ``x`` has the same one (float16 or bfloat16 division rounds
like onnx.reference's), in float64 for int32 ``x`` and in float32 otherwise.
DequantizeLinear multiplies in float32 and casts to the output type. The integer
products of QLinearMatMul/QLinearConv go through float BLAS, exact for 8-bit
operands: float32 while every sum stays below 2**24, float64 beyond.
"""

from __future__ import annotations

import math
from typing import Any

import ml_dtypes
import numpy as np

from ortcore.dtypes import np_dtype
from ortcore.errors import InvalidArgument
from ortcore_cpu.ops.nn._spatial import pad_input, patches, window
from ortcore_cpu.registry import kernel

# -- type tables ---------------------------------------------------------------------------------

_INT_RANGES: dict[np.dtype, tuple[int, int]] = {
    np.dtype(np.uint8): (0, 255),
    np.dtype(np.int8): (-128, 127),
    np.dtype(np.uint16): (0, 65535),
    np.dtype(np.int16): (-32768, 32767),
    np.dtype(ml_dtypes.uint4): (0, 15),
    np.dtype(ml_dtypes.int4): (-8, 7),
    np.dtype(ml_dtypes.uint2): (0, 3),
    np.dtype(ml_dtypes.int2): (-2, 1),
}
_FLOAT8 = frozenset(
    np.dtype(t)
    for t in (ml_dtypes.float8_e4m3fn, ml_dtypes.float8_e4m3fnuz, ml_dtypes.float8_e5m2, ml_dtypes.float8_e5m2fnuz)
)
# no infinity encoding: ml_dtypes' cast already saturates
_SATURATING_FLOATS = frozenset(
    np.dtype(getattr(ml_dtypes, name))
    for name in ("float4_e2m1fn", "float6_e2m3fn", "float6_e3m2fn")
    if hasattr(ml_dtypes, name)
)
_F32 = np.dtype(np.float32)
# DequantizeLinear's output takes the scale's type when it is one of these (not float8e8m0)
_SCALE_OUTPUTS = frozenset(np.dtype(t) for t in (np.float32, np.float16, ml_dtypes.bfloat16))


def _elem_dtype(elem_type: int) -> np.dtype:
    dtype = np_dtype(elem_type)
    if dtype is None:
        raise InvalidArgument(f"unknown element type {elem_type}")
    return dtype


def _float_kind(dtype: np.dtype) -> bool:
    return dtype.kind == "f" or (dtype.kind == "V" and "float" in dtype.name)


# -- quantization parameters ---------------------------------------------------------------------


def _broadcastable(value: np.ndarray, shape: tuple[int, ...], axis: int, block_size: int) -> np.ndarray:
    """Scale or zero point reshaped (and for blocks repeated) to broadcast against ``shape``."""
    if value.ndim == 0 or value.size == 1 and value.ndim <= 1:
        return value.reshape(())
    rank = len(shape)
    if not -rank <= axis < rank:
        raise InvalidArgument(f"axis {axis} is out of range for an input of rank {rank}")
    axis %= rank
    if not block_size:
        if value.ndim != 1 or value.shape[0] != shape[axis]:
            raise InvalidArgument(
                f"per-axis scale/zero point has shape {value.shape}, expected ({shape[axis]},) for axis {axis}"
            )
        return value.reshape((1,) * axis + (-1,) + (1,) * (rank - axis - 1))
    if block_size < 0:
        raise InvalidArgument(f"block_size must be positive, got {block_size}")
    expected = shape[:axis] + (-(-shape[axis] // block_size),) + shape[axis + 1 :]
    if value.shape != expected:
        raise InvalidArgument(
            f"blocked scale/zero point has shape {value.shape}, expected {expected} "
            f"for input {shape}, axis {axis}, block_size {block_size}"
        )
    value = np.repeat(value, block_size, axis=axis)
    if value.shape[axis] != shape[axis]:  # the last block is shorter
        value = value[(slice(None),) * axis + (slice(0, shape[axis]),)]
    return value


def _as_float(value: np.ndarray, dtype: np.dtype = _F32) -> np.ndarray:
    return value if value.dtype == dtype else value.astype(dtype)


# -- QuantizeLinear --------------------------------------------------------------------------------


def _saturate(v: np.ndarray, out: np.dtype, saturate: int) -> np.ndarray:
    """Cast float ``v`` to the quantized type ``out`` (a dtype)."""
    lo_hi = _INT_RANGES.get(out)
    if lo_hi is not None:
        v = np.rint(v, out=v if v.flags.writeable else None)
        np.clip(v, lo_hi[0], lo_hi[1], out=v)
        if out.kind in "iu":
            return v.astype(out)
        return v.astype(np.int8).astype(out)  # sub-byte ml_dtypes types cast from small ints
    if out in _FLOAT8:
        if saturate:
            info = ml_dtypes.finfo(out)
            v = np.clip(v, float(info.min), float(info.max))  # NaN stays NaN
        return v.astype(out)
    if out in _SATURATING_FLOATS:
        return v.astype(out)
    raise InvalidArgument(f"{out} is not a quantized type")


def _division_dtype(x_dtype: np.dtype, scale_dtype: np.dtype) -> np.dtype:
    """The type ``x / y_scale`` is computed in without ``precision``: the scale's when ``x``
    has the same one (as onnx.reference computes it), float64 for int32 ``x``, else float32."""
    if x_dtype.kind in "iu":
        return np.dtype(np.float64)
    return x_dtype if x_dtype == scale_dtype else _F32


def _quantize(
    x: np.ndarray,
    scale: np.ndarray,
    zero_point: np.ndarray | None,
    out: np.dtype,
    *,
    axis: int,
    block_size: int,
    saturate: int,
    precision: np.dtype | None,
) -> np.ndarray:
    cdt = precision or _division_dtype(x.dtype, scale.dtype)
    s = _broadcastable(_as_float(scale, cdt), x.shape, axis, block_size)
    v = np.divide(_as_float(x, cdt), s, dtype=cdt)
    if v.dtype != _F32 and v.dtype != np.float64:
        v = v.astype(_F32)  # the division rounded in the requested precision; finish in float32
    if zero_point is not None and out not in _FLOAT8:
        # the spec leaves float8 zero points at 0 (onnxruntime and onnx.reference ignore them)
        zp = _broadcastable(zero_point.astype(v.dtype), x.shape, axis, block_size)
        if out in _INT_RANGES:  # round first: adding an integer after rounding cannot move a tie
            v = np.rint(v)
        v = v + zp
    return _saturate(v, out, saturate)


def _quantize_factory(ctx: Any, *, axis: int, block_size: int, saturate: int, output_dtype: int, precision: int):
    zp_type = ctx.input_types[2] if len(ctx.input_types) > 2 and ctx.input_types[2] is not None else None
    attr_out = _elem_dtype(output_dtype) if output_dtype else None
    if zp_type is not None and attr_out is not None and zp_type.dtype is not None and zp_type.dtype != attr_out:
        raise InvalidArgument(
            f"QuantizeLinear: output_dtype {attr_out} differs from the zero point's type {zp_type.dtype}"
        )
    default_out = attr_out or np.dtype(np.uint8)
    prec = _elem_dtype(precision) if precision else None

    def run(x, y_scale, y_zero_point=None, /):
        out = y_zero_point.dtype if y_zero_point is not None else default_out
        return _quantize(
            x, y_scale, y_zero_point, out, axis=axis, block_size=block_size, saturate=saturate, precision=prec
        )

    return run


@kernel("QuantizeLinear", since=10, factory=True)
def quantize_linear_10(ctx):
    """QuantizeLinear-10: per-tensor; uint8 unless the zero point says int8."""
    return _quantize_factory(ctx, axis=1, block_size=0, saturate=1, output_dtype=0, precision=0)


@kernel("QuantizeLinear", since=13, factory=True)
def quantize_linear_13(ctx, *, axis=1):
    """QuantizeLinear-13: adds per-axis scales."""
    return _quantize_factory(ctx, axis=axis, block_size=0, saturate=1, output_dtype=0, precision=0)


@kernel("QuantizeLinear", since=19, factory=True)
def quantize_linear_19(ctx, *, axis=1, saturate=1):
    """QuantizeLinear-19: adds float8 outputs and ``saturate``."""
    return _quantize_factory(ctx, axis=axis, block_size=0, saturate=saturate, output_dtype=0, precision=0)


@kernel("QuantizeLinear", since=21, factory=True)
def quantize_linear_21(ctx, *, axis=1, block_size=0, output_dtype=0, saturate=1):
    """QuantizeLinear-21: adds blocked scales, ``output_dtype``, 16- and 4-bit integers."""
    return _quantize_factory(
        ctx, axis=axis, block_size=block_size, saturate=saturate, output_dtype=output_dtype, precision=0
    )


@kernel("QuantizeLinear", since=23, factory=True)
@kernel("QuantizeLinear", since=24, factory=True)
@kernel("QuantizeLinear", since=25, factory=True)
@kernel("QuantizeLinear", since=28, factory=True)
def quantize_linear_23(ctx, *, axis=1, block_size=0, output_dtype=0, precision=0, saturate=1):
    """QuantizeLinear-23+: adds ``precision``, float4e2m1; 24 float8e8m0 scales; 25 2-bit; 28 float6."""
    return _quantize_factory(
        ctx, axis=axis, block_size=block_size, saturate=saturate, output_dtype=output_dtype, precision=precision
    )


# -- DequantizeLinear ------------------------------------------------------------------------------


def _dequantize_factory(ctx: Any, *, axis: int, block_size: int, output_dtype: int):
    attr_out = _elem_dtype(output_dtype) if output_dtype else None

    def run(x, x_scale, x_zero_point=None, /):
        v = _as_float(x)
        if x_zero_point is not None and x.dtype not in _FLOAT8 and x.dtype not in _SATURATING_FLOATS:
            v = v - _broadcastable(_as_float(x_zero_point), x.shape, axis, block_size)
        y = v * _broadcastable(_as_float(x_scale), x.shape, axis, block_size)
        out = attr_out or (x_scale.dtype if x_scale.dtype in _SCALE_OUTPUTS else _F32)
        return np.asarray(y).astype(out, copy=False)

    return run


@kernel("DequantizeLinear", since=10, factory=True)
def dequantize_linear_10(ctx):
    """DequantizeLinear-10: per-tensor, float32 output."""
    return _dequantize_factory(ctx, axis=1, block_size=0, output_dtype=0)


@kernel("DequantizeLinear", since=13, factory=True)
@kernel("DequantizeLinear", since=19, factory=True)
def dequantize_linear_13(ctx, *, axis=1):
    """DequantizeLinear-13/19: per-axis scales; 19 adds float8 inputs and float16/bfloat16 scales."""
    return _dequantize_factory(ctx, axis=axis, block_size=0, output_dtype=0)


@kernel("DequantizeLinear", since=21, factory=True)
def dequantize_linear_21(ctx, *, axis=1, block_size=0):
    """DequantizeLinear-21: adds blocked scales, 16- and 4-bit integers."""
    return _dequantize_factory(ctx, axis=axis, block_size=block_size, output_dtype=0)


@kernel("DequantizeLinear", since=23, factory=True)
@kernel("DequantizeLinear", since=24, factory=True)
@kernel("DequantizeLinear", since=25, factory=True)
@kernel("DequantizeLinear", since=28, factory=True)
def dequantize_linear_23(ctx, *, axis=1, block_size=0, output_dtype=0):
    """DequantizeLinear-23+: adds ``output_dtype``, float4e2m1; 24 float8e8m0 scales; 25 2-bit; 28 float6."""
    return _dequantize_factory(ctx, axis=axis, block_size=block_size, output_dtype=output_dtype)


# -- DynamicQuantizeLinear -------------------------------------------------------------------------


@kernel("DynamicQuantizeLinear", since=11, multi_output=True)
def dynamic_quantize_linear(x, /):
    """DynamicQuantizeLinear-11: uint8 with scale and zero point from the range of x (widened to 0)."""
    x = _as_float(x)
    lo = min(float(x.min()), 0.0) if x.size else 0.0
    hi = max(float(x.max()), 0.0) if x.size else 0.0
    lo, hi = np.float32(lo), np.float32(hi)
    # onnxruntime's convention for an all-zero range (the formula would divide by zero)
    scale = np.float32(1.0) if hi == lo else (hi - lo) / np.float32(255)
    zero_point = np.rint(np.clip(np.float32(0) - lo / scale, 0, 255))
    y = np.rint(x / scale)
    y += zero_point
    np.clip(y, 0, 255, out=y)
    return y.astype(np.uint8), np.array(scale, dtype=np.float32), np.array(zero_point, dtype=np.uint8)


# -- QLinearMatMul / QLinearConv -------------------------------------------------------------------


def _shifted(v: np.ndarray, zero_point: np.ndarray | None) -> tuple[np.ndarray, float]:
    """``v - zero_point`` in float64 (exact for 8-bit and float8 values) and its largest magnitude."""
    out = v.astype(np.float64)
    if zero_point is not None and v.dtype not in _FLOAT8:
        out -= zero_point.astype(np.float64)
    return out, float(np.abs(out).max()) if out.size else 0.0


def _product_dtype(k: int, a_bound: float, b_bound: float, floats: bool) -> np.dtype:
    """float32 when every sum of ``k`` products is an integer below 2**24 (so exact), else float64.

    float8 operands are not integers; float32 is their natural precision.
    """
    return _F32 if floats or k * a_bound * b_bound < (1 << 24) else np.dtype(np.float64)


def _requantize(acc: np.ndarray, multiplier: np.ndarray, y_zero_point: np.ndarray | None, out: np.dtype) -> np.ndarray:
    """``saturate(rint(acc * multiplier) + y_zero_point)`` in ``out``.

    The product is rounded to float32 before rounding to an integer, as onnxruntime's
    requantization does, so that ties fall the same way.
    """
    v = acc.astype(_F32) * multiplier.astype(_F32)
    if out in _INT_RANGES:
        v = np.rint(v, out=v)
    if y_zero_point is not None and out not in _FLOAT8:
        v += y_zero_point.astype(_F32)
    return _saturate(v, out, 1)


def _row_param(p: np.ndarray | None) -> np.ndarray | None:
    """A per-row (1-D, several values) scale or zero point of ``a`` as a column."""
    return p.reshape(-1, 1) if p is not None and p.ndim == 1 and p.size > 1 else p


def _multiplier(a_scale, b_scale, y_scale) -> np.ndarray:
    """``a_scale * b_scale / y_scale`` in the scales' own type, as onnx.reference computes it."""
    dtype = a_scale.dtype if _float_kind(a_scale.dtype) else _F32
    return np.asarray(a_scale.astype(dtype) * b_scale.astype(dtype) / y_scale.astype(dtype))


@kernel("QLinearMatMul", since=10)
@kernel("QLinearMatMul", since=21)
def qlinear_matmul(a, a_scale, a_zero_point, b, b_scale, b_zero_point, y_scale, y_zero_point=None, /):
    """QLinearMatMul-10/21: matmul of dequantized a and b, requantized; 21 adds float8 and float16 scales."""
    a_scale, a_zero_point = _row_param(a_scale), _row_param(a_zero_point)
    a_s, a_bound = _shifted(a, a_zero_point)
    b_s, b_bound = _shifted(b, b_zero_point)
    cdt = _product_dtype(a.shape[-1], a_bound, b_bound, a.dtype in _FLOAT8 or b.dtype in _FLOAT8)
    acc = np.matmul(a_s.astype(cdt, copy=False), b_s.astype(cdt, copy=False))
    out = y_zero_point.dtype if y_zero_point is not None else a.dtype
    return _requantize(acc, _multiplier(a_scale, b_scale, y_scale), y_zero_point, out)


class _ConvWeights:
    """QLinearConv weights shifted by their zero point as ``[group, M/g, C/g * prod(k)]``."""

    def __init__(self, w: np.ndarray, w_zero_point: np.ndarray | None, group: int) -> None:
        m = w.shape[0]
        if m % group:
            raise InvalidArgument(f"QLinearConv: {m} output channels are not divisible by group {group}")
        if w_zero_point is not None and w_zero_point.size > 1:
            w_zero_point = w_zero_point.reshape((-1,) + (1,) * (w.ndim - 1))
        shifted, self.bound = _shifted(w, w_zero_point)
        self.mat64 = np.ascontiguousarray(shifted.reshape(group, m // group, -1))
        self.mat32 = self.mat64.astype(_F32)
        self.shape = w.shape

    def mat(self, dtype: np.dtype) -> np.ndarray:
        return self.mat32 if dtype == _F32 else self.mat64


def _conv_int(xs: np.ndarray, wm: np.ndarray, kernel_shape: tuple[int, ...], attrs: dict[str, Any]) -> np.ndarray:
    """Convolution of shifted inputs ``xs`` [N, C, *in] with packed ``wm`` [group, M/g, C/g * prod(k)]."""
    win = window(xs.shape[2:], kernel_shape, **attrs)
    cols_view = patches(pad_input(xs, win), win)  # [N, C, *k, *out], a view
    n, p = xs.shape[0], math.prod(win.out)
    group, mg, k = wm.shape
    y = np.empty((n, group, mg, p), dtype=wm.dtype)
    for i in range(n):  # one image's columns at a time bounds the im2col buffer
        np.matmul(wm, cols_view[i].reshape(group, k, p), out=y[i])
    return y.reshape(n, group * mg, *win.out)


@kernel("QLinearConv", since=10, factory=True)
def qlinear_conv(ctx, *, auto_pad="NOTSET", dilations=None, group=1, kernel_shape=None, pads=None, strides=None):
    """QLinearConv-10: integer convolution of zero-point-shifted x and w, requantized per output channel."""
    attrs = dict(auto_pad=auto_pad, dilations=dilations, pads=pads, strides=strides)
    names = list(ctx.node.inputs) if ctx.node is not None else []
    has_w_zp = len(names) > 5 and bool(names[5])
    const = ctx.constants
    packed = _ConvWeights(const[3], const.get(5), group) if 3 in const and (5 in const or not has_w_zp) else None

    def run(x, x_scale, x_zero_point, w, w_scale, w_zero_point, y_scale, y_zero_point=None, b=None, /):
        wp = packed or _ConvWeights(w, w_zero_point, group)
        if x.shape[1] != wp.shape[1] * group:
            raise InvalidArgument(f"QLinearConv: input {x.shape}, weights {wp.shape} and group {group} do not fit")
        kernel_ = tuple(kernel_shape) if kernel_shape else tuple(wp.shape[2:])
        xs, x_bound = _shifted(x, x_zero_point)
        cdt = _product_dtype(wp.mat64.shape[2], x_bound, wp.bound, False)
        acc = _conv_int(xs.astype(cdt, copy=False), wp.mat(cdt), kernel_, attrs)
        spatial = (1,) * (x.ndim - 2)
        if b is not None:
            acc = acc.astype(np.float64) + b.astype(np.float64).reshape(-1, *spatial)
        if w_scale.size > 1:
            w_scale = w_scale.reshape(-1, *spatial)
        out = y_zero_point.dtype if y_zero_point is not None else x.dtype
        return _requantize(acc, _multiplier(x_scale, w_scale, y_scale), y_zero_point, out)

    return run
