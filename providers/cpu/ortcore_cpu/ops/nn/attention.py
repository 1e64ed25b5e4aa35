"""Attention and its relatives: Attention (23/24/25), RotaryEmbedding, SwiGLU, TensorScatter,
LinearAttention, CausalConvWithState and ai.onnx.preview FlexAttention.

Attention runs every step in its input type, as the spec's function body does (the
default softmax precision is the input's), except that 16-bit matmuls accumulate in
float32 through BLAS; the other ops compute in float32 (float64 for double) and cast
back. Grouped-query attention never materialises repeated K/V heads: Q is viewed as
[B, H_kv, group * S_q, D], one GEMM per K/V head. Masks (boolean, float, causal,
window, padding) are folded into one additive bias of broadcastable shape; a query
row whose bias is -inf everywhere gives a zero output row, as the spec's errata asks.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ortcore.dtypes import np_dtype
from ortcore_cpu.registry import kernel


def _ftype(dtype: np.dtype) -> np.dtype:
    return np.dtype(np.float64) if dtype == np.float64 else np.dtype(np.float32)


def _f(x: np.ndarray, ftype: np.dtype) -> np.ndarray:
    return x.astype(ftype, copy=False)


# --- Attention ------------------------------------------------------------------------


def _heads(x: np.ndarray, num_heads: int | None, what: str) -> np.ndarray:
    """[B, S, H*D] -> [B, H, S, D]; 4-D inputs pass through."""
    if x.ndim == 4:
        return x
    if x.ndim != 3 or not num_heads or x.shape[2] % num_heads:
        raise ValueError(f"Attention: {what} of shape {x.shape} needs 4-D input or 3-D with a head count dividing its last axis")
    b, s, hidden = x.shape
    return x.reshape(b, s, num_heads, hidden // num_heads).transpose(0, 2, 1, 3)


def _allowed_bias(allowed: np.ndarray, dtype: np.dtype) -> np.ndarray:
    return np.where(allowed, np.zeros((), dtype), np.asarray(-np.inf, dtype))


def _softmax_rows(scores: np.ndarray) -> np.ndarray:
    """Softmax over the last axis in the scores' own type; an all -inf row gives zeros, not NaN."""
    zero = np.zeros((), scores.dtype)
    peak = np.max(scores, axis=-1, keepdims=True)
    peak = np.where(np.isneginf(peak), zero, peak)
    e = np.exp(scores - peak)
    total = np.sum(e, axis=-1, keepdims=True)
    return e / np.where(total == zero, np.ones((), scores.dtype), total)


def _matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a @ b in the operands' type; 16-bit floats accumulate in float32 and round once, as numpy
    does for float16 (and onnx.reference for bfloat16), but through BLAS."""
    if a.dtype.itemsize >= 4:
        return np.matmul(a, b)
    return np.matmul(a.astype(np.float32), b.astype(np.float32)).astype(a.dtype)


def _attention(
    n_outputs: int, q, k, v, attn_mask, past_key, past_value, nonpad_kv_seqlen, *,
    is_causal, kv_num_heads, q_num_heads, qk_matmul_output_mode, scale, softcap, softmax_precision,
    left_window_size=-1, right_window_size=-1,
):
    # Every step runs in the input type T1 (the spec's default softmax precision), so 16-bit
    # inputs round where the spec's function body rounds; only the matmuls accumulate wider.
    dtype = q.dtype
    three_d = q.ndim == 3
    if (past_key is None) != (past_value is None):
        raise ValueError("Attention: past_key and past_value must be given together")
    if nonpad_kv_seqlen is not None and past_key is not None:
        raise ValueError("Attention: nonpad_kv_seqlen cannot be combined with past_key/past_value")
    q4 = _heads(q, q_num_heads, "Q")
    k4 = _heads(k.astype(dtype, copy=False), kv_num_heads, "K")
    v4 = _heads(v.astype(dtype, copy=False), kv_num_heads, "V")
    if past_key is not None:
        k4 = np.concatenate([past_key.astype(dtype, copy=False), k4], axis=2)
        v4 = np.concatenate([past_value.astype(dtype, copy=False), v4], axis=2)
    present_key, present_value = k4, v4
    b, hq, sq, d = q4.shape
    hkv, sk = k4.shape[1], k4.shape[2]
    if hq % hkv:
        raise ValueError(f"Attention: {hq} query heads are not a multiple of {hkv} key/value heads")
    group = hq // hkv
    root = np.asarray(np.sqrt(1 / np.sqrt(d) if scale is None else scale), dtype)  # Q and K each get sqrt(scale)
    # [B, Hkv, group * Sq, D] @ [B, Hkv, D, Sk] -> [B, Hq, Sq, Sk]: K/V heads are shared, not
    # copied, and each K/V head is one large GEMM
    scores = _matmul((q4 * root).reshape(b, hkv, group * sq, d), (k4 * root).swapaxes(-1, -2))
    scores = scores.reshape(b, hq, sq, sk)
    want_qk = n_outputs > 3
    qk_out = scores if want_qk and qk_matmul_output_mode == 0 else None
    if softcap and softcap > 0:
        cap = np.asarray(softcap, dtype)
        scores = np.tanh(scores / cap) * cap
    if want_qk and qk_matmul_output_mode == 1:
        qk_out = scores

    # One additive bias of broadcastable shape from every mask source.
    bias = None
    if attn_mask is not None:
        mask = attn_mask
        if mask.shape[-1] < sk:  # a shorter mask is padded with "not allowed"
            pad = [(0, 0)] * (mask.ndim - 1) + [(0, sk - mask.shape[-1])]
            mask = np.pad(mask, pad, constant_values=False if mask.dtype == np.bool_ else -np.inf)
        bias = _allowed_bias(mask, dtype) if mask.dtype == np.bool_ else mask.astype(dtype, copy=False)
    if nonpad_kv_seqlen is not None:  # external cache: the valid keys before each batch's queries
        lengths = np.asarray(nonpad_kv_seqlen).astype(np.int64).reshape(-1, 1, 1, 1)
        offset = lengths - sq
    else:
        offset = np.int64(past_key.shape[2] if past_key is not None else 0)
    cols = np.arange(sk).reshape(1, sk)
    position = np.arange(sq).reshape(sq, 1) + offset  # absolute query positions
    allowed = None
    if is_causal:
        allowed = cols <= position
    if left_window_size >= 0:
        inside = cols >= position - left_window_size
        allowed = inside if allowed is None else allowed & inside
    if right_window_size >= 0:
        inside = cols <= position + right_window_size
        allowed = inside if allowed is None else allowed & inside
    if nonpad_kv_seqlen is not None:
        valid = cols < lengths
        allowed = valid if allowed is None else allowed & valid
    if allowed is not None:
        structural = _allowed_bias(allowed, dtype)
        bias = structural if bias is None else bias + structural
    if bias is not None:
        scores = scores + bias
    if want_qk and qk_matmul_output_mode == 2:
        qk_out = scores

    precision = dtype if softmax_precision is None else np_dtype(softmax_precision)
    probs = _softmax_rows(scores.astype(precision, copy=False))
    if bias is not None:  # rows the bias masks entirely attend nothing: zero, not NaN
        dead = np.isneginf(np.max(bias, axis=-1, keepdims=True))
        if dead.any():
            probs = np.where(dead, np.zeros((), precision), probs)
    probs = probs.astype(dtype, copy=False)
    if want_qk and qk_matmul_output_mode == 3:
        qk_out = probs
    y = _matmul(probs.reshape(b, hkv, group * sq, sk), v4)  # [B, Hkv, group * Sq, Dv]
    y = y.reshape(b, hq, sq, -1)
    if three_d:
        y = y.transpose(0, 2, 1, 3).reshape(b, sq, -1)
    results = (y, present_key, present_value, qk_out)
    return results[:n_outputs]


def _attention_factory(ctx: Any, attrs: dict[str, Any]) -> Any:
    n_outputs = ctx.n_outputs
    if attrs["qk_matmul_output_mode"] not in (0, 1, 2, 3):
        raise ValueError(f"Attention: qk_matmul_output_mode must be 0..3, got {attrs['qk_matmul_output_mode']}")

    def run(q, k, v, attn_mask=None, past_key=None, past_value=None, nonpad_kv_seqlen=None, /):
        return _attention(n_outputs, q, k, v, attn_mask, past_key, past_value, nonpad_kv_seqlen, **attrs)

    return run


@kernel("Attention", since=23, factory=True, multi_output=True)
def attention_23(
    ctx, /, *, is_causal=0, kv_num_heads=None, q_num_heads=None, qk_matmul_output_mode=0,
    scale=None, softcap=0.0, softmax_precision=None,
):
    """Attention-23: inputs Q, K, V, attn_mask, past_key, past_value."""
    attrs = dict(locals())
    attrs.pop("ctx")
    run = _attention_factory(ctx, attrs)
    return lambda q, k, v, attn_mask=None, past_key=None, past_value=None, /: run(q, k, v, attn_mask, past_key, past_value)


@kernel("Attention", since=24, factory=True, multi_output=True)
def attention_24(
    ctx, /, *, is_causal=0, kv_num_heads=None, q_num_heads=None, qk_matmul_output_mode=0,
    scale=None, softcap=0.0, softmax_precision=None,
):
    """Attention-24: adds nonpad_kv_seqlen (external KV cache) and shorter masks."""
    attrs = dict(locals())
    attrs.pop("ctx")
    return _attention_factory(ctx, attrs)


@kernel("Attention", since=25, factory=True, multi_output=True)
def attention_25(
    ctx, /, *, is_causal=0, kv_num_heads=None, q_num_heads=None, qk_matmul_output_mode=0,
    scale=None, softcap=0.0, softmax_precision=None, left_window_size=-1, right_window_size=-1,
):
    """Attention-25: adds left/right sliding-window bounds."""
    if left_window_size < -1 or right_window_size < -1:
        raise ValueError("Attention: window sizes must be -1 or nonnegative")
    if ctx.input_types and ctx.input_types[0] is not None and ctx.input_types[0].rank == 4 and (q_num_heads or kv_num_heads):
        raise ValueError("Attention-25: q_num_heads and kv_num_heads are for 3-D inputs only")
    attrs = dict(locals())
    attrs.pop("ctx")
    return _attention_factory(ctx, attrs)


# --- RotaryEmbedding ------------------------------------------------------------------


@kernel("RotaryEmbedding", since=23)
def rotary_embedding(x, cos_cache, sin_cache, position_ids=None, /, *, interleaved=0, num_heads=0, rotary_embedding_dim=0):
    """RotaryEmbedding-23: rotate the first rotary_embedding_dim features of each head."""
    ftype = _ftype(x.dtype)
    if x.ndim == 4:
        h = x.transpose(0, 2, 1, 3)  # [B, S, H, D]
    else:
        if not num_heads:
            raise ValueError("RotaryEmbedding: num_heads is required for 3-D input")
        b, s, hidden = x.shape
        h = x.reshape(b, s, num_heads, hidden // num_heads)
    dim = rotary_embedding_dim or h.shape[-1]
    half = dim // 2
    if position_ids is not None:
        cos, sin = cos_cache[position_ids], sin_cache[position_ids]  # [B, S, half]
    else:
        cos, sin = cos_cache, sin_cache
    if cos.shape[-1] != half or sin.shape[-1] != half:
        raise ValueError(f"RotaryEmbedding: cache last axis {cos.shape[-1]} != rotary_embedding_dim / 2 = {half}")
    cos = _f(cos, ftype)[:, :, None, :]
    sin = _f(sin, ftype)[:, :, None, :]
    rot = _f(h[..., :dim], ftype)
    x1, x2 = (rot[..., 0::2], rot[..., 1::2]) if interleaved else (rot[..., :half], rot[..., half:])
    real = cos * x1 - sin * x2
    imag = sin * x1 + cos * x2
    out = np.array(h, dtype=x.dtype)  # copy; the unrotated tail stays as is
    if interleaved:
        out[..., 0:dim:2] = real
        out[..., 1:dim:2] = imag
    else:
        out[..., :half] = real
        out[..., half:dim] = imag
    return out.transpose(0, 2, 1, 3) if x.ndim == 4 else out.reshape(x.shape)


# --- SwiGLU / TensorScatter -------------------------------------------------------------


@kernel("SwiGLU", since=28)
def swiglu(a, b, /, *, alpha=1.0):
    """SwiGLU-28: a * sigmoid(alpha * a) * b (same shapes, no broadcasting)."""
    if a.shape != b.shape:
        raise ValueError(f"SwiGLU: A {a.shape} and B {b.shape} must have the same shape")
    ftype = _ftype(a.dtype)
    af = _f(a, ftype)
    gate = af / (1 + np.exp(-ftype.type(alpha) * af))
    return (gate * _f(b, ftype)).astype(a.dtype, copy=False)


@kernel("TensorScatter", since=24)
def tensor_scatter(past_cache, update, write_indices=None, /, *, axis=-2, mode="linear"):
    """TensorScatter-24: write update into the cache along axis at each batch's write index."""
    if mode not in ("linear", "circular"):
        raise ValueError(f"TensorScatter: unknown mode {mode!r}")
    rank = past_cache.ndim
    axis = axis % rank
    if axis == 0:
        raise ValueError("TensorScatter: axis cannot be the batch axis")
    capacity, length = past_cache.shape[axis], update.shape[axis]
    if update.shape[:axis] + update.shape[axis + 1 :] != past_cache.shape[:axis] + past_cache.shape[axis + 1 :] or length > capacity:
        raise ValueError(f"TensorScatter: update shape {update.shape} does not fit cache shape {past_cache.shape}")
    batch = past_cache.shape[0]
    start = np.zeros(batch, np.int64) if write_indices is None else np.asarray(write_indices).astype(np.int64).reshape(-1)
    index = start[:, None] + np.arange(length)  # [B, S]
    if mode == "circular":
        index %= capacity
    elif length and (index.min() < 0 or index.max() >= capacity):
        raise ValueError("TensorScatter: linear mode needs 0 <= write_indices and write_indices + sequence_length <= max_sequence_length")
    shape = [batch] + [1] * (rank - 1)
    shape[axis] = length
    out = past_cache.copy()
    np.put_along_axis(out, np.broadcast_to(index.reshape(shape), update.shape), update, axis=axis)
    return out


# --- LinearAttention ------------------------------------------------------------------


@kernel("LinearAttention", since=27, factory=True, multi_output=True)
def linear_attention(ctx, /, *, chunk_size=64, kv_num_heads, q_num_heads, scale=0.0, update_rule="gated_delta"):
    """LinearAttention-27: recurrent linear / gated / delta / gated-delta attention.

    The recurrence runs token by token, each step vectorised over batch, heads and the
    [d_k, d_v] state; the state is kept in float32 whatever the input type.
    """
    if update_rule not in ("linear", "gated", "delta", "gated_delta"):
        raise ValueError(f"LinearAttention: unknown update_rule {update_rule!r}")
    if q_num_heads <= 0 or kv_num_heads <= 0 or q_num_heads % kv_num_heads:
        raise ValueError(f"LinearAttention: q_num_heads {q_num_heads} must be a positive multiple of kv_num_heads {kv_num_heads}")
    gated = update_rule in ("gated", "gated_delta")
    delta = update_rule in ("delta", "gated_delta")
    group = q_num_heads // kv_num_heads

    def run(query, key, value, past_state=None, decay=None, beta=None, /):
        if gated != (decay is not None) or delta != (beta is not None):
            raise ValueError(f"LinearAttention: update_rule {update_rule!r} needs decay={gated}, beta={delta}")
        b, t, _ = query.shape
        d_k = query.shape[-1] // q_num_heads
        d_v = value.shape[-1] // kv_num_heads
        f32 = np.float32
        q = query.astype(f32).reshape(b, t, kv_num_heads, group, d_k)
        k = key.astype(f32).reshape(b, t, kv_num_heads, d_k)
        v = value.astype(f32).reshape(b, t, kv_num_heads, d_v)
        if gated:
            per_dim = decay.shape[-1] == kv_num_heads * d_k
            if not per_dim and decay.shape[-1] != kv_num_heads:
                raise ValueError(f"LinearAttention: decay last axis {decay.shape[-1]} must be {kv_num_heads} or {kv_num_heads * d_k}")
            g = np.exp(decay.astype(f32)).reshape(b, t, kv_num_heads, d_k if per_dim else 1, 1)
        if delta:
            if beta.shape[-1] not in (kv_num_heads, 1):
                raise ValueError(f"LinearAttention: beta last axis {beta.shape[-1]} must be {kv_num_heads} or 1")
            rate = beta.astype(f32).reshape(b, t, beta.shape[-1], 1)
        if past_state is not None:
            if past_state.shape != (b, kv_num_heads, d_k, d_v):
                raise ValueError(f"LinearAttention: past_state shape {past_state.shape} != {(b, kv_num_heads, d_k, d_v)}")
            state = past_state.astype(f32)
        else:
            state = np.zeros((b, kv_num_heads, d_k, d_v), dtype=f32)
        factor = f32(scale) if scale else f32(1 / np.sqrt(d_k))
        out = np.empty((b, t, kv_num_heads, group, d_v), dtype=f32)
        for i in range(t):
            if gated:
                state = state * g[:, i]
            vi = v[:, i]
            if delta:  # v <- beta * (v - S^T k)
                vi = rate[:, i] * (vi - np.matmul(k[:, i, :, None, :], state)[:, :, 0])
            state = state + k[:, i, :, :, None] * vi[:, :, None, :]
            out[:, i] = np.matmul(q[:, i], state) * factor  # [B, Hkv, group, d_v]
        state_type = past_state.dtype if past_state is not None else query.dtype
        return out.reshape(b, t, q_num_heads * d_v).astype(query.dtype), state.astype(state_type)

    return run


# --- CausalConvWithState --------------------------------------------------------------


@kernel("CausalConvWithState", since=27, multi_output=True)
def causal_conv_with_state(x, weight, bias=None, past_state=None, /, *, activation="none"):
    """CausalConvWithState-27: depthwise causal conv1d over [carry, x]; the carry is the last k-1 steps."""
    if activation not in ("none", "silu", "swish"):
        raise ValueError(f"CausalConvWithState: unknown activation {activation!r}")
    b, c, _ = x.shape
    k = weight.shape[2]
    ftype = _ftype(x.dtype)
    carry = np.zeros((b, c, k - 1), dtype=x.dtype) if past_state is None else past_state.astype(x.dtype, copy=False)
    padded = np.concatenate([carry, x], axis=2)
    windows = np.lib.stride_tricks.sliding_window_view(_f(padded, ftype), k, axis=2)  # [B, C, L, k]
    y = np.einsum("bclk,ck->bcl", windows, _f(weight[:, 0, :], ftype))
    if bias is not None:
        y = y + _f(bias, ftype)[:, None]
    y = y.astype(x.dtype).astype(ftype)  # the conv result is rounded to T before the activation
    if activation != "none":
        y = y / (1 + np.exp(-y))
    return y.astype(x.dtype), np.ascontiguousarray(padded[:, :, padded.shape[2] - (k - 1) :])


# --- FlexAttention (ai.onnx.preview) ---------------------------------------------------


@kernel("FlexAttention", since=1, domain="ai.onnx.preview", factory=True)
def flex_attention(ctx, /, *, prob_mod=None, scale=None, score_mod=None, softmax_precision=None):
    """FlexAttention-1: softmax(score_mod(Q K^T * scale)) then prob_mod, times V; subgraphs run as plans."""
    score_plan = ctx.compile_subgraph(score_mod) if score_mod is not None else None
    prob_plan = ctx.compile_subgraph(prob_mod) if prob_mod is not None else None

    def run(q, k, v, /, *implicit):
        b, hq, sq, d = q.shape
        hkv, sk = k.shape[1], k.shape[2]
        if hq % hkv:
            raise ValueError(f"FlexAttention: {hq} query heads are not a multiple of {hkv} key/value heads")
        if softmax_precision is not None:
            ctype = np_dtype(softmax_precision)
        else:
            ctype = np.dtype(np.float64) if q.dtype == np.float64 else np.dtype(np.float32)
        ftype = np.dtype(np.float64) if np.float64 in (q.dtype, ctype) else np.dtype(np.float32)
        factor = 1 / np.sqrt(d) if scale is None else scale
        scores = np.matmul(
            (_f(q, ftype) * ftype.type(factor)).reshape(b, hkv, hq // hkv * sq, d), _f(k, ftype).swapaxes(-1, -2)
        ).reshape(b, hq, sq, sk)
        if score_plan is not None:
            scores = np.asarray(score_plan.run(scores.astype(ctype), *implicit)[0])
        probs = _softmax_rows(_f(scores.astype(ctype, copy=False), ftype))
        if prob_plan is not None:
            probs = np.asarray(prob_plan.run(probs.astype(ctype), *implicit)[0])
        probs = _f(probs.astype(ctype, copy=False), ftype)
        y = np.matmul(probs.reshape(b, hkv, hq // hkv * sq, sk), _f(v, ftype))
        return y.reshape(b, hq, sq, -1).astype(q.dtype)

    return run
