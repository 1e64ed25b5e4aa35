"""Extended-level transformer fusions: the graph before and after, and the optimized model's
outputs against the unoptimized model and onnxruntime running the original model.

The decomposed subgraphs are built the way exporters write them (PyTorch's erf/tanh GELU,
layer norms, HF BERT and GPT-2 attention), with seeded random weights.
"""

from __future__ import annotations

import math

import numpy as np
import onnx
import onnxruntime
import pytest
from onnx import TensorProto, helper, numpy_helper

import ortcore
from ortcore.ir import model_from_proto
from ortcore.optimizer import optimize
from ortcore.optimizer.transformer import GeluFusion
from ortcore.testing import compare_outputs, make_model

EXTENDED = ortcore.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
DISABLED = ortcore.GraphOptimizationLevel.ORT_DISABLE_ALL
FLOAT = TensorProto.FLOAT


class Builder:
    """Nodes and seeded random initializers for a test graph, with generated value names."""

    def __init__(self, seed: int = 0) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.rng = np.random.default_rng(seed)
        self.n = 0

    def const(self, value, dtype=np.float32) -> str:
        self.n += 1
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype), f"c{self.n}"))
        return f"c{self.n}"

    def rand(self, *shape, scale=0.1) -> str:
        return self.const(self.rng.standard_normal(shape) * scale)

    def ints(self, *values) -> str:
        return self.const(list(values), np.int64)

    def op(self, op_type: str, *inputs: str, out: str | None = None, **attrs) -> str:
        self.n += 1
        name = out or f"{op_type.lower()}{self.n}"
        self.nodes.append(helper.make_node(op_type, list(inputs), [name], **attrs))
        return name

    def model(self, inputs, outputs, opset=17) -> onnx.ModelProto:
        return make_model(self.nodes, inputs, outputs, self.inits, opset=opset)


def _vi(name, shape, elem=FLOAT):
    return helper.make_tensor_value_info(name, elem, shape)


def _session(model, level, path=None):
    opts = ortcore.SessionOptions()
    opts.graph_optimization_level = level
    if path:
        opts.optimized_model_filepath = str(path)
    return ortcore.InferenceSession(model.SerializeToString(), opts)


def _ops(sess):
    return [a.node.op_type for a in sess.get_partition().assignments]


def _ort(model_bytes, feeds):
    return onnxruntime.InferenceSession(model_bytes, providers=["CPUExecutionProvider"]).run(None, feeds)


def _check(model, feeds, tmp_path=None, rtol=1e-3, atol=1e-5):
    """Optimize at the extended level; the fused and the plain model both match onnxruntime
    on the original. With ``tmp_path`` the saved optimized model must load and match in
    onnxruntime too. Returns the optimized session."""
    path = tmp_path / "optimized.onnx" if tmp_path is not None else None
    fused, plain = _session(model, EXTENDED, path), _session(model, DISABLED)
    expected = _ort(model.SerializeToString(), feeds)
    for got in (fused.run(None, feeds), plain.run(None, feeds)):
        for e, a in zip(expected, got):
            compare_outputs(e, a, rtol=rtol, atol=atol)
    if path is not None:
        for e, a in zip(expected, _ort(path.read_bytes(), feeds)):
            compare_outputs(e, a, rtol=rtol, atol=atol)
    return fused


def _x(*shape, seed=1):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


# -- GELU ---------------------------------------------------------------------------------

SQRT2 = math.sqrt(2.0)


def _gelu_erf(b: Builder, x: str, variant: str) -> str:
    if variant == "hf":  # x * 0.5 * (1.0 + erf(x / sqrt(2)))
        erf = b.op("Erf", b.op("Div", x, b.const(SQRT2)))
        return b.op("Mul", b.op("Mul", x, b.const(0.5)), b.op("Add", erf, b.const(1.0)))
    if variant == "half_last":  # (x * (1 + erf(x * 1/sqrt(2)))) * 0.5
        erf = b.op("Erf", b.op("Mul", x, b.const(1 / SQRT2)))
        return b.op("Mul", b.op("Mul", x, b.op("Add", b.const(1.0), erf)), b.const(0.5))
    if variant == "half_inside":  # x * (0.5 * (erf(x / sqrt(2)) + 1))
        erf = b.op("Erf", b.op("Div", x, b.const(SQRT2)))
        return b.op("Mul", x, b.op("Mul", b.const(0.5), b.op("Add", erf, b.const(1.0))))
    assert variant == "megatron"  # 0.5 * x * (1 + erf(x * 0.70710678))
    erf = b.op("Erf", b.op("Mul", b.const(0.70710678), x))
    return b.op("Mul", b.op("Mul", b.const(0.5), x), b.op("Add", b.const(1.0), erf))


def _gelu_tanh(b: Builder, x: str, variant: str) -> str:
    c = math.sqrt(2.0 / math.pi)
    if variant == "gelu_new":  # 0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * pow(x, 3))))
        inner = b.op("Add", x, b.op("Mul", b.const(0.044715), b.op("Pow", x, b.const(3.0))))
        t = b.op("Tanh", b.op("Mul", b.const(c), inner))
        return b.op("Mul", b.op("Mul", b.const(0.5), x), b.op("Add", b.const(1.0), t))
    if variant == "cubed_by_mul":  # x^3 as x * x * x, and the 0.5 at the end
        cube = b.op("Mul", b.op("Mul", x, x), x)
        t = b.op("Tanh", b.op("Mul", b.op("Add", x, b.op("Mul", cube, b.const(0.044715))), b.const(c)))
        return b.op("Mul", b.op("Mul", x, b.op("Add", t, b.const(1.0))), b.const(0.5))
    assert variant == "factored"  # x * 0.5 * (1 + tanh(0.79788456 * x * (1 + 0.044715 * x * x)))
    poly = b.op("Add", b.const(1.0), b.op("Mul", b.const(0.044715), b.op("Mul", x, x)))
    t = b.op("Tanh", b.op("Mul", b.op("Mul", b.const(0.7978845608), x), poly))
    return b.op("Mul", b.op("Mul", x, b.const(0.5)), b.op("Add", b.const(1.0), t))


def _activation_model(activation, variant, *, bias: bool):
    b = Builder()
    h = b.op("MatMul", "x", b.rand(16, 32))
    if bias:
        h = b.op("Add", h, b.rand(32))
    activation(b, h, variant)
    b.nodes[-1].output[0] = "y"
    return b.model([_vi("x", [2, 8, 16])], [_vi("y", [2, 8, 32])])


@pytest.mark.parametrize("variant", ["hf", "half_last", "half_inside", "megatron"])
def test_erf_gelu_variants_fuse_to_gelu_and_bias_gelu(variant):
    feeds = {"x": _x(2, 8, 16, seed=2) * 3}
    plain = _activation_model(_gelu_erf, variant, bias=False)
    assert len(_ops(_session(plain, DISABLED))) >= 6
    assert _ops(_check(plain, feeds)) == ["MatMul", "Gelu"]
    assert _ops(_check(_activation_model(_gelu_erf, variant, bias=True), feeds)) == ["MatMul", "BiasGelu"]


@pytest.mark.parametrize("variant", ["gelu_new", "cubed_by_mul", "factored"])
def test_tanh_gelu_variants_fuse_to_fast_gelu_with_bias(variant, tmp_path):
    feeds = {"x": _x(2, 8, 16, seed=3) * 3}
    assert _ops(_check(_activation_model(_gelu_tanh, variant, bias=False), feeds)) == ["MatMul", "FastGelu"]
    sess = _check(_activation_model(_gelu_tanh, variant, bias=True), feeds, tmp_path)
    assert _ops(sess) == ["MatMul", "FastGelu"]
    saved = onnx.load(tmp_path / "optimized.onnx")
    assert [len(n.input) for n in saved.graph.node if n.op_type == "FastGelu"] == [2]
    assert {o.domain: o.version for o in saved.opset_import}.get("com.microsoft") == 1


def test_float16_gelu_with_rounded_constants_is_fused():
    # float16 holds 1/sqrt(2) as 0.70703125: the formula is matched within float16 precision
    b = Builder()
    erf = b.op("Erf", b.op("Mul", "x", b.const(1 / SQRT2, np.float16)))
    b.op("Mul", b.op("Mul", "x", b.const(0.5, np.float16)), b.op("Add", erf, b.const(1.0, np.float16)), out="y")
    model = b.model([_vi("x", [4, 8], TensorProto.FLOAT16)], [_vi("y", [4, 8], TensorProto.FLOAT16)])
    # float16 tolerances: Gelu rounds once, the decomposed graph after every op
    assert _ops(_check(model, {"x": _x(4, 8).astype(np.float16)}, rtol=1e-2, atol=1e-3)) == ["Gelu"]


def test_gelu_lookalikes_and_shared_intermediates_are_left_alone():
    # a different divisor is not GELU
    b = Builder()
    erf = b.op("Erf", b.op("Div", "x", b.const(1.3)))
    b.op("Mul", b.op("Mul", "x", b.const(0.5)), b.op("Add", erf, b.const(1.0)), out="y")
    model = b.model([_vi("x", [4, 8])], [_vi("y", [4, 8])])
    feeds = {"x": _x(4, 8)}
    assert _ops(_check(model, feeds)) == ["Div", "Erf", "Mul", "Add", "Mul"]
    # the erf value is a graph output too, so the subgraph must stay
    b = Builder()
    erf = b.op("Erf", b.op("Div", "x", b.const(SQRT2)), out="erf")
    b.op("Mul", b.op("Mul", "x", b.const(0.5)), b.op("Add", erf, b.const(1.0)), out="y")
    model = b.model([_vi("x", [4, 8])], [_vi("y", [4, 8]), _vi("erf", [4, 8])])
    assert "Gelu" not in _ops(_check(model, feeds))


class _OnnxDomainOnly:
    """A provider that declines every com.microsoft op and delegates the rest."""

    def __init__(self, inner):
        self.inner, self.fallback = inner, True

    def claim(self, domain, op_type, version, dtypes):
        return "no contrib kernels" if domain == "com.microsoft" else self.inner.claim(domain, op_type, version, dtypes)


def test_no_fusion_into_an_op_the_provider_lacks():
    proto = _activation_model(_gelu_erf, "hf", bias=False)
    cpu = _session(proto, DISABLED)._providers[0]

    class Owner:  # what optimize() reads from a session
        _providers = [_OnnxDomainOnly(cpu)]

    for owner, expected in ((Owner, ["MatMul", "Div", "Erf", "Mul", "Add", "Mul"]),
                            (type("CPU", (), {"_providers": [cpu]}), ["MatMul", "Gelu"])):
        model = model_from_proto(onnx.shape_inference.infer_shapes(proto))
        optimize(model, EXTENDED, owner, passes=[GeluFusion()])
        assert [n.op_type for n in model.graph.nodes] == expected
        assert ("com.microsoft" in model.opset_imports) == ("Gelu" in expected)


# -- layer normalization ------------------------------------------------------------------


def _layer_norm(b: Builder, x: str, width: int, variant: str = "pow", out: str | None = None, eps=1e-5) -> str:
    mean = b.op("ReduceMean", x, axes=[-1])
    d = b.op("Sub", x, mean)
    square = b.op("Mul", d, d) if variant == "mul" else b.op("Pow", d, b.const(2.0))
    var = b.op("ReduceMean", square, axes=[-1])
    std = b.op("Sqrt", b.op("Add", var, b.const(eps)))
    if variant == "two_subs":  # the mean subtracted again for the division
        norm = b.op("Div", b.op("Sub", x, mean), std)
    elif variant == "reciprocal":
        norm = b.op("Mul", d, b.op("Reciprocal", std))
    else:
        norm = b.op("Div", d, std)
    gamma = b.const(1 + 0.1 * b.rng.standard_normal(width))
    if variant == "no_beta":
        return b.op("Mul", norm, gamma, out=out)
    return b.op("Add", b.op("Mul", gamma, norm), b.const(0.1 * b.rng.standard_normal(width)), out=out)


def _rms_norm(b: Builder, x: str, width: int, variant: str = "reciprocal", out: str | None = None) -> str:
    square = b.op("Pow", x, b.const(2.0)) if variant == "reciprocal" else b.op("Mul", x, x)
    root = b.op("Sqrt", b.op("Add", b.op("ReduceMean", square, axes=[-1]), b.const(1e-6)))
    norm = b.op("Mul", x, b.op("Reciprocal", root)) if variant == "reciprocal" else b.op("Div", x, root)
    return b.op("Mul", b.const(1 + 0.1 * b.rng.standard_normal(width)), norm, out=out)


@pytest.mark.parametrize("variant", ["pow", "mul", "two_subs", "reciprocal", "no_beta"])
def test_layer_norm_fusion(variant, tmp_path):
    b = Builder()
    _layer_norm(b, "x", 32, variant, out="y")
    model = b.model([_vi("x", ["batch", 8, 32])], [_vi("y", ["batch", 8, 32])])
    sess = _check(model, {"x": _x(3, 8, 32) * 2 + 1}, tmp_path)
    assert _ops(sess) == ["LayerNormalization"]
    onnx.checker.check_model(onnx.load(tmp_path / "optimized.onnx"), full_check=True)


def test_layer_norm_fusion_before_opset_17_uses_onnxruntimes_layer_normalization(tmp_path):
    # onnxruntime registers LayerNormalization in the ONNX domain for opsets 1-16 and fuses to it
    b = Builder()
    _layer_norm(b, "x", 32, out="y")
    model = b.model([_vi("x", [2, 8, 32])], [_vi("y", [2, 8, 32])], opset=13)
    assert _ops(_check(model, {"x": _x(2, 8, 32)}, tmp_path)) == ["LayerNormalization"]


def test_layer_norm_over_a_non_last_axis_is_not_fused():
    b = Builder()
    mean = b.op("ReduceMean", "x", axes=[1])
    d = b.op("Sub", "x", mean)
    std = b.op("Sqrt", b.op("Add", b.op("ReduceMean", b.op("Pow", d, b.const(2.0)), axes=[1]), b.const(1e-5)))
    b.op("Div", d, std, out="y")
    model = b.model([_vi("x", [2, 8, 32])], [_vi("y", [2, 8, 32])])
    assert "LayerNormalization" not in _ops(_check(model, {"x": _x(2, 8, 32)}))


@pytest.mark.parametrize("variant", ["reciprocal", "div"])
def test_rms_norm_fuses_to_simplified_layer_normalization(variant, tmp_path):
    b = Builder()
    _rms_norm(b, "x", 32, variant, out="y")
    model = b.model([_vi("x", [2, 8, 32])], [_vi("y", [2, 8, 32])])
    assert _ops(_check(model, {"x": _x(2, 8, 32)}, tmp_path)) == ["SimplifiedLayerNormalization"]


def test_skip_layer_norm_with_bias_and_with_the_sum_read_later(tmp_path):
    # post-norm: LN(x + (h W + b)); pre-norm: s = x + h, LN(s) and s read again
    b = Builder()
    proj = b.op("Add", b.rand(32), b.op("MatMul", "h", b.rand(32, 32)))
    y1 = _layer_norm(b, b.op("Add", proj, "x"), 32)
    s = b.op("Add", y1, "h")
    y2 = _layer_norm(b, s, 32)
    b.op("Add", b.op("MatMul", y2, b.rand(32, 32)), s, out="y")
    model = b.model([_vi("x", [2, 8, 32]), _vi("h", [2, 8, 32])], [_vi("y", [2, 8, 32])])
    sess = _check(model, {"x": _x(2, 8, 32, seed=4), "h": _x(2, 8, 32, seed=5)}, tmp_path)
    assert _ops(sess) == ["MatMul", "SkipLayerNormalization", "SkipLayerNormalization", "MatMul", "Add"]
    skips = [n for n in onnx.load(tmp_path / "optimized.onnx").graph.node if n.op_type == "SkipLayerNormalization"]
    assert [len(n.input) for n in skips] == [5, 4]  # the first carries the bias
    assert [list(n.output)[1:] for n in skips] == [[], ["", "", s]]


def test_skip_simplified_layer_norm(tmp_path):
    b = Builder()
    _rms_norm(b, b.op("Add", "x", "h"), 32, out="y")
    model = b.model([_vi("x", [2, 8, 32]), _vi("h", [2, 8, 32])], [_vi("y", [2, 8, 32])])
    feeds = {"x": _x(2, 8, 32, seed=4), "h": _x(2, 8, 32, seed=5)}
    assert _ops(_check(model, feeds, tmp_path)) == ["SkipSimplifiedLayerNormalization"]


def test_matmul_add_with_3d_activations_stays_matmul_add():
    b = Builder()
    b.op("Add", b.op("MatMul", "x", b.rand(16, 8)), b.rand(8), out="y")
    model = b.model([_vi("x", [2, 4, 16])], [_vi("y", [2, 4, 8])])
    assert _ops(_check(model, {"x": _x(2, 4, 16)})) == ["MatMul", "Add"]


# -- attention ----------------------------------------------------------------------------


def _dim(b: Builder, x: str, i: int) -> str:
    return b.op("Unsqueeze", b.op("Gather", b.op("Shape", x), b.const(i, np.int64), axis=0), b.ints(0))


def _linear(b: Builder, x: str, n_in: int, n_out: int) -> str:
    return b.op("Add", b.op("MatMul", x, b.rand(n_in, n_out)), b.rand(n_out))


def _split_heads(b: Builder, t: str, heads: int, size: int, perm: list[int]) -> str:
    shape = b.op("Concat", _dim(b, t, 0), _dim(b, t, 1), b.ints(heads), b.ints(size), axis=0)
    return b.op("Transpose", b.op("Reshape", t, shape), perm=perm)


def _merge_heads(b: Builder, t: str, hidden: int) -> str:
    t = b.op("Transpose", t, perm=[0, 2, 1, 3])
    return b.op("Reshape", t, b.op("Concat", _dim(b, t, 0), _dim(b, t, 1), b.ints(hidden), axis=0))


def _bert_self_attention(b: Builder, x: str, ext_mask: str | None, hidden: int, heads: int, variant: int) -> str:
    """HF BertSelfAttention as exported: variant 0 transposes K to [0, 2, 3, 1] and divides
    by sqrt(H); variant 1 transposes K twice and multiplies by 1/sqrt(H); variant 2 scales
    Q and K by H^-1/4 each (PyTorch's decomposed scaled_dot_product_attention)."""
    size = hidden // heads
    q = _split_heads(b, _linear(b, x, hidden, hidden), heads, size, [0, 2, 1, 3])
    if variant == 0:
        k = _split_heads(b, _linear(b, x, hidden, hidden), heads, size, [0, 2, 3, 1])
    else:
        k = _split_heads(b, _linear(b, x, hidden, hidden), heads, size, [0, 2, 1, 3])
        k = b.op("Transpose", k, perm=[0, 1, 3, 2])
    v = _split_heads(b, _linear(b, x, hidden, hidden), heads, size, [0, 2, 1, 3])
    if variant == 2:
        quarter = b.const(size ** -0.25)
        scores = b.op("MatMul", b.op("Mul", q, quarter), b.op("Mul", k, quarter))
    elif variant == 1:
        scores = b.op("Mul", b.op("MatMul", q, k), b.const(1 / math.sqrt(size)))
    else:
        scores = b.op("Div", b.op("MatMul", q, k), b.const(math.sqrt(size)))
    if ext_mask is not None:
        scores = b.op("Add", scores, ext_mask)
    probs = b.op("Softmax", scores, axis=-1)
    return _merge_heads(b, b.op("MatMul", probs, v), hidden)


def _extended_mask(b: Builder, mask: str, fill: float = -10000.0) -> str:
    m = b.op("Unsqueeze", b.op("Unsqueeze", mask, b.ints(1)), b.ints(2))
    return b.op("Mul", b.op("Sub", b.const(1.0), b.op("Cast", m, to=FLOAT)), b.const(fill))


def _bert(hidden=64, heads=4, layers=2, vocab=50, ffn=128) -> onnx.ModelProto:
    """A small BERT encoder: embeddings + LayerNorm, ``layers`` post-norm layers, a pooler."""
    b = Builder()
    seq = b.op("Gather", b.op("Shape", "input_ids"), b.const(1, np.int64), axis=0)
    positions = b.op("Unsqueeze", b.op("Range", b.const(0, np.int64), seq, b.const(1, np.int64)), b.ints(0))
    emb = b.op("Add", b.op("Gather", b.rand(vocab, hidden, scale=1.0), "input_ids"),
               b.op("Gather", b.rand(32, hidden, scale=1.0), positions))
    h = _layer_norm(b, emb, hidden, eps=1e-12)
    ext = _extended_mask(b, "attention_mask")
    for i in range(layers):
        a = _bert_self_attention(b, h, ext, hidden, heads, variant=i % 3)
        h = _layer_norm(b, b.op("Add", _linear(b, a, hidden, hidden), h), hidden, ("pow", "mul")[i % 2], eps=1e-12)
        f = _linear(b, _gelu_erf(b, _linear(b, h, hidden, ffn), ("hf", "half_last")[i % 2]), ffn, hidden)
        h = _layer_norm(b, b.op("Add", f, h), hidden, out="last_hidden_state" if i == layers - 1 else None, eps=1e-12)
    first = b.op("Gather", h, b.const(0, np.int64), axis=1)
    b.op("Tanh", _linear(b, first, hidden, hidden), out="pooled")
    return b.model(
        [_vi("input_ids", ["batch", "seq"], TensorProto.INT64),
         _vi("attention_mask", ["batch", "seq"], TensorProto.INT64)],
        [_vi("last_hidden_state", ["batch", "seq", hidden]), _vi("pooled", ["batch", hidden])],
    )


def _bert_feeds(batch=2, seq=16, seed=0):
    rng = np.random.default_rng(seed)
    mask = np.ones((batch, seq), np.int64)
    mask[1, seq - 5:] = 0  # the second sequence is padded
    return {"input_ids": rng.integers(0, 50, (batch, seq)).astype(np.int64), "attention_mask": mask}


def test_bert_encoder_fuses_to_attention_skip_layer_norm_and_bias_gelu(tmp_path):
    model = _bert()
    assert len(_ops(_session(model, DISABLED))) > 150
    sess = _check(model, _bert_feeds(), tmp_path)
    assert _ops(sess) == [
        "Shape", "Gather", "Range", "Unsqueeze", "Gather", "Gather", "Add", "LayerNormalization", "Cast",
        *(["Attention", "MatMul", "SkipLayerNormalization",
           "MatMul", "BiasGelu", "MatMul", "SkipLayerNormalization"] * 2),
        "Gather", "FusedGemm",
    ]
    saved = onnx.load(tmp_path / "optimized.onnx")
    onnx.checker.check_model(saved, full_check=True)
    attention = [n for n in saved.graph.node if n.op_type == "Attention"]
    assert [helper.get_attribute_value(a) for a in attention[0].attribute] == [4]  # num_heads only
    assert {o.domain: o.version for o in saved.opset_import} == {"": 17, "com.microsoft": 1}
    # another batch and sequence length through the same optimized session
    feeds = _bert_feeds(batch=3, seq=9, seed=1)
    for e, a in zip(_ort(model.SerializeToString(), feeds), sess.run(None, feeds)):
        compare_outputs(e, a, rtol=1e-3, atol=1e-5)


def test_attention_with_q_and_k_scaled_separately_and_finfo_min_mask(tmp_path):
    b = Builder(3)
    ext = _extended_mask(b, "mask", fill=float(np.finfo(np.float32).min))
    _bert_self_attention(b, "x", ext, 32, 2, variant=2)
    b.nodes[-1].output[0] = "y"
    model = b.model([_vi("x", [2, 8, 32]), _vi("mask", [2, 8], TensorProto.INT64)], [_vi("y", [2, 8, 32])])
    mask = np.ones((2, 8), np.int64)
    mask[0, 6:] = 0
    sess = _check(model, {"x": _x(2, 8, 32), "mask": mask}, tmp_path)
    assert _ops(sess) == ["Cast", "Attention"]
    (node,) = [n for n in onnx.load(tmp_path / "optimized.onnx").graph.node if n.op_type == "Attention"]
    assert helper.get_attribute_value(node.attribute[0]) == pytest.approx(float(np.finfo(np.float32).min))


def test_attention_without_mask_and_with_probs_read_elsewhere():
    def model(expose_probs: bool):
        b = Builder(4)
        _bert_self_attention(b, "x", None, 32, 4, variant=0)
        b.nodes[-1].output[0] = "y"
        outputs = [_vi("y", [2, 8, 32])]
        if expose_probs:  # the attention probabilities are an output: nothing to fuse
            probs = next(n.output[0] for n in b.nodes if n.op_type == "Softmax")
            b.op("Identity", probs, out="probs")
            outputs.append(_vi("probs", [2, 4, 8, 8]))
        return b.model([_vi("x", [2, 8, 32])], outputs)

    assert _ops(_check(model(False), {"x": _x(2, 8, 32)})) == ["Attention"]
    assert "Attention" not in _ops(_check(model(True), {"x": _x(2, 8, 32)}))


def _gpt2(hidden=64, heads=4, seq=16, layers=2, padding_fill=-10000.0) -> onnx.ModelProto:
    """GPT-2 blocks as exported without past: pre-norm, one packed QKV projection Split in
    three, future keys masked with Where on a constant lower-triangular mask, gelu_new."""
    b = Builder(5)
    size = hidden // heads
    causal = b.const(np.tril(np.ones((seq, seq), bool))[None, None], np.bool_)
    ext = _extended_mask(b, "attention_mask", fill=padding_fill)
    h = "x"
    for _ in range(layers):
        qkv = _linear(b, _layer_norm(b, h, hidden), hidden, 3 * hidden)
        b.n += 1
        q, k, v = (f"split{b.n}_{i}" for i in range(3))
        b.nodes.append(helper.make_node("Split", [qkv, b.ints(hidden, hidden, hidden)], [q, k, v], axis=2))
        q, k, v = (_split_heads(b, t, heads, size, [0, 2, 1, 3]) for t in (q, k, v))
        scores = b.op("Div", b.op("MatMul", q, b.op("Transpose", k, perm=[0, 1, 3, 2])), b.const(math.sqrt(size)))
        scores = b.op("Add", b.op("Where", causal, scores, b.const(np.finfo(np.float32).min)), ext)
        a = _merge_heads(b, b.op("MatMul", b.op("Softmax", scores, axis=-1), v), hidden)
        h = b.op("Add", h, _linear(b, a, hidden, hidden))
        f = _gelu_tanh(b, _linear(b, _layer_norm(b, h, hidden), hidden, 4 * hidden), "gelu_new")
        f = _linear(b, f, 4 * hidden, hidden)
        h = b.op("Add", h, f)
    _layer_norm(b, h, hidden, out="y")
    return b.model([_vi("x", ["batch", seq, hidden]), _vi("attention_mask", ["batch", seq], TensorProto.INT64)],
                   [_vi("y", ["batch", seq, hidden])])


def test_gpt2_blocks_fuse_to_unidirectional_attention(tmp_path):
    mask = np.ones((2, 16), np.int64)
    mask[1, :3] = 0  # left padding
    sess = _check(_gpt2(), {"x": _x(2, 16, 64), "attention_mask": mask}, tmp_path)
    block = ["Attention", "MatMul", "SkipLayerNormalization", "MatMul", "FastGelu", "MatMul"]
    skip = "SkipLayerNormalization"
    assert _ops(sess) == ["LayerNormalization", "Cast", *block, skip, *block, skip]
    saved = onnx.load(tmp_path / "optimized.onnx")
    attention = [n for n in saved.graph.node if n.op_type == "Attention"]
    assert [{a.name: helper.get_attribute_value(a) for a in n.attribute}["unidirectional"] for n in attention] == [1, 1]
    # the residual sums are read by the next block: the Skip nodes return them, but the last
    assert [len(n.output) for n in saved.graph.node if n.op_type == "SkipLayerNormalization"] == [4, 4, 4, 1]


def test_gpt2_attention_is_not_fused_where_masked_rows_would_differ():
    # With HF's finfo.min padding fill, a query whose visible keys are all padding ties them
    # with the future keys in Attention but not in the model (the first rows of a left-padded
    # sequence): the attention stays unfused, the rest is fused.
    mask = np.ones((2, 16), np.int64)
    mask[1, :3] = 0
    model = _gpt2(layers=1, padding_fill=float(np.finfo(np.float32).min))
    ops = _ops(_check(model, {"x": _x(2, 16, 64), "attention_mask": mask}))
    assert "Attention" not in ops and {"Softmax", "Where", "FastGelu", "SkipLayerNormalization"} <= set(ops)
