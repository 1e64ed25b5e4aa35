"""Custom operators in Python: schema, type/shape inference, kernels and model building.

An :class:`OpSpec` declares one operator version of a custom domain::

    spec = OpSpec(
        "ai.example", "Scale", 1,
        inputs=[Param("x", "T")], outputs=[Param("y", "T")],
        type_constraints={"T": ["tensor(float)", "tensor(double)"]},
        attributes=[Attr("factor", "float", 1.0)],
        doc="y = factor * x",
    )

    @spec.infer
    def _(ctx):
        x = ctx.input("x", ("N", "C"))      # checks rank and binds N, C
        return [(x.dtype, ("N", "C"))]

    @spec.kernel(registry)                   # registry: a KernelRegistry for one provider
    def scale(x, /, *, factor=1.0):
        return x * factor

``spec.schema`` is the ``onnx.defs.OpSchema`` (with the inference function
attached, so onnx's checker and ``onnx.shape_inference.infer_shapes`` type the
outputs) that a plugin returns from ``ortcore_op_schemas``. An
:class:`ortcore.InferenceSession` registers every installed plugin's schemas
before loading a model, so its shape inference runs the Python function while
shapes are static and a wrong input raises :class:`ortcore.InvalidArgument`.
Code that calls onnx directly, before any session exists, calls
:func:`register_custom_ops` once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
import onnx.defs
from onnx import helper, numpy_helper

from ortcore.dtypes import np_dtype, onnx_elem_type
from ortcore.errors import InvalidArgument, InvalidGraph, OrtCoreError

__all__ = [
    "Param", "Attr", "OpSpec", "TensorInfo", "ShapeContext", "REQUIRED",
    "make_model", "register_schemas", "register_custom_ops",
]

log = logging.getLogger("ortcore.custom_ops")

REQUIRED = object()  # default of an attribute that every node must set

_ATTR_TYPES = {
    "float": onnx.defs.OpSchema.AttrType.FLOAT, "int": onnx.defs.OpSchema.AttrType.INT,
    "string": onnx.defs.OpSchema.AttrType.STRING, "tensor": onnx.defs.OpSchema.AttrType.TENSOR,
    "floats": onnx.defs.OpSchema.AttrType.FLOATS, "ints": onnx.defs.OpSchema.AttrType.INTS,
    "strings": onnx.defs.OpSchema.AttrType.STRINGS,
}
_PROTO_ATTR_TYPES = {
    "float": onnx.AttributeProto.FLOAT, "int": onnx.AttributeProto.INT, "string": onnx.AttributeProto.STRING,
    "tensor": onnx.AttributeProto.TENSOR, "floats": onnx.AttributeProto.FLOATS,
    "ints": onnx.AttributeProto.INTS, "strings": onnx.AttributeProto.STRINGS,
}

Dim = int | str | None
Shape = tuple[Dim, ...]


@dataclass(frozen=True)
class Param:
    """An input or output: a name, a type (a constraint name like ``"T"`` or ``"tensor(float)"``)."""

    name: str
    type: str = "T"
    doc: str = ""
    optional: bool = False
    variadic: bool = False
    min_arity: int = 1

    def formal(self) -> onnx.defs.OpSchema.FormalParameter:
        option = onnx.defs.OpSchema.FormalParameterOption
        kind = option.Variadic if self.variadic else option.Optional if self.optional else option.Single
        return onnx.defs.OpSchema.FormalParameter(
            self.name, self.type, self.doc, param_option=kind, min_arity=self.min_arity if self.variadic else 1
        )


@dataclass(frozen=True)
class Attr:
    """An attribute: name, type (``float``, ``int``, ``string``, ``tensor``, ``floats``, ``ints``,
    ``strings``) and default (:data:`REQUIRED` when nodes must set it)."""

    name: str
    type: str
    default: Any = REQUIRED
    doc: str = ""

    def __post_init__(self) -> None:
        if self.type not in _ATTR_TYPES:
            raise ValueError(f"attribute {self.name!r}: type {self.type!r} is not one of {sorted(_ATTR_TYPES)}")

    def formal(self) -> onnx.defs.OpSchema.Attribute:
        if self.default is REQUIRED:
            return onnx.defs.OpSchema.Attribute(self.name, _ATTR_TYPES[self.type], self.doc, required=True)
        proto = helper.make_attribute(self.name, self.default, attr_type=_PROTO_ATTR_TYPES[self.type])
        return onnx.defs.OpSchema.Attribute(self.name, proto, self.doc)


@dataclass(frozen=True)
class TensorInfo:
    """What inference knows about a tensor: its dtype and shape (None: rank unknown)."""

    dtype: np.dtype | None
    shape: Shape | None

    @property
    def rank(self) -> int | None:
        return None if self.shape is None else len(self.shape)


def _shape_str(shape: Sequence[Dim] | None) -> str:
    if shape is None:
        return "(unknown rank)"
    inner = ", ".join("?" if d is None else str(d) for d in shape)
    return f"({inner},)" if len(shape) == 1 else f"({inner})"


class ShapeContext:
    """What a type/shape inference function sees of one node.

    ``input(name, shape)`` checks an input against a shape pattern whose
    entries are ints (exact), strings (symbols: every use of a symbol must
    have the same size) or None (any size); it raises
    :class:`ortcore.InvalidArgument` naming the op, the node, the input, what
    was expected and what was given. Output shapes returned by the function
    may use the bound symbols.
    """

    def __init__(self, spec: OpSpec, node: str, inputs: list[TensorInfo | None], attrs: dict[str, Any],
                 n_outputs: int) -> None:
        self.spec = spec
        self.node = node
        self.attrs = attrs
        self.n_outputs = n_outputs
        self._inputs = inputs
        #: type constraint name -> the dtype the inputs bound it to
        self.types: dict[str, np.dtype] = {}
        self._dims: dict[str, tuple[Dim, str]] = {}  # symbol -> (size, where it was bound)

    @property
    def where(self) -> str:
        return f"{self.spec.qualified_name} node {self.node!r}" if self.node else self.spec.qualified_name

    def fail(self, message: str) -> InvalidArgument:
        """An InvalidArgument naming this op and node; ``raise ctx.fail("...")``."""
        return InvalidArgument(f"{self.where}: {message}")

    def _index(self, name: str) -> tuple[int, Param]:
        for i, p in enumerate(self.spec.inputs):
            if p.name == name:
                return i, p
        raise KeyError(f"{self.spec.qualified_name} has no input {name!r}")

    def input(self, name: str, shape: Sequence[Dim] | None = None) -> TensorInfo | None:
        """The input ``name`` (None if an omitted optional input), checked against ``shape``."""
        i, param = self._index(name)
        info = self._inputs[i] if i < len(self._inputs) else None
        if info is not None and shape is not None:
            self._match(f"input {name!r}", info, tuple(shape))
        return info

    def variadic(self, name: str, shape: Sequence[Dim] | None = None) -> list[TensorInfo | None]:
        """Every value passed to the variadic input ``name`` (the last input), each checked."""
        i, _ = self._index(name)
        infos = self._inputs[i:]
        if shape is not None:
            for k, info in enumerate(infos):
                if info is not None:
                    self._match(f"input {name!r} #{k}", info, tuple(shape))
        return infos

    def _match(self, what: str, info: TensorInfo, pattern: Shape) -> None:
        if info.shape is None:
            return
        given = info.shape
        if len(given) != len(pattern):
            raise self.fail(
                f"{what} must have rank {len(pattern)} with shape {_shape_str(pattern)}, "
                f"got rank {len(given)} with shape {_shape_str(given)}"
            )
        for axis, (want, got) in enumerate(zip(pattern, given)):
            if isinstance(want, int) and isinstance(got, int) and want != got:
                raise self.fail(
                    f"{what} dimension {axis} must be {want} (expected shape {_shape_str(pattern)}), "
                    f"got shape {_shape_str(given)}"
                )
            if isinstance(want, str):
                bound = self._dims.get(want)
                if bound is None or (bound[0] is None and got is not None):
                    self._dims[want] = (got, f"{what} dimension {axis}")
                elif isinstance(bound[0], int) and isinstance(got, int) and bound[0] != got:
                    raise self.fail(
                        f"{what} dimension {axis} is {got} but {want} is {bound[0]} from {bound[1]} "
                        f"(expected shape {_shape_str(pattern)}, got {_shape_str(given)})"
                    )

    def dim(self, symbol: str) -> Dim:
        """The size bound to ``symbol`` (an int, a symbolic name, or None when unknown)."""
        return self._dims.get(symbol, (None, ""))[0]

    def resolve(self, shape: Sequence[Dim] | None) -> Shape | None:
        if shape is None:
            return None
        return tuple(self._dims[d][0] if isinstance(d, str) and d in self._dims else d for d in shape)


def _tensor_info(tp: onnx.TypeProto) -> TensorInfo:
    if tp.WhichOneof("value") != "tensor_type":
        return TensorInfo(None, None)
    tt = tp.tensor_type
    shape = None
    if tt.HasField("shape"):
        shape = tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in tt.shape.dim)
    return TensorInfo(np_dtype(tt.elem_type), shape)


def _attr_value(proto: onnx.AttributeProto) -> Any:
    value = helper.get_attribute_value(proto)
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, list) and value and isinstance(value[0], bytes):
        return [v.decode("utf-8") for v in value]
    if isinstance(value, onnx.TensorProto):
        return numpy_helper.to_array(value)
    return value


InferFn = Callable[[ShapeContext], Sequence[tuple[Any, Sequence[Dim] | None]]]


@dataclass
class OpSpec:
    """One version of a custom operator: its schema, inference function and kernel helpers."""

    domain: str
    name: str
    since_version: int = 1
    inputs: Sequence[Param] = ()
    outputs: Sequence[Param] = ()
    type_constraints: Mapping[str, Sequence[Any]] = field(default_factory=dict)
    attributes: Sequence[Attr] = ()
    doc: str = ""
    infer_fn: InferFn | None = None

    def __post_init__(self) -> None:
        if not self.domain or self.domain in ("ai.onnx", "ai.onnx.ml"):
            raise ValueError(f"custom op {self.name!r} needs its own domain, got {self.domain!r}")
        self.type_constraints = {  # numpy dtypes are accepted and spelled as ONNX type strings
            k: [t if isinstance(t, str) else _type_str(np.dtype(t)) for t in v]
            for k, v in self.type_constraints.items()
        }
        self._schema: onnx.defs.OpSchema | None = None

    @property
    def qualified_name(self) -> str:
        return f"{self.domain}::{self.name}"

    def attribute_defaults(self) -> dict[str, Any]:
        return {a.name: a.default for a in self.attributes if a.default is not REQUIRED}

    # -- schema and inference -----------------------------------------------------
    def infer(self, fn: InferFn) -> InferFn:
        """Decorator: ``fn(ctx) -> [(dtype, shape), ...]`` gives each output's dtype and shape."""
        self.infer_fn = fn
        self._schema = None
        return fn

    @property
    def schema(self) -> onnx.defs.OpSchema:
        """The ``onnx.defs.OpSchema``, with :meth:`onnx_inference` attached."""
        if self._schema is None:
            schema = onnx.defs.OpSchema(
                self.name, self.domain, self.since_version, self.doc,
                inputs=[p.formal() for p in self.inputs],
                outputs=[p.formal() for p in self.outputs],
                type_constraints=[(k, list(v), "") for k, v in self.type_constraints.items()],
                attributes=[a.formal() for a in self.attributes],
            )
            schema.set_type_and_shape_inference_function(self.onnx_inference)
            self._schema = schema
        return self._schema

    def context(self, node: str, inputs: list[TensorInfo | None], attrs: Mapping[str, Any],
                n_outputs: int) -> ShapeContext:
        """A checked :class:`ShapeContext`: arity, required attributes and type constraints."""
        ctx = ShapeContext(self, node, inputs, {**self.attribute_defaults(), **attrs}, n_outputs)
        for a in self.attributes:
            if a.name not in ctx.attrs:
                raise ctx.fail(f"attribute {a.name!r} ({a.type}) is required but not set")
        variadic = bool(self.inputs) and self.inputs[-1].variadic
        if len(inputs) > len(self.inputs) and not variadic:
            raise ctx.fail(f"takes at most {len(self.inputs)} inputs, got {len(inputs)}")
        bound: dict[str, tuple[np.dtype, str]] = {}
        for i, info in enumerate(inputs):
            param = self.inputs[min(i, len(self.inputs) - 1)]
            if info is None:
                if not (param.optional or param.variadic):
                    raise ctx.fail(f"input {param.name!r} is required but missing")
                continue
            allowed = self.type_constraints.get(param.type, [param.type])
            if info.dtype is not None and _type_str(info.dtype) not in allowed:
                raise ctx.fail(
                    f"input {param.name!r} must be one of {', '.join(allowed)}, got {_type_str(info.dtype)}"
                )
            if info.dtype is not None and param.type in self.type_constraints:
                first = bound.setdefault(param.type, (info.dtype, param.name))
                if first[0] != info.dtype:
                    raise ctx.fail(
                        f"input {param.name!r} is {_type_str(info.dtype)} but {param.type} is "
                        f"{_type_str(first[0])} from input {first[1]!r}"
                    )
        missing = [p.name for p in self.inputs[len(inputs):] if not p.optional]
        if variadic and len(inputs) >= len(self.inputs):
            count = len(inputs) - len(self.inputs) + 1
            if count < self.inputs[-1].min_arity:
                raise ctx.fail(
                    f"variadic input {self.inputs[-1].name!r} needs at least {self.inputs[-1].min_arity} "
                    f"value(s), got {count}"
                )
        if missing:
            raise ctx.fail(f"input(s) {missing} are required but missing")
        ctx.types = {k: v[0] for k, v in bound.items()}
        return ctx

    def infer_types(self, ctx: ShapeContext) -> list[TensorInfo | None]:
        """Each output's TensorInfo, from the inference function (or the type constraints alone)."""
        if self.infer_fn is None:
            return [TensorInfo(ctx.types[p.type], None) if p.type in ctx.types else None
                    for p in self.outputs][: ctx.n_outputs]
        try:
            result = self.infer_fn(ctx)
        except OrtCoreError:
            raise
        except Exception as exc:
            raise InvalidGraph(
                f"type/shape inference of {ctx.where} raised {type(exc).__name__}: {exc}"
            ) from exc
        return [None if r is None else TensorInfo(None if r[0] is None else np.dtype(r[0]), ctx.resolve(r[1]))
                for r in result]

    def onnx_inference(self, ictx: Any) -> None:
        """The function onnx's shape inference calls (an ``onnx.shape_inference.InferenceContext``)."""
        inputs = [_tensor_info(ictx.get_input_type(i)) if ictx.has_input(i) else None
                  for i in range(ictx.get_num_inputs())]
        attrs = {}
        for a in self.attributes:
            proto = ictx.get_attribute(a.name)
            if proto is not None:
                attrs[a.name] = _attr_value(proto)
        # onnx names the node "node Op[domain] (name)"; only the name is news to a reader
        display = ictx.get_display_name()
        node = display[display.index("(") + 1: -1] if display.endswith(")") and "(" in display else ""
        ctx = self.context(node, inputs, attrs, ictx.get_num_outputs())
        for i, out in enumerate(self.infer_types(ctx)[: ictx.get_num_outputs()]):
            if out is None or out.dtype is None or not ictx.has_output(i):
                continue
            ictx.set_output_type(i, helper.make_tensor_type_proto(
                onnx_elem_type(out.dtype), None if out.shape is None else list(out.shape)
            ))

    # -- kernels and nodes --------------------------------------------------------
    def kernel(self, registry: Any, **options: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator registering a kernel of this op version on ``registry`` (a KernelRegistry).

        ``options`` are those of ``KernelRegistry.kernel`` (dtypes, factory,
        multi_output...). The kernel's keyword-only attributes must be the
        schema's, with the same defaults, so the signature documents the op.
        """
        def register(fn: Callable[..., Any]) -> Callable[..., Any]:
            if not options.get("factory"):
                self._check_signature(fn)
            if len(self.outputs) > 1 or any(p.variadic for p in self.outputs):
                options.setdefault("multi_output", True)
            return registry.kernel(self.name, since=self.since_version, domain=self.domain, **options)(fn)

        return register

    def _check_signature(self, fn: Callable[..., Any]) -> None:
        import inspect

        params = {p.name: p for p in inspect.signature(fn).parameters.values() if p.kind is p.KEYWORD_ONLY}
        names = {a.name for a in self.attributes}
        if set(params) != names:
            raise ValueError(
                f"kernel {fn.__qualname__} of {self.qualified_name}: keyword-only parameters "
                f"{sorted(params)} must be the attributes {sorted(names)}"
            )
        for a in self.attributes:
            default = params[a.name].default
            want = inspect.Parameter.empty if a.default is REQUIRED else a.default
            if default != want:
                raise ValueError(
                    f"kernel {fn.__qualname__} of {self.qualified_name}: attribute {a.name!r} defaults to "
                    f"{default!r}, the schema says {want!r}"
                )

    def make_node(self, inputs: Sequence[str], outputs: Sequence[str], *, name: str | None = None,
                  **attrs: Any) -> onnx.NodeProto:
        """A NodeProto of this op; attribute names and required inputs are checked here."""
        known = {a.name: a for a in self.attributes}
        for key in attrs:
            if key not in known:
                raise InvalidArgument(f"{self.qualified_name} has no attribute {key!r}; it has {sorted(known)}")
        for a in self.attributes:
            if a.default is REQUIRED and a.name not in attrs:
                raise InvalidArgument(f"{self.qualified_name}: attribute {a.name!r} is required")
        required = [p.name for p in self.inputs if not (p.optional or p.variadic)]
        given = [n for n in inputs]
        if len(given) < len(required) or any(not given[i] for i in range(len(required))):
            raise InvalidArgument(f"{self.qualified_name} needs inputs {required}, got {list(inputs)}")
        node = helper.make_node(self.name, list(inputs), list(outputs), name=name, domain=self.domain)
        node.attribute.extend(
            helper.make_attribute(k, v, attr_type=_PROTO_ATTR_TYPES[known[k].type]) for k, v in attrs.items()
        )
        return node


def _type_str(dtype: np.dtype) -> str:
    return "tensor(" + onnx.TensorProto.DataType.Name(onnx_elem_type(dtype)).lower() + ")"


# -- registration --------------------------------------------------------------


def register_schemas(schemas: Iterable[Any]) -> list[onnx.defs.OpSchema]:
    """Register OpSchema (or OpSpec) objects with onnx.defs; returns those newly registered.

    A schema whose (domain, name, since_version) onnx already knows is left as it is.
    """
    added = []
    for item in schemas:
        schema = item.schema if isinstance(item, OpSpec) else item
        try:
            known = onnx.defs.get_schema(schema.name, schema.since_version, schema.domain)
        except onnx.defs.SchemaError:
            known = None
        if known is not None and known.since_version == schema.since_version:
            continue
        try:
            onnx.defs.register_schema(schema)
        except Exception as exc:  # noqa: BLE001 - a bad schema is its plugin's failure
            log.warning("could not register op schema %s::%s: %s", schema.domain, schema.name, exc)
            continue
        added.append(schema)
    return added


def register_custom_ops(disabled: Iterable[str] = ()) -> list[onnx.defs.OpSchema]:
    """Register every installed plugin's op schemas with onnx.defs.

    Sessions do this themselves; call it before using ``onnx.checker`` or
    ``onnx.shape_inference`` on a model with custom ops when no session has
    been created yet. Returns the schemas of all plugins (registered now or before).
    """
    from ortcore.plugin import get_plugin_manager

    schemas = [s.schema if isinstance(s, OpSpec) else s for s in get_plugin_manager(disabled).op_schemas()]
    register_schemas(schemas)
    return schemas


# -- model building ------------------------------------------------------------

#: the default ai.onnx opset of make_model: one every provider of this repository and onnxruntime know
DEFAULT_OPSET = 17

ValueSpec = onnx.ValueInfoProto | str | tuple[str, Any, Sequence[Dim] | None]


def _value_info(spec: ValueSpec) -> onnx.ValueInfoProto:
    if isinstance(spec, onnx.ValueInfoProto):
        return spec
    if isinstance(spec, str):
        return onnx.ValueInfoProto(name=spec)
    name, dtype, shape = spec
    elem = dtype if isinstance(dtype, int) else onnx_elem_type(np.dtype(dtype))
    return helper.make_tensor_value_info(name, elem, None if shape is None else list(shape))


def make_model(
    nodes: Sequence[onnx.NodeProto],
    inputs: Sequence[ValueSpec],
    outputs: Sequence[ValueSpec],
    initializers: Mapping[str, np.ndarray] | Sequence[onnx.TensorProto] = (),
    *,
    opset: int | None = None,
    domains: Mapping[str, int] | None = None,
    name: str = "model",
) -> onnx.ModelProto:
    """A ModelProto whose opset imports cover every domain its nodes use.

    Inputs and outputs are ValueInfoProtos or ``(name, dtype, shape)`` tuples;
    an output given by name alone gets the type onnx's shape inference finds
    for it (the custom schemas must be registered: a plugin's are after
    :func:`register_custom_ops` or any session). A custom domain's version is
    ``domains[domain]``, else the highest version onnx.defs knows for the
    domain's ops in the graph, else 1. ``opset`` is the ai.onnx version
    (:data:`DEFAULT_OPSET` if not given).
    """
    inits = [numpy_helper.from_array(np.asarray(v), k) for k, v in initializers.items()] \
        if isinstance(initializers, Mapping) else list(initializers)
    graph = helper.make_graph(list(nodes), name, [_value_info(v) for v in inputs],
                              [_value_info(v) for v in outputs], initializer=inits)
    imports = {"": opset or DEFAULT_OPSET}
    for node in nodes:
        domain = node.domain
        if domain in ("", "ai.onnx") or domain in imports:
            continue
        version = (domains or {}).get(domain)
        if version is None:
            try:
                version = onnx.defs.get_schema(node.op_type, domain).since_version
            except onnx.defs.SchemaError:
                version = 1
        imports[domain] = max(version, imports.get(domain, 0))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in imports.items()])
    untyped = [o.name for o in model.graph.output if not o.HasField("type")]
    if untyped:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
        found = {v.name: v for v in [*inferred.graph.value_info, *inferred.graph.output]
                 if v.type.WhichOneof("value") is not None}
        for out in model.graph.output:
            if not out.HasField("type"):
                if out.name not in found:
                    raise InvalidArgument(
                        f"make_model: the type of output {out.name!r} cannot be inferred; "
                        f"give it as (name, dtype, shape)"
                    )
                out.type.CopyFrom(found[out.name].type)
    return model
