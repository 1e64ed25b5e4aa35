"""Elementwise ops: arithmetic, math functions, comparisons, logic, bitwise, Cast, Clip.

Kernels are array-module generic (``xp``) so that a CuPy provider can reuse
them. Ops that are one ufunc are factories returning the ufunc itself, so a
run costs no extra Python frame. numpy returns a scalar, not a 0-d array, when
every operand is 0-d; :func:`keep_array` wraps the ufunc only when the input
types do not rule that out. Cast's string and float8e8m0 paths work on host
(numpy) arrays only.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import onnx

from ortcore.dtypes import np_dtype
from ortcore_cpu.registry import kernel

# -- helpers ---------------------------------------------------------------------


def keep_array(ctx: Any, fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` itself when some input has rank >= 1, else ``fn`` with 0-d results made arrays."""
    if any(t is not None and t.rank for t in ctx.input_types):
        return fn
    asarray = ctx.xp.asarray

    def run(*inputs: Any, **out: Any) -> Any:
        return asarray(fn(*inputs, **out))

    return run


def _legacy_binary(ctx: Any, fn: Callable[..., Any], broadcast: int, axis: int | None) -> Callable[..., Any]:
    """Opset 1-6 binary ops: with ``broadcast=1`` and ``axis``, B lines up with A from ``axis``."""
    if not (broadcast and axis is not None):
        return keep_array(ctx, fn)

    def run(a: Any, b: Any) -> Any:
        start = axis + a.ndim if axis < 0 else axis
        return fn(a, b.reshape(b.shape + (1,) * (a.ndim - start - b.ndim)))

    return keep_array(ctx, run)


def _input_dtype(ctx: Any, index: int = 0) -> np.dtype | None:
    types = ctx.input_types
    return types[index].dtype if index < len(types) and types[index] is not None else None


def _is_float(dtype: np.dtype) -> bool:
    """numpy floats and the ml_dtypes floats (bfloat16, float8...), whose kind is 'V'."""
    return dtype.kind == "f" or (dtype.kind == "V" and "float" in dtype.name)


# -- binary arithmetic -------------------------------------------------------------


@kernel("Add", since=1, factory=True)
@kernel("Add", since=6, factory=True)
def add_legacy(ctx, *, broadcast=0, axis=None, consumed_inputs=None):
    """Add-1/6: limited broadcast."""
    return _legacy_binary(ctx, ctx.xp.add, broadcast, axis)


@kernel("Add", since=7, factory=True, inplace=True)
@kernel("Add", since=13, factory=True, inplace=True)
@kernel("Add", since=14, factory=True, inplace=True)
def add(ctx):
    """Add-7+: numpy broadcasting."""
    return keep_array(ctx, ctx.xp.add)


@kernel("Sub", since=1, factory=True)
@kernel("Sub", since=6, factory=True)
def sub_legacy(ctx, *, broadcast=0, axis=None, consumed_inputs=None):
    """Sub-1/6: limited broadcast."""
    return _legacy_binary(ctx, ctx.xp.subtract, broadcast, axis)


@kernel("Sub", since=7, factory=True, inplace=True)
@kernel("Sub", since=13, factory=True, inplace=True)
@kernel("Sub", since=14, factory=True, inplace=True)
def sub(ctx):
    """Sub-7+."""
    return keep_array(ctx, ctx.xp.subtract)


@kernel("Mul", since=1, factory=True)
@kernel("Mul", since=6, factory=True)
def mul_legacy(ctx, *, broadcast=0, axis=None, consumed_inputs=None):
    """Mul-1/6: limited broadcast."""
    return _legacy_binary(ctx, ctx.xp.multiply, broadcast, axis)


@kernel("Mul", since=7, factory=True, inplace=True)
@kernel("Mul", since=13, factory=True, inplace=True)
@kernel("Mul", since=14, factory=True, inplace=True)
def mul(ctx):
    """Mul-7+."""
    return keep_array(ctx, ctx.xp.multiply)


def _divide(xp: Any, dtype: np.dtype | None) -> Callable[..., Any]:
    """Division with ONNX semantics: integer quotients are truncated toward zero (like C)."""
    if dtype is not None and dtype.kind == "u":
        return xp.floor_divide
    if dtype is not None and dtype.kind != "i":
        return xp.divide

    def divide(a: Any, b: Any) -> Any:
        if a.dtype.kind == "i":
            # a - fmod(a, b) is an exact multiple of b, so floor division is exact there.
            return xp.floor_divide(a - xp.fmod(a, b), b)
        return xp.floor_divide(a, b) if a.dtype.kind == "u" else xp.divide(a, b)

    return divide


@kernel("Div", since=1, factory=True)
@kernel("Div", since=6, factory=True)
def div_legacy(ctx, *, broadcast=0, axis=None, consumed_inputs=None):
    """Div-1/6: limited broadcast."""
    return _legacy_binary(ctx, _divide(ctx.xp, _input_dtype(ctx)), broadcast, axis)


@kernel("Div", since=7, factory=True)
@kernel("Div", since=13, factory=True)
@kernel("Div", since=14, factory=True)
def div(ctx):
    """Div-7+: integer division truncates toward zero."""
    return keep_array(ctx, _divide(ctx.xp, _input_dtype(ctx)))


def _power(xp: Any) -> Callable[..., Any]:
    """Pow: the result has the base's type; integer exponents of a float base take its type."""

    def power(a: Any, b: Any) -> Any:
        if _is_float(a.dtype):
            if b.dtype.kind in "iu":  # small integer exponents are exact in a's type
                b = b.astype(a.dtype)
            return xp.power(a, b).astype(a.dtype, copy=False)
        if b.dtype.kind in "iu":
            if (b < 0).any():  # numpy refuses negative integer powers; C's pow truncates
                return xp.trunc(xp.power(a.astype(xp.float64), b)).astype(a.dtype)
            return xp.power(a, b).astype(a.dtype, copy=False)
        return xp.power(a, b).astype(a.dtype)

    return power


@kernel("Pow", since=1, factory=True)
def pow_legacy(ctx, *, broadcast=0, axis=None):
    """Pow-1: limited broadcast."""
    return _legacy_binary(ctx, _power(ctx.xp), broadcast, axis)


@kernel("Pow", since=7, factory=True)
@kernel("Pow", since=12, factory=True)
@kernel("Pow", since=13, factory=True)
@kernel("Pow", since=15, factory=True)
def pow_(ctx):
    """Pow-7+; a constant scalar exponent of 2 or 0.5 on a float base becomes square or sqrt."""
    xp = ctx.xp
    exponent = ctx.constants.get(1)
    base = ctx.input_types[0]
    if (
        exponent is not None
        and exponent.size == 1
        and base is not None
        and base.rank is not None
        and base.rank >= exponent.ndim
        and _is_float(base.dtype)
        and float(exponent.reshape(-1)[0]) in (2.0, 0.5)
    ):
        fn = xp.square if float(exponent.reshape(-1)[0]) == 2.0 else xp.sqrt
        return keep_array(ctx, lambda a, b: fn(a))
    return keep_array(ctx, _power(xp))


@kernel("Mod", since=10, factory=True)
@kernel("Mod", since=13, factory=True)
@kernel("Mod", since=28, factory=True)
def mod(ctx, *, fmod=0):
    """Mod: fmod=0 takes the divisor's sign (Python %), fmod=1 the dividend's (C fmod)."""
    return keep_array(ctx, ctx.xp.fmod if fmod else ctx.xp.remainder)


# -- unary math --------------------------------------------------------------------


@kernel("Neg", since=1, factory=True)
@kernel("Neg", since=6, factory=True)
@kernel("Neg", since=13, factory=True)
def neg(ctx, *, consumed_inputs=None):
    """Neg."""
    return keep_array(ctx, ctx.xp.negative)


@kernel("Abs", since=1, factory=True)
@kernel("Abs", since=6, factory=True)
@kernel("Abs", since=13, factory=True)
def abs_(ctx, *, consumed_inputs=None):
    """Abs."""
    return keep_array(ctx, ctx.xp.abs)


@kernel("Reciprocal", since=1, factory=True)
@kernel("Reciprocal", since=6, factory=True)
@kernel("Reciprocal", since=13, factory=True)
def reciprocal(ctx, *, consumed_inputs=None):
    """Reciprocal."""
    return keep_array(ctx, ctx.xp.reciprocal)


@kernel("Sqrt", since=1, factory=True)
@kernel("Sqrt", since=6, factory=True)
@kernel("Sqrt", since=13, factory=True)
def sqrt(ctx, *, consumed_inputs=None):
    """Sqrt."""
    return keep_array(ctx, ctx.xp.sqrt)


@kernel("Exp", since=1, factory=True)
@kernel("Exp", since=6, factory=True)
@kernel("Exp", since=13, factory=True)
def exp(ctx, *, consumed_inputs=None):
    """Exp."""
    return keep_array(ctx, ctx.xp.exp)


@kernel("Log", since=1, factory=True)
@kernel("Log", since=6, factory=True)
@kernel("Log", since=13, factory=True)
def log(ctx, *, consumed_inputs=None):
    """Log."""
    return keep_array(ctx, ctx.xp.log)


@kernel("Floor", since=1, factory=True)
@kernel("Floor", since=6, factory=True)
@kernel("Floor", since=13, factory=True)
def floor(ctx, *, consumed_inputs=None):
    """Floor."""
    return keep_array(ctx, ctx.xp.floor)


@kernel("Ceil", since=1, factory=True)
@kernel("Ceil", since=6, factory=True)
@kernel("Ceil", since=13, factory=True)
def ceil(ctx, *, consumed_inputs=None):
    """Ceil."""
    return keep_array(ctx, ctx.xp.ceil)


@kernel("Round", since=11, factory=True)
@kernel("Round", since=22, factory=True)
def round_(ctx):
    """Round: halves to even, which is what rint does."""
    return keep_array(ctx, ctx.xp.rint)


@kernel("Sign", since=9, factory=True)
@kernel("Sign", since=13, factory=True)
def sign(ctx):
    """Sign."""
    return keep_array(ctx, ctx.xp.sign)


@kernel("Sin", since=7, factory=True)
@kernel("Sin", since=22, factory=True)
def sin(ctx):
    """Sin."""
    return keep_array(ctx, ctx.xp.sin)


@kernel("Cos", since=7, factory=True)
@kernel("Cos", since=22, factory=True)
def cos(ctx):
    """Cos."""
    return keep_array(ctx, ctx.xp.cos)


@kernel("Tan", since=7, factory=True)
@kernel("Tan", since=22, factory=True)
def tan(ctx):
    """Tan."""
    return keep_array(ctx, ctx.xp.tan)


@kernel("Asin", since=7, factory=True)
@kernel("Asin", since=22, factory=True)
def asin(ctx):
    """Asin."""
    return keep_array(ctx, ctx.xp.arcsin)


@kernel("Acos", since=7, factory=True)
@kernel("Acos", since=22, factory=True)
def acos(ctx):
    """Acos."""
    return keep_array(ctx, ctx.xp.arccos)


@kernel("Atan", since=7, factory=True)
@kernel("Atan", since=22, factory=True)
def atan(ctx):
    """Atan."""
    return keep_array(ctx, ctx.xp.arctan)


@kernel("Sinh", since=9, factory=True)
@kernel("Sinh", since=22, factory=True)
def sinh(ctx):
    """Sinh."""
    return keep_array(ctx, ctx.xp.sinh)


@kernel("Cosh", since=9, factory=True)
@kernel("Cosh", since=22, factory=True)
def cosh(ctx):
    """Cosh."""
    return keep_array(ctx, ctx.xp.cosh)


@kernel("Asinh", since=9, factory=True)
@kernel("Asinh", since=22, factory=True)
def asinh(ctx):
    """Asinh."""
    return keep_array(ctx, ctx.xp.arcsinh)


@kernel("Acosh", since=9, factory=True)
@kernel("Acosh", since=22, factory=True)
def acosh(ctx):
    """Acosh."""
    return keep_array(ctx, ctx.xp.arccosh)


@kernel("Atanh", since=9, factory=True)
@kernel("Atanh", since=22, factory=True)
def atanh(ctx):
    """Atanh."""
    return keep_array(ctx, ctx.xp.arctanh)


# Rational approximation of erf on [-4, 4] (as in Eigen's float erf), accurate to a
# few float32 ulps; beyond 4, erf is 1 in float32.
_ERF_P = (-2.72614225801306e-10, 2.77068142495902e-08, -2.10102402082508e-06,
          -5.69250639462346e-05, -7.34990630326855e-04, -2.95459980854025e-03,
          -1.60960333262415e-02)  # fmt: skip
_ERF_Q = (-1.45660718464996e-05, -2.13374055278905e-04, -1.68282697438203e-03,
          -7.37332916720468e-03, -1.42647390514189e-02)  # fmt: skip


def _erf32(xp: Any, x: Any) -> Any:
    """Horner's scheme in place: allocations, not arithmetic, dominate at these sizes."""
    x = xp.clip(x.astype(xp.float32, copy=False), -4.0, 4.0)
    x2 = x * x
    p = x2 * _ERF_P[0]
    for c in _ERF_P[1:-1]:
        p += c
        p *= x2
    p += _ERF_P[-1]
    p *= x
    q = x2 * _ERF_Q[0]
    for c in _ERF_Q[1:-1]:
        q += c
        q *= x2
    q += _ERF_Q[-1]
    p /= q
    return p


def _erf64(xp: Any, x: Any) -> Any:
    """erf to ~1e-15: a positive-term series below 3, a continued fraction for erfc above."""
    a = xp.abs(x)
    small = xp.minimum(a, 3.0)
    x2 = small * small
    term = xp.ones_like(small)
    total = xp.ones_like(small)
    for n in range(1, 45):
        term *= x2 * (2 / (2 * n + 1))
        total += term
    series = (2 / math.sqrt(math.pi)) * small * xp.exp(-x2) * total
    big = xp.maximum(a, 3.0)
    frac = big.copy()
    for k in range(25, 0, -1):
        frac = big + (k / 2) / frac
    tail = 1 - xp.exp(-big * big) / (math.sqrt(math.pi) * frac)
    return xp.copysign(xp.where(a < 3.0, series, tail), x)


def erf(xp: Any, x: Any) -> Any:
    """erf as a new array of ``x``'s dtype (float64 and integers at double precision)."""
    if x.dtype == xp.float64 or x.dtype.kind in "iu":
        y = _erf64(xp, x.astype(xp.float64, copy=False))
    else:
        y = _erf32(xp, x)
    return xp.asarray(y).astype(x.dtype, copy=False)


@kernel("Erf", since=9, xp=True)
@kernel("Erf", since=13, xp=True)
def erf_(xp, x, /):
    """Erf."""
    return erf(xp, x)


@kernel("IsNaN", since=9, factory=True)
@kernel("IsNaN", since=13, factory=True)
@kernel("IsNaN", since=20, factory=True)
def isnan(ctx):
    """IsNaN."""
    return keep_array(ctx, ctx.xp.isnan)


@kernel("IsInf", since=10, factory=True)
@kernel("IsInf", since=20, factory=True)
def isinf(ctx, *, detect_negative=1, detect_positive=1):
    """IsInf, optionally only one sign."""
    xp = ctx.xp
    if detect_negative and detect_positive:
        return keep_array(ctx, xp.isinf)
    if not (detect_negative or detect_positive):
        return lambda x: xp.zeros(x.shape, dtype=bool)

    def run(x: Any) -> Any:
        return xp.asarray(xp.isinf(x) & ((x < 0) if detect_negative else (x > 0)))

    return run


# -- comparisons and logic -------------------------------------------------------------


@kernel("Equal", since=1, factory=True)
def equal_legacy(ctx, *, broadcast=0, axis=None):
    """Equal-1: limited broadcast."""
    return _legacy_binary(ctx, ctx.xp.equal, broadcast, axis)


@kernel("Equal", since=7, factory=True)
@kernel("Equal", since=11, factory=True)
@kernel("Equal", since=13, factory=True)
@kernel("Equal", since=19, factory=True)
def equal(ctx):
    """Equal (strings since 19)."""
    return keep_array(ctx, ctx.xp.equal)


@kernel("Less", since=1, factory=True)
def less_legacy(ctx, *, broadcast=0, axis=None):
    """Less-1: limited broadcast."""
    return _legacy_binary(ctx, ctx.xp.less, broadcast, axis)


@kernel("Less", since=7, factory=True)
@kernel("Less", since=9, factory=True)
@kernel("Less", since=13, factory=True)
def less(ctx):
    """Less."""
    return keep_array(ctx, ctx.xp.less)


@kernel("LessOrEqual", since=12, factory=True)
@kernel("LessOrEqual", since=16, factory=True)
def less_equal(ctx):
    """LessOrEqual."""
    return keep_array(ctx, ctx.xp.less_equal)


@kernel("Greater", since=1, factory=True)
def greater_legacy(ctx, *, broadcast=0, axis=None):
    """Greater-1: limited broadcast."""
    return _legacy_binary(ctx, ctx.xp.greater, broadcast, axis)


@kernel("Greater", since=7, factory=True)
@kernel("Greater", since=9, factory=True)
@kernel("Greater", since=13, factory=True)
def greater(ctx):
    """Greater."""
    return keep_array(ctx, ctx.xp.greater)


@kernel("GreaterOrEqual", since=12, factory=True)
@kernel("GreaterOrEqual", since=16, factory=True)
def greater_equal(ctx):
    """GreaterOrEqual."""
    return keep_array(ctx, ctx.xp.greater_equal)


@kernel("And", since=1, factory=True)
def and_legacy(ctx, *, broadcast=0, axis=None):
    """And-1: limited broadcast."""
    return _legacy_binary(ctx, ctx.xp.logical_and, broadcast, axis)


@kernel("And", since=7, factory=True)
def and_(ctx):
    """And."""
    return keep_array(ctx, ctx.xp.logical_and)


@kernel("Or", since=1, factory=True)
def or_legacy(ctx, *, broadcast=0, axis=None):
    """Or-1: limited broadcast."""
    return _legacy_binary(ctx, ctx.xp.logical_or, broadcast, axis)


@kernel("Or", since=7, factory=True)
def or_(ctx):
    """Or."""
    return keep_array(ctx, ctx.xp.logical_or)


@kernel("Xor", since=1, factory=True)
def xor_legacy(ctx, *, broadcast=0, axis=None):
    """Xor-1: limited broadcast."""
    return _legacy_binary(ctx, ctx.xp.logical_xor, broadcast, axis)


@kernel("Xor", since=7, factory=True)
def xor(ctx):
    """Xor."""
    return keep_array(ctx, ctx.xp.logical_xor)


@kernel("Not", since=1, factory=True)
def not_(ctx):
    """Not."""
    return keep_array(ctx, ctx.xp.logical_not)


# -- bitwise ----------------------------------------------------------------------------


@kernel("BitShift", since=11, factory=True)
@kernel("BitShift", since=28, factory=True)
def bit_shift(ctx, *, direction):
    """BitShift: shifts by a negative or >= bit-width amount give only the sign fill."""
    xp = ctx.xp
    left = direction == "LEFT"
    shift = xp.left_shift if left else xp.right_shift

    def run(x: Any, y: Any) -> Any:
        valid = (y >= 0) & (y < x.dtype.itemsize * 8)
        shifted = shift(x, xp.where(valid, y, 0).astype(x.dtype, copy=False))
        fill = 0 if left or x.dtype.kind == "u" else xp.where(x < 0, -1, 0).astype(x.dtype)
        return xp.asarray(xp.where(valid, shifted, fill).astype(x.dtype, copy=False))

    return run


@kernel("BitwiseAnd", since=18, factory=True)
def bitwise_and(ctx):
    """BitwiseAnd."""
    return keep_array(ctx, ctx.xp.bitwise_and)


@kernel("BitwiseOr", since=18, factory=True)
def bitwise_or(ctx):
    """BitwiseOr."""
    return keep_array(ctx, ctx.xp.bitwise_or)


@kernel("BitwiseXor", since=18, factory=True)
def bitwise_xor(ctx):
    """BitwiseXor."""
    return keep_array(ctx, ctx.xp.bitwise_xor)


@kernel("BitwiseNot", since=18, factory=True)
def bitwise_not(ctx):
    """BitwiseNot."""
    return keep_array(ctx, ctx.xp.invert)


# -- selection and variadic ---------------------------------------------------------------


@kernel("Where", since=9, factory=True)
@kernel("Where", since=16, factory=True)
def where(ctx):
    """Where: three-way broadcasting select."""
    return ctx.xp.where


def _fold(ctx: Any, fn: Callable[..., Any]) -> Callable[..., Any]:
    """A variadic op as a left fold of the binary ``fn`` (one input passes through)."""

    def run(first: Any, *rest: Any, out: Any = None) -> Any:
        if out is not None and rest:  # out is input 0 or 1: both are read by the first step
            fn(first, rest[0], out=out)
            for x in rest[1:]:
                fn(out, x, out=out)
            return out
        acc = first
        for x in rest:
            acc = fn(acc, x)
        return acc

    return keep_array(ctx, run)


@kernel("Sum", since=1, factory=True, inplace=True)
@kernel("Sum", since=6, factory=True, inplace=True)
@kernel("Sum", since=8, factory=True, inplace=True)
@kernel("Sum", since=13, factory=True, inplace=True)
def sum_(ctx, *, consumed_inputs=None):
    """Sum (broadcasting since 8)."""
    return _fold(ctx, ctx.xp.add)


@kernel("Mean", since=1, factory=True)
@kernel("Mean", since=6, factory=True)
@kernel("Mean", since=8, factory=True)
@kernel("Mean", since=13, factory=True)
def mean(ctx, *, consumed_inputs=None):
    """Mean (broadcasting since 8)."""
    total = _fold(ctx, ctx.xp.add)
    asarray = ctx.xp.asarray

    def run(*xs: Any) -> Any:
        out = total(*xs)
        return asarray(out / len(xs)).astype(out.dtype, copy=False)

    return run


@kernel("Max", since=1, factory=True)
@kernel("Max", since=6, factory=True)
@kernel("Max", since=8, factory=True)
@kernel("Max", since=12, factory=True)
@kernel("Max", since=13, factory=True)
def max_(ctx, *, consumed_inputs=None):
    """Max (broadcasting since 8, NaN propagates)."""
    return _fold(ctx, ctx.xp.maximum)


@kernel("Min", since=1, factory=True)
@kernel("Min", since=6, factory=True)
@kernel("Min", since=8, factory=True)
@kernel("Min", since=12, factory=True)
@kernel("Min", since=13, factory=True)
def min_(ctx, *, consumed_inputs=None):
    """Min (broadcasting since 8, NaN propagates)."""
    return _fold(ctx, ctx.xp.minimum)


@kernel("Identity", since=1, xp=True)
@kernel("Identity", since=13, xp=True)
@kernel("Identity", since=14, xp=True)
@kernel("Identity", since=16, xp=True)
@kernel("Identity", since=19, xp=True)
@kernel("Identity", since=21, xp=True)
@kernel("Identity", since=23, xp=True)
@kernel("Identity", since=24, xp=True)
@kernel("Identity", since=25, xp=True)
def identity(xp, x, /):
    """Identity: the value itself (tensor, sequence or optional); kernels never write inputs."""
    return x


# -- Clip -----------------------------------------------------------------------------------


def _clamp(xp: Any, x: Any, lo: Any, hi: Any) -> Any:
    if lo is not None:
        x = xp.maximum(x, lo)
    if hi is not None:
        x = xp.minimum(x, hi)
    return xp.asarray(x)


@kernel("Clip", since=1, xp=True)
def clip_1(xp, x, /, *, min=None, max=None, consumed_inputs=None):  # noqa: A002
    """Clip-1: bounds are attributes, unbounded when absent."""
    return _clamp(xp, x, min, max).astype(x.dtype, copy=False)


@kernel("Clip", since=6, xp=True)
def clip_6(xp, x, /, *, min=-3.4028234663852886e38, max=3.4028234663852886e38):  # noqa: A002
    """Clip-6: bounds are attributes defaulting to +-FLT_MAX."""
    return _clamp(xp, x, min, max).astype(x.dtype, copy=False)


@kernel("Clip", since=11, xp=True)
@kernel("Clip", since=12, xp=True)
@kernel("Clip", since=13, xp=True)
def clip(xp, x, min=None, max=None, /):  # noqa: A002
    """Clip-11+: bounds are optional 0-d inputs; min > max gives max everywhere."""
    return _clamp(xp, x, min, max)


# -- Cast -------------------------------------------------------------------------------------

_FLOAT8_SATURATING = frozenset(
    np_dtype(t)
    for t in (
        onnx.TensorProto.FLOAT8E4M3FN,
        onnx.TensorProto.FLOAT8E4M3FNUZ,
        onnx.TensorProto.FLOAT8E5M2,
        onnx.TensorProto.FLOAT8E5M2FNUZ,
    )
)


def _float_to_string(x: np.ndarray) -> np.ndarray:
    """onnxruntime's spelling, for every float type: %.8g, INF, -INF and NaN."""

    def fmt(v: float) -> str:
        if math.isnan(v):
            return "NaN"
        if math.isinf(v):
            return "INF" if v > 0 else "-INF"
        return f"{v:.8g}"

    return np.array([fmt(v) for v in x.astype(np.float64).ravel().tolist()], dtype=object).reshape(x.shape)


def _to_string(x: np.ndarray) -> np.ndarray:
    if x.dtype.kind in "OUS":
        return x.astype(object)
    if _is_float(x.dtype):
        return _float_to_string(x)
    if x.dtype == np.bool_:
        x = x.astype(np.int8)
    return x.astype(str).astype(object)


def _from_string(x: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Parse numbers, with INF, +INF, -INF and NaN in any case; integers exactly when they can be."""
    flat = [s.decode() if isinstance(s, bytes) else str(s) for s in x.ravel()]
    if dtype.kind in "iu":
        try:
            wrapped = [int(s) & 0xFFFFFFFFFFFFFFFF for s in flat]  # out of range wraps, as casts do
        except ValueError:
            pass
        else:
            return np.array(wrapped, dtype=np.uint64).astype(dtype).reshape(x.shape)
    values = np.array([float(s) for s in flat], dtype=np.float64).reshape(x.shape)
    return _cast_numbers(values, dtype)


def _cast_numbers(x: Any, dtype: np.dtype) -> Any:
    try:
        return x.astype(dtype)
    except (TypeError, ValueError):
        # ml_dtypes converts to and from numpy types, not always between its own types
        wide = np.int64 if "int" in x.dtype.name else np.float32
        return x.astype(wide).astype(dtype)


def _to_float8e8m0(x: np.ndarray, saturate: int, round_mode: str) -> np.ndarray:
    """E8M0 keeps only the float32 exponent; round_mode says what to do with the mantissa."""
    bits = np.asarray(x, dtype=np.float32).view(np.uint32)
    exponent = ((bits >> 23) & 0xFF).astype(np.uint16)
    mantissa = bits & 0x7FFFFF
    special = exponent == 0xFF
    if round_mode == "up":
        bump = mantissa > 0
    elif round_mode == "nearest":
        # the guard bit decides; an exact half rounds up except below the normal range
        # (exponent 0), as onnx.numpy_helper.to_float8e8m0 does
        guard = (mantissa & 0x400000) > 0
        rest = (mantissa & 0x3FFFFF) > 0
        bump = guard & (rest | (exponent > 0))
    elif round_mode == "down":
        bump = np.zeros_like(special)
    else:
        raise ValueError(f"Cast: unknown round_mode {round_mode!r}")
    bump &= ~special
    if saturate:
        bump &= exponent != 0xFE
    exponent = np.where(special, 0xFF, exponent + bump).astype(np.uint8)
    return exponent.view(np_dtype(onnx.TensorProto.FLOAT8E8M0))


def _caster(xp: Any, to: Any, saturate: int = 1, round_mode: str = "up") -> Callable[[Any], Any]:
    """The per-run cast to ONNX element type ``to`` (an int, or a type name in Cast-1)."""
    if isinstance(to, (str, bytes)):
        to = onnx.TensorProto.DataType.Value(to.decode() if isinstance(to, bytes) else to.upper())
    if to == onnx.TensorProto.STRING:
        return _to_string
    dtype = np_dtype(to)
    if to == onnx.TensorProto.FLOAT8E8M0:
        return lambda x: _to_float8e8m0(x, saturate, round_mode)
    if dtype in _FLOAT8_SATURATING and saturate:
        import ml_dtypes

        info = ml_dtypes.finfo(dtype)
        lo, hi = float(info.min), float(info.max)

        def saturating(x: Any) -> Any:
            if x.dtype.kind in "OUS":
                x = _from_string(x, np.dtype(np.float32))
            wide = x.astype(xp.float32, copy=False)
            return xp.asarray(xp.clip(wide, lo, hi)).astype(dtype)

        return saturating

    def cast(x: Any) -> Any:
        if x.dtype.kind in "OUS":
            return _from_string(x, dtype)
        return _cast_numbers(x, dtype)

    return cast


@kernel("Cast", since=1, factory=True)
@kernel("Cast", since=6, factory=True)
@kernel("Cast", since=9, factory=True)
@kernel("Cast", since=13, factory=True)
def cast_legacy(ctx, *, to):
    """Cast-1..18 (Cast-1 names the type as a string)."""
    return _caster(ctx.xp, to)


@kernel("Cast", since=19, factory=True)
@kernel("Cast", since=21, factory=True)
@kernel("Cast", since=23, factory=True)
@kernel("Cast", since=24, factory=True)
@kernel("Cast", since=25, factory=True)
@kernel("Cast", since=28, factory=True)
def cast(ctx, *, to, saturate=1, round_mode="up"):
    """Cast-19+: float8 targets saturate unless saturate=0; round_mode applies to float8e8m0."""
    return _caster(ctx.xp, to, saturate, round_mode)


@kernel("CastLike", since=15, factory=True)
@kernel("CastLike", since=19, factory=True)
@kernel("CastLike", since=21, factory=True)
@kernel("CastLike", since=23, factory=True)
@kernel("CastLike", since=24, factory=True)
@kernel("CastLike", since=25, factory=True)
def cast_like(ctx, *, saturate=1, round_mode="up"):
    """CastLike: Cast to the element type of the second input."""
    from ortcore.dtypes import onnx_elem_type

    target = _input_dtype(ctx, 1)
    if target is not None:
        fixed = _caster(ctx.xp, onnx_elem_type(target), saturate, round_mode)
        return lambda x, like: fixed(x)
    return lambda x, like: _caster(ctx.xp, onnx_elem_type(like.dtype), saturate, round_mode)(x)
