"""The graph IR: plain typed classes the optimizer, partitioner and compiler share."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["TensorType", "Value", "Node", "Graph", "Model", "Dim"]

Dim = int | str | None  # static size, symbolic name, or unknown


@dataclass(frozen=True)
class TensorType:
    """Element type and shape of a value; ``shape`` is None when the rank is unknown.

    ``kind`` is ``"tensor"`` for plain tensors and ``"sequence"``/``"optional"``/
    ``"map"``/``"sparse_tensor"`` for the other ONNX value kinds, in which case
    ``elem_type`` describes the innermost tensor element type when known.
    """

    elem_type: int
    shape: tuple[Dim, ...] | None
    kind: str = "tensor"

    @property
    def dtype(self) -> np.dtype | None:
        from ortcore.dtypes import np_dtype

        return np_dtype(self.elem_type) if self.kind == "tensor" else None

    @property
    def rank(self) -> int | None:
        return None if self.shape is None else len(self.shape)


@dataclass
class Value:
    """A named value of a graph with its (possibly unknown) type."""

    name: str
    type: TensorType | None = None
    doc_string: str = ""


@dataclass(eq=False)  # nodes are identities: two equal-looking nodes are still two nodes
class Node:
    """One operator application. ``attrs`` holds Python values, subgraphs as :class:`Graph`.

    ``attr_types`` keeps the ONNX attribute type codes so that the node can be
    written back faithfully (an empty list has no type of its own).
    """

    op_type: str
    inputs: list[str]
    outputs: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)
    domain: str = ""
    name: str = ""
    attr_types: dict[str, int] = field(default_factory=dict)
    doc_string: str = ""

    def describe(self) -> str:
        name = self.name or (self.outputs[0] if self.outputs else "?")
        domain = f"{self.domain}::" if self.domain else ""
        return f"node {name!r} ({domain}{self.op_type})"

    def subgraphs(self) -> Iterator[Graph]:
        for value in self.attrs.values():
            if isinstance(value, Graph):
                yield value
            elif isinstance(value, list) and value and isinstance(value[0], Graph):
                yield from value  # a GRAPHS attribute; other lists can be huge (tree ensembles)


@dataclass(eq=False)
class Graph:
    """A graph: inputs, outputs, initializers (numpy arrays) and topologically usable nodes."""

    name: str = "graph"
    nodes: list[Node] = field(default_factory=list)
    inputs: list[Value] = field(default_factory=list)
    outputs: list[Value] = field(default_factory=list)
    initializers: dict[str, np.ndarray] = field(default_factory=dict)
    value_info: dict[str, Value] = field(default_factory=dict)
    doc_string: str = ""
    sparse_initializers: list[Any] = field(default_factory=list)

    def type_of(self, name: str) -> TensorType | None:
        """The known type of a value by name (inputs, outputs, value_info, initializers)."""
        for v in self.inputs:
            if v.name == name:
                return v.type
        info = self.value_info.get(name)
        if info is not None:
            return info.type
        for v in self.outputs:
            if v.name == name:
                return v.type
        init = self.initializers.get(name)
        if init is not None:
            from ortcore.dtypes import onnx_elem_type

            return TensorType(onnx_elem_type(init.dtype), tuple(init.shape))
        return None

    def types(self) -> dict[str, TensorType | None]:
        """All known value types by name, computed in one sweep."""
        from ortcore.dtypes import onnx_elem_type

        out: dict[str, TensorType | None] = {}
        for name, init in self.initializers.items():
            out[name] = TensorType(onnx_elem_type(init.dtype), tuple(init.shape))
        for v in self.outputs:
            out[v.name] = v.type
        for name, v in self.value_info.items():
            out[name] = v.type
        for v in self.inputs:
            out[v.name] = v.type
        return out

    def producers(self) -> dict[str, Node]:
        return {out: node for node in self.nodes for out in node.outputs if out}

    def consumers(self) -> dict[str, list[Node]]:
        users: dict[str, list[Node]] = {}
        for node in self.nodes:
            for name in node.inputs:
                if name:
                    users.setdefault(name, []).append(node)
        return users


@dataclass
class Model:
    """A model: the main graph plus the ModelProto fields needed to write it back."""

    graph: Graph
    opset_imports: dict[str, int]
    ir_version: int = 8
    producer_name: str = ""
    producer_version: str = ""
    domain: str = ""
    model_version: int | None = None
    doc_string: str = ""
    metadata_props: dict[str, str] = field(default_factory=dict)
    graph_description: str = ""

    def opset(self, domain: str) -> int | None:
        from ortcore.kernels import normalize_domain

        domain = normalize_domain(domain)
        for key, version in self.opset_imports.items():
            if normalize_domain(key) == domain:
                return version
        return None
