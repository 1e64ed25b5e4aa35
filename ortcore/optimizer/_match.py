"""What multi-node rewrites share: a :class:`Rewriter` that keeps producers and consumers
current while nodes are rewired, plus readers of constant operands and attributes.

It extends the fusions' ``Matcher`` (same constants, outputs and ``supports`` check);
``Matcher.replace`` is not used here because it leaves the consumer map stale.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from onnx import TensorProto

from ortcore.dtypes import np_dtype, onnx_elem_type
from ortcore.ir import Model, Node, TensorType, Value
from ortcore.optimizer.base import OptimizeContext
from ortcore.optimizer.basic import _subgraph_reads
from ortcore.optimizer.fusions import MS_DOMAIN, Matcher
from ortcore.partition import opset_for

__all__ = ["Rewriter", "MS_DOMAIN", "ONNX_DOMAINS", "cast_target"]

ONNX_DOMAINS = ("", "ai.onnx")


class Rewriter(Matcher):
    """A ``Matcher`` whose producer and consumer maps follow the edits made through it."""

    def __init__(self, model: Model, ctx: OptimizeContext) -> None:
        super().__init__(model, ctx)
        self.producers = self.graph.producers()
        self.pinned = self.outputs | _subgraph_reads(self.graph)
        self.types = self.graph.types()
        self._removed: dict[int, Node] = {}  # holds the nodes, so their ids stay unique
        self._dirty = False
        self._supported: dict[tuple, bool] = {}
        self._names = set(self.producers) | set(self.graph.initializers) | {v.name for v in self.graph.inputs}

    # -- reading ---------------------------------------------------------------------------

    def producer(self, name: str, *op_types: str) -> Node | None:
        """The ONNX-domain node producing ``name``, if its op type is one of ``op_types``."""
        node = self.producers.get(name) if name else None
        if node is None or node.domain not in ONNX_DOMAINS or (op_types and node.op_type not in op_types):
            return None
        return node

    def users(self, name: str) -> list[Node]:
        """The distinct nodes reading ``name`` (a node reading it twice appears once)."""
        seen: dict[int, Node] = {}
        for node in self.consumers.get(name, []):
            seen.setdefault(id(node), node)
        return list(seen.values())

    def only_user(self, name: str, *op_types: str) -> Node | None:
        """The one ONNX-domain node reading ``name`` (no graph output, no subgraph reads it)."""
        users = self.users(name)
        if len(users) != 1 or name in self.pinned:
            return None
        node = users[0]
        if node.domain not in ONNX_DOMAINS or (op_types and node.op_type not in op_types):
            return None
        return node

    def scalar(self, name: str) -> float | None:
        """The value of a one-element floating or integer constant of rank 0 or 1 (a higher
        rank would broadcast the other operand up to it)."""
        value = self.constant(name)
        if value is None or value.size != 1 or value.ndim > 1 or value.dtype.kind not in "fiub":
            return None
        return float(value.reshape(()))

    def is_scalar(self, name: str, expected: float, rtol: float = 1e-4) -> bool:
        value = self.scalar(name)
        return value is not None and abs(value - expected) <= rtol * abs(expected) + 1e-12

    def ints(self, name: str) -> list[int] | None:
        value = self.constant(name)
        if value is None or value.dtype.kind not in "iu" or value.ndim > 1:
            return None
        return [int(v) for v in value.reshape(-1)]

    def axes(self, node: Node, index: int = 1) -> list[int] | None:
        """A reduction's or Unsqueeze's axes: the attribute (older opsets) or constant input."""
        if "axes" in node.attrs:
            return [int(a) for a in node.attrs["axes"]]
        if len(node.inputs) > index and node.inputs[index]:
            return self.ints(node.inputs[index])
        return []

    def split_const(self, node: Node) -> tuple[str, str] | None:
        """(the other input, the constant input) of a binary node with one constant operand."""
        if len(node.inputs) != 2:
            return None
        a, b = node.inputs
        if self.constant(b) is not None and self.constant(a) is None:
            return a, b
        if self.constant(a) is not None and self.constant(b) is None:
            return b, a
        return None

    def other_input(self, node: Node, name: str) -> str | None:
        """The input of a two-input node that is not ``name`` (``name`` itself for x op x)."""
        if len(node.inputs) != 2 or name not in node.inputs:
            return None
        return node.inputs[1] if node.inputs[0] == name else node.inputs[0]

    def shape(self, name: str) -> tuple[Any, ...] | None:
        t = self.types.get(name)
        return t.shape if t is not None and t.kind == "tensor" else None

    def elem_type(self, name: str) -> int | None:
        t = self.types.get(name)
        return t.elem_type if t is not None and t.kind == "tensor" and t.elem_type else None

    def dtype(self, name: str) -> np.dtype | None:
        elem = self.elem_type(name)
        return np_dtype(elem) if elem else None

    def supports(self, like: Node, domain: str, op_type: str) -> bool:
        """``Matcher.supports``, remembered per op and input dtypes: it reads all value types."""
        dtypes = tuple(self.dtype(n) if n else None for n in like.inputs)
        key = (like.domain, like.op_type, self.opset(like), dtypes, domain, op_type)
        if key not in self._supported:
            self._supported[key] = super().supports(like, domain, op_type)
        return self._supported[key]

    def opset(self, node: Node) -> int:
        return opset_for(self.model.opset_imports, node)

    # -- editing ---------------------------------------------------------------------------

    def fresh(self, base: str) -> str:
        name, i = base, 0
        while name in self._names or name in self.consumers:
            i += 1
            name = f"{base}_{i}"
        self._names.add(name)
        return name

    def add_constant(self, base: str, value: np.ndarray) -> str:
        name = self.fresh(base)
        self.graph.initializers[name] = value
        self.types[name] = TensorType(onnx_elem_type(value.dtype), tuple(value.shape))
        return name

    def declare(self, name: str, elem_type: int | None, shape: tuple[Any, ...] | None) -> None:
        """Record the type of a value a rewrite created, so later passes and the saved model see it."""
        if elem_type:
            t = TensorType(elem_type, shape)
            self.graph.value_info[name] = Value(name, t)
            self.types[name] = t

    def position(self, node: Node) -> int:
        """The index of ``node`` in the graph's node list (by identity, not equality)."""
        for i, n in enumerate(self.graph.nodes):
            if n is node:
                return i
        raise ValueError(f"{node.describe()} is not in the graph")

    def insert(self, node: Node, before: Node) -> Node:
        self.graph.nodes.insert(self.position(before), node)
        self._link(node)
        return node

    def set_input(self, node: Node, index: int, name: str) -> None:
        old = node.inputs[index]
        node.inputs[index] = name
        if old:
            _drop(self.consumers[old], node)
        if name:
            self.consumers.setdefault(name, []).append(node)

    def alive(self, node: Node) -> bool:
        """Whether ``node`` (of the graph when this rewriter was made, or added since) is still in it."""
        return id(node) not in self._removed

    def remove(self, node: Node) -> None:
        self._unlink(node)
        self._compact()

    def rename_uses(self, old: str, new: str) -> None:
        """Make every reader of ``old`` read ``new``; ``old`` must not be pinned."""
        for node in list(self.consumers.get(old, [])):
            node.inputs = [new if i == old else i for i in node.inputs]
            self.consumers.setdefault(new, []).append(node)
        self.consumers.pop(old, None)

    def bypass(self, node: Node, source: str) -> None:
        """Remove ``node`` whose only output equals ``source``: its readers read ``source``.

        A pinned output (graph output, read by a subgraph) keeps its name through an Identity.
        """
        out = node.outputs[0]
        if out in self.pinned:
            identity = Node("Identity", [source], [out], name=node.name or out)
            self._unlink(node)
            self.insert(identity, node)
        else:
            self.rename_uses(out, source)
            self.graph.value_info.pop(out, None)
            self._unlink(node)
        self._compact()

    def remove_unused(self, nodes: list[Node]) -> int:
        """Remove those of ``nodes`` (and then their newly unused inputs among them) nobody reads."""
        removed = self._unlink_unused(nodes)
        self._compact()
        return removed

    def fuse(self, new_nodes: list[Node], at: Node, matched: list[Node]) -> None:
        """Put ``new_nodes`` where ``at`` is and drop the ``matched`` nodes (``at`` among them)
        whose outputs the new nodes take over or nobody reads any more.

        ``at`` must come after the producers of every input of ``new_nodes`` and before every
        reader of their outputs: the node producing the pattern's output always does, as
        every input of the pattern is read by a matched node before it.
        """
        taken = {o for n in new_nodes for o in n.outputs if o}
        if not any(n is at for n in matched):
            matched = [*matched, at]
        index = self.position(at)
        self.graph.nodes[index:index] = new_nodes
        for node in matched:
            if self.alive(node) and any(o in taken for o in node.outputs):
                self._unlink(node)
        for node in new_nodes:
            self._link(node)
        if any(n.domain == MS_DOMAIN for n in new_nodes):
            self.model.opset_imports.setdefault(MS_DOMAIN, 1)
        self._unlink_unused([n for n in matched if self.alive(n)])
        self._compact()

    # -- bookkeeping -----------------------------------------------------------------------

    def _unlink_unused(self, nodes: list[Node]) -> int:
        pending = list(nodes)
        removed = 0
        changed = True
        while changed:
            changed = False
            for node in list(pending):
                if any(o and (o in self.pinned or self.consumers.get(o)) for o in node.outputs):
                    continue
                if self.alive(node):
                    self._unlink(node)
                    for o in node.outputs:
                        self.graph.value_info.pop(o, None)
                    removed += 1
                _drop(pending, node)
                changed = True
        return removed

    def _unlink(self, node: Node) -> None:
        """Take ``node`` out of the maps; :meth:`_compact` then takes it out of the node list."""
        self._removed[id(node)] = node
        self._dirty = True
        for name in node.inputs:
            if name:
                _drop(self.consumers[name], node)
        for name in node.outputs:
            if name and self.producers.get(name) is node:
                del self.producers[name]

    def _compact(self) -> None:
        if self._dirty:
            self.graph.nodes[:] = [n for n in self.graph.nodes if id(n) not in self._removed]
            self._dirty = False

    def _link(self, node: Node) -> None:
        for name in node.inputs:
            if name:
                self.consumers.setdefault(name, []).append(node)
        for name in node.outputs:
            if name:
                self.producers[name] = node
                self._names.add(name)


def _drop(nodes: list[Node], node: Node) -> None:
    """Remove one occurrence of ``node`` from ``nodes`` by identity (Node's ``==`` compares fields)."""
    for i, n in enumerate(nodes):
        if n is node:
            del nodes[i]
            return


def cast_target(node: Node) -> int | None:
    """The element type a Cast converts to (Cast-1 names it: ``to="FLOAT"``)."""
    to = node.attrs.get("to")
    if isinstance(to, (bytes, str)):
        name = to.decode() if isinstance(to, bytes) else to
        return TensorProto.DataType.Value(name) if name in TensorProto.DataType.keys() else None
    return int(to) if to is not None else None
