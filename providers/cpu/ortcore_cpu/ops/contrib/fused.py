"""com.microsoft fused math: FusedGemm, FusedMatMul, Gelu, BiasGelu, FastGelu, QuickGelu, Trilu.

onnxruntime's graph optimizer produces these from ONNX patterns (Gemm + activation,
Transpose + MatMul + Mul, the erf and tanh GELU subgraphs). The math reuses the ONNX
kernels: Gemm's factory, the activation kernels and Gelu. 16-bit floats compute in
float32 and round once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ml_dtypes
import numpy as np

from ortcore.errors import InvalidArgument
from ortcore_cpu.ops import math as onnx_math
from ortcore_cpu.ops import tensor
from ortcore_cpu.ops.nn import activation as act
from ortcore_cpu.registry import kernel

_FLOAT = (np.float16, np.float32, np.float64, ml_dtypes.bfloat16)
_MS = "com.microsoft"


def _wide(x: np.ndarray) -> np.ndarray:
    return act._wide(np, x)


# -- FusedGemm ---------------------------------------------------------------------------------

# onnxruntime's ElementWiseRangedTransform activations: name -> (fn(y, alpha, beta, gamma),
# default alpha, beta, gamma). The ONNX kernels supply the math.
_ACTIVATIONS: dict[str, tuple[Callable[..., np.ndarray], float, float, float]] = {
    "Relu": (lambda y, a, b, g: np.maximum(y, 0, out=y), 0.0, 0.0, 0.0),
    "Tanh": (lambda y, a, b, g: np.tanh(y, out=y), 0.0, 0.0, 0.0),
    "Sigmoid": (lambda y, a, b, g: act.sigmoid(np, y), 0.0, 0.0, 0.0),
    "LeakyRelu": (lambda y, a, b, g: act.leaky_relu(np, y, alpha=a), 0.01, 0.0, 0.0),
    "HardSigmoid": (lambda y, a, b, g: act.hard_sigmoid(np, y, alpha=a, beta=b), 0.2, 0.5, 0.0),
    "Elu": (lambda y, a, b, g: act.elu(np, y, alpha=a), 1.0, 0.0, 0.0),
    "Celu": (lambda y, a, b, g: act.celu(np, y, alpha=a), 1.0, 0.0, 0.0),
    "Selu": (
        lambda y, a, b, g: act.selu(np, y, alpha=a, gamma=g),
        1.67326319217681884765625, 0.0, 1.05070102214813232421875,
    ),
    "Softplus": (lambda y, a, b, g: act.softplus(np, y), 0.0, 0.0, 0.0),
    "Softsign": (lambda y, a, b, g: act.softsign(np, y), 0.0, 0.0, 0.0),
    "ThresholdedRelu": (lambda y, a, b, g: act.thresholded_relu(np, y, alpha=a), 1.0, 0.0, 0.0),
    # onnxruntime's contrib activations
    "ParametricSoftplus": (lambda y, a, b, g: act.softplus(np, y * y.dtype.type(b)) * y.dtype.type(a), 1.0, 1.0, 0.0),
    "ScaledTanh": (lambda y, a, b, g: np.tanh(y * y.dtype.type(b)) * y.dtype.type(a), 1.0, 1.0, 0.0),
}


def activation_fn(
    name: str | bytes | None, alpha: float | None, beta: float | None, gamma: float | None, op: str
) -> Callable[[np.ndarray], np.ndarray]:
    """The activation ``y -> f(y)`` of a fused node; it may work in place on ``y``."""
    name = name.decode() if isinstance(name, bytes) else (name or "")
    if not name:
        return lambda y: y
    entry = _ACTIVATIONS.get(name)
    if entry is None:
        raise InvalidArgument(f"{op}: unsupported activation {name!r}; expected one of {sorted(_ACTIVATIONS)}")
    fn, a, b, g = entry
    a = a if alpha is None else alpha
    b = b if beta is None else beta
    g = g if gamma is None else gamma
    return lambda y: fn(y, a, b, g)


@kernel("FusedGemm", since=1, domain=_MS, dtypes=_FLOAT, factory=True)
def make_fused_gemm(
    ctx: Any,
    *,
    activation: str = "",
    activation_alpha: float | None = None,
    activation_beta: float | None = None,
    activation_gamma: float | None = None,
    alpha: float = 1.0,
    beta: float = 1.0,
    transA: int = 0,
    transB: int = 0,
) -> Callable[..., np.ndarray]:
    """com.microsoft FusedGemm: activation(alpha * A' B' + beta * C)."""
    gemm = onnx_math._make_gemm(ctx, alpha, beta, transA, transB)
    fn = activation_fn(activation, activation_alpha, activation_beta, activation_gamma, "FusedGemm")

    def run(a: np.ndarray, b: np.ndarray, c: np.ndarray | None = None) -> np.ndarray:
        y = gemm(a, b, c)
        return np.asarray(fn(_wide(y))).astype(a.dtype, copy=False)

    return run


# -- FusedMatMul -------------------------------------------------------------------------------


def _operand(m: np.ndarray, trans: int, trans_batch: int) -> np.ndarray:
    """A FusedMatMul operand in plain matmul layout.

    ``trans_batch`` moves the leading axis into the row slot (``[1, ..., r-2, 0, r-1]``),
    ``trans`` then swaps the last two axes; a vector is never transposed.
    """
    r = m.ndim
    if r < 2:
        return m
    perm = list(range(r))
    if trans_batch:
        perm = [*range(1, r - 1), 0, r - 1]
    if trans:
        perm[-2], perm[-1] = perm[-1], perm[-2]
    return m.transpose(perm) if perm != list(range(r)) else m


@kernel("FusedMatMul", since=1, domain=_MS, dtypes=_FLOAT, factory=True)
def make_fused_matmul(
    ctx: Any, *, alpha: float = 1.0, transA: int = 0, transB: int = 0, transBatchA: int = 0, transBatchB: int = 0
) -> Callable[..., np.ndarray]:
    """com.microsoft FusedMatMul: alpha * matmul(A', B') with transposes of the last two and
    of the batch axes; a constant B is transposed, scaled and made contiguous once."""
    b_const = ctx.constants.get(1)
    packed: dict[np.dtype, np.ndarray] = {}
    if b_const is not None:
        dtype = onnx_math._blas_dtype(b_const.dtype)
        wb = np.ascontiguousarray(_operand(np.asarray(b_const, dtype=dtype), transB, transBatchB))
        packed[dtype] = wb * dtype.type(alpha) if alpha != 1 else wb

    def run(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        dtype = onnx_math._blas_dtype(a.dtype)
        aa = _operand(a, transA, transBatchA).astype(dtype, copy=False)
        wb = packed.get(dtype)
        if wb is not None:
            y = np.matmul(aa, wb)
        else:
            y = np.matmul(aa, _operand(b, transB, transBatchB).astype(dtype, copy=False))
            if alpha != 1:
                y *= dtype.type(alpha)
        return np.asarray(y).astype(a.dtype, copy=False)

    return run


# -- GELU family -------------------------------------------------------------------------------


@kernel("Gelu", since=1, domain=_MS, dtypes=_FLOAT)
def gelu(x: np.ndarray, /) -> np.ndarray:
    """com.microsoft Gelu: x * Phi(x) with the exact erf."""
    return act.gelu(np, x)


@kernel("BiasGelu", since=1, domain=_MS, dtypes=_FLOAT)
def bias_gelu(a: np.ndarray, b: np.ndarray, /) -> np.ndarray:
    """com.microsoft BiasGelu: Gelu(A + B), B a bias along the last axis."""
    return act.gelu(np, _wide(a) + _wide(b)).astype(a.dtype, copy=False)


@kernel("FastGelu", since=1, domain=_MS, dtypes=_FLOAT)
def fast_gelu(x: np.ndarray, bias: np.ndarray | None = None, /) -> np.ndarray:
    """com.microsoft FastGelu: the tanh approximation of Gelu(X + bias)."""
    v = _wide(x) if bias is None else _wide(x) + _wide(bias)
    return act.gelu(np, v, approximate="tanh").astype(x.dtype, copy=False)


@kernel("QuickGelu", since=1, domain=_MS, dtypes=_FLOAT)
def quick_gelu(x: np.ndarray, /, *, alpha: float = 1.702) -> np.ndarray:
    """com.microsoft QuickGelu: x * sigmoid(alpha * x)."""
    return act.swish(np, x, alpha=alpha)


# -- Trilu -------------------------------------------------------------------------------------

# onnxruntime's contrib Trilu predates ONNX Trilu-14 and has the same semantics.
kernel("Trilu", since=1, domain=_MS, xp=True)(tensor.trilu)
