"""MatMul, Gemm and com.microsoft FusedGemm on the packed OpenCL GEMM (:mod:`ortcore_opencl.blas`).

Operands are packed on the device by strided copy kernels (so transposes and
broadcast batch dims cost nothing extra); constant right operands (weights)
are packed once on the host at session creation and uploaded. Gemm's C,
alpha, beta and FusedGemm's activation run in the GEMM's epilogue.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ortcore.errors import InvalidArgument
from ortcore_opencl.blas import MR, NR, Operand, activation_code, blas_for, pack_b_host
from ortcore_opencl.registry import kernel

_F32 = (np.float32,)
_MS = "com.microsoft"
# the batch dims the packing kernels can walk
_MAX_BATCH_DIMS = 4


def _contiguous_strides(shape: Sequence[int]) -> tuple[int, ...]:
    strides, step = [], 1
    for d in reversed(shape):
        strides.append(step)
        step *= d
    return tuple(reversed(strides))


def _matmul_supports(node: Any, input_types: list[Any]) -> str | None:
    for i, t in enumerate(input_types[:2]):
        if t is not None and t.rank is not None:
            if t.rank == 0:
                return f"MatMul input {i} is a scalar"
            if t.rank > _MAX_BATCH_DIMS + 2:
                return f"MatMul input {i} has rank {t.rank}; the OpenCL kernel handles up to {_MAX_BATCH_DIMS + 2}"
    return None


def _batch_operand(array: Any, rows: int, cols: int, rs: int, cs: int, own: tuple[int, ...],
                   batch: tuple[int, ...]) -> tuple[Operand, int]:
    """(operand walking the output batch ``batch``, packed batches): one when not batched."""
    if math.prod(own) == 1:
        return Operand(array, rows, cols, rs, cs), 1
    own = (1,) * (len(batch) - len(own)) + own
    step = rows * cols
    strides = [s * step if d != 1 else 0 for d, s in zip(own, _contiguous_strides(own))]
    # merge the leading dims beyond four into the first (they are then walked densely)
    dims, st = list(batch), strides
    while len(dims) > _MAX_BATCH_DIMS:
        if st[0] != st[1] * dims[1] and not (st[0] == 0 and st[1] == 0):
            raise InvalidArgument(
                f"MatMul: broadcasting {len(batch)} batch dimensions this way is not supported on OpenCL"
            )
        dims[0:2] = [dims[0] * dims[1]]
        st[0:2] = [st[1]]
    return Operand(array, rows, cols, rs, cs, dims=tuple(dims), strides=tuple(st)), math.prod(batch)


@kernel("MatMul", since=1, dtypes=_F32, factory=True, supports=_matmul_supports)
@kernel("MatMul", since=9, dtypes=_F32, factory=True, supports=_matmul_supports)
@kernel("MatMul", since=13, dtypes=_F32, factory=True, supports=_matmul_supports)
def matmul(ctx: Any, /) -> Callable[..., Any]:
    """MatMul (numpy matmul semantics: 1-D operands, broadcast batch dims)."""
    rt = ctx.provider.runtime
    blas = blas_for(rt)
    b_const = ctx.constants.get(1)
    packed_b, packed_shape = None, None
    if b_const is not None and b_const.ndim >= 1:
        b_mat = np.asarray(b_const, np.float32)
        b_mat = b_mat.reshape(-1, 1) if b_mat.ndim == 1 else b_mat
        packed_b, packed_shape = rt.to_device(pack_b_host(b_mat).reshape(-1)), tuple(b_const.shape)

    def run(a: Any, b: Any) -> Any:
        if a.ndim == 0 or b.ndim == 0:
            raise InvalidArgument(f"MatMul: inputs must have rank >= 1, got shapes {a.shape} and {b.shape}")
        m, k = (1, a.shape[0]) if a.ndim == 1 else a.shape[-2:]
        k2, n = (b.shape[0], 1) if b.ndim == 1 else b.shape[-2:]
        if k != k2:
            raise InvalidArgument(f"MatMul: inner dimensions differ: A {a.shape} and B {b.shape}")
        batch_a, batch_b = tuple(a.shape[:-2]), tuple(b.shape[:-2])
        try:
            batch = tuple(np.broadcast_shapes(batch_a, batch_b))
        except ValueError:
            raise InvalidArgument(
                f"MatMul: batch dimensions of A {a.shape} and B {b.shape} do not broadcast"
            ) from None
        out_shape = batch + ((m,) if a.ndim > 1 else ()) + ((n,) if b.ndim > 1 else ())
        y = rt.empty(out_shape, np.float32)
        z = math.prod(batch)
        if y.size == 0:
            return y
        op_a, za = _batch_operand(a, m, k, k, 1, batch_a, batch)
        pa = blas.pack_a(op_a, za)
        if packed_b is not None and b.shape == packed_shape and math.prod(batch_b) in (1, z):
            pb, zb = packed_b, math.prod(batch_b)
        else:
            op_b, zb = _batch_operand(b, k, n, n if b.ndim > 1 else 1, 1, batch_b, batch)
            pb = blas.pack_b(op_b, zb)
        mt, nt = -(-m // MR), -(-n // NR)
        blas.gemm(pa, pb, y, m, n, k, z=z, a_zs=mt * k * MR if za > 1 else 0,
                  b_zs=nt * k * NR if zb > 1 else 0, y_zs=m * n)
        return y

    return run


# -- Gemm ----------------------------------------------------------------------------------


def _gemm_supports(node: Any, input_types: list[Any]) -> str | None:
    for i, t in enumerate(input_types[:2]):
        if t is not None and t.rank is not None and t.rank != 2:
            return f"Gemm input {i} has rank {t.rank}, expected 2"
    c_type = input_types[2] if len(input_types) > 2 else None
    if c_type is not None and c_type.rank is not None and c_type.rank > 2:
        return f"Gemm input C has rank {input_types[2].rank}, expected at most 2"
    return None


def _fused_gemm_supports(node: Any, input_types: list[Any]) -> str | None:
    name = node.attrs.get("activation", "")
    name = name.decode() if isinstance(name, bytes) else name
    try:
        activation_code(name, [], "FusedGemm")
    except InvalidArgument as exc:
        return str(exc)
    return _gemm_supports(node, input_types)


def _make_gemm(ctx: Any, op: str, alpha: float, beta: float, trans_a: int, trans_b: int,
               act: tuple[int, float, float, float]) -> Callable[..., Any]:
    rt = ctx.provider.runtime
    blas = blas_for(rt)
    b_const = ctx.constants.get(1)
    packed_b, packed_shape = None, None
    if b_const is not None and b_const.ndim == 2:
        b_mat = np.asarray(b_const, np.float32)
        packed_b = rt.to_device(pack_b_host(b_mat.T if trans_b else b_mat).reshape(-1))
        packed_shape = tuple(b_const.shape)

    def run(a: Any, b: Any, c: Any = None) -> Any:
        if a.ndim != 2 or b.ndim != 2:
            raise InvalidArgument(f"{op}: A and B must be 2-D, got shapes {a.shape} and {b.shape}")
        m, k = a.shape[::-1] if trans_a else a.shape
        k2, n = b.shape[::-1] if trans_b else b.shape
        if k != k2:
            raise InvalidArgument(
                f"{op}: inner dimensions differ: A {a.shape} (transA={trans_a}), B {b.shape} (transB={trans_b})"
            )
        e, ers, ecs = None, 0, 0
        if c is not None and beta != 0:
            if c.ndim > 2 or (c.ndim >= 1 and c.shape[-1] not in (1, n)) or (c.ndim == 2 and c.shape[0] not in (1, m)):
                raise InvalidArgument(f"{op}: C of shape {c.shape} does not broadcast to ({m}, {n})")
            e = c
            ecs = 1 if c.ndim >= 1 and c.shape[-1] != 1 else 0
            ers = c.shape[-1] if c.ndim == 2 and c.shape[0] != 1 else 0
        y = rt.empty((m, n), np.float32)
        if y.size == 0:
            return y
        a_cols = a.shape[1]
        pa = blas.pack_a(Operand(a, m, k, 1 if trans_a else a_cols, a_cols if trans_a else 1), 1)
        if packed_b is not None and b.shape == packed_shape:
            pb = packed_b
        else:
            b_cols = b.shape[1]
            pb = blas.pack_b(Operand(b, k, n, 1 if trans_b else b_cols, b_cols if trans_b else 1), 1)
        blas.gemm(pa, pb, y, m, n, k, alpha=alpha, e=e, ers=ers, ecs=ecs, beta=beta, act=act)
        return y

    return run


@kernel("Gemm", since=1, dtypes=_F32, factory=True, supports=_gemm_supports)
@kernel("Gemm", since=6, dtypes=_F32, factory=True, supports=_gemm_supports)
@kernel("Gemm", since=7, dtypes=_F32, factory=True, supports=_gemm_supports)
@kernel("Gemm", since=9, dtypes=_F32, factory=True, supports=_gemm_supports)
@kernel("Gemm", since=11, dtypes=_F32, factory=True, supports=_gemm_supports)
@kernel("Gemm", since=13, dtypes=_F32, factory=True, supports=_gemm_supports)
def gemm(
    ctx: Any, /, *, alpha: float = 1.0, beta: float = 1.0, transA: int = 0, transB: int = 0, broadcast: int = 0
) -> Callable[..., Any]:
    """Gemm: alpha * A' B' + beta * C, C broadcast to [M, N] (``broadcast`` of Gemm-1/6 is implied)."""
    return _make_gemm(ctx, "Gemm", alpha, beta, transA, transB, (0, 0.0, 0.0, 0.0))


@kernel("FusedGemm", since=1, domain=_MS, dtypes=_F32, factory=True, supports=_fused_gemm_supports)
def fused_gemm(
    ctx: Any,
    /,
    *,
    activation: str = "",
    activation_alpha: float | None = None,
    activation_beta: float | None = None,
    activation_gamma: float | None = None,
    activation_params: list[float] | None = None,
    alpha: float = 1.0,
    beta: float = 1.0,
    transA: int = 0,
    transB: int = 0,
) -> Callable[..., Any]:
    """com.microsoft FusedGemm: activation(alpha * A' B' + beta * C), the activation in the epilogue.

    onnxruntime spells the activation's parameters ``activation_alpha/beta/gamma``; a FusedConv-style
    ``activation_params`` list is accepted too.
    """
    params: list[float | None] = list(activation_params or [None, None, None])
    for i, v in enumerate((activation_alpha, activation_beta, activation_gamma)):
        if v is not None:
            while len(params) <= i:
                params.append(None)
            params[i] = v
    act = activation_code(activation, params, "FusedGemm")
    return _make_gemm(ctx, "FusedGemm", alpha, beta, transA, transB, act)
