"""Conversion between onnx's ModelProto and the IR, with clear errors for bad files."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnx.inliner
from google.protobuf.message import DecodeError
from onnx import AttributeProto, helper, numpy_helper

from ortcore.errors import InvalidGraph, InvalidProtobuf, NoSuchFile, OrtCoreError
from ortcore.ir.core import Graph, Model, Node, TensorType, Value

__all__ = ["load_model", "model_from_proto", "model_to_proto", "graph_from_proto"]

log = logging.getLogger("ortcore.ir")

ModelSource = str | os.PathLike | bytes | onnx.ModelProto


def _parse(data: bytes, where: str) -> onnx.ModelProto:
    proto = onnx.ModelProto()
    try:
        proto.ParseFromString(data)
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise InvalidProtobuf(
            f"{where} is not a readable ONNX model: the protobuf could not be parsed "
            f"({exc}); the file may be corrupt or truncated"
        ) from exc
    if not proto.HasField("graph") or proto.ir_version <= 0:
        missing = "graph" if not proto.HasField("graph") else "ir_version"
        raise InvalidProtobuf(
            f"{where} is not an ONNX model: it parsed as protobuf but has no {missing} "
            f"({len(data)} bytes read)"
        )
    return proto


def read_model_proto(source: ModelSource) -> tuple[onnx.ModelProto, str | None]:
    """Read a ModelProto from a path, bytes or ModelProto; returns it and its directory."""
    if isinstance(source, onnx.ModelProto):
        proto = onnx.ModelProto()
        proto.CopyFrom(source)
        return proto, None
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _parse(bytes(source), "the model bytes"), None
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise NoSuchFile(f"model file {str(path)!r} does not exist")
        if path.is_dir():
            raise NoSuchFile(f"model path {str(path)!r} is a directory, expected an .onnx file")
        proto = _parse(path.read_bytes(), f"model file {str(path)!r}")
        base_dir = str(path.resolve().parent)
        try:
            onnx.external_data_helper.load_external_data_for_model(proto, base_dir)
        except Exception as exc:  # noqa: BLE001 - onnx raises OSError or its ValidationError
            raise NoSuchFile(
                f"model file {str(path)!r} refers to external data that cannot be read: {exc}"
            ) from exc
        return proto, base_dir
    raise InvalidProtobuf(
        f"cannot load a model from {type(source).__name__}: expected a path, bytes or onnx.ModelProto"
    )


def load_model(source: ModelSource, *, infer_shapes: bool = True) -> Model:
    """Load, inline model-local functions, run shape inference and convert to the IR."""
    proto, _ = read_model_proto(source)
    if any(
        t.data_location == onnx.TensorProto.EXTERNAL for t in proto.graph.initializer
    ):
        raise NoSuchFile(
            "the model refers to external data tensors, which can only be resolved when the "
            "model is loaded from a file path"
        )
    if proto.functions:
        try:
            proto = onnx.inliner.inline_local_functions(proto)
        except Exception as exc:  # noqa: BLE001 - onnx raises plain RuntimeError/ValueError
            raise InvalidGraph(f"cannot inline the model's local functions: {exc}") from exc
    if infer_shapes:
        proto = _infer_shapes(proto)
    return model_from_proto(proto)


def _infer_shapes(proto: onnx.ModelProto) -> onnx.ModelProto:
    try:
        return onnx.shape_inference.infer_shapes(
            proto, check_type=False, strict_mode=False, data_prop=True
        )
    except OrtCoreError:  # a custom op's inference function rejected an input (ortcore.custom_ops)
        raise
    except Exception as exc:  # noqa: BLE001 - inference is advisory; the session validates
        log.warning("onnx shape inference failed, continuing with declared types: %s", exc)
        return proto


# -- proto -> IR -------------------------------------------------------------


def _type_from_proto(tp: onnx.TypeProto) -> TensorType | None:
    which = tp.WhichOneof("value")
    if which in ("tensor_type", "sparse_tensor_type"):
        tt = getattr(tp, which)
        shape = None
        if tt.HasField("shape"):
            shape = tuple(
                d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
                for d in tt.shape.dim
            )
        kind = "tensor" if which == "tensor_type" else "sparse_tensor"
        return TensorType(tt.elem_type, shape, kind)
    if which in ("sequence_type", "optional_type"):
        inner = _type_from_proto(getattr(tp, which).elem_type)
        kind = "sequence" if which == "sequence_type" else "optional"
        return TensorType(inner.elem_type if inner else 0, None, kind)
    if which == "map_type":
        return TensorType(0, None, "map")
    return None


def _value_from_proto(vi: onnx.ValueInfoProto) -> Value:
    return Value(vi.name, _type_from_proto(vi.type) if vi.HasField("type") else None, vi.doc_string)


def sparse_to_dense(sp: onnx.SparseTensorProto) -> np.ndarray:
    """Densify a SparseTensorProto (linear [NNZ] or coordinate [NNZ, rank] indices)."""
    values = numpy_helper.to_array(sp.values)
    indices = numpy_helper.to_array(sp.indices).astype(np.int64)
    dense = np.zeros(tuple(sp.dims), dtype=values.dtype)
    if indices.ndim == 2:
        dense[tuple(indices.T)] = values
    else:
        dense.reshape(-1)[indices] = values
    return dense


def _attr_from_proto(attr: AttributeProto) -> Any:
    kind = attr.type
    if kind == AttributeProto.GRAPH:
        return graph_from_proto(attr.g)
    if kind == AttributeProto.GRAPHS:
        return [graph_from_proto(g) for g in attr.graphs]
    if kind == AttributeProto.TENSOR:
        return numpy_helper.to_array(attr.t)
    if kind == AttributeProto.TENSORS:
        return [numpy_helper.to_array(t) for t in attr.tensors]
    if kind == AttributeProto.SPARSE_TENSOR:
        return sparse_to_dense(attr.sparse_tensor)
    if kind == AttributeProto.SPARSE_TENSORS:
        return [sparse_to_dense(t) for t in attr.sparse_tensors]
    if kind == AttributeProto.STRING:
        return attr.s.decode("utf-8", errors="surrogateescape")
    if kind == AttributeProto.STRINGS:
        return [s.decode("utf-8", errors="surrogateescape") for s in attr.strings]
    if kind == AttributeProto.UNDEFINED:
        raise InvalidGraph(f"attribute {attr.name!r} has no type")
    return helper.get_attribute_value(attr)


def _tensor_to_array(t: onnx.TensorProto, where: str) -> np.ndarray:
    try:
        return numpy_helper.to_array(t)
    except Exception as exc:  # noqa: BLE001 - onnx raises assorted errors on bad tensors
        raise InvalidGraph(f"{where} {t.name!r} cannot be read: {exc}") from exc


def graph_from_proto(gp: onnx.GraphProto) -> Graph:
    nodes = []
    for n in gp.node:
        attrs: dict[str, Any] = {}
        attr_types: dict[str, int] = {}
        for a in n.attribute:
            if a.ref_attr_name:
                raise InvalidGraph(
                    f"node {n.name!r} ({n.op_type}) has attribute {a.name!r} referring to "
                    f"{a.ref_attr_name!r}, which is only valid inside a function body"
                )
            attrs[a.name] = _attr_from_proto(a)
            attr_types[a.name] = a.type
        nodes.append(
            Node(
                op_type=n.op_type,
                inputs=list(n.input),
                outputs=list(n.output),
                attrs=attrs,
                domain=n.domain,
                name=n.name,
                attr_types=attr_types,
                doc_string=n.doc_string,
            )
        )
    initializers = {t.name: _tensor_to_array(t, "initializer") for t in gp.initializer}
    for sp in gp.sparse_initializer:
        initializers[sp.values.name] = sparse_to_dense(sp)
    return Graph(
        name=gp.name,
        nodes=nodes,
        inputs=[_value_from_proto(v) for v in gp.input],
        outputs=[_value_from_proto(v) for v in gp.output],
        initializers=initializers,
        value_info={v.name: _value_from_proto(v) for v in gp.value_info},
        doc_string=gp.doc_string,
    )


def model_from_proto(proto: onnx.ModelProto) -> Model:
    return Model(
        graph=graph_from_proto(proto.graph),
        opset_imports={op.domain: op.version for op in proto.opset_import},
        ir_version=proto.ir_version,
        producer_name=proto.producer_name,
        producer_version=proto.producer_version,
        domain=proto.domain,
        model_version=proto.model_version if proto.HasField("model_version") else None,
        doc_string=proto.doc_string,
        metadata_props={p.key: p.value for p in proto.metadata_props},
        graph_description=proto.graph.doc_string,
    )


# -- IR -> proto -------------------------------------------------------------


def _type_to_proto(t: TensorType | None) -> onnx.TypeProto | None:
    if t is None:
        return None
    if t.kind == "tensor":
        return helper.make_tensor_type_proto(t.elem_type, list(t.shape) if t.shape is not None else None)
    if t.kind == "sequence":
        return helper.make_sequence_type_proto(helper.make_tensor_type_proto(t.elem_type, None))
    if t.kind == "optional":
        return helper.make_optional_type_proto(helper.make_tensor_type_proto(t.elem_type, None))
    return None


def _value_to_proto(v: Value) -> onnx.ValueInfoProto:
    vi = onnx.ValueInfoProto(name=v.name, doc_string=v.doc_string)
    tp = _type_to_proto(v.type)
    if tp is not None:
        vi.type.CopyFrom(tp)
    return vi


def _attr_to_proto(name: str, value: Any, attr_type: int | None) -> AttributeProto:
    if isinstance(value, Graph):
        value = graph_to_proto(value)
    elif isinstance(value, np.ndarray):
        value = numpy_helper.from_array(value)
    elif isinstance(value, list) and value and isinstance(value[0], Graph):
        value = [graph_to_proto(g) for g in value]
    elif isinstance(value, list) and value and isinstance(value[0], np.ndarray):
        value = [numpy_helper.from_array(a) for a in value]
    if attr_type in (AttributeProto.SPARSE_TENSOR, AttributeProto.SPARSE_TENSORS):
        attr_type = AttributeProto.TENSOR if attr_type == AttributeProto.SPARSE_TENSOR else AttributeProto.TENSORS
    return helper.make_attribute(name, value, attr_type=attr_type)


def graph_to_proto(g: Graph) -> onnx.GraphProto:
    nodes = [
        helper.make_node(
            n.op_type,
            n.inputs,
            n.outputs,
            name=n.name or None,
            domain=n.domain or None,
            doc_string=n.doc_string or None,
        )
        for n in g.nodes
    ]
    for proto, n in zip(nodes, g.nodes):
        proto.attribute.extend(
            _attr_to_proto(k, v, n.attr_types.get(k)) for k, v in sorted(n.attrs.items())
        )
    initializers = [numpy_helper.from_array(np.asarray(a), name) for name, a in g.initializers.items()]
    value_info = [_value_to_proto(v) for v in g.value_info.values() if v.type is not None]
    return helper.make_graph(
        nodes,
        g.name,
        [_value_to_proto(v) for v in g.inputs],
        [_value_to_proto(v) for v in g.outputs],
        initializer=initializers,
        doc_string=g.doc_string or None,
        value_info=value_info,
    )


def model_to_proto(model: Model) -> onnx.ModelProto:
    proto = helper.make_model(
        graph_to_proto(model.graph),
        opset_imports=[helper.make_opsetid(d, v) for d, v in model.opset_imports.items()],
        ir_version=model.ir_version,
        producer_name=model.producer_name or "ortcore",
        producer_version=model.producer_version,
        domain=model.domain,
        doc_string=model.doc_string,
    )
    if model.model_version is not None:
        proto.model_version = model.model_version
    for key, value in model.metadata_props.items():
        proto.metadata_props.add(key=key, value=value)
    return proto
