"""Activation functions and Softmax/LogSoftmax/Hardmax.

All kernels are array-module generic (``xp``). Float attributes are Python
floats, which keep the input's float type under numpy's promotion rules, but
ml_dtypes types (bfloat16) promote to float32, hence the final ``astype``.
float16 and bfloat16 inputs of the transcendental activations are computed in
float32 and rounded once (see :func:`_wide`).
"""

from __future__ import annotations

import math
from typing import Any

from ortcore_cpu.ops.elementwise import erf, keep_array
from ortcore_cpu.registry import kernel


def _wide(xp: Any, x: Any) -> Any:
    """16-bit floats computed in float32 and rounded once at the end, as onnxruntime does.

    The Softmax family is left in the input type: its bfloat16 results then agree
    with onnx.reference's op by op, which the node cases (bf16 Attention) expect
    within 1e-3, less than one bfloat16 ulp.
    """
    return x.astype(xp.float32) if x.dtype.itemsize < 4 and x.dtype.kind in "fV" else x


def _cast(xp: Any, y: Any, x: Any) -> Any:
    """``y`` as an array of ``x``'s dtype (0-d numpy results are scalars; bfloat16 math is float32)."""
    return xp.asarray(y).astype(x.dtype, copy=False)


def _sigmoid(xp: Any, x: Any) -> Any:
    """1 / (1 + exp(-x)) as (tanh(x / 2) + 1) / 2: cannot overflow, and three in-place passes."""
    t = xp.asarray(x * 0.5)
    xp.tanh(t, out=t)
    t *= 0.5
    t += 0.5
    return t


def _softplus(xp: Any, x: Any) -> Any:
    """log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|)), stable for large |x|."""
    return xp.maximum(x, 0) + xp.log1p(xp.exp(-xp.abs(x)))


@kernel("Relu", since=1, factory=True, inplace=True)
@kernel("Relu", since=6, factory=True, inplace=True)
@kernel("Relu", since=13, factory=True, inplace=True)
@kernel("Relu", since=14, factory=True, inplace=True)
def relu(ctx, *, consumed_inputs=None):
    """Relu: max(x, 0), which keeps x's type (a Python 0 adopts it)."""
    maximum = ctx.xp.maximum
    return keep_array(ctx, lambda x, out=None: maximum(x, 0, out=out))


@kernel("LeakyRelu", since=1, xp=True)
@kernel("LeakyRelu", since=6, xp=True)
@kernel("LeakyRelu", since=16, xp=True)
def leaky_relu(xp, x, /, *, alpha=0.01, consumed_inputs=None):
    """LeakyRelu: alpha * x below zero."""
    return _cast(xp, xp.where(x < 0, x * alpha, x), x)


def _channel_slope(x: Any, slope: Any) -> Any:
    """PRelu-1/6 slopes: one value, one per channel (axis 1), or numpy-broadcastable."""
    if slope.ndim == 1 and x.ndim >= 2 and slope.shape[0] == x.shape[1] != x.shape[-1]:
        return slope.reshape((-1,) + (1,) * (x.ndim - 2))
    return slope


@kernel("PRelu", since=1, xp=True)
@kernel("PRelu", since=6, xp=True)
def prelu_legacy(xp, x, slope, /, *, consumed_inputs=None):
    """PRelu-1/6: slope shared or per channel."""
    return _cast(xp, xp.where(x < 0, x * _channel_slope(x, slope), x), x)


@kernel("PRelu", since=7, xp=True)
@kernel("PRelu", since=9, xp=True)
@kernel("PRelu", since=16, xp=True)
def prelu(xp, x, slope, /):
    """PRelu-7+: slope broadcasts to x (unidirectional)."""
    return _cast(xp, xp.where(x < 0, x * slope, x), x)


@kernel("Sigmoid", since=1, xp=True)
@kernel("Sigmoid", since=6, xp=True)
@kernel("Sigmoid", since=13, xp=True)
def sigmoid(xp, x, /, *, consumed_inputs=None):
    """Sigmoid."""
    w = _wide(xp, x)
    return _cast(xp, _sigmoid(xp, w), x)


@kernel("HardSigmoid", since=1, xp=True)
@kernel("HardSigmoid", since=6, xp=True)
@kernel("HardSigmoid", since=22, xp=True)
def hard_sigmoid(xp, x, /, *, alpha=0.2, beta=0.5, consumed_inputs=None):
    """HardSigmoid: clip(alpha * x + beta, 0, 1)."""
    w = _wide(xp, x)
    return _cast(xp, xp.clip(w * alpha + beta, 0, 1), x)


@kernel("HardSwish", since=14, xp=True)
@kernel("HardSwish", since=22, xp=True)
def hard_swish(xp, x, /):
    """HardSwish: x * HardSigmoid(x) with alpha=1/6, beta=0.5."""
    w = _wide(xp, x)
    return _cast(xp, w * xp.clip(w * (1 / 6) + 0.5, 0, 1), x)


@kernel("Tanh", since=1, factory=True)
@kernel("Tanh", since=6, factory=True)
@kernel("Tanh", since=13, factory=True)
def tanh(ctx, *, consumed_inputs=None):
    """Tanh."""
    return keep_array(ctx, ctx.xp.tanh)


@kernel("Elu", since=1, xp=True)
@kernel("Elu", since=6, xp=True)
@kernel("Elu", since=22, xp=True)
def elu(xp, x, /, *, alpha=1.0, consumed_inputs=None):
    """Elu: alpha * (exp(x) - 1) below zero."""
    w = _wide(xp, x)
    return _cast(xp, xp.where(w < 0, xp.expm1(xp.minimum(w, 0)) * alpha, w), x)


@kernel("Selu", since=1, xp=True)
@kernel("Selu", since=6, xp=True)
@kernel("Selu", since=22, xp=True)
def selu(xp, x, /, *, alpha=1.67326319217681884765625, gamma=1.05070102214813232421875, consumed_inputs=None):
    """Selu: gamma * (alpha * (exp(x) - 1) if x <= 0 else x)."""
    w = _wide(xp, x)
    neg = xp.expm1(xp.minimum(w, 0)) * alpha
    return _cast(xp, xp.where(w > 0, w, neg) * gamma, x)


@kernel("Celu", since=12, xp=True)
@kernel("Celu", since=28, xp=True)
def celu(xp, x, /, *, alpha=1.0):
    """Celu: max(0, x) + min(0, alpha * (exp(x / alpha) - 1))."""
    w = _wide(xp, x)
    neg = xp.expm1(xp.minimum(w, 0) / alpha) * alpha
    return _cast(xp, xp.maximum(w, 0) + neg, x)


@kernel("Softplus", since=1, xp=True)
@kernel("Softplus", since=22, xp=True)
def softplus(xp, x, /):
    """Softplus: log(1 + exp(x))."""
    w = _wide(xp, x)
    return _cast(xp, _softplus(xp, w), x)


@kernel("Softsign", since=1, xp=True)
@kernel("Softsign", since=22, xp=True)
def softsign(xp, x, /):
    """Softsign: x / (1 + |x|)."""
    w = _wide(xp, x)
    return _cast(xp, w / (1 + xp.abs(w)), x)


@kernel("ThresholdedRelu", since=10, xp=True)
@kernel("ThresholdedRelu", since=22, xp=True)
def thresholded_relu(xp, x, /, *, alpha=1.0):
    """ThresholdedRelu: x where x > alpha, else 0."""
    return _cast(xp, xp.where(x > alpha, x, 0), x)


@kernel("Gelu", since=20, xp=True)
def gelu(xp, x, /, *, approximate="none"):
    """Gelu: x * Phi(x), exactly (erf) or with the tanh approximation."""
    w = _wide(xp, x)
    if approximate == "tanh":
        # sqrt(2 / pi) * (w + 0.044715 w^3), in place
        t = xp.asarray(w * w)
        t *= 0.044715
        t += 1
        t *= w
        t *= math.sqrt(2 / math.pi)
        xp.tanh(t, out=t)
    else:
        t = erf(xp, w * (1 / math.sqrt(2)))
    t += 1
    t *= w
    t *= 0.5
    return _cast(xp, t, x)


@kernel("Mish", since=18, xp=True)
@kernel("Mish", since=22, xp=True)
def mish(xp, x, /):
    """Mish: x * tanh(softplus(x))."""
    w = _wide(xp, x)
    return _cast(xp, w * xp.tanh(_softplus(xp, w)), x)


@kernel("Swish", since=24, xp=True)
def swish(xp, x, /, *, alpha=1.0):
    """Swish: x * sigmoid(alpha * x)."""
    w = _wide(xp, x)
    return _cast(xp, w * _sigmoid(xp, w * alpha), x)


@kernel("Shrink", since=9, xp=True)
def shrink(xp, x, /, *, bias=0.0, lambd=0.5):
    """Shrink: x + bias below -lambd, x - bias above lambd, 0 between."""
    y = xp.where(x < -lambd, x + bias, xp.where(x > lambd, x - bias, 0))
    return _cast(xp, y, x)


# -- Softmax family --------------------------------------------------------------------------


def _softmax(xp: Any, x: Any, axis: int) -> Any:
    e = x - xp.max(x, axis=axis, keepdims=True)
    xp.exp(e, out=e)
    e /= xp.sum(e, axis=axis, keepdims=True)
    return e


def _log_softmax(xp: Any, x: Any, axis: int) -> Any:
    shifted = x - xp.max(x, axis=axis, keepdims=True)
    return shifted - xp.log(xp.sum(xp.exp(shifted), axis=axis, keepdims=True))


def _hardmax(xp: Any, x: Any, axis: int) -> Any:
    """One-hot of the first maximum along ``axis``."""
    axis = axis % x.ndim
    first = xp.expand_dims(xp.argmax(x, axis=axis), axis)
    positions = xp.arange(x.shape[axis]).reshape((-1,) + (1,) * (x.ndim - axis - 1))
    return (positions == first).astype(x.dtype)


def _along_axis(xp: Any, fn: Any, x: Any, axis: int) -> Any:
    """Opset 13+: ``fn`` along one axis."""
    if x.size == 0:
        return x.copy()
    return _cast(xp, fn(xp, x, axis), x)


def _flattened(xp: Any, fn: Any, x: Any, axis: int) -> Any:
    """Before opset 13: ``fn`` over the input coerced to 2-D at ``axis``."""
    if x.size == 0:
        return x.copy()
    axis = axis % x.ndim if x.ndim else 0
    rows = math.prod(x.shape[:axis])
    y = fn(xp, x.reshape(rows, x.size // rows), 1)
    return _cast(xp, y.reshape(x.shape), x)


@kernel("Softmax", since=1, xp=True)
@kernel("Softmax", since=11, xp=True)
def softmax_2d(xp, x, /, *, axis=1):
    """Softmax-1/11: over the trailing dims from ``axis`` as one."""
    return _flattened(xp, _softmax, x, axis)


@kernel("Softmax", since=13, xp=True)
def softmax(xp, x, /, *, axis=-1):
    """Softmax-13: along ``axis``."""
    return _along_axis(xp, _softmax, x, axis)


@kernel("LogSoftmax", since=1, xp=True)
@kernel("LogSoftmax", since=11, xp=True)
def log_softmax_2d(xp, x, /, *, axis=1):
    """LogSoftmax-1/11: over the trailing dims from ``axis`` as one."""
    return _flattened(xp, _log_softmax, x, axis)


@kernel("LogSoftmax", since=13, xp=True)
def log_softmax(xp, x, /, *, axis=-1):
    """LogSoftmax-13: along ``axis``."""
    return _along_axis(xp, _log_softmax, x, axis)


@kernel("Hardmax", since=1, xp=True)
@kernel("Hardmax", since=11, xp=True)
def hardmax_2d(xp, x, /, *, axis=1):
    """Hardmax-1/11: over the trailing dims from ``axis`` as one."""
    return _flattened(xp, _hardmax, x, axis)


@kernel("Hardmax", since=13, xp=True)
def hardmax(xp, x, /, *, axis=-1):
    """Hardmax-13: along ``axis``."""
    return _along_axis(xp, _hardmax, x, axis)
