"""onnxruntime's contrib attention ops: Attention, MultiHeadAttention, RotaryEmbedding and
GroupQueryAttention (com.microsoft), with onnxruntime's CPU semantics.

Scores, softmax and products run in float32 (float64 for double inputs) and are cast back.
Attention and MultiHeadAttention fold every mask into one additive ``[B, S, T]`` term the way
onnxruntime's ``PrepareMask`` does: a masked key adds ``mask_filter_value`` (-10000 by
default, so a fully masked row is uniform rather than empty) and a future key under
``unidirectional`` is set to the lowest float. GroupQueryAttention masks with -inf: its keys
outside the causal window, the local window or the batch entry's length get probability 0.
Packed inputs are split into views; grouped K/V heads are shared, never repeated.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ortcore.errors import InvalidArgument, NotImplemented
from ortcore_cpu.ops.nn import attention as onnx_attention
from ortcore_cpu.registry import kernel

_MS = "com.microsoft"
_FLOAT = (np.float16, np.float32, np.float64)


def _ftype(dtype: np.dtype) -> np.dtype:
    return np.dtype(np.float64) if dtype == np.float64 else np.dtype(np.float32)


def _heads(x: np.ndarray, num_heads: int, what: str) -> np.ndarray:
    """``[B, S, N*H]`` -> ``[B, N, S, H]``."""
    b, s, hidden = x.shape
    if hidden % num_heads:
        raise InvalidArgument(f"{what}: hidden size {hidden} is not divisible by num_heads {num_heads}")
    return x.reshape(b, s, num_heads, hidden // num_heads).transpose(0, 2, 1, 3)


def _merge_heads(x: np.ndarray) -> np.ndarray:
    """``[B, N, S, H]`` -> ``[B, S, N*H]``."""
    b, n, s, h = x.shape
    return x.transpose(0, 2, 1, 3).reshape(b, s, n * h)


# -- Attention / MultiHeadAttention ------------------------------------------------------------


def _mask(
    mask_index: np.ndarray | None,
    batch: int,
    seq: int,
    past: int,
    total: int,
    causal: bool,
    filter_value: float,
    ftype: np.dtype,
    op: str,
) -> np.ndarray | None:
    """onnxruntime's ``PrepareMask``: the additive ``[B, S, T]`` mask, or None without one.

    Masked keys get ``filter_value``; with ``causal`` the future keys are set (not added) to
    the lowest float.
    """
    if mask_index is None and not causal:
        return None
    fv = ftype.type(filter_value)
    zero = ftype.type(0)
    if mask_index is None:
        mask = np.zeros((batch, seq, total), ftype)
    elif mask_index.ndim == 3:
        if mask_index.shape != (batch, seq, total):
            raise InvalidArgument(f"{op}: 3-D mask has shape {mask_index.shape}, expected {(batch, seq, total)}")
        mask = np.where(mask_index > 0, zero, fv)
    elif mask_index.ndim == 2:
        if mask_index.shape != (batch, total):
            raise InvalidArgument(f"{op}: 2-D mask has shape {mask_index.shape}, expected {(batch, total)}")
        mask = np.broadcast_to(np.where(mask_index > 0, zero, fv)[:, None, :], (batch, seq, total))
    elif mask_index.ndim == 1 and mask_index.shape[0] >= batch:
        # (B) key lengths or (2B) ends then starts; of the (3B + 2) layout the CPU reads the
        # first B values as key lengths
        cols = np.arange(total)
        end = mask_index[:batch].astype(np.int64)[:, None]
        masked = cols >= end  # right-side padding
        if mask_index.shape[0] == 2 * batch:  # left-side padding: start positions follow
            start = np.minimum(mask_index[batch:].astype(np.int64), total)[:, None]
            masked |= cols < start
        mask = np.broadcast_to(np.where(masked, fv, zero)[:, None, :], (batch, seq, total))
    else:
        raise NotImplemented(f"{op}: mask of shape {mask_index.shape} is not supported on CPU")
    if causal:
        future = np.arange(total)[None, :] > np.arange(seq)[:, None] + past
        future[-1] = False  # onnxruntime leaves the last query row unmasked (it matters when S < L)
        mask = np.where(future, np.finfo(ftype).min, mask)
    return mask


def _attend(
    q: np.ndarray,
    k: np.ndarray,
    v: np.ndarray,
    scale: float,
    mask: np.ndarray | None,
    attention_bias: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray]:
    """softmax(scale * Q K^T + mask + bias) V on ``[B, N, S|T, H]`` heads.

    Returns the ``[B, S, N*H_v]`` output and the scaled, masked scores.
    """
    ftype = q.dtype
    scores = np.matmul(q, k.swapaxes(-1, -2))
    scores *= ftype.type(scale)
    if mask is not None:
        scores += mask[:, None]
    if attention_bias is not None:
        scores += attention_bias.astype(ftype, copy=False)
    probs = onnx_attention._softmax_rows(scores)
    return _merge_heads(np.matmul(probs, v)), scores


def _scale(scale: float, head_size: int) -> float:
    return scale if scale else 1.0 / np.sqrt(head_size)


def _select(results: tuple[Any, ...], n_outputs: int, op: str) -> tuple[Any, ...]:
    if any(r is None for r in results[:n_outputs]):
        raise InvalidArgument(f"{op}: an optional output was asked for that these inputs cannot produce")
    return results[:n_outputs]


@kernel("Attention", since=1, domain=_MS, dtypes={0: _FLOAT}, factory=True, multi_output=True)
def make_attention(
    ctx: Any,
    *,
    num_heads: int = 0,
    qkv_hidden_sizes: list[int] | None = None,
    unidirectional: int = 0,
    scale: float = 0.0,
    mask_filter_value: float = -10000.0,
    do_rotary: int = 0,
    past_present_share_buffer: int = 0,
    rotary_embedding_dim: int = 0,
) -> Callable[..., tuple[np.ndarray, ...]]:
    """com.microsoft Attention: self-attention with the Q/K/V projections packed in one weight.

    ``weights`` is ``[D_in, D_q + D_k + D_v]``; ``past``/``present`` are ``[2, B, N, P|T, H]``.
    A constant weight (and bias) is converted once; the projection is one GEMM.
    """
    if num_heads <= 0:
        raise InvalidArgument("Attention: num_heads must be positive")
    if do_rotary or past_present_share_buffer:
        raise NotImplemented("Attention: do_rotary and past_present_share_buffer are not supported on CPU")
    n_outputs = ctx.n_outputs
    in_dtype = ctx.input_dtypes[0] if ctx.input_dtypes and ctx.input_dtypes[0] is not None else np.dtype(np.float32)
    ftype = _ftype(in_dtype)
    w_const, b_const = ctx.constants.get(1), ctx.constants.get(2)
    packed_w = None if w_const is None else np.ascontiguousarray(w_const, dtype=ftype)
    packed_b = None if b_const is None else np.asarray(b_const, dtype=ftype)

    def run(x, weights, bias=None, mask_index=None, past=None, attention_bias=None, past_sequence_length=None, /):
        ft = _ftype(x.dtype)
        w = packed_w if packed_w is not None and packed_w.dtype == ft else weights.astype(ft, copy=False)
        sizes = list(qkv_hidden_sizes) if qkv_hidden_sizes else [w.shape[1] // 3] * 3
        if len(sizes) != 3 or sum(sizes) != w.shape[1] or sizes[0] != sizes[1]:
            raise InvalidArgument(f"Attention: qkv_hidden_sizes {sizes} do not fit weights {weights.shape}")
        batch, seq, _ = x.shape
        qkv = np.matmul(x.astype(ft, copy=False), w)
        if bias is not None:
            qkv += packed_b if packed_b is not None and packed_b.dtype == ft else bias.astype(ft, copy=False)
        q = _heads(qkv[..., : sizes[0]], num_heads, "Attention Q")
        k = _heads(qkv[..., sizes[0] : sizes[0] + sizes[1]], num_heads, "Attention K")
        v = _heads(qkv[..., sizes[0] + sizes[1] :], num_heads, "Attention V")
        past_len = 0
        if past is not None:
            past_len = past.shape[3]
            k = np.concatenate([past[0].astype(ft, copy=False), k], axis=2)
            v = np.concatenate([past[1].astype(ft, copy=False), v], axis=2)
        total = past_len + seq
        mask = _mask(mask_index, batch, seq, past_len, total, bool(unidirectional) and seq > 1,
                     mask_filter_value, ft, "Attention")
        out, _ = _attend(q, k, v, _scale(scale, q.shape[-1]), mask, attention_bias)
        present = None
        if n_outputs > 1 and k.shape == v.shape:
            present = np.stack([k, v]).astype(x.dtype, copy=False)
        return _select((out.astype(x.dtype, copy=False), present), n_outputs, "Attention")

    return run


def _project(
    x: np.ndarray, bias: np.ndarray | None, offset: int, num_heads: int, ft: np.dtype, what: str
) -> np.ndarray:
    """``[B, L, D]`` (+ its slice of the packed bias) -> ``[B, N, L, H]``."""
    x = x.astype(ft, copy=False)
    if bias is not None:
        x = x + bias[offset : offset + x.shape[-1]].astype(ft, copy=False)
    return _heads(x, num_heads, what)


@kernel("MultiHeadAttention", since=1, domain=_MS, dtypes={0: _FLOAT}, factory=True, multi_output=True)
def make_multi_head_attention(
    ctx: Any,
    *,
    num_heads: int = 0,
    unidirectional: int = 0,
    scale: float = 0.0,
    mask_filter_value: float = -10000.0,
) -> Callable[..., tuple[np.ndarray, ...]]:
    """com.microsoft MultiHeadAttention: self or cross attention on projected Q, K, V.

    Q/K/V come separately ``[B, S|L, D]``, as packed QKV ``[B, S, N, 3, H]`` or packed KV
    ``[B, L, N, 2, H]``, or K/V already split into heads ``[B, N, L, H]`` (then no bias and no
    past). The bias ``[D_q + D_k + D_v]`` is added before the heads are split.
    """
    if num_heads <= 0:
        raise InvalidArgument("MultiHeadAttention: num_heads must be positive")
    n_outputs = ctx.n_outputs
    op = "MultiHeadAttention"

    def run(query, key=None, value=None, bias=None, key_padding_mask=None, attention_bias=None,
            past_key=None, past_value=None, past_sequence_length=None, cache_indirection=None, /):
        if cache_indirection is not None or past_sequence_length is not None:
            raise NotImplemented(f"{op}: past_sequence_length and cache_indirection (shared buffers) are not supported")
        ft = _ftype(query.dtype)
        if query.ndim == 5:  # packed QKV [B, S, N, 3, H]
            b, s, n, _, h = query.shape
            query, key, value = (query[:, :, :, i].reshape(b, s, n * h) for i in range(3))
        elif key is not None and key.ndim == 5:  # packed KV [B, L, N, 2, H]
            b, l_, n, _, h = key.shape
            key, value = (key[:, :, :, i].reshape(b, l_, n * h) for i in range(2))
        if key is None or value is None:
            raise InvalidArgument(f"{op}: key and value are required unless the query packs them")
        batch, seq, d_q = query.shape
        q = _project(query, bias, 0, num_heads, ft, op)
        if key.ndim == 4:  # keys and values already in [B, N, L, H]
            if bias is not None or past_key is not None:
                raise InvalidArgument(f"{op}: key/value in BNSH layout take no bias and no past")
            k, v = key.astype(ft, copy=False), value.astype(ft, copy=False)
        else:
            k = _project(key, bias, d_q, num_heads, ft, op)
            v = _project(value, bias, d_q + key.shape[-1], num_heads, ft, op)
        if (past_key is None) != (past_value is None):
            raise InvalidArgument(f"{op}: past_key and past_value must be given together")
        past_len = 0
        if past_key is not None:
            past_len = past_key.shape[2]
            k = np.concatenate([past_key.astype(ft, copy=False), k], axis=2)
            v = np.concatenate([past_value.astype(ft, copy=False), v], axis=2)
        total = k.shape[2]
        mask = _mask(key_padding_mask, batch, seq, past_len, total, bool(unidirectional) and seq > 1,
                     mask_filter_value, ft, op)
        out, qk = _attend(q, k, v, _scale(scale, q.shape[-1]), mask, attention_bias)
        dtype = query.dtype
        results = (out, k, v, qk)
        return tuple(r.astype(dtype, copy=False) for r in results[:n_outputs])

    return run


# -- RotaryEmbedding ---------------------------------------------------------------------------


def _rotary_positions(position_ids: np.ndarray, batch: int, seq: int) -> np.ndarray:
    """``[B, S]`` positions from onnxruntime's two formats: one start offset, or one per token."""
    pos = np.asarray(position_ids, dtype=np.int64)
    if pos.size == 1:
        return np.broadcast_to(pos.reshape(1, 1) + np.arange(seq), (batch, seq))
    if pos.shape != (batch, seq):
        raise InvalidArgument(f"RotaryEmbedding: position_ids of shape {pos.shape}, expected (1,) or {(batch, seq)}")
    return pos


def rotate(
    x: np.ndarray,
    positions: np.ndarray,
    cos_cache: np.ndarray,
    sin_cache: np.ndarray,
    *,
    interleaved: int,
) -> np.ndarray:
    """Rotate ``x`` ``[B, N, S, H]`` at ``positions`` ``[B, S]``; the first ``2 * cache width``
    features of each head rotate, the rest pass through."""
    if positions.size and (positions.min() < 0 or positions.max() >= cos_cache.shape[0]):
        raise InvalidArgument(f"rotary position out of range of the {cos_cache.shape[0]}-row cos/sin cache")
    dim = 2 * cos_cache.shape[-1]
    return onnx_attention.rotary_embedding(
        x, cos_cache, sin_cache, positions, interleaved=interleaved, rotary_embedding_dim=dim
    )


@kernel("RotaryEmbedding", since=1, domain=_MS, dtypes={0: _FLOAT})
def rotary_embedding(
    x: np.ndarray,
    position_ids: np.ndarray,
    cos_cache: np.ndarray,
    sin_cache: np.ndarray,
    /,
    *,
    interleaved: int = 0,
    is_packed_batching: int = 0,
    num_heads: int = 0,
    rotary_embedding_dim: int = 0,
    scale: float = 1.0,
) -> np.ndarray:
    """com.microsoft RotaryEmbedding: RoPE of ``[B, S, N*H]`` or ``[B, N, S, H]`` input.

    ``position_ids`` is one start offset ``[1]`` or ``[B, S]``; the caches are
    ``[max_position, rotary_dim / 2]``.
    """
    if is_packed_batching:
        raise NotImplemented("RotaryEmbedding: is_packed_batching is not supported")
    if rotary_embedding_dim and not num_heads:
        raise InvalidArgument("RotaryEmbedding: num_heads must be given with rotary_embedding_dim")
    half = cos_cache.shape[-1]
    if rotary_embedding_dim and rotary_embedding_dim != 2 * half:
        raise InvalidArgument(f"RotaryEmbedding: rotary_embedding_dim {rotary_embedding_dim} != 2 * cache width {half}")
    if x.ndim == 4:
        heads = x
    else:
        heads_n = num_heads or x.shape[-1] // (2 * half)
        heads = _heads(x, heads_n, "RotaryEmbedding")
    batch, _, seq, _ = heads.shape
    out = rotate(heads, _rotary_positions(position_ids, batch, seq), cos_cache, sin_cache, interleaved=interleaved)
    return out if x.ndim == 4 else _merge_heads(out)


# -- GroupQueryAttention -----------------------------------------------------------------------


def _smooth_softmax(scores: np.ndarray, sink: np.ndarray) -> np.ndarray:
    """exp(x) / (sum exp(x) + exp(sink)) over the last axis; -inf entries get 0."""
    peak = np.maximum(np.max(scores, axis=-1, keepdims=True), sink)
    e = np.exp(scores - peak)
    return e / (np.sum(e, axis=-1, keepdims=True) + np.exp(sink - peak))


@kernel("GroupQueryAttention", since=1, domain=_MS, dtypes={0: _FLOAT}, factory=True, multi_output=True)
def make_group_query_attention(
    ctx: Any,
    *,
    num_heads: int = 0,
    kv_num_heads: int = 0,
    scale: float = 0.0,
    softcap: float = 0.0,
    local_window_size: int = -1,
    do_rotary: int = 0,
    rotary_interleaved: int = 0,
    smooth_softmax: int = -1,
    qk_output: int = 0,
    causal: int = 1,
    sliding_window_cache: int = 0,
    kv_cache_bit_width: int = 0,
    k_quant_type: str = "NONE",
    v_quant_type: str = "NONE",
    qk_norm_epsilon: float = 1e-6,
) -> Callable[..., tuple[np.ndarray, ...]]:
    """com.microsoft GroupQueryAttention with a BNSH KV cache (not paged, not quantized).

    Batch entry ``b`` has ``seqlens_k[b] + 1`` tokens in total. On the first prompt
    (sequence length equal to ``total_sequence_length``) the new tokens start at position 0;
    otherwise they follow the entry's ``total - S`` past tokens, copied from ``past_key``.
    The present cache is ``max(total_sequence_length, past buffer)`` long, zero past the
    entry's tokens. A query sees the keys up to its own position (all of the entry's keys
    with ``causal=0``), at most ``local_window_size`` of them counting its own. Query rows
    of a right-padded first prompt (beyond the entry's length) are left unspecified by
    onnxruntime; here they attend causally over the padded keys.
    """
    op = "GroupQueryAttention"
    if num_heads <= 0 or kv_num_heads <= 0 or num_heads % kv_num_heads:
        raise InvalidArgument(f"{op}: num_heads {num_heads} must be a positive multiple of kv_num_heads {kv_num_heads}")
    if sliding_window_cache:
        raise NotImplemented(f"{op}: sliding_window_cache is not supported")
    if qk_output not in (0, 1, 2):
        raise InvalidArgument(f"{op}: qk_output must be 0, 1 or 2")
    quantized = [t.decode() if isinstance(t, bytes) else t for t in (k_quant_type, v_quant_type)]
    if any(t != "NONE" for t in quantized) or kv_cache_bit_width:
        raise NotImplemented(f"{op}: quantized KV caches are not supported")
    n_outputs = ctx.n_outputs
    group = num_heads // kv_num_heads

    def run(query, key=None, value=None, past_key=None, past_value=None, seqlens_k=None,
            total_sequence_length=None, cos_cache=None, sin_cache=None, position_ids=None,
            attention_bias=None, head_sink=None, k_scale=None, v_scale=None, q_norm_weight=None,
            k_norm_weight=None, /):
        if any(t is not None for t in (q_norm_weight, k_norm_weight, k_scale, v_scale)):
            raise NotImplemented(f"{op}: q/k norm weights and KV cache scales are not supported on CPU")
        if seqlens_k is None or total_sequence_length is None:
            raise InvalidArgument(f"{op}: seqlens_k and total_sequence_length are required")
        ft = _ftype(query.dtype)
        batch, seq, _ = query.shape
        if key is None:  # packed QKV [B, S, (N + 2 N_kv) * H]
            head = query.shape[-1] // (num_heads + 2 * kv_num_heads)
            split = [num_heads * head, (num_heads + kv_num_heads) * head]
            query, key, value = np.split(query, split, axis=-1)
        q = _heads(query.astype(ft, copy=False), num_heads, op)
        k = _heads(key.astype(ft, copy=False), kv_num_heads, op)
        v = _heads(value.astype(ft, copy=False), kv_num_heads, op)
        head = q.shape[-1]
        lengths = np.asarray(seqlens_k).astype(np.int64).reshape(-1) + 1  # tokens per entry
        total = int(np.asarray(total_sequence_length).reshape(-1)[0])
        past_buffer = past_key.shape[2] if past_key is not None else 0
        first_prompt = seq > 1 and seq == total
        past_lens = np.zeros(batch, np.int64) if first_prompt else lengths - seq
        if (past_lens < 0).any() or (past_lens > past_buffer).any():
            raise InvalidArgument(f"{op}: seqlens_k {lengths - 1} do not fit sequence {seq}, past buffer {past_buffer}")
        present_len = max(total, past_buffer)
        rows = past_lens[:, None] + np.arange(seq)  # [B, S] positions of the new tokens
        if rows.max() >= present_len:
            raise InvalidArgument(f"{op}: new tokens exceed the present cache of length {present_len}")

        if do_rotary:
            if cos_cache is None or sin_cache is None:
                raise InvalidArgument(f"{op}: do_rotary needs cos_cache and sin_cache")
            pos = rows if position_ids is None else _rotary_positions(position_ids, batch, seq)
            q = rotate(q, pos, cos_cache, sin_cache, interleaved=rotary_interleaved).astype(ft, copy=False)
            k = rotate(k, pos, cos_cache, sin_cache, interleaved=rotary_interleaved).astype(ft, copy=False)

        # the present caches: each entry's past tokens, then its new ones, zeros after
        cache_dtype = query.dtype
        presents = []
        entries = np.arange(batch)[:, None]
        keep = (np.arange(past_buffer)[None, :] < past_lens[:, None])[:, None, :, None]
        for past, new in ((past_key, k), (past_value, v)):
            present = np.zeros((batch, kv_num_heads, present_len, head), ft)
            if past is not None:
                present[:, :, :past_buffer] = np.where(keep, past.astype(ft, copy=False), 0)
            present[entries, :, rows] = new.transpose(0, 2, 1, 3)  # [B, S, N_kv, H]
            presents.append(present)
        pk, pv = presents

        scores = np.matmul(q.reshape(batch, kv_num_heads, group * seq, head), pk.swapaxes(-1, -2))
        scores = scores.reshape(batch, num_heads, seq, present_len)
        scores *= ft.type(_scale(scale, head))
        qk_raw = scores.copy() if qk_output == 1 else None
        if softcap > 0:
            scores = np.tanh(scores / ft.type(softcap)) * ft.type(softcap)
        if attention_bias is not None:
            bias = attention_bias.astype(ft, copy=False)
            width = min(bias.shape[-1], present_len)
            scores[..., :width] += bias[..., :width]
        cols = np.arange(present_len)[None, None, :]
        allowed = cols < lengths[:, None, None]  # [B, S, T]
        position = rows[:, :, None]  # absolute position of each query
        if causal:
            allowed = allowed & (cols <= position)
        if local_window_size > 0:
            allowed = allowed & (cols > position - local_window_size)
        scores = np.where(allowed[:, None], scores, ft.type(-np.inf))
        if head_sink is not None or smooth_softmax == 1:
            sink = np.zeros((1, num_heads, 1, 1), ft) if head_sink is None else head_sink.astype(ft)
            sink = sink.reshape(1, -1, 1, 1)
            probs = _smooth_softmax(scores, sink)
        else:
            probs = onnx_attention._softmax_rows(scores)
        out = np.matmul(probs.reshape(batch, kv_num_heads, group * seq, present_len), pv)
        out = _merge_heads(out.reshape(batch, num_heads, seq, head))
        qk = qk_raw if qk_output == 1 else probs if qk_output == 2 else None
        results = (out, pk, pv, qk)
        return tuple(None if r is None else r.astype(cache_dtype, copy=False) for r in results[:n_outputs])

    return run
