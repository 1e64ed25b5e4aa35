"""onnxruntime's contrib quantized ops (com.microsoft): QLinearAdd, QLinearMul, QLinearSigmoid,
QLinearLeakyRelu, QLinearGlobalAveragePool, QLinearConcat, QGemm, DynamicQuantizeMatMul,
MatMulIntegerToFloat, MatMulNBits and DynamicQuantizeLSTM.

The float steps follow onnxruntime's MLAS kernels so that rounding ties fall the same way:
requantization is ``saturate(rint(float32(acc) * multiplier) + zero_point)`` with the
multiplier formed in float32 in onnxruntime's order; unary ops go through a 256-entry
lookup table (dequantize, apply, quantize with a float32 division), as onnxruntime builds
one. Integer products go through float BLAS, exact for 8-bit operands (see
``quantize._product_dtype``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ortcore.errors import InvalidArgument, NotImplemented
from ortcore_cpu.ops import quantize as q
from ortcore_cpu.ops import rnn
from ortcore_cpu.ops.nn import activation as act
from ortcore_cpu.registry import kernel

_MS = "com.microsoft"
_Q8 = (np.uint8, np.int8)
_F32 = np.dtype(np.float32)


def _scalar(v: np.ndarray | None, default: float = 0.0) -> np.float32:
    return np.float32(default) if v is None else np.float32(np.asarray(v).reshape(-1)[0])


def _zp(v: np.ndarray | None) -> np.float32:
    return np.float32(0) if v is None else np.float32(np.asarray(v).reshape(-1)[0])


def _out_range(dtype: np.dtype) -> tuple[int, int]:
    return q._INT_RANGES[np.dtype(dtype)]


def _saturate(v: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """rint, clip to ``dtype``'s range and cast (``v`` is float32 and may be overwritten)."""
    return q._saturate(v, np.dtype(dtype), 1)


# -- elementwise: QLinearAdd, QLinearMul --------------------------------------------------------


@kernel("QLinearAdd", since=1, domain=_MS, dtypes={0: _Q8})
def qlinear_add(a, a_scale, a_zero_point, b, b_scale, b_zero_point, c_scale, c_zero_point=None, /):
    """com.microsoft QLinearAdd: C = (A_s (A - A_zp) + B_s (B - B_zp)) / C_s + C_zp, broadcasting."""
    c_s = _scalar(c_scale)
    va = (a.astype(_F32) - _zp(a_zero_point)) * (_scalar(a_scale) / c_s)
    vb = (b.astype(_F32) - _zp(b_zero_point)) * (_scalar(b_scale) / c_s)
    v = np.rint(va + vb)
    v += _zp(c_zero_point)
    return _saturate(v, a.dtype)


@kernel("QLinearMul", since=1, domain=_MS, dtypes={0: _Q8})
def qlinear_mul(a, a_scale, a_zero_point, b, b_scale, b_zero_point, c_scale, c_zero_point=None, /):
    """com.microsoft QLinearMul: C = (A - A_zp)(B - B_zp) A_s B_s / C_s + C_zp, broadcasting."""
    ratio = _scalar(a_scale) * _scalar(b_scale) / _scalar(c_scale)
    v = (a.astype(_F32) - _zp(a_zero_point)) * (b.astype(_F32) - _zp(b_zero_point))
    v *= ratio
    v = np.rint(v)
    v += _zp(c_zero_point)
    return _saturate(v, a.dtype)


# -- lookup-table ops: QLinearSigmoid, QLinearLeakyRelu, QLinearConcat --------------------------


def _table(
    dtype: np.dtype,
    x_scale: np.ndarray,
    x_zero_point: np.ndarray | None,
    y_scale: np.ndarray,
    y_zero_point: np.ndarray | None,
    fn: Callable[[np.ndarray], np.ndarray],
    out: np.dtype | None = None,
) -> np.ndarray:
    """The 256 outputs of ``quantize(fn(dequantize(x)))`` for every ``x`` of ``dtype``, indexed by
    the byte value (two's complement for int8)."""
    lo, hi = _out_range(dtype)
    values = np.arange(lo, hi + 1, dtype=np.int16).astype(dtype)
    real = (values.astype(_F32) - _zp(x_zero_point)) * _scalar(x_scale)
    y = np.asarray(fn(real), dtype=_F32)
    out = np.dtype(out or dtype)
    zp = np.zeros((), out) if y_zero_point is None else np.asarray(y_zero_point).reshape(())
    table = q._quantize(y, np.asarray(_scalar(y_scale)), zp, out, axis=1, block_size=0, saturate=1, precision=None)
    return np.roll(table, lo)  # byte order: table[value & 0xFF]


def _lookup(table: np.ndarray, x: np.ndarray) -> np.ndarray:
    return table[x.view(np.uint8)]


def _table_factory(ctx: Any, fn: Callable[[np.ndarray], np.ndarray]) -> Callable[..., np.ndarray]:
    """A unary quantized op through a lookup table, built once when its parameters are constant."""
    const = ctx.constants
    want_y = ctx.node is None or bool(ctx.node.outputs and ctx.node.outputs[0])
    names = list(ctx.node.inputs) if ctx.node is not None else []
    given = [i < len(names) and bool(names[i]) for i in range(5)]
    dtype = ctx.input_dtypes[0] if ctx.input_dtypes and ctx.input_dtypes[0] is not None else None
    static = dtype is not None and all(i in const or not given[i] for i in (1, 2, 3, 4))
    table = _table(dtype, const[1], const.get(2), const[3], const.get(4), fn) if static else None

    def run(x, x_scale, x_zero_point=None, y_scale=None, y_zero_point=None, /):
        t = table if table is not None and table.dtype == x.dtype else _table(
            x.dtype, x_scale, x_zero_point, y_scale, y_zero_point, fn
        )
        return _lookup(t, x)

    return run


@kernel("QLinearSigmoid", since=1, domain=_MS, dtypes={0: _Q8}, factory=True)
def make_qlinear_sigmoid(ctx: Any) -> Callable[..., np.ndarray]:
    """com.microsoft QLinearSigmoid: quantize(Sigmoid(dequantize(X)))."""
    return _table_factory(ctx, lambda v: act.sigmoid(np, v))


@kernel("QLinearLeakyRelu", since=1, domain=_MS, dtypes={0: _Q8}, factory=True)
def make_qlinear_leaky_relu(ctx: Any, *, alpha: float = 0.01) -> Callable[..., np.ndarray]:
    """com.microsoft QLinearLeakyRelu: quantize(LeakyRelu(dequantize(X), alpha))."""
    return _table_factory(ctx, lambda v: act.leaky_relu(np, v, alpha=alpha))


@kernel("QLinearConcat", since=1, domain=_MS)
def qlinear_concat(y_scale, y_zero_point, *inputs, axis: int = 0):
    """com.microsoft QLinearConcat: inputs given as (tensor, scale, zero point) triples are each
    requantized to Y's scale and zero point, then concatenated along ``axis``."""
    if len(inputs) % 3 or not inputs:
        raise InvalidArgument("QLinearConcat: inputs must come as (tensor, scale, zero point) triples")
    out = y_zero_point.dtype
    parts = []
    for x, x_scale, x_zero_point in zip(inputs[0::3], inputs[1::3], inputs[2::3]):
        if x.dtype != out:
            raise InvalidArgument(f"QLinearConcat: input of type {x.dtype} differs from Y's {out}")
        same = _scalar(x_scale) == _scalar(y_scale) and _zp(x_zero_point) == _zp(y_zero_point)
        parts.append(x if same else _lookup(_table(out, x_scale, x_zero_point, y_scale, y_zero_point, lambda v: v), x))
    return np.concatenate(parts, axis=axis)


# -- QLinearGlobalAveragePool -------------------------------------------------------------------


@kernel("QLinearGlobalAveragePool", since=1, domain=_MS, dtypes={0: _Q8})
def qlinear_global_average_pool(x, x_scale, x_zero_point, y_scale, y_zero_point, /, *, channels_last: int = 0):
    """com.microsoft QLinearGlobalAveragePool: mean over the spatial dims, requantized.

    As in MLAS, the integer sum less ``zero_point * size`` is scaled by ``x_s / (y_s * size)``.
    """
    spatial = tuple(range(1, x.ndim - 1)) if channels_last else tuple(range(2, x.ndim))
    size = int(np.prod([x.shape[a] for a in spatial]))
    acc = np.sum(x, axis=spatial, keepdims=True, dtype=np.int64) - int(_zp(x_zero_point)) * size
    scale = _scalar(x_scale) / (_scalar(y_scale) * np.float32(size))
    v = np.rint(acc.astype(_F32) * scale)
    v += _zp(y_zero_point)
    return _saturate(v, x.dtype)


# -- integer GEMMs: QGemm, MatMulIntegerToFloat, DynamicQuantizeMatMul --------------------------


class _IntWeight:
    """An 8-bit right-hand operand shifted by its (per-tensor or per-column) zero point."""

    def __init__(self, b: np.ndarray, zero_point: np.ndarray | None) -> None:
        zp = None if zero_point is None else np.asarray(zero_point)
        if zp is not None and zp.size > 1:
            zp = zp.reshape(-1)
        self.shifted, self.bound = q._shifted(b, zp)
        self.f32 = self.shifted.astype(_F32)

    def product(self, a_shifted: np.ndarray, a_bound: float) -> np.ndarray:
        """The exact integer product ``a_shifted @ b_shifted`` as float32 or float64."""
        cdt = q._product_dtype(self.shifted.shape[-2], a_bound, self.bound, False)
        b = self.f32 if cdt == _F32 else self.shifted
        return np.matmul(a_shifted.astype(cdt, copy=False), b)


def _weight_factory(ctx: Any, b_index: int, zp_index: int, transform: Callable[[np.ndarray], np.ndarray] = lambda b: b):
    """The packed constant weight of an integer GEMM, or None when B or its zero point vary."""
    const = ctx.constants
    want_y = ctx.node is None or bool(ctx.node.outputs and ctx.node.outputs[0])
    names = list(ctx.node.inputs) if ctx.node is not None else []
    zp_given = zp_index < len(names) and bool(names[zp_index])
    if b_index in const and (zp_index in const or not zp_given):
        return _IntWeight(transform(const[b_index]), const.get(zp_index))
    return None


def _float_output(acc: np.ndarray, multiplier: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    """``float32(acc) * multiplier (+ bias)``, MLAS's scale-bias output processor."""
    y = acc.astype(_F32, copy=False) * multiplier
    if bias is not None:
        y += bias.astype(_F32, copy=False)
    return y


@kernel("QGemm", since=1, domain=_MS, dtypes={0: _Q8, 3: _Q8}, factory=True)
def make_qgemm(ctx: Any, *, alpha: float = 1.0, transA: int = 0, transB: int = 0) -> Callable[..., np.ndarray]:
    """com.microsoft QGemm: alpha (A - a_zp)(B - b_zp) a_s b_s + C, float output or requantized
    to (y_scale, y_zero_point); C is int32, in units of ``a_s b_s`` (times alpha)."""
    packed = _weight_factory(ctx, 3, 5, lambda b: b.T if transB else b)

    def run(a, a_scale, a_zero_point, b, b_scale, b_zero_point=None, c=None, y_scale=None, y_zero_point=None, /):
        w = packed or _IntWeight(b.T if transB else b, b_zero_point)
        a_s, a_bound = q._shifted(a.T if transA else a, a_zero_point)
        acc = w.product(a_s, a_bound)
        if c is not None:
            acc = acc + c.astype(acc.dtype)
        # onnxruntime's ComputeOutputScale: alpha * a_scale * b_scale[i] (/ y_scale)
        multiplier = np.float32(alpha) * _scalar(a_scale) * np.asarray(b_scale, _F32).reshape(-1)
        if y_scale is None:
            return _float_output(acc, multiplier, None)
        multiplier = multiplier / _scalar(y_scale)
        out = y_zero_point.dtype if y_zero_point is not None else a.dtype
        return q._requantize(acc, multiplier, y_zero_point, out)

    return run


@kernel("MatMulIntegerToFloat", since=1, domain=_MS, dtypes={0: _Q8, 1: _Q8}, factory=True)
def make_matmul_integer_to_float(ctx: Any) -> Callable[..., np.ndarray]:
    """com.microsoft MatMulIntegerToFloat: (A - a_zp)(B - b_zp) a_s b_s + bias, in float.

    A's scale and zero point are per tensor; B's per tensor or per column.
    """
    packed = _weight_factory(ctx, 1, 5)

    def run(a, b, a_scale, b_scale, a_zero_point=None, b_zero_point=None, bias=None, /):
        w = packed or _IntWeight(b, b_zero_point)
        a_zp = None if a_zero_point is None else np.asarray(a_zero_point).reshape(-1)[0]
        a_s, a_bound = q._shifted(a, a_zp)
        multiplier = _scalar(a_scale) * np.asarray(b_scale, _F32).reshape(-1)
        y = _float_output(w.product(a_s, a_bound), multiplier, bias)
        return y.astype(a_scale.dtype, copy=False)

    return run


@kernel("DynamicQuantizeMatMul", since=1, domain=_MS, dtypes={0: (np.float32,), 1: _Q8}, factory=True)
def make_dynamic_quantize_matmul(ctx: Any) -> Callable[..., np.ndarray]:
    """com.microsoft DynamicQuantizeMatMul: A quantized to uint8 from its range (as by
    DynamicQuantizeLinear), integer product with B, scaled back to float (+ bias)."""
    packed = _weight_factory(ctx, 1, 3)

    def run(a, b, b_scale, b_zero_point=None, bias=None, /):
        w = packed or _IntWeight(b, b_zero_point)
        a_q, a_scale, a_zero_point = q.dynamic_quantize_linear(a)
        a_s, a_bound = q._shifted(a_q, a_zero_point)
        multiplier = a_scale * np.asarray(b_scale, _F32).reshape(-1)
        return _float_output(w.product(a_s, a_bound), multiplier, bias)

    return run


# -- MatMulNBits --------------------------------------------------------------------------------


def _unpack_bits(packed: np.ndarray, bits: int, count: int) -> np.ndarray:
    """Little-end-first ``bits``-wide fields of the uint8 rows of ``packed``, ``count`` per row."""
    per_byte = 8 // bits
    shifts = np.arange(per_byte, dtype=np.uint8) * bits
    fields = (packed[..., None] >> shifts) & np.uint8((1 << bits) - 1)
    return fields.reshape(*packed.shape[:-1], -1)[..., :count]


def _dequantize_nbits(
    b: np.ndarray,
    scales: np.ndarray,
    zero_points: np.ndarray | None,
    g_idx: np.ndarray | None,
    *,
    k: int,
    n: int,
    bits: int,
    block_size: int,
    dtype: np.dtype,
) -> np.ndarray:
    """The ``[K, N]`` weight of MatMulNBits: ``(q - zero_point) * scale`` per block of K."""
    if bits not in (2, 4, 8):
        raise InvalidArgument(f"MatMulNBits: bits must be 2, 4 or 8, got {bits}")
    blocks = -(-k // block_size)
    blob = block_size * bits // 8
    if b.size != n * blocks * blob:
        raise InvalidArgument(f"MatMulNBits: B has shape {b.shape}, expected {(n, blocks, blob)}")
    values = _unpack_bits(np.asarray(b, np.uint8).reshape(n, blocks, blob), bits, block_size)
    values = values.reshape(n, blocks * block_size)[:, :k].astype(dtype)  # [N, K]
    scale = np.asarray(scales, dtype).reshape(n, blocks)
    if zero_points is None:
        zp = np.full((n, blocks), 1 << (bits - 1), dtype)
    elif zero_points.dtype == np.uint8:
        per_row = -(-blocks * bits // 8)
        zp = _unpack_bits(zero_points.reshape(n, per_row), bits, blocks).astype(dtype)
    else:
        zp = np.asarray(zero_points, dtype).reshape(n, blocks)
    block_of = np.arange(k) // block_size if g_idx is None else np.asarray(g_idx, np.int64).reshape(-1)
    if block_of.shape != (k,) or (block_of.size and (block_of.min() < 0 or block_of.max() >= blocks)):
        raise InvalidArgument(f"MatMulNBits: g_idx must give a block index below {blocks} for each of K={k} rows")
    w = (values - zp[:, block_of]) * scale[:, block_of]
    return np.ascontiguousarray(w.T)


@kernel("MatMulNBits", since=1, domain=_MS, dtypes={0: (np.float16, np.float32, np.float64)}, factory=True)
def make_matmul_nbits(
    ctx: Any,
    *,
    K: int = 0,
    N: int = 0,
    bits: int = 4,
    block_size: int = 0,
    accuracy_level: int = 0,
    weight_prepacked: int = 0,
) -> Callable[..., np.ndarray]:
    """com.microsoft MatMulNBits: A @ dequantize(B)^T + bias with 2/4/8-bit blocked weights.

    The weight is unpacked and dequantized to a ``[K, N]`` float matrix once when B, scales
    and zero points are constant (an n-bit GEMM has no numpy form, so the constant costs
    float memory). ``accuracy_level`` asks onnxruntime to compute in lower precision; this
    kernel always computes in float32.
    """
    if K <= 0 or N <= 0 or block_size < 16 or block_size & (block_size - 1):
        raise InvalidArgument(
            f"MatMulNBits: needs positive K and N and a power-of-two block_size >= 16, got {K}, {N}, {block_size}"
        )
    if weight_prepacked:
        raise NotImplemented("MatMulNBits: weights prepacked for another execution provider are not supported")
    const = ctx.constants
    want_y = ctx.node is None or bool(ctx.node.outputs and ctx.node.outputs[0])
    names = list(ctx.node.inputs) if ctx.node is not None else []
    given = [i < len(names) and bool(names[i]) for i in range(6)]
    in_dtype = ctx.input_dtypes[0] if ctx.input_dtypes and ctx.input_dtypes[0] is not None else _F32
    cdt = np.dtype(np.float64) if in_dtype == np.float64 else _F32
    attrs = dict(k=K, n=N, bits=bits, block_size=block_size, dtype=cdt)
    packed = None
    if all(i in const or not given[i] for i in (1, 2, 3, 4)):
        packed = _dequantize_nbits(const[1], const[2], const.get(3), const.get(4), **attrs)

    def run(a, b, scales, zero_points=None, g_idx=None, bias=None, /):
        if a.shape[-1] != K:
            raise InvalidArgument(f"MatMulNBits: A has {a.shape[-1]} columns, K is {K}")
        w = packed if packed is not None else _dequantize_nbits(b, scales, zero_points, g_idx, **attrs)
        y = np.matmul(a.astype(cdt, copy=False), w)
        if bias is not None:
            y += bias.astype(cdt, copy=False)
        return y.astype(a.dtype, copy=False)

    return run


# -- DynamicQuantizeLSTM ------------------------------------------------------------------------


class _QuantizedRecurrence:
    """``h @ R`` as onnxruntime's quantized LSTM computes it: h quantized to uint8 from its
    range at every step, an exact integer product with R, scaled back per column.

    numpy defers ``h @ self`` to ``__rmatmul__`` because ``__array_ufunc__`` is None, so the
    float LSTM cell of ``rnn`` runs unchanged around it. The cell calls it once per step.
    When Y is an output, onnxruntime reads the previous hidden state from Y, where a batch
    entry whose sequence has ended is zero: ``idle_zero`` makes such entries enter the
    range as zeros (``lens`` gives the lengths); otherwise they keep their last state.
    """

    __array_ufunc__ = None

    def __init__(self, weight: _IntWeight, scale: np.ndarray, lens: np.ndarray | None, idle_zero: bool) -> None:
        self.weight = weight
        self.scale = scale
        self.lens = lens if idle_zero else None
        self.step = 0

    def __rmatmul__(self, h: np.ndarray) -> np.ndarray:
        if self.lens is not None and self.step:
            h = np.where((self.lens < self.step)[:, None], np.float32(0), h)
        self.step += 1
        return _dynamic_product(h, self.weight, self.scale)


def _dynamic_product(x: np.ndarray, weight: _IntWeight, scale: np.ndarray) -> np.ndarray:
    x_q, x_scale, x_zero_point = q.dynamic_quantize_linear(x)
    x_s, bound = q._shifted(x_q, x_zero_point)
    return _float_output(weight.product(x_s, bound), x_scale * scale, None)


def _per_direction(v: np.ndarray, d: int, nd: int) -> np.ndarray:
    """Direction ``d``'s scale or zero point: per tensor (``[nd]``) or per column (``[nd, 4H]``)."""
    v = np.asarray(v)
    return v.reshape(nd, -1)[d]


_LSTM_TYPES = {0: (np.float32,), 1: _Q8, 2: _Q8}


@kernel("DynamicQuantizeLSTM", since=1, domain=_MS, dtypes=_LSTM_TYPES, factory=True, multi_output=True)
def make_dynamic_quantize_lstm(
    ctx: Any,
    *,
    activation_alpha: list[float] | None = None,
    activation_beta: list[float] | None = None,
    activations: list[str] | None = None,
    clip: float | None = None,
    direction: str = "forward",
    hidden_size: int | None = None,
    input_forget: int = 0,
) -> Callable[..., tuple[np.ndarray, ...]]:
    """com.microsoft DynamicQuantizeLSTM: LSTM with 8-bit W ``[D, input, 4H]`` and R ``[D, H, 4H]``.

    As in onnxruntime, X (all steps at once) and each step's hidden state are quantized to
    uint8 from their range before the integer products; the gate math is ``rnn``'s LSTM cell.
    """
    direction = direction.decode() if isinstance(direction, bytes) else direction
    nd = rnn._num_directions(direction)
    acts = rnn._activations(activations, activation_alpha, activation_beta, ("Sigmoid", "Tanh", "Tanh"), nd, _F32)
    clipper = rnn._clipper(clip)
    const = ctx.constants
    want_y = ctx.node is None or bool(ctx.node.outputs and ctx.node.outputs[0])

    def weights(index: int, zp_index: int, value: np.ndarray, zero_point: np.ndarray | None) -> list[_IntWeight]:
        """Per direction, W or R shifted by its zero point (packed once when constant)."""
        if index in packed and (zp_index in const or zero_point is None):
            return packed[index]
        zps = [None if zero_point is None else _per_direction(zero_point, d, nd) for d in range(nd)]
        return [_IntWeight(value[d], zps[d]) for d in range(nd)]

    packed: dict[int, list[_IntWeight]] = {}
    for index, zp_index in ((1, 9), (2, 11)):
        if index in const and zp_index in const:
            packed[index] = weights(index, zp_index, const[index], const[zp_index])

    def run(x, w, r, b=None, sequence_lens=None, initial_h=None, initial_c=None, p=None,
            w_scale=None, w_zero_point=None, r_scale=None, r_zero_point=None, /):
        steps, batch, input_size = x.shape
        hidden = r.shape[1]
        if w.shape != (nd, input_size, 4 * hidden) or r.shape != (nd, hidden, 4 * hidden):
            raise InvalidArgument(f"DynamicQuantizeLSTM: W {w.shape} and R {r.shape} do not fit {nd} direction(s)")
        if hidden_size is not None and hidden != hidden_size:
            raise InvalidArgument(f"DynamicQuantizeLSTM: hidden_size={hidden_size} but R has shape {r.shape}")
        # biases and peepholes as the float LSTM packs them; W and R stay quantized
        zeros = np.zeros((nd, 4 * hidden, 1), _F32)
        pk = rnn._pack(zeros, np.zeros((nd, 4 * hidden, hidden), _F32), b, p, 4, "LSTM", _F32)
        lens = None
        if sequence_lens is not None:
            lens = np.asarray(sequence_lens, np.int64).reshape(-1)
            if (lens == steps).all():
                lens = None
        mask = None if lens is None else (np.arange(steps)[:, None] < lens[None, :])[:, :, None]
        xf = np.asarray(x, _F32).reshape(steps * batch, input_size)
        y = np.empty((steps, nd, batch, hidden), _F32)
        y_h = np.empty((nd, batch, hidden), _F32)
        y_c = np.empty((nd, batch, hidden), _F32)
        w_packed = weights(1, 9, w, w_zero_point)
        r_packed = weights(2, 11, r, r_zero_point)
        for d in range(nd):
            xw = _dynamic_product(xf, w_packed[d], _per_direction(w_scale, d, nd).astype(_F32))
            xw = xw.reshape(steps, batch, -1)
            xw += pk.bx[d]
            reverse = d == 1 or direction == "reverse"
            if reverse:
                ridx = rnn._reverse_index(lens, steps, batch)
                xw = xw[ridx]
            h0 = np.zeros((batch, hidden), _F32) if initial_h is None else np.asarray(initial_h[d], _F32)
            c0 = np.zeros((batch, hidden), _F32) if initial_c is None else np.asarray(initial_c[d], _F32)
            scale = _per_direction(r_scale, d, nd).astype(_F32)
            recurrence = _QuantizedRecurrence(r_packed[d], scale, lens, want_y)
            ys = np.empty((steps, batch, hidden), _F32)
            y_h[d], y_c[d] = rnn._lstm_cell(
                xw, h0, c0, ys, mask, recurrence, pk.extra[d], acts[d], clipper, input_forget
            )
            y[:, d] = ys[ridx] if reverse else ys
        if lens is not None and not lens.all():
            y_h[:, lens == 0] = 0
            y_c[:, lens == 0] = 0
        return (y, y_h, y_c)[: ctx.n_outputs]

    return run
