"""Attention, RotaryEmbedding, SwiGLU, TensorScatter, LinearAttention, CausalConvWithState and
FlexAttention: what the ONNX node cases leave out.

Attention over random shapes: MHA/GQA/MQA, 3-D and 4-D inputs, boolean and float masks of
every rank, causal with and without a past cache, external caches (nonpad_kv_seqlen),
sliding windows, softcap, scale and every qk_matmul_output_mode, against onnx.reference,
onnxruntime and a closed-form numpy softmax. Expected values never come from ortcore.
"""

from __future__ import annotations


import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from ortcore.testing import compare_outputs, run_onnxruntime, run_ortcore, run_reference
from ortcore.testing import single_node_model as make_model

RNG = np.random.default_rng(5)
F32 = np.float32


def check_against_reference(model, inputs, rtol=1e-4, atol=1e-5):
    actual = run_ortcore(model, inputs)
    expected = run_reference(model, inputs)
    for i, (e, a) in enumerate(zip(expected, actual)):
        compare_outputs(e, a, rtol=rtol, atol=atol, name=f"output {i}")
    return actual


# --- Attention ------------------------------------------------------------------------


def qkv(b, hq, hkv, sq, skv, d, dv, three_d, dtype=F32):
    q = RNG.standard_normal((b, hq, sq, d)).astype(dtype)
    k = RNG.standard_normal((b, hkv, skv, d)).astype(dtype)
    v = RNG.standard_normal((b, hkv, skv, dv)).astype(dtype)
    if three_d:
        q = q.transpose(0, 2, 1, 3).reshape(b, sq, hq * d)
        k = k.transpose(0, 2, 1, 3).reshape(b, skv, hkv * d)
        v = v.transpose(0, 2, 1, 3).reshape(b, skv, hkv * dv)
    return q, k, v


def closed_form_attention(q, k, v, bias, scale):
    """softmax(q k^T * scale + bias) v on 4-D inputs, K/V heads repeated for GQA."""
    group = q.shape[1] // k.shape[1]
    k, v = np.repeat(k, group, axis=1), np.repeat(v, group, axis=1)
    scores = q.astype(np.float64) @ k.astype(np.float64).swapaxes(-1, -2) * scale + bias
    scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return (scores / scores.sum(axis=-1, keepdims=True)) @ v


@pytest.mark.parametrize("heads", [(4, 4), (4, 2), (6, 1)])
@pytest.mark.parametrize("three_d", [False, True])
@pytest.mark.parametrize("mask", [None, "bool2", "bool4", "float3", "float4"])
@pytest.mark.parametrize("is_causal", [0, 1])
def test_attention_masks_and_heads(heads, three_d, mask, is_causal):
    hq, hkv = heads
    b, sq, skv, d, dv = 2, 3, 5, 8, 6
    q, k, v = qkv(b, hq, hkv, sq, skv, d, dv, three_d)
    masks = {
        None: None,
        "bool2": RNG.random((sq, skv)) < 0.7,
        "bool4": RNG.random((b, 1, sq, skv)) < 0.7,
        "float3": RNG.standard_normal((hq, sq, skv)).astype(F32),
        "float4": RNG.standard_normal((b, hq, sq, skv)).astype(F32),
    }
    inputs = {"q": q, "k": k, "v": v, "mask": masks[mask]}
    attrs = {"is_causal": is_causal}
    if three_d:
        attrs.update(q_num_heads=hq, kv_num_heads=hkv)
    for opset in (23, 24):
        model = make_model("Attention", inputs, [F32], opset=opset, **attrs)
        check_against_reference(model, inputs)


def test_attention_closed_form_gqa_float_mask():
    q, k, v = qkv(2, 6, 2, 4, 7, 16, 8, False)
    mask = RNG.standard_normal((2, 6, 4, 7)).astype(F32)
    inputs = {"q": q, "k": k, "v": v, "mask": mask}
    (actual,) = run_ortcore(make_model("Attention", inputs, [F32], opset=23, scale=0.3), inputs)
    compare_outputs(closed_form_attention(q, k, v, mask, 0.3).astype(F32), actual, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("three_d", [False, True])
@pytest.mark.parametrize("heads", [(4, 4), (4, 2)])
@pytest.mark.parametrize("mode", [0, 1, 2, 3])
def test_attention_past_present_softcap_and_qk_output(three_d, heads, mode):
    hq, hkv = heads
    b, sq, skv, past, d, dv = 2, 2, 2, 3, 4, 4
    q, k, v = qkv(b, hq, hkv, sq, skv, d, dv, three_d)
    inputs = {
        "q": q, "k": k, "v": v,
        "mask": RNG.standard_normal((sq, past + skv)).astype(F32),
        "past_key": RNG.standard_normal((b, hkv, past, d)).astype(F32),
        "past_value": RNG.standard_normal((b, hkv, past, dv)).astype(F32),
    }
    attrs = dict(is_causal=1, softcap=2.5, scale=0.7, qk_matmul_output_mode=mode)
    if three_d:
        attrs.update(q_num_heads=hq, kv_num_heads=hkv)
    model = make_model("Attention", inputs, [F32] * 4, opset=23, **attrs)
    actual = run_ortcore(model, inputs)
    expected = run_reference(model, inputs)
    names = ["Y", "present_key", "present_value", "qk_matmul_output"]
    for name, e, a in zip(names, expected, actual):
        if name == "qk_matmul_output" and mode == 0:
            # onnx.reference returns the soft-capped scores for mode 0; the spec says mode 0
            # is the raw QK matmul (mode 1 is after softcap), which is what ortcore returns.
            q4 = q if not three_d else q.reshape(b, sq, hq, d).transpose(0, 2, 1, 3)
            k4 = np.concatenate([inputs["past_key"], k if not three_d else k.reshape(b, skv, hkv, d).transpose(0, 2, 1, 3)], axis=2)
            e = (q4 @ np.repeat(k4, hq // hkv, axis=1).swapaxes(-1, -2) * 0.7).astype(F32)
        compare_outputs(e, a, rtol=1e-4, atol=1e-5, name=name)


def test_attention_matches_onnxruntime_opset23():
    q, k, v = qkv(2, 4, 2, 5, 5, 8, 8, False)
    inputs = {"q": q, "k": k, "v": v, "mask": RNG.random((5, 5)) < 0.8}
    model = make_model("Attention", inputs, [F32], opset=23, is_causal=0)
    compare_outputs(run_onnxruntime(model, inputs)[0], run_ortcore(model, inputs)[0], rtol=1e-4, atol=1e-5)


def test_attention_fully_masked_rows_are_zero():
    q, k, v = qkv(1, 2, 2, 3, 4, 4, 4, False)
    mask = np.ones((3, 4), bool)
    mask[1] = False
    inputs = {"q": q, "k": k, "v": v, "mask": mask}
    model = make_model("Attention", inputs, [F32] * 4, opset=24, qk_matmul_output_mode=3)
    y, _, _, probs = check_against_reference(model, inputs)
    assert not np.isnan(y).any() and (y[:, :, 1] == 0).all() and (probs[:, :, 1] == 0).all()


@pytest.mark.parametrize("is_causal", [0, 1])
@pytest.mark.parametrize("mask_len", [None, 6, 8])
def test_attention_24_external_cache(is_causal, mask_len):
    b, hq, hkv, sq, cache, d = 3, 4, 2, 2, 8, 4
    q, k, v = qkv(b, hq, hkv, sq, cache, d, d, False)
    inputs = {
        "q": q, "k": k, "v": v,
        "mask": None if mask_len is None else RNG.random((b, 1, sq, mask_len)) < 0.9,
        "past_key": None, "past_value": None,
        "nonpad": np.array([5, 8, 2], np.int64),
    }
    model = make_model("Attention", inputs, [F32], opset=24, is_causal=is_causal)
    check_against_reference(model, inputs)


@pytest.mark.parametrize("window", [(2, 0), (1, 1), (0, -1), (-1, 2), (3, 3)])
@pytest.mark.parametrize("is_causal", [0, 1])
@pytest.mark.parametrize("cache", ["none", "past", "nonpad"])
def test_attention_25_windows(window, is_causal, cache):
    b, hq, hkv, sq, skv, d = 2, 4, 2, 3, 6, 4
    left, right = window
    q, k, v = qkv(b, hq, hkv, sq, skv, d, d, True)
    inputs = {"q": q, "k": k, "v": v, "mask": RNG.random((hq, sq, skv + (2 if cache == "past" else 0))) < 0.9}
    if cache == "past":
        inputs["past_key"] = RNG.standard_normal((b, hkv, 2, d)).astype(F32)
        inputs["past_value"] = RNG.standard_normal((b, hkv, 2, d)).astype(F32)
    elif cache == "nonpad":
        inputs.update(past_key=None, past_value=None, nonpad=np.array([4, 6], np.int64))
    model = make_model(
        "Attention", inputs, [F32], opset=25, is_causal=is_causal, q_num_heads=hq, kv_num_heads=hkv,
        left_window_size=left, right_window_size=right,
    )
    check_against_reference(model, inputs)


@pytest.mark.parametrize("dtype", [np.float16, np.float64])
@pytest.mark.parametrize("softmax_precision", [None, TensorProto.FLOAT, TensorProto.DOUBLE])
def test_attention_dtypes_and_softmax_precision(dtype, softmax_precision):
    q, k, v = qkv(1, 2, 1, 4, 6, 8, 8, False, dtype)
    inputs = {"q": q, "k": k, "v": v}
    attrs = {"is_causal": 1, "qk_matmul_output_mode": 3}
    if softmax_precision is not None:
        attrs["softmax_precision"] = softmax_precision
    model = make_model("Attention", inputs, [dtype] * 4, opset=24, **attrs)
    tol = 2e-3 if dtype == np.float16 else 1e-10
    actual = check_against_reference(model, inputs, rtol=tol, atol=tol)
    assert all(a.dtype == dtype for a in actual)


# --- RotaryEmbedding ------------------------------------------------------------------


@pytest.mark.parametrize("three_d", [False, True])
@pytest.mark.parametrize("interleaved", [0, 1])
@pytest.mark.parametrize("rotary_dim", [0, 4])
@pytest.mark.parametrize("with_positions", [False, True])
def test_rotary_embedding(three_d, interleaved, rotary_dim, with_positions):
    b, h, s, d = 2, 3, 5, 8
    half = (rotary_dim or d) // 2
    x = RNG.standard_normal((b, h, s, d)).astype(F32)
    if three_d:
        x = x.transpose(0, 2, 1, 3).reshape(b, s, h * d)
    angles = RNG.uniform(0, 6, (16, half) if with_positions else (b, s, half))
    inputs = {
        "x": x,
        "cos": np.cos(angles).astype(F32),
        "sin": np.sin(angles).astype(F32),
        "pos": RNG.integers(0, 16, (b, s)).astype(np.int64) if with_positions else None,
    }
    attrs = dict(interleaved=interleaved, rotary_embedding_dim=rotary_dim)
    if three_d:
        attrs["num_heads"] = h
    model = make_model("RotaryEmbedding", inputs, [F32], opset=23, **attrs)
    actual = check_against_reference(model, inputs)[0]
    compare_outputs(run_onnxruntime(model, inputs)[0], actual, rtol=1e-4, atol=1e-5)


# --- SwiGLU / TensorScatter ------------------------------------------------------------


@pytest.mark.parametrize("dtype", [F32, np.float16, np.float64])
def test_swiglu_closed_form(dtype):
    a = RNG.standard_normal((3, 7)).astype(dtype)
    b = RNG.standard_normal((3, 7)).astype(dtype)
    inputs = {"a": a, "b": b}
    (actual,) = run_ortcore(make_model("SwiGLU", inputs, [dtype], opset=28, alpha=1.7), inputs)
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    expected = a64 / (1 + np.exp(-1.7 * a64)) * b64
    assert actual.dtype == dtype
    np.testing.assert_allclose(actual.astype(np.float64), expected, rtol=2e-3 if dtype == np.float16 else 1e-6, atol=1e-3 if dtype == np.float16 else 1e-7)


@pytest.mark.parametrize("axis", [1, 2, -2, -1])
@pytest.mark.parametrize("mode", ["linear", "circular"])
@pytest.mark.parametrize("with_indices", [False, True])
def test_tensor_scatter(axis, mode, with_indices):
    cache = RNG.standard_normal((3, 4, 6, 5)).astype(F32)
    shape = list(cache.shape)
    shape[axis] = 2
    update = RNG.standard_normal(shape).astype(F32)
    capacity = cache.shape[axis]
    indices = None
    if with_indices:
        indices = RNG.integers(0, capacity * 2 if mode == "circular" else capacity - 1, 3).astype(np.int64)
    inputs = {"cache": cache, "update": update, "indices": indices}
    model = make_model("TensorScatter", inputs, [F32], opset=24, axis=axis, mode=mode)
    check_against_reference(model, inputs)
    compare_outputs(run_onnxruntime(model, inputs)[0], run_ortcore(model, inputs)[0])


def test_tensor_scatter_strings():
    cache = np.array([["a", "b", "c"], ["d", "e", "f"]], dtype=object)
    update = np.array([["X"], ["Y"]], dtype=object)
    inputs = {"cache": cache, "update": update, "indices": np.array([2, 0], np.int64)}
    model = make_model("TensorScatter", inputs, [object], opset=24, axis=1)
    assert run_ortcore(model, inputs)[0].tolist() == [["a", "b", "X"], ["Y", "e", "f"]]


# --- LinearAttention ------------------------------------------------------------------


@pytest.mark.parametrize("rule", ["linear", "gated", "delta", "gated_delta"])
@pytest.mark.parametrize("heads", [(2, 2), (4, 2), (3, 1)])
@pytest.mark.parametrize("per_dim_decay", [False, True])
@pytest.mark.parametrize("with_past", [False, True])
def test_linear_attention(rule, heads, per_dim_decay, with_past):
    hq, hkv = heads
    b, t, dk, dv = 2, 5, 4, 3
    key = RNG.standard_normal((b, t, hkv, dk))
    key /= np.linalg.norm(key, axis=-1, keepdims=True)
    inputs = {
        "q": RNG.standard_normal((b, t, hq * dk)).astype(F32),
        "k": key.reshape(b, t, hkv * dk).astype(F32),
        "v": RNG.standard_normal((b, t, hkv * dv)).astype(F32),
        "past": RNG.standard_normal((b, hkv, dk, dv)).astype(F32) if with_past else None,
        "decay": -RNG.random((b, t, hkv * dk if per_dim_decay else hkv)).astype(F32) if "gated" in rule else None,
        "beta": RNG.random((b, t, hkv)).astype(F32) if "delta" in rule else None,
    }
    model = make_model("LinearAttention", inputs, [F32, F32], opset=27, q_num_heads=hq, kv_num_heads=hkv, update_rule=rule)
    check_against_reference(model, inputs)


# --- CausalConvWithState --------------------------------------------------------------


@pytest.mark.parametrize("k", [1, 3, 5])
@pytest.mark.parametrize("length", [1, 2, 7])
@pytest.mark.parametrize("activation", ["none", "silu"])
@pytest.mark.parametrize("with_state", [False, True])
def test_causal_conv_with_state(k, length, activation, with_state):
    b, c = 2, 3
    inputs = {
        "x": RNG.standard_normal((b, c, length)).astype(F32),
        "w": RNG.standard_normal((c, 1, k)).astype(F32),
        "bias": RNG.standard_normal(c).astype(F32),
        "state": RNG.standard_normal((b, c, k - 1)).astype(F32) if with_state else None,
    }
    model = make_model("CausalConvWithState", inputs, [F32, F32], opset=27, activation=activation)
    check_against_reference(model, inputs)


def test_causal_conv_streaming_equals_one_shot():
    """Feeding a sequence in pieces through the carry state gives the one-shot result."""
    x = RNG.standard_normal((1, 2, 9)).astype(F32)
    w = RNG.standard_normal((2, 1, 4)).astype(F32)
    full = make_model("CausalConvWithState", {"x": x, "w": w}, [F32, F32], opset=27)
    whole, _ = run_ortcore(full, {"x": x, "w": w})
    state = np.zeros((1, 2, 3), F32)
    pieces = []
    for chunk in (x[:, :, :4], x[:, :, 4:5], x[:, :, 5:]):
        inputs = {"x": chunk, "w": w, "bias": None, "state": state}
        y, state = run_ortcore(make_model("CausalConvWithState", inputs, [F32, F32], opset=27), inputs)
        pieces.append(y)
    compare_outputs(whole, np.concatenate(pieces, axis=2), rtol=1e-5, atol=1e-6)


# --- FlexAttention --------------------------------------------------------------------


def _mod_graph(name, body, extra_inputs=()):
    """A one-input, one-output modifier graph built from ``body`` nodes reading ``x``."""
    return helper.make_graph(
        body, name,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, None)],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)],
    )


def _constant(name, value):
    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(np.asarray(value, F32)))


SCORE_MOD = _mod_graph("score_mod", [_constant("c", 3.0), helper.make_node("Div", ["x", "c"], ["t"]),
                                      helper.make_node("Tanh", ["t"], ["u"]), helper.make_node("Mul", ["u", "c"], ["out"])])
PROB_MOD = _mod_graph("prob_mod", [_constant("two", 2.0), helper.make_node("Mul", ["x", "two"], ["out"])])


def flex_model(q, k, v, attrs, initializers=()):
    node = helper.make_node("FlexAttention", ["q", "k", "v"], ["y"], domain="ai.onnx.preview", **attrs)
    graph = helper.make_graph(
        [node], "g",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, a.shape) for n, a in (("q", q), ("k", k), ("v", v))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        list(initializers),
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 28), helper.make_opsetid("ai.onnx.preview", 1)])


@pytest.mark.parametrize("heads", [(2, 2), (4, 2)])
@pytest.mark.parametrize("mods", [(), ("score",), ("prob",), ("score", "prob")])
def test_flex_attention(heads, mods):
    hq, hkv = heads
    q, k, v = qkv(2, hq, hkv, 3, 5, 4, 6, False)
    attrs = {"scale": 0.4}
    if "score" in mods:
        attrs["score_mod"] = SCORE_MOD
    if "prob" in mods:
        attrs["prob_mod"] = PROB_MOD
    model = flex_model(q, k, v, attrs)
    inputs = {"q": q, "k": k, "v": v}
    compare_outputs(run_reference(model, inputs)[0], run_ortcore(model, inputs)[0], rtol=1e-4, atol=1e-5)


def test_flex_attention_score_mod_reads_outer_scope():
    """A score_mod adding an outer-scope bias is attention with that bias (closed form);
    onnx.reference cannot run subgraphs that read outer-scope values."""
    q, k, v = qkv(1, 4, 2, 3, 5, 8, 8, False)
    bias = RNG.standard_normal((1, 1, 3, 5)).astype(F32)
    score_mod = _mod_graph("score_mod", [helper.make_node("Add", ["x", "outer_bias"], ["out"])])
    model = flex_model(q, k, v, {"score_mod": score_mod}, [numpy_helper.from_array(bias, "outer_bias")])
    actual = run_ortcore(model, {"q": q, "k": k, "v": v})[0]
    compare_outputs(closed_form_attention(q, k, v, bias, 1 / np.sqrt(8)).astype(F32), actual, rtol=1e-4, atol=1e-5)
