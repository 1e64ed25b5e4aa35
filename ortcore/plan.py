"""Compile a partitioned graph into one flat, straight-line Python function.

Each node becomes one line ``v7 = k3(v2, c1)`` calling a kernel instance that
was created once, here. Values are function locals, so a run looks nothing up
by name and concurrent runs share no state; each value is deleted right after
its last use; device transfers are lines of their own. A kernel error is
mapped back to its node through the line number of the failing frame.
"""

from __future__ import annotations

import functools
import itertools
import math
import re
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from types import CodeType, TracebackType
from typing import Any

import numpy as np

from ortcore.dtypes import type_name
from ortcore.errors import InvalidGraph, OrtCoreError
from ortcore.graph_utils import outer_scope_names
from ortcore.ir import Graph, Node, TensorType
from ortcore.kernels import NodeContext
from ortcore.partition import FusedGroup, NodeAssignment, Partition, Transfer
from ortcore.provider import ExecutionProvider

__all__ = ["Plan", "Step", "Profiler", "compile_plan", "HOST"]

HOST = "cpu"
_plan_ids = itertools.count()


@dataclass(frozen=True)
class Step:
    """One line of the plan: a node's kernel call or a transfer between devices."""

    kind: str  # "node" or "transfer"
    provider: str
    node: Node | None = None
    transfer: Transfer | None = None

    def describe(self) -> str:
        if self.node is not None:
            return f"{self.node.describe()} on {self.provider}"
        assert self.transfer is not None
        t = self.transfer
        return f"transfer of {t.value!r} from {t.source} to {t.target}"


class Plan:
    """A compiled graph: ``plan.run(*args)`` returns the outputs as a tuple."""

    def __init__(self, run: Callable[..., tuple], steps: dict[int, Step], source: str) -> None:
        self.run = run
        self.code: CodeType = run.__code__
        self._steps = steps
        self.source = source
        self.partition: Partition | None = None

    @property
    def steps(self) -> list[Step]:
        return [self._steps[line] for line in sorted(self._steps)]

    def failing_step(self, tb: TracebackType | None) -> Step | None:
        """The step whose line raised, found by walking the traceback to this plan's frame."""
        step = None
        while tb is not None:
            if tb.tb_frame.f_code is self.code:
                step = self._steps.get(tb.tb_lineno)
            tb = tb.tb_next
        return step


class Profiler:
    """Collects one event per kernel call (enable_profiling); writes a Chrome trace."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, str, float, float, tuple]] = []
        self._origin = time.perf_counter()

    def wrap(self, fn: Callable[..., Any], node: Node, provider: str) -> Callable[..., Any]:
        name = node.name or (node.outputs[0] if node.outputs else node.op_type)
        op, events, clock = node.op_type, self.events, time.perf_counter

        def timed(*args: Any) -> Any:
            t0 = clock()
            result = fn(*args)
            dt = clock() - t0
            events.append((name, op, provider, t0, dt, tuple((getattr(a, "dtype", None), getattr(a, "shape", None)) for a in args)))
            return result

        return timed

    def summary(self) -> list[tuple[str, int, float]]:
        """(op type, calls, total ms) sorted by total time."""
        totals: dict[str, list[float]] = {}
        for _, op, _, _, dt, _ in self.events:
            entry = totals.setdefault(op, [0, 0.0])
            entry[0] += 1
            entry[1] += dt * 1e3
        return sorted(((op, int(n), ms) for op, (n, ms) in totals.items()), key=lambda r: -r[2])

    def write(self, path: str) -> str:
        import json

        trace = [
            {"name": name, "cat": "Node", "ph": "X", "pid": 0, "tid": 0,
             "ts": (t0 - self._origin) * 1e6, "dur": dt * 1e6,
             "args": {"op_name": op, "provider": provider, "input_type_shape": _type_shapes(inputs)}}
            for name, op, provider, t0, dt, inputs in self.events
        ]
        with open(path, "w") as f:
            json.dump(trace, f)
        return path


def _type_shapes(inputs: tuple) -> list[dict[str, list[int]] | None]:
    """onnxruntime's profile form of a node's inputs, ``[{"float": [1, 3, 224, 224]}, ...]``, from (dtype, shape) pairs."""
    return [
        None if dtype is None or shape is None else {type_name(dtype): [int(d) for d in shape]}
        for dtype, shape in inputs
    ]


class _Emitter:
    """Builds the source of the plan function and the objects it closes over."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.kernels: list[Any] = []
        self.constants: list[Any] = []
        self._const_ids: dict[tuple[int, str], str] = {}
        self._counter = itertools.count()

    def new_var(self) -> str:
        return f"v{next(self._counter)}"

    def kernel(self, fn: Any) -> str:
        self.kernels.append(fn)
        return f"k{len(self.kernels) - 1}"

    def constant(self, array: Any, device: str, provider: ExecutionProvider | None) -> str:
        key = (id(array), device)
        if key not in self._const_ids:
            value = provider.from_host(array) if provider is not None and device != HOST else array
            self.constants.append(value)
            self._const_ids[key] = f"c{len(self.constants) - 1}"
        return self._const_ids[key]


def compile_plan(
    graph: Graph,
    partition: Partition,
    opset_imports: dict[str, int],
    *,
    arg_names: Sequence[str],
    output_names: Sequence[str],
    constants: dict[str, np.ndarray],
    types: dict[str, TensorType | None],
    compile_subgraph: Callable[..., Any] | None = None,
    profiler: Profiler | None = None,
    home: ExecutionProvider | None = None,
    executor: Executor | None = None,
) -> Plan:
    """Compile ``partition`` (nodes in topological order) into a :class:`Plan`.

    With a ``profiler``, each kernel call is timed (the plan is otherwise the same).
    With an ``executor`` (``ExecutionMode.ORT_PARALLEL``), nodes that do not
    depend on each other run concurrently on it (see :func:`_parallelize`).
    ``home`` is the provider whose device holds the arguments and receives the
    outputs (a control-flow node's provider, for its bodies); host by default.

    ``arg_names`` become the plan function's parameters (host arrays);
    ``constants`` are values known now (initializers), copied to each device
    that uses them once, here.
    """
    em = _Emitter()
    steps: dict[int, Step] = {}
    # where[value][device] = variable name holding it there
    where: dict[str, dict[str, str]] = {}
    producer_provider: dict[str, ExecutionProvider] = {}
    home_device = home.device if home is not None else HOST
    arg_vars = []
    for i, name in enumerate(arg_names):
        var = f"a{i}"
        arg_vars.append(var)
        where[name] = {home_device: var}
        if home is not None:
            producer_provider[name] = home
    body: list[tuple[str, Step | None, list[str], list[str]]] = []  # (code, step, uses, defs)

    def fetch(name: str, provider: ExecutionProvider) -> str:
        device = provider.device
        held = where.get(name)
        if held is None:
            if name in constants:
                return em.constant(constants[name], device, provider)
            raise InvalidGraph(f"value {name!r} is used before it is produced")
        if device in held:
            return held[device]
        source_device, source_var = next(iter(held.items()))
        source = producer_provider.get(name)
        var = em.new_var()
        transfer = Transfer(name, source_device, device)
        partition.transfers.append(transfer)
        move = _transfer_fn(source, source_device, provider, device)
        body.append((f"{var} = {em.kernel(move)}({source_var})", Step("transfer", provider.name, transfer=transfer), [source_var], [var]))
        held[device] = var
        return var

    def emit(code_call: str, out_vars: list[str | None], multi: bool, step: Step, arg_list: list[str]) -> None:
        if multi:
            picks = "; ".join(f"{v} = _r[{i}]" for i, v in enumerate(out_vars) if v)
            code = f"_r = {code_call}; {picks}" if picks else code_call
        else:
            named = [v for v in out_vars if v]
            code = f"{named[0]} = {code_call}" if named else code_call
        uses = [a for a in arg_list if a != "None" and not a.startswith("c")]
        body.append((code, step, uses, [v for v in out_vars if v]))

    def define(name: str, provider: ExecutionProvider) -> str:
        var = em.new_var()
        where[name] = {provider.device: var}
        producer_provider[name] = provider
        return var

    # body index -> (call, call writing into a dying input "{}", candidate inputs)
    donations: dict[int, tuple[str, str, list[str]]] = {}
    group_of = _fused_groups(partition, graph, types, constants, output_names)
    for assignment in partition.assignments:
        node = assignment.node
        provider = assignment.provider
        group = group_of.get(node)
        if group is not None:
            if node is group.nodes[-1]:
                arg_list = [fetch(name, provider) for name in group.inputs]
                fn = group.fn
                pseudo = Node("FusedGroup", list(group.inputs), list(group.outputs), name=group.name)
                if profiler is not None:
                    fn = profiler.wrap(fn, pseudo, provider.name)
                out_vars: list[str | None] = [define(name, provider) for name in group.outputs]
                call = f"{em.kernel(fn)}({', '.join(arg_list)})"
                emit(call, out_vars, len(out_vars) > 1, Step("node", provider.name, node=pseudo), arg_list)
            continue
        arg_list = [fetch(name, provider) if name else "None" for name in node.inputs]
        implicit = implicit_inputs(node)
        if implicit:  # outer-scope values of its subgraphs follow the declared inputs
            arg_list += [fetch(name, provider) for name in implicit]
        else:
            while arg_list and arg_list[-1] == "None":
                arg_list.pop()
        fn = _instantiate(assignment, constants, types, compile_subgraph, implicit, graph)
        if profiler is not None:
            fn = profiler.wrap(fn, node, provider.name)
        k = em.kernel(fn)
        out_vars = [define(name, provider) if name else None for name in node.outputs]
        if not assignment.kernel.multi_output:
            named = [v for v in out_vars if v]
            if len(named) > 1 or (named and out_vars[0] is None):
                raise InvalidGraph(
                    f"{node.describe()} has {len(node.outputs)} outputs but its kernel "
                    f"{assignment.kernel.name} produces one"
                )
        call = f"{k}({', '.join(arg_list)})"
        if assignment.kernel.inplace and profiler is None and executor is None:
            donors = _donors(node, arg_list, types)
            if donors:
                donations[len(body)] = (call, f"{em.kernel(_donating(fn))}({', '.join(arg_list)}, out={{}})", donors)
        emit(call, out_vars, assignment.kernel.multi_output, Step("node", provider.name, node=node), arg_list)

    # Outputs go to the home device (host for a session); constants are copied so
    # callers cannot alter them, and so are arguments returned as they came.
    result_vars = []
    for name in output_names:
        held = where.get(name)
        if held is None:
            if name not in constants:
                raise InvalidGraph(f"graph output {name!r} is not produced by any node")
            result_vars.append(f"{em.kernel(np.copy)}({em.constant(constants[name], HOST, None)})")
            continue
        if home_device in held:
            var = held[home_device]
            result_vars.append(f"{em.kernel(_copy)}({var})" if var in arg_vars and home is None else var)
            continue
        source_device, source_var = next(iter(held.items()))
        var = em.new_var()
        transfer = Transfer(name, source_device, home_device)
        partition.transfers.append(transfer)
        move = _transfer_fn(producer_provider.get(name), source_device, home, home_device)
        body.append((f"{var} = {em.kernel(move)}({source_var})", Step("transfer", home.name if home else HOST, transfer=transfer), [source_var], [var]))
        result_vars.append(var)

    if executor is not None:
        body = _parallelize(body, em.kernel(executor.submit))
    return _assemble(em, body, arg_vars, result_vars, steps, donations)


# Below this output size a fresh array is cheaper than ``out=``: numpy's output-
# argument handling costs about 0.8 us a call, more than allocating a small array
# (measured on float32 Add: 1-element 0.6 us fresh vs 1.4 us with out=; 64K
# elements 10.6 vs 7.6 us).
_DONATE_MIN_BYTES = 64 << 10


def _donors(node: Node, arg_list: list[str], types: dict[str, TensorType | None]) -> list[str]:
    """Plan variables among the first two inputs whose static type is exactly the output's.

    Only for outputs of at least ``_DONATE_MIN_BYTES``.
    """
    out = types.get(node.outputs[0]) if len(node.outputs) == 1 and node.outputs[0] else None
    if out is None or out.kind != "tensor" or out.shape is None or not all(isinstance(d, int) for d in out.shape):
        return []
    dtype = out.dtype
    if dtype is None or math.prod(out.shape) * dtype.itemsize < _DONATE_MIN_BYTES:
        return []
    return [
        var for name, var in zip(node.inputs[:2], arg_list[:2])
        if var.startswith("v") and types.get(name) == out
    ]


@functools.lru_cache(maxsize=1)
def _private_refcount() -> int:
    """``sys.getrefcount`` of an array, seen by a kernel, when only the plan line holds it.

    Measured with a line of the same shape as the plan's (``v1 = k(v0, out=v0)``),
    so the check below holds whatever references the interpreter keeps on its stack.
    """
    import sys

    namespace: dict[str, Any] = {}
    exec("def probe(k, np):\n    v0 = np.empty(1)\n    v1 = k(v0, out=v0)\n    return v1\n", namespace)  # noqa: S102
    return namespace["probe"](lambda *args, out: sys.getrefcount(out), np)


def _donating(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` writing its result into ``out`` (an input at its last use) when nothing else can see it.

    The plan only offers inputs it deletes after this line; at run time the
    array must also own its memory and have no other reference (a view of it
    elsewhere holds one), else ``fn`` allocates as usual.
    """
    import sys

    limit = _private_refcount()
    getrefcount = sys.getrefcount

    def run(*args: Any, out: Any) -> Any:
        if getrefcount(out) <= limit and getattr(out, "base", 0) is None and out.flags.writeable:
            return fn(*args, out=out)
        return fn(*args)

    return run


_CALL = re.compile(r"^(k\d+)\((.*)\)$")


def _parallelize(
    body: list[tuple[str, Step | None, list[str], list[str]]], submit: str
) -> list[tuple[str, Step | None, list[str], list[str]]]:
    """Reorder lines into dependency levels; within a level, run all but one line on the pool.

    A line's level is one more than the deepest line whose values it reads, so
    lines of one level are independent. Each is submitted (``_f = submit(k, args)``)
    and its result is taken after the last one of the level ran inline; both
    lines map to the node's step, so an error still names the node.
    """
    level_of: dict[str, int] = {}
    levels: dict[int, list[int]] = {}
    for i, (_, _, uses, defs) in enumerate(body):
        level = 1 + max((level_of.get(v, -1) for v in uses), default=-1)
        for v in defs:
            level_of[v] = level
        levels.setdefault(level, []).append(i)
    out: list[tuple[str, Step | None, list[str], list[str]]] = []
    futures = itertools.count()
    for level in sorted(levels):
        members = [body[i] for i in levels[level]]
        pending = []
        for code, step, uses, defs in members[:-1]:
            call = code.split(" = ", 1)[1].split(";", 1)[0] if " = " in code else code
            match = _CALL.match(call)
            if match is None:
                out.append((code, step, uses, defs))
                continue
            future = f"_f{next(futures)}"
            args = f", {match.group(2)}" if match.group(2) else ""
            out.append((f"{future} = {submit}({match.group(1)}{args})", step, uses, [future]))
            pending.append((code.replace(call, f"{future}.result()", 1), step, [future], defs))
        out.append(members[-1])
        out.extend(pending)
    return out


def _fused_groups(
    partition: Partition,
    graph: Graph,
    types: dict[str, TensorType | None],
    constants: dict[str, np.ndarray],
    output_names: Sequence[str],
) -> dict[Node, FusedGroup]:
    """Ask each provider which of its nodes to compile as groups; check each group is sound.

    A group runs at its last node's position, so no other node may read a value
    the group keeps inside, or read one of its outputs before that position.
    """
    providers: dict[int, tuple[ExecutionProvider, list[NodeAssignment]]] = {}
    for a in partition.assignments:
        providers.setdefault(id(a.provider), (a.provider, []))[1].append(a)
    position = {a.node: i for i, a in enumerate(partition.assignments)}
    group_of: dict[Node, FusedGroup] = {}
    for provider, mine in providers.values():
        groups = provider.fuse(mine, graph, types, constants)
        if not groups:
            continue
        assigned = {a.node: a for a in mine}
        for group in groups:
            problem = _group_problem(group, assigned, group_of, position)
            if problem:
                raise InvalidGraph(f"{provider.name} fused group {group.name!r}: {problem}")
            group.nodes.sort(key=position.__getitem__)
            for node in group.nodes:
                group_of[node] = group
                assigned[node].group = group.name
    if not group_of:
        return group_of
    # value -> (group, read allowed from this position on; None = never outside the group)
    guarded: dict[str, tuple[FusedGroup, int | None]] = {}
    for group in {id(g): g for g in group_of.values()}.values():
        last = position[group.nodes[-1]]
        hidden = {o for n in group.nodes for o in n.outputs if o} - set(group.outputs)
        guarded.update({name: (group, None) for name in hidden})
        guarded.update({name: (group, last + 1) for name in group.outputs})
        leaked = [o for o in output_names if o in hidden]
        if leaked:
            raise InvalidGraph(f"fused group {group.name!r} hides graph output(s) {leaked}")
    for node, i in position.items():
        for name in [*node.inputs, *implicit_inputs(node)]:
            owner, since = guarded.get(name, (None, 0))
            if owner is not None and owner is not group_of.get(node) and (since is None or i < since):
                raise InvalidGraph(
                    f"fused group {owner.name!r}: {node.describe()} reads {name!r}, "
                    f"which the group does not provide before that node runs"
                )
    return group_of


def _group_problem(
    group: FusedGroup,
    assigned: dict[Node, NodeAssignment],
    group_of: dict[Node, FusedGroup],
    position: dict[Node, int],
) -> str | None:
    if not group.nodes:
        return "it has no nodes"
    for node in group.nodes:
        if node not in assigned:
            return f"{node.describe()} is not assigned to this provider"
        if node in group_of:
            return f"{node.describe()} is already in group {group_of[node].name!r}"
    produced = {o for n in group.nodes for o in n.outputs if o}
    missing = [o for o in group.outputs if o not in produced]
    if missing:
        return f"outputs {missing} are not produced by its nodes"
    own = [i for i in group.inputs if i in produced]
    if own:
        return f"inputs {own} are produced inside the group"
    return None


def _copy(x: Any) -> Any:
    return x.copy() if isinstance(x, np.ndarray) else x


def implicit_inputs(node: Node) -> list[str]:
    """Outer-scope names a node's subgraphs read, in a stable order."""
    names: set[str] = set()
    for sub in node.subgraphs():
        names |= outer_scope_names(sub)
    return sorted(names)


def _assemble(
    em: _Emitter,
    body: list[tuple[str, Step | None, list[str], list[str]]],
    arg_vars: list[str],
    result_vars: list[str],
    steps: dict[int, Step],
    donations: dict[int, tuple[str, str, list[str]]] | None = None,
) -> Plan:
    keep = {v for r in result_vars for v in re.findall(r"\b[av]\d+\b", r)}
    last_use: dict[str, int] = {}
    for i, (_, _, uses, defs) in enumerate(body):
        for v in defs:
            last_use.setdefault(v, i)  # a value nobody reads dies where it is made
        for v in uses:
            last_use[v] = i
    for v in arg_vars:
        last_use.setdefault(v, -1)
    dies_at: dict[int, list[str]] = {}
    for v, i in last_use.items():
        if v not in keep:
            dies_at.setdefault(i, []).append(v)

    name = f"_ortcore_plan_{next(_plan_ids)}"
    src = ["def _make(_K, _C):"]
    if em.kernels:
        src.append(f"    {', '.join(f'k{i}' for i in range(len(em.kernels)))}, = _K")
    if em.constants:
        src.append(f"    {', '.join(f'c{i}' for i in range(len(em.constants)))}, = _C")
    src.append(f"    def {name}({', '.join(arg_vars)}):")
    if -1 in dies_at:
        src.append(f"        del {', '.join(sorted(dies_at[-1]))}")
    for i, (code, step, _, _) in enumerate(body):
        line = code
        if donations and i in donations:
            call, donating_call, donors = donations[i]
            dying = [v for v in donors if last_use.get(v) == i and v not in keep]
            if dying:
                line = code.replace(call, donating_call.format(dying[0]), 1)
        if i in dies_at:
            line += f"; del {', '.join(sorted(set(dies_at[i])))}"
        src.append(f"        {line}")
        if step is not None:
            steps[len(src)] = step
    src.append(f"        return ({''.join(v + ', ' for v in result_vars)})")
    src.append(f"    return {name}")
    source = "\n".join(src) + "\n"
    namespace: dict[str, Any] = {}
    exec(compile(source, f"<{name}>", "exec"), namespace)  # noqa: S102 - generated from the graph
    run = namespace["_make"](tuple(em.kernels), tuple(em.constants))
    return Plan(run, steps, source)


def _transfer_fn(
    source: ExecutionProvider | None,
    source_device: str,
    target: ExecutionProvider | None,
    target_device: str,
) -> Callable[[Any], Any]:
    to_host = source.to_host if source is not None and source_device != HOST else None
    from_host = target.from_host if target is not None and target_device != HOST else None
    if to_host and from_host:
        return lambda x: from_host(to_host(x))
    return to_host or from_host or (lambda x: x)


def _instantiate(
    assignment: NodeAssignment,
    constants: dict[str, np.ndarray],
    types: dict[str, TensorType | None],
    compile_subgraph: Callable[..., Any] | None,
    implicit: list[str],
    graph: Graph,
) -> Callable[..., Any]:
    node, provider, kdef = assignment.node, assignment.provider, assignment.kernel
    unknown = kdef.unknown_attributes(node.attrs)
    if unknown:
        from ortcore.errors import NotImplemented

        raise NotImplemented(
            f"{node.describe()}: attribute(s) {', '.join(map(repr, unknown))} not supported by "
            f"{provider.name} kernel {kdef.name} (opset {assignment.opset})"
        )
    ctx = NodeContext(
        node=node,
        opset=assignment.opset,
        input_types=[types.get(n) if n else None for n in node.inputs],
        output_types=[types.get(n) if n else None for n in node.outputs],
        n_outputs=len(node.outputs),
        xp=provider.xp,
        provider=provider,
        constants={i: constants[n] for i, n in enumerate(node.inputs) if n and n in constants},
        compile_subgraph=(
            functools.partial(compile_subgraph, implicit=implicit, home=provider) if compile_subgraph else None
        ),
        implicit_inputs=implicit,
        graph=graph,
    )
    try:
        return provider.create_kernel(kdef, ctx, dict(node.attrs))
    except OrtCoreError:
        raise
    except Exception as exc:
        raise InvalidGraph(
            f"{node.describe()}: creating the {provider.name} kernel failed: {type(exc).__name__}: {exc}"
        ) from exc
