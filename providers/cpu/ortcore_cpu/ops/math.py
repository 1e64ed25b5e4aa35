"""Matrix products: MatMul, Gemm, MatMulInteger, Einsum, Det.

Floats narrower than float32 (float16, bfloat16) are multiplied in float32 BLAS
and cast back; integer products of 8-bit tensors go through float64 BLAS, which
is exact for them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ml_dtypes
import numpy as np

from ortcore.errors import InvalidArgument
from ortcore_cpu.registry import kernel

_FLOATS = (np.float16, np.float32, np.float64, ml_dtypes.bfloat16)
_MATMUL_TYPES = (*_FLOATS, np.int32, np.int64, np.uint32, np.uint64)
_EINSUM_TYPES = (*_MATMUL_TYPES, np.int8, np.int16, np.uint8, np.uint16)


def _blas_dtype(dtype: np.dtype) -> np.dtype:
    """The dtype a product of this dtype is computed in."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f" and dtype.itemsize >= 4:
        return dtype
    if dtype.kind == "f" or dtype.name == "bfloat16":
        return np.dtype(np.float32)
    return dtype


def _matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    dtype = _blas_dtype(a.dtype)
    if dtype == a.dtype:
        return np.asarray(np.matmul(a, b))
    return np.asarray(np.matmul(a.astype(dtype), b.astype(dtype))).astype(a.dtype)


# inputs of up to this many rows times a constant B take the GEMM engine's GEMV, more its GEMM
_GEMV_ROWS = 4


def _gemv_engine() -> Any:
    """The conv GEMM engine where it runs on several threads (numpy's BLAS then has one), else None."""
    from ortcore_cpu import jit

    engine = jit.gemm_engine()
    return engine if engine is not None and engine.parallel else None


class _ConstantB:
    """A constant float32 ``B [K, N]`` for the GEMM engine: ``w = B^T [N, K]`` C-contiguous, the rows its
    GEMV streams, and (packed on first use) the engine's panels of ``w`` for inputs of many rows."""

    def __init__(self, engine: Any, w: np.ndarray) -> None:
        self.engine, self.w = engine, w
        self._panels: tuple[np.ndarray, np.ndarray] | None = None

    def product(self, a: np.ndarray) -> np.ndarray:
        """``a @ B`` for float32 ``a [..., K]``."""
        rows = a.reshape(-1, a.shape[-1])
        if rows.shape[0] <= _GEMV_ROWS:
            y = self.engine.gemv(np.ascontiguousarray(rows), self.w)
        else:  # y^T = w @ a^T: the engine's GEMM, B^T as its packed weights
            if self._panels is None:
                from ortcore_cpu.ops.nn import _gemm

                self._panels = _gemm.pack(self.w[None], None)
            yt = np.empty((1, self.w.shape[0], rows.shape[0]), np.float32)
            self.engine(*self._panels, np.ascontiguousarray(rows.T)[None], yt)
            y = np.ascontiguousarray(yt[0].T)
        return y.reshape(*a.shape[:-1], self.w.shape[0])


def _constant_b(ctx: Any) -> _ConstantB | None:
    """A constant 2-D float32 B of a product, ready for the engine where it runs in parallel, else None."""
    b = ctx.constants.get(1)
    in_dtype = ctx.input_dtypes[0] if ctx.input_dtypes else None
    if b is None or b.ndim != 2 or in_dtype is None or _blas_dtype(in_dtype) != np.float32:
        return None
    engine = _gemv_engine()
    return None if engine is None else _ConstantB(engine, np.ascontiguousarray(np.asarray(b, np.float32).T))


@kernel("MatMul", since=1, dtypes=_MATMUL_TYPES, factory=True)
@kernel("MatMul", since=9, dtypes=_MATMUL_TYPES, factory=True)
@kernel("MatMul", since=13, dtypes=_MATMUL_TYPES, factory=True)
def make_matmul(ctx: Any) -> Callable[..., np.ndarray]:
    """MatMul: numpy.matmul semantics (1-D operands promoted, batch dims broadcast).

    A constant 2-D float32 B times an input of 2 or more dimensions runs on the GEMM engine
    where it runs in parallel (numpy's BLAS then has one thread).
    """
    constant = _constant_b(ctx)
    if constant is None:
        return _matmul

    def run(a: np.ndarray, b: np.ndarray, /) -> np.ndarray:
        if a.ndim >= 2 and a.dtype == np.float32 and a.shape[-1] == constant.w.shape[1]:
            return constant.product(a)
        return _matmul(a, b)

    return run


def _gemm_operand(m: np.ndarray, trans: int, dtype: np.dtype) -> np.ndarray:
    m = np.asarray(m, dtype=dtype)
    return m.T if trans else m


def _scaled(m: np.ndarray, factor: float) -> np.ndarray:
    """m * factor in m's dtype (integer Gemm rounds toward zero like a C cast)."""
    if factor == 1:
        return m
    if m.dtype.kind == "f":
        return m * m.dtype.type(factor)
    return (m * factor).astype(m.dtype)


def _make_gemm(ctx: Any, alpha: float, beta: float, trans_a: int, trans_b: int) -> Callable[..., np.ndarray]:
    """Gemm factory: a constant B is transposed, scaled by alpha and made contiguous once."""
    in_dtype = ctx.input_dtypes[0] if ctx.input_dtypes and ctx.input_dtypes[0] is not None else None
    b_const, c_const = ctx.constants.get(1), ctx.constants.get(2)
    dtype = _blas_dtype(in_dtype) if in_dtype is not None else None
    packed_b = packed_c = None
    if b_const is not None and dtype is not None and dtype.kind == "f":
        # B' stored as its transpose [N, K], C-contiguous: the rows that the engine's GEMV streams
        packed_b = np.ascontiguousarray(_gemm_operand(b_const, 1 - trans_b, dtype) * dtype.type(alpha)).T
    if c_const is not None and beta != 0 and dtype is not None and dtype.kind == "f":
        packed_c = np.asarray(c_const, dtype=dtype) * dtype.type(beta)
    engine = _gemv_engine() if packed_b is not None and dtype == np.float32 else None
    constant = None if engine is None else _ConstantB(engine, packed_b.T)

    def run(a: np.ndarray, b: np.ndarray, c: np.ndarray | None = None) -> np.ndarray:
        cdt = _blas_dtype(a.dtype)
        aa = _gemm_operand(a, trans_a, cdt)
        if constant is not None and cdt == np.float32:
            y = constant.product(aa)
        elif packed_b is not None and packed_b.dtype == cdt:
            y = np.matmul(aa, packed_b)
        else:
            y = _scaled(np.matmul(aa, _gemm_operand(b, trans_b, cdt)), alpha)
        if packed_c is not None and packed_c.dtype == cdt:
            y += packed_c
        elif c is not None and beta != 0:
            y += _scaled(np.asarray(c, dtype=cdt), beta)
        return y.astype(a.dtype, copy=False)

    return run


@kernel("Gemm", since=1, dtypes=_MATMUL_TYPES, factory=True)
@kernel("Gemm", since=6, dtypes=_MATMUL_TYPES, factory=True)
def make_gemm_1(
    ctx: Any, *, alpha: float = 1.0, beta: float = 1.0, broadcast: int = 0, transA: int = 0, transB: int = 0
) -> Callable[..., np.ndarray]:
    """Gemm-1/6: alpha * A' B' + beta * C; the broadcast attribute only allows C to broadcast."""
    return _make_gemm(ctx, alpha, beta, transA, transB)


@kernel("Gemm", since=7, dtypes=_MATMUL_TYPES, factory=True)
@kernel("Gemm", since=9, dtypes=_MATMUL_TYPES, factory=True)
@kernel("Gemm", since=11, dtypes=_MATMUL_TYPES, factory=True)
@kernel("Gemm", since=13, dtypes=_MATMUL_TYPES, factory=True)
def make_gemm(
    ctx: Any, *, alpha: float = 1.0, beta: float = 1.0, transA: int = 0, transB: int = 0
) -> Callable[..., np.ndarray]:
    """Gemm-7..13: alpha * A' B' + beta * C with C unidirectionally broadcast (optional from 11)."""
    return _make_gemm(ctx, alpha, beta, transA, transB)


def _shifted(x: np.ndarray, zero_point: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray:
    xf = x.astype(np.float64)
    if zero_point is not None:
        zp = np.asarray(zero_point, dtype=np.float64)
        xf -= zp.reshape(shape) if zp.size > 1 else zp.reshape(())
    return xf


@kernel("MatMulInteger", since=10, dtypes={0: (np.int8, np.uint8), 1: (np.int8, np.uint8)})
def matmul_integer(
    a: np.ndarray,
    b: np.ndarray,
    a_zero_point: np.ndarray | None = None,
    b_zero_point: np.ndarray | None = None,
    /,
) -> np.ndarray:
    """MatMulInteger-10: int32 (A - a_zero_point) @ (B - b_zero_point), zero points per row/column."""
    af = _shifted(a, a_zero_point, (-1, 1))
    bf = _shifted(b, b_zero_point, (1, -1))
    return np.rint(np.matmul(af, bf)).astype(np.int32)


def _explicit_equation(equation: str, ranks: list[int]) -> str:
    """Add the implicit output (labels seen once, ASCII order, ellipsis first) to an equation."""
    equation = equation.replace(" ", "")
    if "->" in equation:
        return equation
    terms = equation.split(",")
    if len(terms) != len(ranks):
        raise InvalidArgument(f"Einsum equation {equation!r} has {len(terms)} terms for {len(ranks)} inputs")
    labels = "".join(terms).replace("...", "")
    once = sorted(c for c in set(labels) if labels.count(c) == 1)
    ellipsis = "..." if "..." in equation else ""
    return f"{equation}->{ellipsis}{''.join(once)}"


@kernel("Einsum", since=12, dtypes=_EINSUM_TYPES)
@kernel("Einsum", since=28, dtypes=_EINSUM_TYPES)
def einsum(*inputs: np.ndarray, equation: str = "") -> np.ndarray:
    """Einsum-12/28: Einstein summation (explicit or implicit output, ellipsis broadcast)."""
    equation = equation.decode() if isinstance(equation, bytes) else equation
    eq = _explicit_equation(equation, [x.ndim for x in inputs])
    dtype = _blas_dtype(inputs[0].dtype)
    args = [np.asarray(x, dtype=dtype) for x in inputs]
    y = np.einsum(eq, *args, optimize=len(args) > 1)
    return np.asarray(y).astype(inputs[0].dtype, copy=False)


@kernel("Det", since=11, dtypes=_FLOATS)
@kernel("Det", since=22, dtypes=_FLOATS)
def det(x: np.ndarray, /) -> np.ndarray:
    """Det: determinant of each trailing [M, M] matrix."""
    dtype = _blas_dtype(x.dtype)
    return np.asarray(np.linalg.det(x.astype(dtype, copy=False))).astype(x.dtype, copy=False)
