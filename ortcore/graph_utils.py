"""Structural checks and orderings of graphs, shared by the session and the optimizer."""

from __future__ import annotations

from collections.abc import Iterable

from ortcore.errors import InvalidGraph
from ortcore.ir import Graph, Node

__all__ = ["toposort", "validate_graph", "outer_scope_names"]


def outer_scope_names(graph: Graph) -> set[str]:
    """Names a (sub)graph reads that it neither defines nor receives as inputs."""
    defined = {v.name for v in graph.inputs} | set(graph.initializers)
    used: set[str] = set()
    for node in graph.nodes:
        defined.update(o for o in node.outputs if o)
    for node in graph.nodes:
        used.update(i for i in node.inputs if i)
        for sub in node.subgraphs():
            used.update(outer_scope_names(sub))
    used.update(v.name for v in graph.outputs)
    return used - defined


def toposort(graph: Graph, available: Iterable[str] = ()) -> list[Node]:
    """Nodes in a stable topological order; InvalidGraph names undefined values or cycles."""
    known = set(available) | {v.name for v in graph.inputs} | set(graph.initializers)
    producer: dict[str, int] = {}
    for i, node in enumerate(graph.nodes):
        for out in node.outputs:
            if not out:
                continue
            if out in producer or out in known and out not in graph.initializers:
                raise InvalidGraph(f"value {out!r} is produced twice (by {node.describe()})")
            producer[out] = i
    deps: list[set[int]] = []
    for node in graph.nodes:
        needs = set()
        names = [n for n in node.inputs if n]
        for sub in node.subgraphs():
            names.extend(outer_scope_names(sub))
        for name in names:
            if name in producer:
                needs.add(producer[name])
            elif name not in known:
                raise InvalidGraph(
                    f"{node.describe()} reads {name!r}, which is not a graph input, an "
                    f"initializer or the output of any node"
                )
        deps.append(needs)
    order: list[Node] = []
    done: set[int] = set()
    pending = list(range(len(graph.nodes)))
    while pending:
        rest = []
        for i in pending:
            if deps[i] <= done:
                order.append(graph.nodes[i])
                done.add(i)
            else:
                rest.append(i)
        if len(rest) == len(pending):
            names = ", ".join(graph.nodes[i].describe() for i in rest[:5])
            raise InvalidGraph(f"the graph has a cycle among: {names}")
        pending = rest
    return order


def validate_graph(graph: Graph, available: Iterable[str] = ()) -> None:
    """Sort ``graph.nodes`` topologically in place and check every output is defined."""
    graph.nodes = toposort(graph, available)
    defined = set(available) | {v.name for v in graph.inputs} | set(graph.initializers)
    defined.update(o for n in graph.nodes for o in n.outputs if o)
    for out in graph.outputs:
        if out.name not in defined:
            raise InvalidGraph(f"graph output {out.name!r} is not produced by any node or input")
