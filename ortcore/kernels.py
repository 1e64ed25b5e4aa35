"""Kernel registries: which function runs (domain, op type, opset version, dtypes).

A provider owns a :class:`KernelRegistry`; plugins may add registries to any
provider through the ``ortcore_kernels`` hook. A kernel is registered with a
decorator, one stacked decorator per opset version it implements::

    registry = KernelRegistry()

    @registry.kernel("Softmax", since=13)
    def softmax(x, /, *, axis=-1):
        ...

Inputs are positional (an omitted optional input is ``None``), attributes are
keyword-only with the spec's defaults. A kernel returns one array, or a tuple
when ``multi_output=True``. Three forms exist:

* plain: ``fn(*inputs, **attrs)``;
* ``xp=True``: ``fn(xp, *inputs, **attrs)`` where ``xp`` is the provider's
  array module, so that the same kernel serves numpy and CuPy;
* ``factory=True``: ``fn(ctx, **attrs)`` is called once at session creation
  with a :class:`NodeContext` and returns the per-run callable ``run(*inputs)``.
  This is the place to pre-pack constant weights or read the output count.

A kernel that handles only some attribute values or input ranks says so with
``supports=predicate``: ``predicate(node, input_types)`` returns ``None`` to
accept the node or a reason to decline it, and the partitioner then offers
the node to the next provider (``input_types`` are
:class:`ortcore.ir.TensorType` or ``None`` where unknown).

``inplace=True`` declares that the per-run callable also accepts ``out=``, one
of its first two inputs, and may write its result there: the plan passes it
when that input dies at this node, has the output's static type, and nothing
else can see it, so elementwise chains reuse one buffer instead of allocating.
"""

from __future__ import annotations

import functools
import inspect
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["KernelDef", "KernelRegistry", "NodeContext", "normalize_domain", "OPEN_END"]

OPEN_END = sys.maxsize


def normalize_domain(domain: str) -> str:
    """ONNX spells the default domain both ``""`` and ``"ai.onnx"``."""
    return "" if domain in ("", "ai.onnx") else domain


@functools.lru_cache(maxsize=1)
def _onnx_schema_versions() -> dict[tuple[str, str], tuple[int, ...]]:
    import onnx.defs

    versions: dict[tuple[str, str], set[int]] = {}
    for schema in onnx.defs.get_all_schemas_with_history():
        key = (normalize_domain(schema.domain), schema.name)
        versions.setdefault(key, set()).add(schema.since_version)
    return {key: tuple(sorted(v)) for key, v in versions.items()}


def _default_until(domain: str, op_type: str, since: int) -> int:
    """Last opset version whose schema matches the one introduced at ``since``.

    A kernel implements one schema version of an op; when the onnx package
    knows a later version of the op, the kernel stops just before it, so a
    changed op never silently runs with old semantics.
    """
    later = [v for v in _onnx_schema_versions().get((domain, op_type), ()) if v > since]
    return later[0] - 1 if later else OPEN_END


DTypeSpec = Mapping[int, Iterable[Any]] | Iterable[Any] | None


def _normalize_dtypes(dtypes: DTypeSpec) -> Mapping[int, frozenset[np.dtype]] | None:
    if dtypes is None:
        return None
    if isinstance(dtypes, Mapping):
        return {int(i): frozenset(np.dtype(d) for d in ds) for i, ds in dtypes.items()}
    return {0: frozenset(np.dtype(d) for d in dtypes)}


@dataclass(frozen=True)
class KernelDef:
    """One registered kernel: the op version range it implements and how to build it."""

    domain: str
    op_type: str
    since: int
    until: int
    fn: Callable[..., Any]
    dtypes: Mapping[int, frozenset[np.dtype]] | None = None
    factory: bool = False
    xp: bool = False
    multi_output: bool = False
    supports: Callable[[Any, list[Any]], str | None] | None = None
    inplace: bool = False

    @property
    def name(self) -> str:
        return f"{self.fn.__module__}.{self.fn.__qualname__}"

    def dtype_mismatch(self, input_dtypes: list[np.dtype | None]) -> str | None:
        """Reason this kernel declines the given input dtypes, or None if it accepts."""
        if not self.dtypes:
            return None
        for index, allowed in self.dtypes.items():
            if index < len(input_dtypes) and input_dtypes[index] is not None:
                if input_dtypes[index] not in allowed:
                    names = ", ".join(sorted(str(d) for d in allowed))
                    return f"input {index} has dtype {input_dtypes[index]}, kernel supports {{{names}}}"
        return None

    @functools.cached_property
    def attribute_names(self) -> tuple[frozenset[str], bool]:
        """(keyword parameter names, accepts **kwargs) of the attribute part of the signature."""
        params = inspect.signature(self.fn).parameters.values()
        names = frozenset(
            p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
        )
        return names, any(p.kind is p.VAR_KEYWORD for p in params)

    def instantiate(self, ctx: NodeContext, attrs: dict[str, Any]) -> Callable[..., Any]:
        """Create the per-run callable for one node; called once at session creation."""
        if self.factory:
            return self.fn(ctx, **attrs)
        if self.xp:
            return functools.partial(self.fn, ctx.xp, **attrs)
        return functools.partial(self.fn, **attrs) if attrs else self.fn

    def unknown_attributes(self, attrs: Iterable[str]) -> list[str]:
        names, var_kw = self.attribute_names
        if var_kw:
            return []
        return [a for a in attrs if a not in names]


class KernelRegistry:
    """Kernels keyed by (domain, op type), each covering an opset version range."""

    def __init__(self, name: str = "") -> None:
        self.name = name
        self._defs: dict[tuple[str, str], list[KernelDef]] = {}

    def kernel(
        self,
        op_type: str,
        *,
        since: int,
        until: int | None = None,
        domain: str = "",
        dtypes: DTypeSpec = None,
        factory: bool = False,
        xp: bool = False,
        multi_output: bool = False,
        supports: Callable[[Any, list[Any]], str | None] | None = None,
        inplace: bool = False,
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator registering ``fn`` for ``op_type`` opset versions ``since..until``.

        ``until`` defaults to the version before the onnx package's next schema
        change of the op (open-ended if none). ``dtypes`` is a set of dtypes
        accepted for input 0, or a mapping input index -> dtypes.
        """
        domain = normalize_domain(domain)

        def register(fn: Callable[..., Any]) -> Callable[..., Any]:
            self.add(
                KernelDef(
                    domain=domain,
                    op_type=op_type,
                    since=since,
                    until=until if until is not None else _default_until(domain, op_type, since),
                    fn=fn,
                    dtypes=_normalize_dtypes(dtypes),
                    factory=factory,
                    xp=xp,
                    multi_output=multi_output,
                    supports=supports,
                    inplace=inplace,
                )
            )
            return fn

        return register

    def add(self, kdef: KernelDef) -> None:
        entries = self._defs.setdefault((kdef.domain, kdef.op_type), [])
        for other in entries:
            if other.since <= kdef.until and kdef.since <= other.until:
                raise ValueError(
                    f"kernel {kdef.name} for {kdef.domain or 'ai.onnx'}::{kdef.op_type} "
                    f"versions {kdef.since}..{kdef.until} overlaps {other.name} "
                    f"({other.since}..{other.until})"
                )
        entries.append(kdef)
        entries.sort(key=lambda k: k.since)

    def update(self, other: KernelRegistry) -> None:
        for kdef in other:
            self.add(kdef)

    def lookup(self, domain: str, op_type: str, version: int) -> KernelDef | None:
        for kdef in self._defs.get((normalize_domain(domain), op_type), ()):
            if kdef.since <= version <= kdef.until:
                return kdef
        return None

    def versions(self, domain: str, op_type: str) -> list[KernelDef]:
        return list(self._defs.get((normalize_domain(domain), op_type), ()))

    def op_types(self) -> set[tuple[str, str]]:
        return set(self._defs)

    def __iter__(self) -> Iterator[KernelDef]:
        for entries in self._defs.values():
            yield from entries

    def __len__(self) -> int:
        return sum(len(v) for v in self._defs.values())


@dataclass
class NodeContext:
    """What a kernel factory may know about its node, at session creation.

    ``constants`` maps input positions to arrays known before any run (graph
    initializers, Constant outputs), so factories can pre-pack weights.

    Control-flow kernels: a node with graph attributes receives, after its
    declared inputs, the values its subgraphs read from outer scopes, named in
    ``implicit_inputs``. ``compile_subgraph(graph)`` compiles a graph attribute
    into a :class:`ortcore.plan.Plan` whose ``run(*graph_inputs, *implicit)``
    returns the graph's outputs as a tuple, on this kernel's device.
    """

    node: Any
    opset: int
    input_types: list[Any]
    output_types: list[Any]
    n_outputs: int
    xp: Any
    provider: Any
    constants: dict[int, Any] = field(default_factory=dict)
    compile_subgraph: Callable[..., Any] | None = None
    implicit_inputs: list[str] = field(default_factory=list)
    #: the graph holding the node (read-only; for ops defined over other nodes, like Gradient)
    graph: Any = None

    @property
    def input_dtypes(self) -> list[np.dtype | None]:
        return [t.dtype if t is not None else None for t in self.input_types]
