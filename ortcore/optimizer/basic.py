"""Basic-level passes: identity removal, constant folding, dead-node removal."""

from __future__ import annotations

import logging

import numpy as np

from ortcore.ir import Graph, Model, Node
from ortcore.kernels import KernelDef, NodeContext
from ortcore.optimizer.base import GraphPass, OptimizeContext
from ortcore.optimizer.qdq import in_qdq_group
from ortcore.options import GraphOptimizationLevel
from ortcore.partition import opset_for

__all__ = ["IdentityElimination", "ConstantFolding", "DeadNodeElimination"]

log = logging.getLogger("ortcore.optimizer")

NONDETERMINISTIC = {
    "RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike",
    "Multinomial", "Bernoulli",
}
# Folding these would only copy a value the graph already has.
NOT_FOLDED = {"Identity"}
MAX_FOLDED_BYTES = 1 << 31


def _rename_uses(graph: Graph, old: str, new: str) -> None:
    for node in graph.nodes:
        node.inputs = [new if name == old else name for name in node.inputs]


class IdentityElimination(GraphPass):
    """Remove Identity and inference-mode Dropout nodes by rewiring their consumers."""

    name = "identity_elimination"
    level = GraphOptimizationLevel.ORT_ENABLE_BASIC

    def run(self, model: Model, ctx: OptimizeContext) -> int:
        graph = model.graph
        outputs = {v.name for v in graph.outputs}
        used_by_subgraphs = _subgraph_reads(graph)
        read = outputs | used_by_subgraphs | {name for node in graph.nodes for name in node.inputs}
        removed = 0
        for node in list(graph.nodes):
            if not self._is_identity(node, read):
                continue
            src, dst = node.inputs[0], node.outputs[0]
            if dst in outputs or dst in used_by_subgraphs:
                continue
            _rename_uses(graph, dst, src)
            graph.nodes.remove(node)
            removed += 1
        return removed

    @staticmethod
    def _is_identity(node: Node, read: set[str]) -> bool:
        """Identity, or a Dropout not in training mode whose mask nobody reads."""
        if node.domain not in ("", "ai.onnx") or not node.inputs or not node.inputs[0]:
            return False
        if node.op_type == "Identity":
            return True
        if node.op_type == "Dropout":
            mask_read = any(o and o in read for o in node.outputs[1:])
            training = node.inputs[2] if len(node.inputs) > 2 else ""
            return not mask_read and not training
        return False


def attribute_reads(node: Node) -> list[str]:
    """Values a node names in attributes rather than inputs (Gradient's ``y``)."""
    if node.op_type == "Gradient" and node.domain == "ai.onnx.preview.training":
        return [node.attrs["y"]] if "y" in node.attrs else []
    return []


def _subgraph_reads(graph: Graph) -> set[str]:
    from ortcore.graph_utils import outer_scope_names

    reads: set[str] = set()
    for node in graph.nodes:
        for sub in node.subgraphs():
            reads |= outer_scope_names(sub)
    return reads


class ConstantFolding(GraphPass):
    """Run nodes whose inputs are all constants once, with a fallback provider's kernels."""

    name = "constant_folding"
    level = GraphOptimizationLevel.ORT_ENABLE_BASIC

    def run(self, model: Model, ctx: OptimizeContext) -> int:
        graph = model.graph
        providers = [p for p in ctx.providers if p.fallback] or ctx.providers
        if not providers:
            return 0
        folded = 0
        consumers = graph.consumers()
        for node in list(graph.nodes):
            if not self._foldable(node, graph, ctx):
                continue
            if in_qdq_group(node, consumers):
                continue  # the QDQ fusion needs the integer weights it dequantizes
            values = self._evaluate(node, model, providers)
            if values is None:
                continue
            for name, value in zip(node.outputs, values):
                if name:
                    graph.initializers[name] = value
            graph.nodes.remove(node)
            folded += 1
        return folded

    @staticmethod
    def _foldable(node: Node, graph: Graph, ctx: OptimizeContext) -> bool:
        if node.op_type in NONDETERMINISTIC or node.op_type in NOT_FOLDED:
            return False
        if any(True for _ in node.subgraphs()):
            return False
        inputs = [i for i in node.inputs if i]
        return all(i in graph.initializers and i not in ctx.frozen for i in inputs)

    @staticmethod
    def _evaluate(node: Node, model: Model, providers: list) -> list[np.ndarray] | None:
        graph = model.graph
        opset = opset_for(model.opset_imports, node)
        args = [graph.initializers[i] if i else None for i in node.inputs]
        dtypes = [a.dtype if a is not None else None for a in args]
        for provider in providers:
            kdef = provider.claim(node.domain, node.op_type, opset, dtypes)
            if not isinstance(kdef, KernelDef) or kdef.unknown_attributes(node.attrs):
                continue
            ctx = NodeContext(
                node=node, opset=opset,
                input_types=[graph.type_of(i) if i else None for i in node.inputs],
                output_types=[None] * len(node.outputs), n_outputs=len(node.outputs),
                xp=np, provider=provider,
                constants={k: a for k, a in enumerate(args) if a is not None},
            )
            while args and args[-1] is None:
                args.pop()
            try:
                fn = provider.create_kernel(kdef, ctx, dict(node.attrs))
                result = fn(*args)
            except Exception as exc:  # noqa: BLE001 - leave the node for run time to report
                log.debug("not folding %s: %s", node.describe(), exc)
                return None
            results = list(result) if kdef.multi_output else [result]
            named = [o for o in node.outputs if o]
            if len(results) < len(node.outputs) or any(not isinstance(r, np.ndarray) for r in results[: len(node.outputs)]):
                return None
            if sum(r.nbytes for r in results[: len(named)]) > MAX_FOLDED_BYTES:
                return None
            return results[: len(node.outputs)]
        return None


class DeadNodeElimination(GraphPass):
    """Remove nodes none of whose outputs is used, and initializers nothing reads."""

    name = "dead_node_elimination"
    level = GraphOptimizationLevel.ORT_ENABLE_BASIC

    def run(self, model: Model, ctx: OptimizeContext) -> int:
        graph = model.graph
        live = {v.name for v in graph.outputs} | _subgraph_reads(graph)
        live.update(name for node in graph.nodes for name in attribute_reads(node))
        kept: list[Node] = []
        removed = 0
        for node in reversed(graph.nodes):
            if any(o in live for o in node.outputs if o):
                kept.append(node)
                live.update(i for i in node.inputs if i)
            else:
                removed += 1
        graph.nodes = kept[::-1]
        inputs = {v.name for v in graph.inputs}
        for name in [n for n in graph.initializers if n not in live and n not in inputs]:
            del graph.initializers[name]
        return removed
