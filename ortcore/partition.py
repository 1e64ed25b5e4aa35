"""Assign each node to the first provider, in the user's order, that claims it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ortcore.errors import NotImplemented
from ortcore.ir import Graph, Node
from ortcore.kernels import KernelDef, normalize_domain
from ortcore.provider import ExecutionProvider

__all__ = ["NodeAssignment", "FusedGroup", "Transfer", "Partition", "partition_graph", "opset_for"]


@dataclass
class NodeAssignment:
    """Where one node runs, with which kernel, and who declined it first."""

    node: Node
    provider: ExecutionProvider
    kernel: KernelDef
    opset: int
    declined: dict[str, str] = field(default_factory=dict)
    #: name of the FusedGroup this node was compiled into, if its provider fused it
    group: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "node": self.node.name or self.node.outputs[0],
            "op_type": self.node.op_type,
            "domain": self.node.domain or "ai.onnx",
            "opset": self.opset,
            "provider": self.provider.name,
            "kernel": self.kernel.name,
            "declined": dict(self.declined),
            "fused_into": self.group,
        }


@dataclass
class FusedGroup:
    """Nodes that one provider compiles into a single step (the "compiled provider" path).

    Returned by :meth:`ExecutionProvider.fuse`. ``fn(*inputs)`` computes the
    values named in ``outputs`` from those named in ``inputs`` (one array when
    there is one output, else a tuple in that order); every other value the
    nodes produce stays inside the group. The step runs where the group's last
    node would have run, so values used outside the group must be listed in
    ``outputs`` (the plan checks this).
    """

    name: str
    nodes: list[Node]
    inputs: list[str]
    outputs: list[str]
    fn: Callable[..., Any]


@dataclass(frozen=True)
class Transfer:
    """A value copied between devices because its producer and consumer differ."""

    value: str
    source: str
    target: str

    def as_dict(self) -> dict[str, str]:
        return {"value": self.value, "from": self.source, "to": self.target}


@dataclass
class Partition:
    """The visible result of partitioning: per node, and the transfers between devices."""

    assignments: list[NodeAssignment]
    transfers: list[Transfer] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "nodes": [a.as_dict() for a in self.assignments],
            "transfers": [t.as_dict() for t in self.transfers],
        }

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for a in self.assignments:
            out[a.provider.name] = out.get(a.provider.name, 0) + 1
        return out

    def table(self) -> str:
        """A readable table: one line per node, then transfers and totals."""
        rows = [("node", "op", "provider", "declined by")]
        for a in self.assignments:
            declined = "; ".join(f"{p}: {r}" for p, r in a.declined.items())
            where = f"{a.provider.name} [{a.group}]" if a.group else a.provider.name
            rows.append((a.node.name or a.node.outputs[0], a.node.op_type, where, declined))
        widths = [min(40, max(len(r[i]) for r in rows)) for i in range(3)]
        lines = [
            ("  ".join(c.ljust(w) for c, w in zip(r[:3], widths)) + (f"  {r[3]}" if r[3] else "")).rstrip()
            for r in rows
        ]
        for t in self.transfers:
            lines.append(f"transfer {t.value!r}: {t.source} -> {t.target}")
        totals = ", ".join(f"{name}: {n}" for name, n in self.counts().items())
        groups = len({a.group for a in self.assignments if a.group})
        fused = f", {groups} fused groups" if groups else ""
        lines.append(f"{len(self.assignments)} nodes ({totals}), {len(self.transfers)} transfers{fused}")
        return "\n".join(lines)


def opset_for(opset_imports: dict[str, int], node: Node) -> int:
    domain = normalize_domain(node.domain)
    for key, version in opset_imports.items():
        if normalize_domain(key) == domain:
            return version
    return 1


def partition_graph(
    graph: Graph,
    opset_imports: dict[str, int],
    providers: Sequence[ExecutionProvider],
    types: dict[str, Any] | None = None,
) -> Partition:
    """Ask ``providers`` in order to claim every node; raise NotImplemented for unclaimed ones."""
    types = graph.types() if types is None else types
    assignments: list[NodeAssignment] = []
    unclaimed: list[str] = []
    for node in graph.nodes:
        opset = opset_for(opset_imports, node)
        dtypes = [(types.get(name).dtype if types.get(name) is not None else None) if name else None for name in node.inputs]
        declined: dict[str, str] = {}
        for provider in providers:
            claim = provider.claim(node.domain, node.op_type, opset, dtypes)
            if isinstance(claim, KernelDef) and claim.supports is not None:
                reason = claim.supports(node, [types.get(name) if name else None for name in node.inputs])
                claim = reason if reason else claim
            if isinstance(claim, KernelDef):
                assignments.append(NodeAssignment(node, provider, claim, opset, declined))
                break
            declined[provider.name] = claim
        else:
            reasons = "; ".join(f"{p}: {r}" for p, r in declined.items()) or "no providers"
            unclaimed.append(
                f"{node.describe()} (domain {normalize_domain(node.domain) or 'ai.onnx'}, "
                f"opset {opset}) - {reasons}"
            )
    if unclaimed:
        asked = ", ".join(p.name for p in providers) or "none"
        raise NotImplemented(
            f"{len(unclaimed)} node(s) have no implementation in the providers asked ({asked}):\n  "
            + "\n  ".join(unclaimed)
        )
    return Partition(assignments)
