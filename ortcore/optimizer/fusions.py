"""Extended-level fusions: fold BatchNormalization, per-channel Mul and bias Adds
into Conv, per-channel Mul/Add into BatchNormalization, fuse activations (and a
residual Add) into Conv/Gemm, and turn MatMul+Add into Gemm.

Fused ops use onnxruntime's ``com.microsoft`` names and attributes, so a saved
optimized model still loads in onnxruntime. A fusion into a new op
(``com.microsoft`` or Gemm) is only made when the provider that would run the
original op also has a kernel for the fused one.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from ortcore.ir import Graph, Model, Node
from ortcore.kernels import KernelDef
from ortcore.optimizer.base import GraphPass, OptimizeContext
from ortcore.options import GraphOptimizationLevel
from ortcore.partition import opset_for

__all__ = [
    "BatchNormAffineFusion",
    "ConvActivationFusion",
    "ConvAddActivationFusion",
    "ConvAddFusion",
    "ConvBatchNormFusion",
    "ConvMulFusion",
    "GemmActivationFusion",
    "MatMulAddFusion",
]

MS_DOMAIN = "com.microsoft"
FLT_MAX = float(np.finfo(np.float32).max)


def remove_nodes(nodes: list[Node], removed: list[Node]) -> list[Node]:
    """``nodes`` without ``removed``, compared by identity (dataclass equality is slow and wrong here)."""
    gone = {id(n) for n in removed}
    return [n for n in nodes if id(n) not in gone]


def replace_nodes(nodes: list[Node], removed: list[Node], new: Node) -> list[Node]:
    """``removed`` taken out of ``nodes`` and ``new`` put where the first of them was."""
    gone = {id(n) for n in removed}
    out: list[Node] = []
    for n in nodes:
        if n is removed[0]:
            out.append(new)
        elif id(n) not in gone:
            out.append(n)
    return out


class Matcher:
    """Read-only views of a graph that fusion passes share: consumers, constants, outputs."""

    def __init__(self, model: Model, ctx: OptimizeContext) -> None:
        self.model = model
        self.graph: Graph = model.graph
        self.ctx = ctx
        self.consumers = self.graph.consumers()
        self.outputs = {v.name for v in self.graph.outputs}
        self.types = self.graph.types()
        self._supported: dict[tuple[str, str, str, str], bool] = {}

    def constant(self, name: str) -> np.ndarray | None:
        if not name or name in self.ctx.frozen:
            return None
        return self.graph.initializers.get(name)

    def sole_consumer(self, value: str) -> Node | None:
        """The one node reading ``value``, if exactly one does and it is no graph output."""
        users = self.consumers.get(value, [])
        if len(users) != 1 or value in self.outputs:
            return None
        return users[0]

    def pairs(self, first_op: str, second_ops: set[str]) -> Iterator[tuple[Node, Node]]:
        for node in list(self.graph.nodes):
            if node.op_type != first_op or node.domain not in ("", "ai.onnx") or not node.outputs:
                continue
            nxt = self.sole_consumer(node.outputs[0])
            if nxt is not None and nxt.op_type in second_ops and nxt.domain in ("", "ai.onnx"):
                yield node, nxt

    def add_initializer(self, base: str, value: np.ndarray) -> str:
        name, i = base, 0
        while name in self.graph.initializers or name in self.consumers:
            i += 1
            name = f"{base}_{i}"
        self.graph.initializers[name] = value
        return name

    def absorb(self, node: Node, follower: Node) -> None:
        """``node`` takes over the output of ``follower``, which it now computes; ``follower`` goes."""
        node.outputs = [follower.outputs[0]]
        self.graph.nodes = remove_nodes(self.graph.nodes, [follower])

    def replace(self, removed: list[Node], new: Node) -> None:
        self.graph.nodes = replace_nodes(self.graph.nodes, removed, new)

    def claimant(self, node: Node) -> Any | None:
        """The first of the session's providers with a kernel for ``node`` (its input dtypes), or None."""
        version = opset_for(self.model.opset_imports, node)
        dtypes = self._dtypes(node)
        for provider in self.ctx.providers:
            if isinstance(provider.claim(node.domain, node.op_type, version, dtypes), KernelDef):
                return provider
        return None

    def supports(self, like: Node, domain: str, op_type: str) -> bool:
        """Whether the provider that would claim ``like`` also has a kernel for domain::op_type."""
        version = 1 if domain == MS_DOMAIN else opset_for(self.model.opset_imports, like)
        dtypes = self._dtypes(like)
        key = (like.op_type, domain, op_type, str(dtypes))
        if key not in self._supported:
            provider = self.claimant(like)
            self._supported[key] = provider is not None and isinstance(
                provider.claim(domain, op_type, version, dtypes), KernelDef
            )
        return self._supported[key]

    def _dtypes(self, node: Node) -> list[Any]:
        return [self.types[n].dtype if self.types.get(n) is not None else None for n in node.inputs]


def _conv_parts(m: Matcher, conv: Node) -> tuple[np.ndarray, np.ndarray | None] | None:
    weight = m.constant(conv.inputs[1]) if len(conv.inputs) > 1 else None
    if weight is None or weight.dtype.kind != "f":
        return None
    bias = None
    if len(conv.inputs) > 2 and conv.inputs[2]:
        bias = m.constant(conv.inputs[2])
        if bias is None:
            return None
    return weight, bias


def _set_conv_params(m: Matcher, conv: Node, weight: np.ndarray, bias: np.ndarray) -> None:
    name = conv.name or conv.outputs[0]
    conv.inputs = [conv.inputs[0], m.add_initializer(f"{name}_W_fused", weight), m.add_initializer(f"{name}_B_fused", bias)]


class ConvBatchNormFusion(GraphPass):
    """Conv followed by inference BatchNormalization -> one Conv with rescaled weights."""

    name = "conv_batchnorm_fusion"
    level = GraphOptimizationLevel.ORT_ENABLE_EXTENDED

    def run(self, model: Model, ctx: OptimizeContext) -> int:
        m = Matcher(model, ctx)
        fused = 0
        for conv, bn in m.pairs("Conv", {"BatchNormalization"}):
            parts = _conv_parts(m, conv)
            params = inference_batchnorm(m, bn)
            if parts is None or params is None:
                continue
            weight, bias = parts
            scale, beta, mean, var = (p.astype(np.float64) for p in params)
            factor = scale / np.sqrt(var + bn.attrs.get("epsilon", 1e-5))
            if weight.shape[0] != factor.shape[0]:
                continue
            new_w = weight.astype(np.float64) * factor.reshape((-1,) + (1,) * (weight.ndim - 1))
            old_b = bias.astype(np.float64) if bias is not None else 0.0
            new_b = (old_b - mean) * factor + beta
            _set_conv_params(m, conv, new_w.astype(weight.dtype), new_b.astype(weight.dtype))
            m.absorb(conv, bn)
            fused += 1
        return fused


def _per_channel(value: np.ndarray, channels: int, rank: int) -> np.ndarray | None:
    """``value`` as a [channels] vector if it broadcasts along axis 1 of a rank-``rank`` tensor.

    A single element broadcasts to every channel; anything else must be laid
    out along axis 1 only, and no constant may add dimensions to the result.
    """
    shape = value.shape
    if len(shape) > rank:
        return None
    if value.size == 1:
        return np.full(channels, value.reshape(()), dtype=value.dtype)
    if value.size != channels:
        return None
    padded = (1,) * (rank - len(shape)) + tuple(shape)
    if padded[1] != channels or any(d != 1 for i, d in enumerate(padded) if i != 1):
        return None
    return value.reshape(channels)


def _other_input(node: Node, value: str) -> str:
    """The operand of a binary ``node`` that is not ``value``."""
    return node.inputs[1] if node.inputs[0] == value else node.inputs[0]


class _ConvConstantFold(GraphPass):
    """Conv followed by ``op_type`` with a per-channel (or scalar) constant, folded into the Conv."""

    level = GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    op_type = ""

    def run(self, model: Model, ctx: OptimizeContext) -> int:
        m = Matcher(model, ctx)
        fused = 0
        for conv, op in m.pairs("Conv", {self.op_type}):
            parts = _conv_parts(m, conv)
            constant = m.constant(_other_input(op, conv.outputs[0]))
            if parts is None or constant is None or constant.dtype != parts[0].dtype or len(set(op.inputs)) != 2:
                continue
            weight, bias = parts
            vector = _per_channel(constant, weight.shape[0], weight.ndim)
            if vector is None:
                continue
            new_w, new_b = self.fold(weight, bias, vector)
            _set_conv_params(m, conv, new_w.astype(weight.dtype, copy=False), new_b.astype(weight.dtype, copy=False))
            m.absorb(conv, op)
            fused += 1
        return fused

    def fold(self, weight: np.ndarray, bias: np.ndarray | None, vector: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The new (weight, bias) of ``op(Conv(x, weight, bias), vector)``."""
        raise NotImplementedError


class ConvMulFusion(_ConvConstantFold):
    """Conv followed by a Mul with a per-channel constant -> Conv with scaled weights and bias."""

    name = "conv_mul_fusion"
    op_type = "Mul"

    def fold(self, weight: np.ndarray, bias: np.ndarray | None, vector: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        wide = vector.astype(np.float64)
        new_w = weight.astype(np.float64) * wide.reshape((-1,) + (1,) * (weight.ndim - 1))
        new_b = (bias.astype(np.float64) if bias is not None else np.zeros(weight.shape[0])) * wide
        return new_w, new_b


class ConvAddFusion(_ConvConstantFold):
    """Conv followed by an Add of a per-channel constant -> the constant joins Conv's bias."""

    name = "conv_add_fusion"
    op_type = "Add"

    def fold(self, weight: np.ndarray, bias: np.ndarray | None, vector: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return weight, (bias if bias is not None else np.zeros(weight.shape[0], weight.dtype)) + vector


def inference_batchnorm(m: Matcher, bn: Node) -> list[np.ndarray] | None:
    """(scale, bias, mean, var) of a BatchNormalization in inference form with constant parameters."""
    params = [m.constant(n) for n in bn.inputs[1:5]]
    if len(params) != 4 or any(p is None for p in params):
        return None
    if any(o for o in bn.outputs[1:]) or bn.attrs.get("training_mode", 0) or not bn.attrs.get("spatial", 1):
        return None
    return params  # type: ignore[return-value]


class BatchNormAffineFusion(GraphPass):
    """BatchNormalization followed by Mul/Add with per-channel constants -> one BatchNormalization.

    Inference BatchNormalization is ``x * s + t`` per channel, so a following
    ``* a`` or ``+ b`` (Caffe's Scale layer, as exported in DenseNet) only
    changes its scale and bias: ``scale * a``, ``bias * a``, ``bias + b``.
    Mean, variance and epsilon are kept, so the result is a plain ONNX node.
    """

    name = "batchnorm_affine_fusion"
    level = GraphOptimizationLevel.ORT_ENABLE_EXTENDED

    def run(self, model: Model, ctx: OptimizeContext) -> int:
        m = Matcher(model, ctx)
        fused = 0
        for bn, op in m.pairs("BatchNormalization", {"Mul", "Add"}):
            params = inference_batchnorm(m, bn)
            x_type = m.types.get(bn.inputs[0])
            constant = m.constant(_other_input(op, bn.outputs[0]))
            if params is None or x_type is None or x_type.rank is None or constant is None:
                continue
            if constant.dtype != params[0].dtype or len(set(op.inputs)) != 2:
                continue
            scale, bias = params[0], params[1]
            vector = _per_channel(constant, scale.shape[0], max(x_type.rank, 2))
            if vector is None:
                continue
            if op.op_type == "Mul":
                scale, bias = scale * vector, bias * vector
            else:
                bias = bias + vector
            name = bn.name or bn.outputs[0]
            bn.inputs = [
                bn.inputs[0],
                m.add_initializer(f"{name}_scale_fused", scale.astype(params[0].dtype)),
                m.add_initializer(f"{name}_bias_fused", bias.astype(params[1].dtype)),
                *bn.inputs[3:5],
            ]
            m.absorb(bn, op)
            fused += 1
        return fused


def activation_of(m: Matcher, act: Node) -> tuple[str, list[float]] | None:
    """onnxruntime's (activation, activation_params) for a supported activation node."""
    op = act.op_type
    if op in ("Relu", "Sigmoid", "Tanh"):
        return op, []
    if op == "LeakyRelu":
        return op, [float(act.attrs.get("alpha", 0.01))]
    if op == "HardSigmoid":
        return op, [float(act.attrs.get("alpha", 0.2)), float(act.attrs.get("beta", 0.5))]
    if op == "Clip":
        if "min" in act.attrs or "max" in act.attrs:
            return op, [float(act.attrs.get("min", -FLT_MAX)), float(act.attrs.get("max", FLT_MAX))]
        bounds = []
        for i, default in ((1, -FLT_MAX), (2, FLT_MAX)):
            name = act.inputs[i] if len(act.inputs) > i else ""
            if not name:
                bounds.append(default)
                continue
            value = m.constant(name)
            if value is None or value.size != 1:
                return None
            bounds.append(float(value.reshape(())))
        return op, bounds
    return None


ACTIVATIONS = {"Relu", "LeakyRelu", "Sigmoid", "Tanh", "HardSigmoid", "Clip"}


class ConvActivationFusion(GraphPass):
    """Conv followed by an activation -> com.microsoft FusedConv."""

    name = "conv_activation_fusion"
    level = GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    source, target = "Conv", "FusedConv"

    def run(self, model: Model, ctx: OptimizeContext) -> int:
        m = Matcher(model, ctx)
        fused = 0
        for node, act in m.pairs(self.source, ACTIVATIONS if self.target == "FusedConv" else ACTIVATIONS - {"Clip"}):
            spec = activation_of(m, act)
            if spec is None or not self._eligible(m, node) or not m.supports(node, MS_DOMAIN, self.target):
                continue
            attrs: dict[str, Any] = dict(node.attrs, activation=spec[0], **self._parameters(spec[1]))
            fused_node = Node(self.target, list(node.inputs), [act.outputs[0]], attrs, MS_DOMAIN,
                              name=node.name or act.outputs[0], attr_types=dict(node.attr_types))
            m.replace([node, act], fused_node)
            model.opset_imports.setdefault(MS_DOMAIN, 1)
            fused += 1
        return fused

    def _eligible(self, m: Matcher, node: Node) -> bool:
        return True

    @staticmethod
    def _parameters(params: list[float]) -> dict[str, Any]:
        return {"activation_params": params} if params else {}


class ConvAddActivationFusion(GraphPass):
    """Conv + Add of another tensor of the same shape + activation -> FusedConv with input Z.

    onnxruntime's FusedConv computes ``activation(Conv(X, W, B) + Z)``; this is
    the residual connection of ResNet-style blocks (the Add may be a Sum of two).
    """

    name = "conv_add_activation_fusion"
    level = GraphOptimizationLevel.ORT_ENABLE_ALL

    def run(self, model: Model, ctx: OptimizeContext) -> int:
        m = Matcher(model, ctx)
        fused = 0
        taken: set[int] = set()  # Adds already fused (both operands may be Convs)
        for conv, add in m.pairs("Conv", {"Add", "Sum"}):
            if id(add) in taken or len(add.inputs) != 2 or add.inputs[0] == add.inputs[1]:
                continue
            act = m.sole_consumer(add.outputs[0])
            spec = activation_of(m, act) if act is not None and act.domain in ("", "ai.onnx") else None
            z = _other_input(add, conv.outputs[0])
            if spec is None or not self._same_static_type(m, z, conv.outputs[0]):
                continue
            if not m.supports(conv, MS_DOMAIN, "FusedConv"):
                continue
            bias = conv.inputs[2] if len(conv.inputs) > 2 else ""
            attrs: dict[str, Any] = dict(conv.attrs, activation=spec[0])
            if spec[1]:
                attrs["activation_params"] = spec[1]
            fused_node = Node("FusedConv", [conv.inputs[0], conv.inputs[1], bias, z], [act.outputs[0]], attrs,
                              MS_DOMAIN, name=conv.name or act.outputs[0], attr_types=dict(conv.attr_types))
            # Z may be computed after the Conv: the fused node goes where the activation was.
            m.replace([act, conv, add], fused_node)
            taken.add(id(add))
            model.opset_imports.setdefault(MS_DOMAIN, 1)
            fused += 1
        return fused

    @staticmethod
    def _same_static_type(m: Matcher, a: str, b: str) -> bool:
        """Both values have the same dtype and the same fully known shape (no broadcasting in the Add)."""
        ta, tb = m.types.get(a), m.types.get(b)
        if ta is None or tb is None or ta.dtype != tb.dtype or ta.shape is None or ta.shape != tb.shape:
            return False
        return all(isinstance(d, int) for d in ta.shape)


class GemmActivationFusion(ConvActivationFusion):
    """Gemm followed by an activation -> com.microsoft FusedGemm.

    FusedGemm spells the activation's parameters ``activation_alpha`` and
    ``activation_beta`` (FusedConv takes one list) and has no Clip.
    """

    name = "gemm_activation_fusion"
    source, target = "Gemm", "FusedGemm"

    @staticmethod
    def _parameters(params: list[float]) -> dict[str, Any]:
        return dict(zip(("activation_alpha", "activation_beta"), params))


class MatMulAddFusion(GraphPass):
    """2-D MatMul with a constant right operand followed by a bias Add -> Gemm.

    Made only when the provider that would run the MatMul also runs Gemm, so a
    provider with MatMul and Add kernels but no Gemm keeps both nodes.
    """

    name = "matmul_add_fusion"
    level = GraphOptimizationLevel.ORT_ENABLE_EXTENDED

    def run(self, model: Model, ctx: OptimizeContext) -> int:
        m = Matcher(model, ctx)
        types = m.graph.types()
        fused = 0
        for matmul, add in m.pairs("MatMul", {"Add"}):
            a_type = types.get(matmul.inputs[0])
            b = m.constant(matmul.inputs[1])
            other = add.inputs[1] if add.inputs[0] == matmul.outputs[0] else add.inputs[0]
            c = m.constant(other)
            if a_type is None or a_type.rank != 2 or b is None or b.ndim != 2 or c is None:
                continue
            if c.dtype != b.dtype or c.ndim > 2 or (c.ndim >= 1 and c.shape[-1] not in (1, b.shape[1])):
                continue
            if c.ndim == 2 and c.shape[0] != 1:
                continue  # a full [M, N] bias depends on the batch size; leave it
            if not m.supports(matmul, "", "Gemm"):
                continue  # the provider running this MatMul has no Gemm: keep the pair on it
            gemm = Node("Gemm", [matmul.inputs[0], matmul.inputs[1], other], [add.outputs[0]],
                        {}, "", name=matmul.name or add.outputs[0])
            m.replace([matmul, add], gemm)
            fused += 1
        return fused
