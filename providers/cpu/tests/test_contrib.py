"""com.microsoft contrib ops against onnxruntime, the independent oracle.

Every case builds a one-node model, runs the same seeded random inputs through
onnxruntime's CPUExecutionProvider and ortcore, and compares dtype, shape and values
(rtol 1e-3, atol 1e-5 unless a case says why it needs more). Expected values never
come from ortcore.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import onnxruntime
import pytest
from onnx import helper, numpy_helper

import ortcore
from ortcore.dtypes import onnx_elem_type
from ortcore.testing import compare_outputs

MS = "com.microsoft"
RNG = np.random.default_rng(2024)
F32 = np.float32


def rand(*shape, dtype=F32):
    return RNG.standard_normal(shape).astype(dtype)


def make_model(
    op: str,
    inputs: dict[str, Any],
    out_types: list[Any],
    *,
    domain: str = MS,
    opset: int = 17,
    initializers: tuple[str, ...] = (),
    **attrs: Any,
):
    """One ``op`` node. ``inputs`` maps names to arrays (None: omitted); ``out_types`` lists
    the output dtypes, None for an output left unnamed."""
    names = [name if value is not None else "" for name, value in inputs.items()]
    while names and names[-1] == "":
        names.pop()
    graph_inputs, inits = [], []
    for name, value in inputs.items():
        if value is None:
            continue
        value = np.asarray(value)
        if name in initializers:
            inits.append(numpy_helper.from_array(value, name))
        else:
            graph_inputs.append(helper.make_tensor_value_info(name, onnx_elem_type(value.dtype), value.shape))
    outs = [f"y{i}" if t is not None else "" for i, t in enumerate(out_types)]
    while outs and outs[-1] == "":
        outs.pop()
    node = helper.make_node(op, names, outs, domain=domain, **attrs)
    outputs = [
        helper.make_tensor_value_info(o, onnx_elem_type(np.dtype(t)), None) for o, t in zip(outs, out_types) if o
    ]
    graph = helper.make_graph([node], "g", graph_inputs, outputs, inits)
    imports = [helper.make_opsetid("", opset), helper.make_opsetid(MS, 1)]
    model = helper.make_model(graph, opset_imports=imports)
    model.ir_version = 10
    return model


def _feeds(model, inputs: dict[str, Any]) -> dict[str, Any]:
    names = {i.name for i in model.graph.input}
    return {k: v for k, v in inputs.items() if k in names}


def run_onnxruntime(model, inputs: dict[str, Any]) -> list[Any]:
    # one thread: onnxruntime's DynamicQuantizeLSTM quantizes the hidden state per chunk of
    # batch rows, one chunk per thread, so its results depend on the thread count
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    sess = onnxruntime.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return sess.run(None, _feeds(model, inputs))


def run_ortcore(model, inputs: dict[str, Any]) -> list[Any]:
    sess = ortcore.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, _feeds(model, inputs))


def check(
    op: str,
    inputs: dict[str, Any],
    out_types: list[Any],
    *,
    rtol: float = 1e-3,
    atol: float = 1e-5,
    initializers: tuple[str, ...] = (),
    domain: str = MS,
    opset: int = 17,
    compare: list[bool] | None = None,
    **attrs: Any,
) -> tuple[list[Any], list[Any]]:
    """Run ``op`` through onnxruntime and ortcore; outputs must agree in dtype, shape and value.

    ``compare`` may switch off outputs that onnxruntime leaves partly unspecified.
    """
    model = make_model(op, inputs, out_types, domain=domain, opset=opset, initializers=initializers, **attrs)
    expected = run_onnxruntime(model, inputs)
    actual = run_ortcore(model, inputs)
    assert len(actual) == len(expected)
    for i, (e, a) in enumerate(zip(expected, actual)):
        if compare is None or compare[i]:
            compare_outputs(e, a, rtol=rtol, atol=atol, name=f"{op} output {i}")
    return expected, actual


# -- fused: FusedConv, FusedGemm, FusedMatMul, GELU family, Trilu ---------------------------------


@pytest.mark.parametrize(
    "activation, params",
    [("Relu", None), ("LeakyRelu", [0.2]), ("Clip", [-0.5, 0.7]), ("Sigmoid", None),
     ("Tanh", None), ("HardSigmoid", [0.3, 0.4])],
)
def test_fused_conv(activation, params):
    """FusedConv is registered by nn.conv; here it meets onnxruntime, with and without Z."""
    attrs = dict(pads=[1, 1, 1, 1], strides=[1, 2], activation=activation)
    if params:
        attrs["activation_params"] = params
    inputs = {"x": rand(1, 3, 7, 6), "w": rand(4, 3, 3, 3), "b": rand(4), "z": rand(1, 4, 7, 3)}
    check("FusedConv", inputs, [F32], initializers=("w", "b"), **attrs)
    inputs["z"] = None
    check("FusedConv", inputs, [F32], **attrs)


@pytest.mark.parametrize(
    "activation, attrs",
    [
        ("Relu", {}),
        ("Tanh", {}),
        ("Sigmoid", {}),
        ("LeakyRelu", {"activation_alpha": 0.3}),
        ("HardSigmoid", {"activation_alpha": 0.3, "activation_beta": 0.4}),
        ("Elu", {"activation_alpha": 0.7}),
        ("Celu", {"activation_alpha": 1.3}),
        ("Selu", {"activation_alpha": 1.5, "activation_gamma": 1.1}),
        ("Softplus", {}),
        ("Softsign", {}),
        ("ThresholdedRelu", {"activation_alpha": 0.2}),
        ("ParametricSoftplus", {"activation_alpha": 0.7, "activation_beta": 1.3}),
        ("ScaledTanh", {"activation_alpha": 0.7, "activation_beta": 1.3}),
    ],
)
def test_fused_gemm_activations(activation, attrs):
    inputs = {"a": rand(5, 4), "b": rand(4, 6), "c": rand(6)}
    check("FusedGemm", inputs, [F32], activation=activation, **attrs)


@pytest.mark.parametrize("trans", [(0, 0), (1, 0), (0, 1), (1, 1)])
@pytest.mark.parametrize("constant_b", [False, True])
def test_fused_gemm_transposes(trans, constant_b):
    ta, tb = trans
    a = rand(4, 5) if ta else rand(5, 4)
    b = rand(6, 4) if tb else rand(4, 6)
    inputs = {"a": a, "b": b, "c": rand(5, 1)}
    check(
        "FusedGemm", inputs, [F32], initializers=("b",) if constant_b else (), activation="LeakyRelu",
        activation_alpha=0.1, alpha=0.7, beta=1.5, transA=ta, transB=tb,
    )


def _fused_matmul_raw(effective, trans_batch, trans):
    """The raw operand shape whose FusedMatMul view (transBatch, then trans) is ``effective``."""
    r = len(effective)
    perm = list(range(r))
    if trans_batch:
        perm = [*range(1, r - 1), 0, r - 1]
    if trans:
        perm[-2], perm[-1] = perm[-1], perm[-2]
    raw = [0] * r
    for i, p in enumerate(perm):
        raw[p] = effective[i]
    return tuple(raw)


@pytest.mark.parametrize("flags", list(itertools.product((0, 1), repeat=4)))
def test_fused_matmul_transposes(flags):
    tba, ta, tbb, tb = flags
    a = rand(*_fused_matmul_raw((3, 4, 5), tba, ta))
    b = rand(*_fused_matmul_raw((3, 5, 6), tbb, tb))
    attrs = dict(transA=ta, transB=tb, transBatchA=tba, transBatchB=tbb, alpha=0.5)
    check("FusedMatMul", {"a": a, "b": b}, [F32], **attrs)
    check("FusedMatMul", {"a": a, "b": b}, [F32], initializers=("b",), **attrs)


@pytest.mark.parametrize(
    "a_shape, b_shape, attrs",
    [
        ((2, 1, 4, 5), (3, 5, 6), {}),
        ((4, 5), (2, 6, 5), {"transB": 1}),
        ((5,), (5, 6), {"transA": 1}),
        ((2, 4, 5), (5,), {"transB": 1, "alpha": 2.0}),
        ((2, 3, 4, 5), (2, 3, 5, 6), {"transBatchA": 1}),
    ],
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_matmul_shapes(a_shape, b_shape, attrs, dtype):
    a_shape = _fused_matmul_raw(a_shape, attrs.get("transBatchA", 0), 0) if len(a_shape) > 2 else a_shape
    check("FusedMatMul", {"a": rand(*a_shape, dtype=dtype), "b": rand(*b_shape, dtype=dtype)}, [dtype], **attrs)


def test_gelu_family():
    x, bias = rand(2, 3, 8) * 3, rand(8)
    check("Gelu", {"x": x}, [F32])
    check("BiasGelu", {"a": x, "b": bias}, [F32])
    check("FastGelu", {"x": x}, [F32])
    check("FastGelu", {"x": x, "bias": bias}, [F32])
    check("QuickGelu", {"x": x}, [F32])
    check("QuickGelu", {"x": x}, [F32], alpha=0.8)


@pytest.mark.parametrize("upper", [0, 1])
@pytest.mark.parametrize("k", [None, -1, 0, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
def test_trilu(upper, k, dtype):
    x = (rand(2, 4, 5) * 10).astype(dtype)
    inputs = {"x": x, "k": None if k is None else np.array(k, np.int64)}
    check("Trilu", inputs, [dtype], upper=upper)


# -- normalization -------------------------------------------------------------------------------


@pytest.mark.parametrize("skip_shape", [(2, 3, 8), (1, 3, 8), (3, 8)])
@pytest.mark.parametrize("optional", ["none", "beta", "bias", "both"])
def test_skip_layer_norm(skip_shape, optional):
    inputs = {
        "x": rand(2, 3, 8),
        "skip": rand(*skip_shape),
        "gamma": rand(8),
        "beta": rand(8) if optional in ("beta", "both") else None,
        "bias": rand(8) if optional in ("bias", "both") else None,
    }
    check("SkipLayerNormalization", inputs, [F32] * 4, epsilon=1e-5)


def test_skip_layer_norm_outputs_subset_and_2d():
    inputs = {"x": rand(5, 16), "skip": rand(5, 16), "gamma": rand(16), "beta": rand(16), "bias": rand(16)}
    check("SkipLayerNormalization", inputs, [F32, None, None, F32])
    check("SkipLayerNormalization", inputs, [F32])


@pytest.mark.parametrize("skip_shape", [(2, 3, 8), (1, 3, 8), (3, 8)])
@pytest.mark.parametrize("with_bias", [False, True])
def test_skip_simplified_layer_norm(skip_shape, with_bias):
    inputs = {"x": rand(2, 3, 8), "skip": rand(*skip_shape), "gamma": rand(8), "bias": rand(8) if with_bias else None}
    # output 1 (mean) has no meaning for an RMS norm and onnxruntime leaves it unspecified
    check("SkipSimplifiedLayerNormalization", inputs, [F32] * 4, compare=[True, False, True, True])
    check("SkipSimplifiedLayerNormalization", inputs, [F32, None, None, F32], epsilon=1e-3)


@pytest.mark.parametrize("axis", [-1, 1])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_layer_norm_1(axis, dtype):
    scale_shape = (8,) if axis == -1 else (3, 8)
    inputs = {
        "x": rand(2, 3, 8, dtype=dtype), "scale": rand(*scale_shape, dtype=dtype), "b": rand(*scale_shape, dtype=dtype)
    }
    check("LayerNormalization", inputs, [dtype, F32, F32], domain="", opset=16, axis=axis, epsilon=1e-3)
    inputs["b"] = None
    check("LayerNormalization", inputs, [dtype], domain="", opset=11, axis=axis)


@pytest.mark.parametrize("axis", [-1, 1])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_simplified_layer_norm(axis, dtype):
    scale_shape = (8,) if axis == -1 else (3, 8)
    inputs = {"x": rand(2, 3, 8, dtype=dtype), "scale": rand(*scale_shape, dtype=dtype)}
    check("SimplifiedLayerNormalization", inputs, [dtype, F32], domain="", opset=17, axis=axis, epsilon=1e-3)
    check("SimplifiedLayerNormalization", inputs, [dtype], domain="", opset=21, axis=axis)


# -- attention -----------------------------------------------------------------------------------


def _attention_mask(kind, batch, seq, total):
    return {
        None: None,
        "key_len": RNG.integers(1, total + 1, batch).astype(np.int32),
        "end_start": np.concatenate(  # exclusive ends, then inclusive starts
            [RNG.integers(total // 2 + 1, total + 1, batch), RNG.integers(0, total // 2, batch)]
        ).astype(np.int32),
        "raw2d": (RNG.random((batch, total)) < 0.7).astype(np.int32),
        "raw3d": (RNG.random((batch, seq, total)) < 0.7).astype(np.int32),
    }[kind]


@pytest.mark.parametrize("mask", [None, "key_len", "end_start", "raw2d", "raw3d"])
@pytest.mark.parametrize("unidirectional", [0, 1])
@pytest.mark.parametrize("past", [0, 3])
def test_attention(mask, unidirectional, past):
    b, s, d_in, n, h = 2, 4, 8, 2, 4
    inputs = {
        "x": rand(b, s, d_in),
        "w": rand(d_in, 3 * n * h),
        "bias": rand(3 * n * h),
        "mask": _attention_mask(mask, b, s, past + s),
        "past": rand(2, b, n, past, h) if past else None,
    }
    check("Attention", inputs, [F32, F32], initializers=("w", "bias"), num_heads=n, unidirectional=unidirectional)


def test_attention_fully_masked_rows_are_uniform():
    """Keys masked with mask_filter_value (-10000), not -inf: a fully masked row averages V."""
    b, s, d_in, n, h = 2, 3, 6, 3, 2
    inputs = {
        "x": rand(b, s, d_in), "w": rand(d_in, 3 * n * h), "bias": rand(3 * n * h), "mask": np.zeros((b, s), np.int32)
    }
    check("Attention", inputs, [F32, F32], num_heads=n, unidirectional=1)
    check("Attention", inputs, [F32], num_heads=n, mask_filter_value=-1e9)


@pytest.mark.parametrize("bias_shape", [(2, 2, 4, 4), (1, 2, 4, 4), (2, 1, 4, 4), (1, 1, 4, 4)])
def test_attention_bias_and_hidden_sizes(bias_shape):
    b, s, d_in, n = 2, 4, 8, 2
    sizes = [8, 8, 12]  # v heads of 6, q/k heads of 4
    inputs = {
        "x": rand(b, s, d_in), "w": rand(d_in, sum(sizes)), "bias": rand(sum(sizes)), "mask": None, "past": None,
        "attention_bias": rand(*bias_shape),
    }
    check("Attention", inputs, [F32], num_heads=n, qkv_hidden_sizes=sizes, scale=0.3)


MHA_DIMS = dict(b=2, s=3, l=5, n=2, h=4)


def _mha_inputs(hv=6, with_bias=True):
    b, s, l, n, h = MHA_DIMS.values()
    bias = rand(2 * n * h + n * hv) if with_bias else None
    return {"q": rand(b, s, n * h), "k": rand(b, l, n * h), "v": rand(b, l, n * hv), "bias": bias}


@pytest.mark.parametrize("with_bias", [False, True])
@pytest.mark.parametrize("unidirectional", [0, 1])
def test_multi_head_attention_cross(with_bias, unidirectional):
    """Cross attention (S=3 queries, L=5 keys); onnxruntime leaves the last query row unmasked."""
    inputs = _mha_inputs(with_bias=with_bias)
    check("MultiHeadAttention", inputs, [F32] * 3, num_heads=2, unidirectional=unidirectional)


@pytest.mark.parametrize("mask", ["key_len", "raw2d", "raw3d", "3b+2"])
def test_multi_head_attention_key_padding_mask(mask):
    b, s, l = 2, 3, 5
    inputs = _mha_inputs()
    inputs["mask"] = (
        np.array([2, 4, 0, 1, 3, 4, 0, 0], np.int32) if mask == "3b+2" else _attention_mask(mask, b, s, l)
    )
    check("MultiHeadAttention", inputs, [F32], num_heads=2)


def test_multi_head_attention_qk_output():
    b, s, l = 2, 3, 5
    inputs = _mha_inputs()
    inputs["mask"] = _attention_mask("raw2d", b, s, l)
    inputs["attention_bias"] = rand(b, 1, s, l)
    check("MultiHeadAttention", inputs, [F32] * 4, num_heads=2, scale=0.4)


@pytest.mark.parametrize("unidirectional", [0, 1])
@pytest.mark.parametrize("seq", [1, 3])
def test_multi_head_attention_past(unidirectional, seq):
    b, n, h, past = 2, 2, 4, 4
    inputs = {
        "q": rand(b, seq, n * h), "k": rand(b, seq, n * h), "v": rand(b, seq, n * h), "bias": rand(3 * n * h),
        "mask": (RNG.random((b, past + seq)) < 0.8).astype(np.int32), "attention_bias": rand(1, n, seq, past + seq),
        "past_key": rand(b, n, past, h), "past_value": rand(b, n, past, h),
    }
    check("MultiHeadAttention", inputs, [F32] * 3, num_heads=n, unidirectional=unidirectional, scale=0.2)


def test_multi_head_attention_bnsh_key_value():
    b, s, l, n, h = MHA_DIMS.values()
    inputs = {"q": rand(b, s, n * h), "k": rand(b, n, l, h), "v": rand(b, n, l, h)}
    check("MultiHeadAttention", inputs, [F32] * 3, num_heads=n)
    inputs.update(bias=None, mask=np.array([2, 4], np.int32))
    check("MultiHeadAttention", inputs, [F32], num_heads=n)


@pytest.mark.parametrize("packing", ["qkv", "kv"])
def test_multi_head_attention_packed(packing):
    """onnxruntime's CPU kernel rejects packed inputs; the oracle runs the unpacked equivalent."""
    b, s, n, h = 2, 4, 2, 4
    q, k, v = rand(b, s, n * h), rand(b, s, n * h), rand(b, s, n * h)
    heads = lambda t: t.reshape(b, s, n, 1, h)  # noqa: E731
    unpacked = {"q": q, "k": k, "v": v, "bias": rand(3 * n * h)}
    if packing == "qkv":
        qkv = np.concatenate([heads(q), heads(k), heads(v)], axis=3)
        packed = {"q": qkv, "k": None, "v": None, "bias": unpacked["bias"]}
    else:
        packed = {"q": q, "k": np.concatenate([heads(k), heads(v)], axis=3), "v": None, "bias": unpacked["bias"]}
    expected = run_onnxruntime(make_model("MultiHeadAttention", unpacked, [F32], num_heads=n), unpacked)
    actual = run_ortcore(make_model("MultiHeadAttention", packed, [F32], num_heads=n), packed)
    compare_outputs(expected[0], actual[0], rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("interleaved", [0, 1])
@pytest.mark.parametrize("layout", ["bsd", "bnsh"])
@pytest.mark.parametrize("positions", ["offset", "per_token"])
@pytest.mark.parametrize("rotary_dim", [0, 4])
def test_rotary_embedding(interleaved, layout, positions, rotary_dim):
    b, s, n, h, max_pos = 2, 3, 2, 8, 10
    half = (rotary_dim or h) // 2
    inputs = {
        "x": rand(b, s, n * h) if layout == "bsd" else rand(b, n, s, h),
        "position_ids": np.array([3], np.int64) if positions == "offset" else RNG.integers(0, max_pos, (b, s)),
        "cos": rand(max_pos, half),
        "sin": rand(max_pos, half),
    }
    attrs = dict(interleaved=interleaved)
    if rotary_dim:
        attrs.update(rotary_embedding_dim=rotary_dim, num_heads=n)
    check("RotaryEmbedding", inputs, [F32], **attrs)


GQA_HEADS = dict(num_heads=4, kv_num_heads=2)


def _gqa(batch, seq, past, seqlens, total, *, head=8, packed=False, extra=None, n_out=3, compare=None, **attrs):
    n, nk = GQA_HEADS["num_heads"], GQA_HEADS["kv_num_heads"]
    q, k, v = rand(batch, seq, n * head), rand(batch, seq, nk * head), rand(batch, seq, nk * head)
    if packed:
        q, k, v = np.concatenate([q, k, v], axis=-1), None, None
    inputs = {
        "q": q, "k": k, "v": v,
        "past_key": rand(batch, nk, past, head) if past else None,
        "past_value": rand(batch, nk, past, head) if past else None,
        "seqlens_k": np.array(seqlens, np.int32), "total": np.array(total, np.int32),
    }
    inputs.update(extra or {})
    return check("GroupQueryAttention", inputs, [F32] * n_out, compare=compare, **GQA_HEADS, **attrs)


@pytest.mark.parametrize(
    "case",
    [
        dict(batch=2, seq=4, past=0, seqlens=[3, 3], total=4),  # first prompt
        dict(batch=2, seq=4, past=0, seqlens=[3, 3], total=4, packed=True),
        dict(batch=2, seq=1, past=5, seqlens=[5, 3], total=6),  # ragged decoding
        dict(batch=2, seq=1, past=8, seqlens=[5, 3], total=6),  # cache buffer longer than the tokens
        dict(batch=1, seq=3, past=4, seqlens=[6], total=7),  # subsequent prompt
        dict(batch=2, seq=6, past=0, seqlens=[5, 5], total=6, local_window_size=2),
        dict(batch=2, seq=1, past=7, seqlens=[7, 4], total=8, local_window_size=3),
        dict(batch=2, seq=4, past=0, seqlens=[3, 3], total=4, softcap=2.0, scale=0.7),
        dict(batch=2, seq=1, past=5, seqlens=[5, 3], total=6, smooth_softmax=1),
        dict(batch=2, seq=4, past=0, seqlens=[3, 3], total=4, causal=0),
        dict(batch=1, seq=2, past=5, seqlens=[6], total=7, causal=0),
    ],
)
def test_group_query_attention(case):
    _gqa(**case)


def test_group_query_attention_sink_and_bias():
    none4 = {"cos": None, "sin": None, "position_ids": None}
    _gqa(2, 1, 5, [5, 3], 6, extra={**none4, "attention_bias": None, "head_sink": rand(4)})
    _gqa(2, 1, 5, [5, 3], 6, extra={**none4, "attention_bias": rand(2, 1, 1, 6)})
    _gqa(2, 4, 0, [3, 3], 4, softcap=3.0, extra={**none4, "attention_bias": rand(1, 4, 4, 4)})


def test_group_query_attention_qk_output():
    _gqa(2, 4, 0, [3, 3], 4, n_out=4, qk_output=2)
    # before the softmax onnxruntime leaves the columns past an entry's length unwritten:
    # compare the scores of the keys each entry has
    (expected, actual) = _gqa(2, 1, 5, [5, 3], 6, n_out=4, qk_output=1, compare=[True] * 3 + [False])
    for entry, length in enumerate([6, 4]):
        compare_outputs(expected[3][entry, ..., :length], actual[3][entry, ..., :length])


@pytest.mark.parametrize(
    "case",
    [
        dict(batch=2, seq=4, past=0, seqlens=[3, 3], total=4, rotary_interleaved=1),
        dict(batch=2, seq=1, past=5, seqlens=[5, 3], total=6),
        dict(batch=2, seq=1, past=5, seqlens=[5, 3], total=6, packed=True, rotary_interleaved=1),
        dict(batch=1, seq=2, past=5, seqlens=[6], total=7, positions=[[3, 9]]),
        dict(batch=2, seq=1, past=5, seqlens=[5, 3], total=6, head=32, rotary_width=8),  # partial rotation
    ],
)
def test_group_query_attention_rotary(case):
    """onnxruntime wants head sizes that are multiples of 16 and cache widths of 8 here."""
    case = dict(case)
    head = case.pop("head", 16)
    width = case.pop("rotary_width", head // 2)
    positions = case.pop("positions", None)
    extra = {"cos": rand(16, width), "sin": rand(16, width)}
    if positions is not None:
        extra["position_ids"] = np.array(positions, np.int64)
    _gqa(**case, head=head, extra=extra, do_rotary=1)


# -- quantized -----------------------------------------------------------------------------------


Q8 = [np.uint8, np.int8]


def qrand(dtype, *shape):
    info = np.iinfo(dtype)
    return RNG.integers(info.min, info.max, shape, endpoint=True).astype(dtype)


def qzero(dtype):
    return np.array(RNG.integers(np.iinfo(dtype).min, np.iinfo(dtype).max, endpoint=True), dtype)


def qscale(low=0.01, high=0.1, shape=()):
    return np.asarray(RNG.uniform(low, high, shape), F32)


@pytest.mark.parametrize("op", ["QLinearAdd", "QLinearMul"])
@pytest.mark.parametrize("dtype", Q8)
@pytest.mark.parametrize("shapes", [((2, 3, 4), (2, 3, 4)), ((2, 3, 4), (4,)), ((1, 3, 1), (2, 1, 4))])
def test_qlinear_binary(op, dtype, shapes):
    c_scale = qscale() * (3 if op == "QLinearMul" else 1)
    inputs = {
        "a": qrand(dtype, *shapes[0]), "a_scale": qscale(), "a_zp": qzero(dtype),
        "b": qrand(dtype, *shapes[1]), "b_scale": qscale(), "b_zp": qzero(dtype),
        "c_scale": np.asarray(c_scale, F32), "c_zp": qzero(dtype),
    }
    check(op, inputs, [dtype])
    inputs["c_zp"] = None  # onnxruntime's type inference allows only the last zero point to be omitted
    check(op, inputs, [dtype])


@pytest.mark.parametrize("op", ["QLinearSigmoid", "QLinearLeakyRelu"])
@pytest.mark.parametrize("dtype", Q8)
@pytest.mark.parametrize("constant", [False, True])
def test_qlinear_lookup_ops(op, dtype, constant):
    sigmoid = op == "QLinearSigmoid"
    inputs = {
        "x": qrand(dtype, 4, 64), "x_scale": qscale(0.05, 0.5), "x_zp": qzero(dtype),
        "y_scale": np.asarray(1 / 256 if sigmoid else 0.05, F32),
        "y_zp": np.array(np.iinfo(dtype).min, dtype) if sigmoid else qzero(dtype),
    }
    attrs = {} if sigmoid else {"alpha": 0.3}
    check(op, inputs, [dtype], initializers=("x_scale", "x_zp", "y_scale", "y_zp") if constant else (), **attrs)


@pytest.mark.parametrize("dtype", Q8)
@pytest.mark.parametrize("channels_last", [0, 1])
def test_qlinear_global_average_pool(dtype, channels_last):
    inputs = {
        "x": qrand(dtype, 2, 3, 5, 7), "x_scale": qscale(), "x_zp": qzero(dtype),
        "y_scale": qscale(), "y_zp": qzero(dtype),
    }
    check("QLinearGlobalAveragePool", inputs, [dtype], channels_last=channels_last)


@pytest.mark.parametrize("dtype", Q8)
def test_qlinear_concat(dtype):
    y_scale, y_zp = qscale(), qzero(dtype)
    inputs = {
        "y_scale": y_scale, "y_zp": y_zp,
        "a": qrand(dtype, 2, 3), "a_scale": qscale(), "a_zp": qzero(dtype),
        "b": qrand(dtype, 2, 5), "b_scale": y_scale, "b_zp": y_zp,  # already in Y's quantization
        "c": qrand(dtype, 2, 1), "c_scale": qscale(), "c_zp": qzero(dtype),
    }
    check("QLinearConcat", inputs, [dtype], axis=1)
    inputs = {k: v for k, v in inputs.items() if k[0] not in "c"} | {"a": qrand(dtype, 4, 3), "b": qrand(dtype, 1, 3)}
    check("QLinearConcat", inputs, [dtype], axis=-2)


GEMM_TYPES = [(np.uint8, np.uint8), (np.uint8, np.int8), (np.int8, np.int8)]


@pytest.mark.parametrize("types", GEMM_TYPES)
@pytest.mark.parametrize("trans", [(0, 0), (1, 1)])
@pytest.mark.parametrize("per_column", [False, True])
@pytest.mark.parametrize("quantized_output", [False, True])
def test_qgemm(types, trans, per_column, quantized_output):
    a_type, b_type = types
    m, k, n = 5, 16, 7
    ta, tb = trans
    inputs = {
        "a": qrand(a_type, *((k, m) if ta else (m, k))), "a_scale": qscale(), "a_zp": qzero(a_type),
        "b": qrand(b_type, *((n, k) if tb else (k, n))),
        "b_scale": qscale(shape=(n,)) if per_column else qscale(),
        "b_zp": qrand(b_type, n) if per_column else qzero(b_type),
        "c": RNG.integers(-5000, 5000, (n,)).astype(np.int32),
        "y_scale": np.asarray(qscale() * 30, F32) if quantized_output else None,
        "y_zp": qzero(a_type) if quantized_output else None,
    }
    out = [a_type if quantized_output else F32]
    attrs = dict(transA=ta, transB=tb, alpha=0.7)
    check("QGemm", inputs, out, **attrs)
    check("QGemm", inputs, out, initializers=("b", "b_zp"), **attrs)
    inputs["c"] = None
    check("QGemm", inputs, out, **attrs)


@pytest.mark.parametrize("types", GEMM_TYPES)
@pytest.mark.parametrize("per_column", [False, True])
def test_matmul_integer_to_float(types, per_column):
    a_type, b_type = types
    inputs = {
        "a": qrand(a_type, 2, 5, 16), "b": qrand(b_type, 16, 7), "a_scale": qscale(),
        "b_scale": qscale(shape=(7,)) if per_column else qscale(),
        "a_zp": qzero(a_type), "b_zp": qrand(b_type, 7) if per_column else qzero(b_type), "bias": rand(7),
    }
    check("MatMulIntegerToFloat", inputs, [F32])
    check("MatMulIntegerToFloat", inputs, [F32], initializers=("b", "b_zp"))
    inputs.update(a_zp=None, b_zp=None, bias=None)
    check("MatMulIntegerToFloat", inputs, [F32])


@pytest.mark.parametrize("b_type", Q8)
@pytest.mark.parametrize("per_column", [False, True])
def test_dynamic_quantize_matmul(b_type, per_column):
    inputs = {
        "a": rand(2, 5, 16), "b": qrand(b_type, 16, 7),
        "b_scale": qscale(shape=(7,)) if per_column else qscale(),
        "b_zp": qrand(b_type, 7) if per_column else qzero(b_type), "bias": rand(7),
    }
    check("DynamicQuantizeMatMul", inputs, [F32])
    check("DynamicQuantizeMatMul", inputs, [F32], initializers=("b", "b_zp"))
    inputs["bias"] = None
    check("DynamicQuantizeMatMul", inputs, [F32])


def _nbits_inputs(bits, k, block, n, zero_points, a_shape=(2, 3)):
    blocks = -(-k // block)
    zps = {
        "none": None,
        "packed": RNG.integers(0, 256, (n, -(-blocks * bits // 8))).astype(np.uint8),
        "float": qscale(0, 2**bits - 1, (n, blocks)),
    }
    return {
        "a": rand(*a_shape, k),
        "b": RNG.integers(0, 256, (n, blocks, block * bits // 8)).astype(np.uint8),
        "scales": qscale(shape=(n, blocks)),
        "zero_points": zps[zero_points],
    }


@pytest.mark.parametrize("bits", [2, 4, 8])
@pytest.mark.parametrize("k_block", [(64, 16), (48, 32)])  # 48: a last block padded
@pytest.mark.parametrize("zero_points", ["none", "packed", "float"])
@pytest.mark.parametrize("constant", [False, True])
def test_matmul_nbits(bits, k_block, zero_points, constant):
    if bits == 8 and zero_points == "float":
        pytest.skip("onnxruntime's CPU kernel has no 8-bit weights with float zero points")
    k, block = k_block
    n = 6
    inputs = _nbits_inputs(bits, k, block, n, zero_points)
    inputs.update(g_idx=None, bias=rand(n))
    attrs = dict(K=k, N=n, bits=bits, block_size=block)
    check("MatMulNBits", inputs, [F32], initializers=("b", "scales", "zero_points") if constant else (), **attrs)


@pytest.mark.parametrize("zero_points", ["none", "float"])
def test_matmul_nbits_g_idx(zero_points):
    """Act-order weights: g_idx gives each row of K its block. (onnxruntime 1.31 ignores packed
    uint8 zero points when g_idx is given, using 2**(bits-1); ortcore applies them.)"""
    k, block, n = 64, 16, 6
    inputs = _nbits_inputs(4, k, block, n, zero_points, a_shape=(3,))
    inputs["g_idx"] = RNG.permutation(np.arange(k) // block).astype(np.int32)
    constants = ("b", "scales", "zero_points", "g_idx")
    check("MatMulNBits", inputs, [F32], initializers=constants, K=k, N=n, bits=4, block_size=block)


def test_matmul_nbits_float16_and_accuracy_level():
    k, block, n = 64, 32, 8
    inputs = _nbits_inputs(4, k, block, n, "packed")
    inputs16 = dict(inputs, a=inputs["a"].astype(np.float16), scales=inputs["scales"].astype(np.float16))
    # float16 results round to ~1e-3 relative; onnxruntime accumulates in its own order
    check("MatMulNBits", inputs16, [np.float16], rtol=1e-2, atol=1e-2, K=k, N=n, bits=4, block_size=block)
    # accuracy_level 4 lets onnxruntime quantize A to int8 per block; ortcore stays in float32
    check("MatMulNBits", inputs, [F32], rtol=5e-2, atol=5e-2, K=k, N=n, bits=4, block_size=block, accuracy_level=4)


@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
@pytest.mark.parametrize("w_type", Q8)
@pytest.mark.parametrize("variant", ["plain", "per_channel_all_inputs", "sequence_lens"])
def test_dynamic_quantize_lstm(direction, w_type, variant):
    steps, batch, size, hidden = 5, 3, 6, 4
    nd = 2 if direction == "bidirectional" else 1
    per_channel = variant != "plain"
    full = variant != "plain"
    shape = (nd, 4 * hidden) if per_channel else (nd,)
    # onnxruntime wants int8 zero points of 0 and uint8 ones equal across channels
    zp = np.zeros(shape, w_type) if w_type == np.int8 else np.full(shape, RNG.integers(0, 256), w_type)
    inputs = {
        "x": rand(steps, batch, size),
        "w": qrand(w_type, nd, size, 4 * hidden),
        "r": qrand(w_type, nd, hidden, 4 * hidden),
        "b": rand(nd, 8 * hidden) if full else None,
        "sequence_lens": np.array([5, 3, 4], np.int32) if variant == "sequence_lens" else None,
        "initial_h": rand(nd, batch, hidden) if full else None,
        "initial_c": rand(nd, batch, hidden) if full else None,
        "p": rand(nd, 3 * hidden) if full else None,
        "w_scale": qscale(0.001, 0.01, shape), "w_zp": zp, "r_scale": qscale(0.001, 0.01, shape), "r_zp": zp.copy(),
    }
    check("DynamicQuantizeLSTM", inputs, [F32] * 3, hidden_size=hidden, direction=direction)
    check("DynamicQuantizeLSTM", inputs, [None, F32], hidden_size=hidden, direction=direction)


# -- 16-bit floats -------------------------------------------------------------------------------


F16 = np.float16


@pytest.mark.parametrize("dtype", [np.float16])  # onnxruntime's Python API takes no bfloat16 arrays
def test_skip_layer_norm_16_bit(dtype):
    """Statistics in float32 (mean and inv_std_var outputs stay float32), results rounded once."""
    inputs = {"x": rand(2, 3, 8, dtype=dtype), "skip": rand(2, 3, 8, dtype=dtype), "gamma": rand(8, dtype=dtype),
              "beta": rand(8, dtype=dtype), "bias": rand(8, dtype=dtype)}
    check("SkipLayerNormalization", inputs, [dtype, F32, F32, dtype], rtol=1e-2, atol=1e-2)


def test_float16_kernels():
    """The float16 kernels onnxruntime's CPU provider registers for these ops."""
    half = lambda *shape: rand(*shape, dtype=F16)  # noqa: E731
    inputs = {"x": half(2, 3, 8), "skip": half(2, 3, 8), "gamma": half(8), "bias": half(8)}
    check("SkipSimplifiedLayerNormalization", inputs, [F16, F32, F32, F16], compare=[True, False, True, True])
    inputs = {"x": half(2, 3, 8), "scale": half(8), "b": half(8)}
    check("LayerNormalization", inputs, [F16, F32, F32], domain="", opset=16)
    inputs = {"x": half(2, 3, 8), "scale": half(8)}
    check("SimplifiedLayerNormalization", inputs, [F16, F32], domain="")
    inputs = {"x": half(2, 3, 16), "position_ids": np.array([1], np.int64), "cos": half(8, 4), "sin": half(8, 4)}
    check("RotaryEmbedding", inputs, [F16], num_heads=2)
    inputs = {
        "q": half(2, 1, 64), "k": half(2, 1, 32), "v": half(2, 1, 32), "past_key": half(2, 2, 5, 16),
        "past_value": half(2, 2, 5, 16), "seqlens_k": np.array([5, 3], np.int32), "total": np.array(6, np.int32),
    }
    check("GroupQueryAttention", inputs, [F16] * 3, **GQA_HEADS)


def test_dynamic_quantize_lstm_constant_weights():
    steps, batch, size, hidden = 4, 2, 5, 3
    zp = np.full((1,), 7, np.uint8)
    inputs = {
        "x": rand(steps, batch, size),
        "w": qrand(np.uint8, 1, size, 4 * hidden),
        "r": qrand(np.uint8, 1, hidden, 4 * hidden),
        "b": None, "sequence_lens": None, "initial_h": None, "initial_c": None, "p": None,
        "w_scale": qscale(0.001, 0.01, (1,)), "w_zp": zp, "r_scale": qscale(0.001, 0.01, (1,)), "r_zp": zp.copy(),
    }
    check("DynamicQuantizeLSTM", inputs, [F32] * 3, initializers=("w", "r", "w_zp", "r_zp"), hidden_size=hidden)
