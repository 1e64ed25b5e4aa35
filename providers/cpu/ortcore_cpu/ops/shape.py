"""Views and shape arithmetic: Reshape, Flatten, Squeeze, Unsqueeze, Transpose, Shape, Size,
Expand, Dropout (inference), Constant, ConstantOfShape, Range, EyeLike, DepthToSpace,
SpaceToDepth.

Kernels are array-module generic (``xp``) so a CuPy provider can register them too; the
view-returning ones (Reshape, Flatten, Squeeze, Unsqueeze, Transpose) never copy when the
array module can avoid it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ortcore.dtypes import np_dtype
from ortcore_cpu.registry import kernel

def _ints(value: Any) -> list[int] | None:
    """A 1-D integer tensor (numpy or CuPy) or attribute list as Python ints."""
    if value is None:
        return None
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, (int, float)):
        return [int(value)]
    return [int(v) for v in value]


def _constant_ints(ctx: Any, index: int) -> list[int] | None:
    return _ints(ctx.constants.get(index))


# --- Reshape -----------------------------------------------------------------------------


def _resolve_shape(in_shape: Sequence[int], shape: list[int], allowzero: int) -> list[int]:
    """ONNX target shape: 0 copies the input dimension unless allowzero; -1 is inferred."""
    if not allowzero and 0 in shape:
        shape = [in_shape[i] if d == 0 else d for i, d in enumerate(shape)]
    if -1 in shape:
        known = math.prod(d for d in shape if d != -1)
        total = math.prod(in_shape)
        missing = total // known if known else 0
        shape = [missing if d == -1 else d for d in shape]
    return shape


def _reshaper(shape: list[int] | None, allowzero: int) -> Callable[..., Any]:
    def run(x, shape_in=None, /):
        target = shape if shape is not None else _ints(shape_in)
        return x.reshape(_resolve_shape(x.shape, target, allowzero))

    return run


@kernel("Reshape", since=1, factory=True)
def reshape_1(ctx, /, *, shape=None, consumed_inputs=None):
    """Reshape-1: target shape as an attribute."""
    return _reshaper(list(shape or []), 0)


@kernel("Reshape", since=5, factory=True)
@kernel("Reshape", since=13, factory=True)
@kernel("Reshape", since=14, factory=True)
@kernel("Reshape", since=19, factory=True)
@kernel("Reshape", since=21, factory=True)
@kernel("Reshape", since=23, factory=True)
@kernel("Reshape", since=24, factory=True)
@kernel("Reshape", since=25, factory=True)
def reshape(ctx, /, *, allowzero=0):
    """Reshape-5+: target shape as input 1 (pre-resolved when constant)."""
    return _reshaper(_constant_ints(ctx, 1), allowzero)


@kernel("Flatten", since=1, xp=True)
@kernel("Flatten", since=9, xp=True)
@kernel("Flatten", since=11, xp=True)
@kernel("Flatten", since=13, xp=True)
@kernel("Flatten", since=21, xp=True)
@kernel("Flatten", since=23, xp=True)
@kernel("Flatten", since=24, xp=True)
@kernel("Flatten", since=25, xp=True)
def flatten(xp, x, /, *, axis=1):
    """Flatten: a 2-D view (outer dims before axis, inner dims from axis)."""
    axis = axis + x.ndim if axis < 0 else axis
    return x.reshape(math.prod(x.shape[:axis]), math.prod(x.shape[axis:]))


# --- Squeeze / Unsqueeze ------------------------------------------------------------------


def _squeeze(xp, x, axes):
    if axes is None:
        return xp.squeeze(x)
    return xp.squeeze(x, axis=tuple(axes))


@kernel("Squeeze", since=1, xp=True)
@kernel("Squeeze", since=11, xp=True)
def squeeze_1(xp, x, /, *, axes=None):
    """Squeeze-1/11: axes attribute; all size-1 dims when omitted."""
    return _squeeze(xp, x, axes)


@kernel("Squeeze", since=13, factory=True)
@kernel("Squeeze", since=21, factory=True)
@kernel("Squeeze", since=23, factory=True)
@kernel("Squeeze", since=24, factory=True)
@kernel("Squeeze", since=25, factory=True)
def squeeze(ctx, /):
    """Squeeze-13+: axes as optional input 1."""
    xp, const_axes = ctx.xp, _constant_ints(ctx, 1)

    def run(x, axes=None, /):
        return _squeeze(xp, x, const_axes if const_axes is not None else _ints(axes))

    return run


def _unsqueeze(x, axes):
    rank = x.ndim + len(axes)
    where = sorted(a + rank if a < 0 else a for a in axes)
    dims = iter(x.shape)
    return x.reshape([1 if i in where else next(dims) for i in range(rank)])


@kernel("Unsqueeze", since=1)
@kernel("Unsqueeze", since=11)
def unsqueeze_1(x, /, *, axes):
    """Unsqueeze-1/11: axes attribute (negative from 11)."""
    return _unsqueeze(x, axes)


@kernel("Unsqueeze", since=13, factory=True)
@kernel("Unsqueeze", since=21, factory=True)
@kernel("Unsqueeze", since=23, factory=True)
@kernel("Unsqueeze", since=24, factory=True)
@kernel("Unsqueeze", since=25, factory=True)
def unsqueeze(ctx, /):
    """Unsqueeze-13+: axes as input 1."""
    const_axes = _constant_ints(ctx, 1)

    def run(x, axes, /):
        return _unsqueeze(x, const_axes if const_axes is not None else _ints(axes))

    return run


# --- Transpose, Shape, Size, Expand --------------------------------------------------------


@kernel("Transpose", since=1, xp=True)
@kernel("Transpose", since=13, xp=True)
@kernel("Transpose", since=21, xp=True)
@kernel("Transpose", since=23, xp=True)
@kernel("Transpose", since=24, xp=True)
@kernel("Transpose", since=25, xp=True)
def transpose(xp, x, /, *, perm=None):
    """Transpose: a view; dims reversed when perm is omitted."""
    return xp.transpose(x, None if perm is None else tuple(perm))


@kernel("Shape", since=1, xp=True)
@kernel("Shape", since=13, xp=True)
def shape_1(xp, x, /):
    """Shape-1/13: the full shape as int64."""
    return xp.asarray(x.shape, dtype=xp.int64)


@kernel("Shape", since=15, xp=True)
@kernel("Shape", since=19, xp=True)
@kernel("Shape", since=21, xp=True)
@kernel("Shape", since=23, xp=True)
@kernel("Shape", since=24, xp=True)
@kernel("Shape", since=25, xp=True)
def shape(xp, x, /, *, start=0, end=None):
    """Shape-15+: shape[start:end], clamped like Python slicing."""
    return xp.asarray(x.shape[start:end], dtype=xp.int64)


@kernel("Size", since=1, xp=True)
@kernel("Size", since=13, xp=True)
@kernel("Size", since=19, xp=True)
@kernel("Size", since=21, xp=True)
@kernel("Size", since=23, xp=True)
@kernel("Size", since=24, xp=True)
@kernel("Size", since=25, xp=True)
def size(xp, x, /):
    """Size: element count as a 0-d int64."""
    return xp.asarray(x.size, dtype=xp.int64)


@kernel("Expand", since=8, xp=True)
@kernel("Expand", since=13, xp=True)
def expand(xp, x, shape, /):
    """Expand: bidirectional broadcast of x with shape, materialized."""
    out_shape = np.broadcast_shapes(x.shape, tuple(_ints(shape)))
    return xp.broadcast_to(x, out_shape).copy()


# --- Dropout (inference) ----------------------------------------------------------------


def _dropout_identity(ctx, mask_dtype):
    xp, want_mask = ctx.xp, ctx.n_outputs > 1

    def run(x, /):
        return (x, xp.ones(x.shape, dtype=mask_dtype or x.dtype)) if want_mask else (x,)

    return run


@kernel("Dropout", since=1, factory=True, multi_output=True)
@kernel("Dropout", since=6, factory=True, multi_output=True)
def dropout_1(ctx, /, *, is_test=0, ratio=0.5, consumed_inputs=None):
    """Dropout-1/6: identity at inference; the mask (type T) is all ones."""
    return _dropout_identity(ctx, None)


@kernel("Dropout", since=7, factory=True, multi_output=True)
def dropout_7(ctx, /, *, ratio=0.5):
    """Dropout-7: identity at inference; the mask (type T) is all ones."""
    return _dropout_identity(ctx, None)


@kernel("Dropout", since=10, factory=True, multi_output=True)
def dropout_10(ctx, /, *, ratio=0.5):
    """Dropout-10: identity at inference; boolean mask of ones."""
    return _dropout_identity(ctx, ctx.xp.bool_)


@kernel("Dropout", since=12, factory=True, multi_output=True)
@kernel("Dropout", since=13, factory=True, multi_output=True)
@kernel("Dropout", since=22, factory=True, multi_output=True)
def dropout(ctx, /, *, seed=None):
    """Dropout-12+: identity unless training_mode is true and ratio > 0."""
    xp, want_mask = ctx.xp, ctx.n_outputs > 1

    def run(x, ratio=None, training_mode=None, /):
        p = 0.5 if ratio is None else float(ratio)
        if training_mode is None or not bool(training_mode) or p == 0:
            return (x, xp.ones(x.shape, dtype=xp.bool_)) if want_mask else (x,)
        # Same draw as onnx.reference, so a seeded node is reproducible.
        keep = xp.asarray(np.random.RandomState(seed).uniform(0.0, 1.0, x.shape) >= p)
        y = (keep * x * (1.0 / (1.0 - p))).astype(x.dtype)
        return (y, keep) if want_mask else (y,)

    return run


# --- Constants ----------------------------------------------------------------------------


def _constant_value(value, sparse_value, value_float, value_floats, value_int, value_ints,
                    value_string, value_strings) -> np.ndarray:
    if value is not None:
        return np.asarray(value)
    if sparse_value is not None:
        return np.asarray(sparse_value)
    if value_float is not None:
        return np.asarray(value_float, dtype=np.float32)
    if value_floats is not None:
        return np.asarray(value_floats, dtype=np.float32)
    if value_int is not None:
        return np.asarray(value_int, dtype=np.int64)
    if value_ints is not None:
        return np.asarray(value_ints, dtype=np.int64)
    if value_string is not None:
        return np.asarray(value_string, dtype=object)
    if value_strings is not None:
        return np.asarray(value_strings, dtype=object)
    raise ValueError("Constant has none of its value attributes")


@kernel("Constant", since=1, factory=True)
@kernel("Constant", since=9, factory=True)
@kernel("Constant", since=11, factory=True)
@kernel("Constant", since=12, factory=True)
@kernel("Constant", since=13, factory=True)
@kernel("Constant", since=19, factory=True)
@kernel("Constant", since=21, factory=True)
@kernel("Constant", since=23, factory=True)
@kernel("Constant", since=24, factory=True)
@kernel("Constant", since=25, factory=True)
def constant(ctx, /, *, value=None, sparse_value=None, value_float=None, value_floats=None,
             value_int=None, value_ints=None, value_string=None, value_strings=None):
    """Constant: the attribute value, built once; string tensors stay on the host."""
    out = _constant_value(value, sparse_value, value_float, value_floats, value_int,
                          value_ints, value_string, value_strings)
    if out.dtype != object:
        out = ctx.xp.asarray(out)

    def run():
        return out

    return run


@kernel("ConstantOfShape", since=9, factory=True)
@kernel("ConstantOfShape", since=20, factory=True)
@kernel("ConstantOfShape", since=21, factory=True)
@kernel("ConstantOfShape", since=23, factory=True)
@kernel("ConstantOfShape", since=24, factory=True)
@kernel("ConstantOfShape", since=25, factory=True)
def constant_of_shape(ctx, /, *, value=None):
    """ConstantOfShape: fill with value[0] (float32 zero by default)."""
    xp = ctx.xp
    fill = np.zeros(1, np.float32) if value is None else np.asarray(value).reshape(-1)
    scalar, dtype = fill[0], fill.dtype

    def run(shape, /):
        return xp.full(tuple(_ints(shape)), scalar, dtype=dtype)

    return run


@kernel("Range", since=11, xp=True)
def range_11(xp, start, limit, delta, /):
    """Range-11: start + i * delta for i < ceil((limit - start) / delta)."""
    return _range(xp, start, limit, delta)


@kernel("Range", since=27, xp=True)
def range_(xp, start, limit, delta, /, *, stash_type=1):
    """Range-27: as Range-11; values are always computed in float64 (at least stash_type)."""
    return _range(xp, start, limit, delta)


def _range(xp, start, limit, delta):
    dtype = start.dtype
    if dtype.kind in "iu":
        # .item(): some exporters feed 1-element tensors where the spec says scalar
        s, l, d = int(start.item()), int(limit.item()), int(delta.item())
        n = max(-((s - l) // d), 0)
        return (xp.arange(n, dtype=xp.int64) * d + s).astype(dtype)
    s, l, d = float(start.item()), float(limit.item()), float(delta.item())
    n = max(math.ceil((l - s) / d), 0)
    return (xp.arange(n, dtype=xp.float64) * d + s).astype(dtype)


@kernel("EyeLike", since=9, xp=True)
@kernel("EyeLike", since=22, xp=True)
def eye_like(xp, x, /, *, dtype=None, k=0):
    """EyeLike: ones on diagonal k of a 2-D tensor shaped like x."""
    out_dtype = x.dtype if dtype is None else np_dtype(dtype)
    return xp.eye(x.shape[0], x.shape[1], k=k, dtype=out_dtype)


# --- DepthToSpace / SpaceToDepth ----------------------------------------------------------


def _depth_to_space(xp, x, blocksize, mode):
    n, c, h, w = x.shape
    b = blocksize
    if mode == "DCR":
        y = xp.transpose(x.reshape(n, b, b, c // (b * b), h, w), (0, 3, 4, 1, 5, 2))
    else:
        y = xp.transpose(x.reshape(n, c // (b * b), b, b, h, w), (0, 1, 4, 2, 5, 3))
    return y.reshape(n, c // (b * b), h * b, w * b)


@kernel("DepthToSpace", since=1, xp=True)
def depth_to_space_1(xp, x, /, *, blocksize):
    """DepthToSpace-1: DCR order."""
    return _depth_to_space(xp, x, blocksize, "DCR")


@kernel("DepthToSpace", since=11, xp=True)
@kernel("DepthToSpace", since=13, xp=True)
@kernel("DepthToSpace", since=28, xp=True)
def depth_to_space(xp, x, /, *, blocksize, mode="DCR"):
    """DepthToSpace-11+: DCR or CRD order."""
    return _depth_to_space(xp, x, blocksize, mode)


@kernel("SpaceToDepth", since=1, xp=True)
@kernel("SpaceToDepth", since=13, xp=True)
@kernel("SpaceToDepth", since=28, xp=True)
def space_to_depth(xp, x, /, *, blocksize, mode="DCR"):
    """SpaceToDepth: DCR order (CRD selectable from opset 28)."""
    n, c, h, w = x.shape
    b = blocksize
    y = x.reshape(n, c, h // b, b, w // b, b)
    perm = (0, 3, 5, 1, 2, 4) if mode == "DCR" else (0, 1, 3, 5, 2, 4)
    return xp.transpose(y, perm).reshape(n, c * b * b, h // b, w // b)
