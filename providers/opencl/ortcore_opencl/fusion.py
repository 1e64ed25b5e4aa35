"""Fusion of connected elementwise nodes into one generated OpenCL kernel.

A group is a set of elementwise nodes on this provider, connected through the
values they pass each other, such that every value the group produces and
anything outside reads is read only after the group's last node (the group
runs at that position; see ``ortcore.plan._fused_groups``). Values read
outside become the group's outputs; everything else stays in registers.

Every node is evaluated at the index of the group's full output shape (the
broadcast of all external inputs), which is exact because elementwise ops
commute with broadcasting. A group output whose own shape is smaller (it does
not depend on every input) cannot be written that way; such a run falls back
to launching the nodes' kernels one by one, so results never depend on
whether a group fused.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ortcore.partition import FusedGroup
from ortcore_opencl.codegen import ElementwiseKernel, Instr, broadcast_shape
from ortcore_opencl.ops import elementwise

__all__ = ["elementwise_groups"]

log = logging.getLogger("ortcore.opencl.fusion")


def _instrs_of(assignment: Any, types: Mapping[str, Any]) -> tuple[list[Instr], list[Any]] | None:
    """The node's instructions and input dtypes, or None when it is not a fusable elementwise node."""
    node = assignment.node
    if node.op_type not in elementwise.BUILDERS or len(node.outputs) != 1 or not node.outputs[0]:
        return None
    if assignment.kernel.fn.__module__ != elementwise.__name__:  # a plugin's kernel for the same op
        return None
    dtypes = [(types.get(n).dtype if types.get(n) is not None else None) if n else None for n in node.inputs]
    try:
        return elementwise.node_instrs(node.op_type, node.attrs, dtypes, assignment.opset), dtypes
    except elementwise.Declined:
        return None


def _consumers(graph: Any) -> tuple[dict[str, list[int]], set[str]]:
    """value -> positions of the nodes reading it (subgraph captures included), and graph outputs."""
    from ortcore.plan import implicit_inputs

    readers: dict[str, list[int]] = {}
    for pos, node in enumerate(graph.nodes):
        for name in [*node.inputs, *implicit_inputs(node)]:
            if name:
                readers.setdefault(name, []).append(pos)
    return readers, {v.name for v in graph.outputs}


def elementwise_groups(
    provider: Any,
    assignments: Sequence[Any],
    graph: Any,
    types: Mapping[str, Any],
    constants: Mapping[str, Any],
) -> list[FusedGroup]:
    """Groups of 2+ connected elementwise nodes of ``provider``, each compiled into one kernel.

    ``constants`` needs no special handling: a constant input is uploaded once by
    the plan and read by the group like any other input.
    """
    position = {node: i for i, node in enumerate(graph.nodes)}
    readers, graph_outputs = _consumers(graph)
    fusable: dict[Any, tuple[list[Instr], list[Any]]] = {}
    for a in assignments:
        instrs = _instrs_of(a, types)
        if instrs is not None and a.node in position:
            fusable[a.node] = instrs
    producer = {node.outputs[0]: node for node in fusable}

    groups: list[list[Any]] = []
    group_of: dict[Any, int] = {}
    for node in graph.nodes:  # topological order
        if node not in fusable:
            continue
        merged: list[Any] = [node]
        for name in node.inputs:
            src = producer.get(name)
            if src is None or src not in group_of:
                continue
            candidate = groups[group_of[src]]
            if candidate is merged or any(n in merged for n in candidate):
                continue
            trial = candidate + merged
            if _sound(trial, position, readers):
                merged = trial
        gid = len(groups)
        groups.append(merged)
        for n in merged:
            group_of[n] = gid
    result = []
    seen: set[int] = set()
    for gid, nodes in enumerate(groups):
        if len(nodes) < 2 or any(group_of[n] != gid for n in nodes) or id(nodes) in seen:
            continue
        seen.add(id(nodes))
        nodes.sort(key=position.__getitem__)
        result.append(_build(provider, nodes, fusable, readers, graph_outputs, position, len(result)))
    return result


def _sound(nodes: Sequence[Any], position: Mapping[Any, int], readers: Mapping[str, list[int]]) -> bool:
    """True when nothing outside ``nodes`` reads one of their values before the last of them."""
    last = max(position[n] for n in nodes)
    inside = {position[n] for n in nodes}
    for n in nodes:
        for reader in readers.get(n.outputs[0], ()):
            if reader not in inside and reader < last:
                return False
    return True


def _build(
    provider: Any,
    nodes: list[Any],
    fusable: Mapping[Any, tuple[list[Instr], list[Any]]],
    readers: Mapping[str, list[int]],
    graph_outputs: set[str],
    position: Mapping[Any, int],
    index: int,
) -> FusedGroup:
    inside = {position[n] for n in nodes}
    produced = {n.outputs[0]: n for n in nodes}
    inputs: list[str] = []
    for n in nodes:
        for name in n.inputs:
            if name and name not in produced and name not in inputs:
                inputs.append(name)
    outputs = [
        n.outputs[0]
        for n in nodes
        if n.outputs[0] in graph_outputs or any(r not in inside for r in readers.get(n.outputs[0], ()))
    ]
    instrs: list[Instr] = []
    value_of: dict[str, tuple[str, int]] = {name: ("in", i) for i, name in enumerate(inputs)}
    depends: dict[str, set[int]] = {name: {i} for i, name in enumerate(inputs)}
    for n in nodes:
        base = len(instrs)
        for ins in fusable[n][0]:
            ops = tuple(
                value_of[n.inputs[k]] if kind == "in" else ("tmp", base + k) for kind, k in ins.operands
            )
            instrs.append(Instr(ins.expr, ops, ins.dtype, ins.params))
        value_of[n.outputs[0]] = ("tmp", len(instrs) - 1)
        depends[n.outputs[0]] = set().union(*(depends[i] for i in n.inputs if i))
    in_dtypes = [_input_dtype(nodes, name, fusable) for name in inputs]
    name = f"opencl_fused_{index}_{'_'.join(n.op_type for n in nodes)}"[:120]
    kernel = ElementwiseKernel(
        provider.runtime, in_dtypes, instrs, [value_of[o][1] for o in outputs], f"fused group {name!r}"
    )
    needs = [sorted(depends[o]) for o in outputs]
    fallback = _Unfused(provider, nodes, fusable, inputs, outputs)
    log.debug("fused %d nodes into %s", len(nodes), name)

    def run(*arrays: Any) -> Any:
        shape = broadcast_shape([a.shape for a in arrays], kernel.what)
        if all(len(need) == len(arrays) or broadcast_shape([arrays[i].shape for i in need]) == shape for need in needs):
            outs = kernel(*arrays)
        else:  # some output is smaller than the full shape: compute node by node
            outs = fallback(*arrays)
        return outs[0] if len(outs) == 1 else tuple(outs)

    return FusedGroup(name=name, nodes=list(nodes), inputs=inputs, outputs=outputs, fn=run)


def _input_dtype(nodes: Sequence[Any], name: str, fusable: Mapping[Any, tuple[list[Instr], list[Any]]]) -> np.dtype:
    for n in nodes:
        if name in n.inputs:
            return np.dtype(fusable[n][1][n.inputs.index(name)])
    raise AssertionError(f"{name!r} is not read by the group")


class _Unfused:
    """The group's nodes as single-node kernels, for runs whose outputs differ in shape.

    Built on first use: most groups never need it, and each kernel is a compile.
    """

    def __init__(
        self,
        provider: Any,
        nodes: Sequence[Any],
        fusable: Mapping[Any, tuple[list[Instr], list[Any]]],
        inputs: list[str],
        outputs: list[str],
    ) -> None:
        self.provider, self.nodes = provider, list(nodes)
        self.fusable = {n: fusable[n] for n in nodes}
        self.inputs = inputs
        self.outputs = outputs
        self.steps: list[tuple[ElementwiseKernel, list[str], str]] | None = None
        self.lock = threading.Lock()

    def _compile(self) -> list[tuple[ElementwiseKernel, list[str], str]]:
        steps = []
        for n in self.nodes:
            instrs, node_dtypes = self.fusable[n]
            used = sorted({k for ins in instrs for kind, k in ins.operands if kind == "in"})
            remap = {k: i for i, k in enumerate(used)}
            local = [
                Instr(ins.expr, tuple((kind, remap[k]) if kind == "in" else (kind, k) for kind, k in ins.operands), ins.dtype, ins.params)
                for ins in instrs
            ]
            dtypes = [node_dtypes[k] for k in used]
            ek = ElementwiseKernel(self.provider.runtime, dtypes, local, [len(local) - 1], n.describe())
            steps.append((ek, [n.inputs[k] for k in used], n.outputs[0]))
        return steps

    def __call__(self, *arrays: Any) -> list[Any]:
        with self.lock:
            if self.steps is None:
                self.steps = self._compile()
        values = dict(zip(self.inputs, arrays))
        for ek, names, out in self.steps:
            values[out] = ek(*(values[n] for n in names))[0]
        return [values[o] for o in self.outputs]
