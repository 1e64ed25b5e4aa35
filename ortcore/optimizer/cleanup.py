"""Basic-level clean-ups that exporters leave behind: repeated subexpressions, shape
arithmetic on static dimensions, and back-to-back Transpose, Reshape and Cast nodes.

Each pass only uses what is certain before any input is seen (constants, static
dimensions of the value types), so the graph computes the same values afterwards.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from onnx import TensorProto

from ortcore.ir import Model, Node
from ortcore.optimizer._match import ONNX_DOMAINS, Rewriter, cast_target
from ortcore.optimizer.base import GraphPass, OptimizeContext
from ortcore.optimizer.basic import NONDETERMINISTIC
from ortcore.options import GraphOptimizationLevel

__all__ = [
    "CommonSubexpressionElimination",
    "ShapeFolding",
    "TransposeFusion",
    "ReshapeFusion",
    "CastElimination",
]

# Constants up to this many elements are compared by value, so that two nodes reading equal
# small constants under different names (exporters repeat axes and indices) count as equal.
_SMALL_CONSTANT = 64


class CommonSubexpressionElimination(GraphPass):
    """Nodes with the same op, domain, attributes and inputs -> the first one.

    Random ops, Dropout (random when training) and nodes with subgraphs are never merged;
    neither is a node whose output is a graph output or is read by a subgraph.
    """

    name = "common_subexpression_elimination"
    level = GraphOptimizationLevel.ORT_ENABLE_BASIC

    def run(self, model: Model, ctx: OptimizeContext) -> int:
        r = Rewriter(model, ctx)
        seen: dict[Any, Node] = {}
        merged = 0
        for node in list(r.graph.nodes):
            key = self._key(r, node)
            if key is None:
                continue
            first = seen.setdefault(key, node)
            if first is node or not self._mergeable(r, node, first):
                continue
            for old, new in zip(node.outputs, first.outputs):
                if old:
                    r.rename_uses(old, new)
                    r.graph.value_info.pop(old, None)
            r.remove(node)
            merged += 1
        return merged

    @staticmethod
    def _key(r: Rewriter, node: Node) -> Any:
        if node.domain not in (*ONNX_DOMAINS, "ai.onnx.ml") or not node.outputs:
            return None
        if node.op_type in NONDETERMINISTIC or node.op_type == "Dropout" or any(True for _ in node.subgraphs()):
            return None
        try:
            attrs = tuple(sorted((k, _freeze(v)) for k, v in node.attrs.items()))
            hash(attrs)
        except TypeError:
            return None
        inputs = tuple(_input_key(r, name) for name in node.inputs)
        return node.domain or "", node.op_type, attrs, inputs, len(node.outputs)

    @staticmethod
    def _mergeable(r: Rewriter, node: Node, first: Node) -> bool:
        for old, new in zip(node.outputs, first.outputs):
            if old and (not new or old in r.pinned):
                return False
        return True


def _freeze(value: Any) -> Any:
    """A hashable stand-in for an attribute value, equal only for identical values (by bit
    pattern: -0.0 differs from 0.0, a NaN equals itself)."""
    if isinstance(value, np.ndarray):
        return ("tensor", value.dtype.str, value.shape, value.tobytes())
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, float):
        return ("float", value.hex())
    return value


def _input_key(r: Rewriter, name: str) -> Any:
    value = r.constant(name)
    if value is not None and value.size <= _SMALL_CONSTANT and value.dtype.kind in "biuf":
        return ("const", value.dtype.str, value.shape, value.tobytes())
    return name


class ShapeFolding(GraphPass):
    """Shape arithmetic on dimensions the value types fix -> constants.

    ``Shape`` of a fully static value becomes a constant, and so do ``Gather``/``Slice``
    of a ``Shape`` that only pick static dimensions; constant folding then folds the
    ``Unsqueeze``/``Concat`` after them. A ``Reshape`` whose shape is a ``Concat`` of
    constants and dimensions of its own input at the same position gets a constant shape,
    the copied dimensions written as 0.
    """

    name = "shape_folding"
    level = GraphOptimizationLevel.ORT_ENABLE_BASIC

    def run(self, model: Model, ctx: OptimizeContext) -> int:
        r = Rewriter(model, ctx)
        changed = 0
        for node in list(r.graph.nodes):
            if not r.alive(node) or node.domain not in ONNX_DOMAINS:
                continue
            if node.op_type == "Shape":
                changed += self._fold_shape(r, node)
            elif node.op_type == "Reshape":
                changed += self._constant_reshape(r, node)
        return changed

    # -- Shape and what picks from it --------------------------------------------------------

    @staticmethod
    def _dims(r: Rewriter, shape_node: Node) -> list[Any] | None:
        """The dimensions a Shape node returns (int, or None where not static)."""
        if shape_node.inputs[0] in r.outputs and not any(v.name == shape_node.inputs[0] for v in r.graph.inputs):
            return None  # a declared output shape may be wrong; only trust inferred ones
        shape = r.shape(shape_node.inputs[0])
        if shape is None:
            return None
        dims = [d if isinstance(d, int) else None for d in shape]
        rank = len(dims)
        start = int(shape_node.attrs.get("start", 0))
        end = shape_node.attrs.get("end")
        return dims[slice(start, rank if end is None else int(end))]

    def _fold_shape(self, r: Rewriter, node: Node) -> int:
        dims = self._dims(r, node)
        if dims is None:
            return 0
        out = node.outputs[0]
        changed = 0
        # picks first: a Gather of one dimension is a 0-d value, which is folded here directly
        for user in r.users(out):
            picked = self._pick(r, user, out, dims)
            if picked is None or user.outputs[0] in r.pinned:
                continue
            r.rename_uses(user.outputs[0], r.add_constant(f"{user.outputs[0]}_static", picked))
            r.graph.value_info.pop(user.outputs[0], None)
            r.remove(user)
            changed += 1
        if r.users(out) and all(d is not None for d in dims) and out not in r.pinned:
            r.rename_uses(out, r.add_constant(f"{out}_static", np.array(dims, np.int64)))
        changed += r.remove_unused([node])
        return changed

    @staticmethod
    def _pick(r: Rewriter, user: Node, shape: str, dims: list[Any]) -> np.ndarray | None:
        """What a Gather or Slice of the shape returns, if it only picks static dimensions."""
        if user.domain not in ONNX_DOMAINS or user.inputs[0] != shape or shape in user.inputs[1:]:
            return None
        index = np.arange(len(dims))
        if user.op_type == "Gather" and int(user.attrs.get("axis", 0)) == 0:
            idx = r.constant(user.inputs[1])
            if idx is None or idx.dtype.kind not in "iu" or ((idx < -len(dims)) | (idx >= len(dims))).any():
                return None
            chosen = index[idx.astype(np.int64)]
        elif user.op_type == "Slice" and len(user.inputs) >= 3:
            args = [r.ints(n) if n else None for n in user.inputs[1:5]]
            starts, ends = args[0], args[1]
            axes = args[2] if len(args) > 2 and user.inputs[3:4] != [""] else [0]
            steps = args[3] if len(args) > 3 and user.inputs[4:5] != [""] else [1]
            if starts is None or ends is None or axes is None or steps is None or axes not in ([0], [-1]):
                return None
            if len(starts) != 1 or len(ends) != 1 or len(steps) != 1 or steps[0] == 0:
                return None
            chosen = index[slice(starts[0], ends[0], steps[0])]
        else:
            return None
        values = [dims[i] for i in chosen.reshape(-1)]
        if any(v is None for v in values):
            return None
        return np.array(values, np.int64).reshape(chosen.shape)

    # -- Reshape(x, Concat(dims of x, constants)) ---------------------------------------------

    def _constant_reshape(self, r: Rewriter, node: Node) -> int:
        if len(node.inputs) < 2 or r.constant(node.inputs[1]) is not None or node.attrs.get("allowzero", 0):
            return 0
        concat = r.producer(node.inputs[1], "Concat")
        if concat is None or int(concat.attrs.get("axis", 0)) not in (0, -1):
            return 0
        values: list[int] = []
        for part in concat.inputs:
            picked = self._part(r, part, node.inputs[0], len(values))
            if picked is None:
                return 0
            values.extend(picked)
        new_shape = r.add_constant(f"{node.outputs[0]}_shape", np.array(values, np.int64))
        old = node.inputs[1]
        r.set_input(node, 1, new_shape)
        r.remove_unused([n for n in [r.producers.get(old)] if n is not None])
        return 1

    def _part(self, r: Rewriter, name: str, data: str, position: int) -> list[int] | None:
        """A Concat input of a Reshape shape as constants; dims of ``data`` at their own position -> 0."""
        const = r.ints(name)
        if const is not None:
            return const
        node = r.producer(name, "Unsqueeze", "Gather", "Slice")
        if node is None:
            return None
        if node.op_type == "Unsqueeze":
            if r.axes(node) not in ([0], [-1]):
                return None
            node = r.producer(node.inputs[0], "Gather")
            if node is None or np.ndim(r.constant(node.inputs[1])) != 0:
                return None
        shape_node = r.producer(node.inputs[0], "Shape")
        if shape_node is None or shape_node.inputs[0] != data or shape_node.attrs.get("start", 0) != 0:
            return None
        dims = self._dims(r, shape_node) or []
        if node.op_type == "Gather":
            idx = r.ints(node.inputs[1])
            if int(node.attrs.get("axis", 0)) != 0 or idx is None:
                return None
            rank = len(dims) if dims else len(r.shape(data) or ())
            chosen = [i + rank if i < 0 and rank else i for i in idx]
        else:
            starts, ends = (r.ints(n) for n in node.inputs[1:3])
            extra = [n for n in node.inputs[3:] if n]
            if starts is None or ends is None or len(starts) != 1:
                return None
            if extra and [r.ints(n) for n in extra] not in ([[0]], [[0], [1]]):  # axes [0], steps [1]
                return None
            if starts[0] < 0 or ends[0] < starts[0] or ends[0] > len(r.shape(data) or ()):
                return None
            chosen = list(range(starts[0], ends[0]))
        if chosen != list(range(position, position + len(chosen))):
            return None
        return [0] * len(chosen)


class TransposeFusion(GraphPass):
    """Transpose of a Transpose -> one Transpose with the composed permutation, or none when
    the permutations cancel."""

    name = "transpose_fusion"
    level = GraphOptimizationLevel.ORT_ENABLE_BASIC

    def run(self, model: Model, ctx: OptimizeContext) -> int:
        r = Rewriter(model, ctx)
        changed = 0
        for node in list(r.graph.nodes):
            if not r.alive(node) or node.op_type != "Transpose" or node.domain not in ONNX_DOMAINS:
                continue
            first = r.producer(node.inputs[0], "Transpose")
            if first is None:
                continue
            p1, p2 = _perm(r, first), _perm(r, node)
            if p1 is None or p2 is None or len(p1) != len(p2):
                continue
            composed = [p1[j] for j in p2]
            if composed == list(range(len(composed))):
                r.bypass(node, first.inputs[0])
            else:
                r.set_input(node, 0, first.inputs[0])
                node.attrs["perm"] = composed
            r.remove_unused([first])
            changed += 1
        return changed


def _perm(r: Rewriter, node: Node) -> list[int] | None:
    if "perm" in node.attrs:
        return [int(p) for p in node.attrs["perm"]]
    shape = r.shape(node.inputs[0])
    return None if shape is None else list(range(len(shape)))[::-1]


class ReshapeFusion(GraphPass):
    """Reshape of a Reshape -> one Reshape, when the second shape is a constant that copies
    no dimension (no 0, or ``allowzero``): then only the element count of its input matters."""

    name = "reshape_fusion"
    level = GraphOptimizationLevel.ORT_ENABLE_BASIC

    def run(self, model: Model, ctx: OptimizeContext) -> int:
        r = Rewriter(model, ctx)
        changed = 0
        for node in list(r.graph.nodes):
            if not r.alive(node) or node.op_type != "Reshape" or node.domain not in ONNX_DOMAINS:
                continue
            first = r.producer(node.inputs[0], "Reshape")
            shape = r.ints(node.inputs[1]) if len(node.inputs) > 1 else None
            if first is None or shape is None or (0 in shape and not node.attrs.get("allowzero", 0)):
                continue
            r.set_input(node, 0, first.inputs[0])
            r.remove_unused([first])
            changed += 1
        return changed


_F16, _BF16, _F32, _F64 = TensorProto.FLOAT16, TensorProto.BFLOAT16, TensorProto.FLOAT, TensorProto.DOUBLE
_I8, _I16, _I32, _I64 = TensorProto.INT8, TensorProto.INT16, TensorProto.INT32, TensorProto.INT64
_U8, _U16, _U32, _U64 = TensorProto.UINT8, TensorProto.UINT16, TensorProto.UINT32, TensorProto.UINT64
# source -> targets that represent every source value exactly
_LOSSLESS: dict[int, set[int]] = {
    TensorProto.BOOL: {_I8, _I16, _I32, _I64, _U8, _U16, _U32, _U64, _F16, _BF16, _F32, _F64},
    _F16: {_F32, _F64},
    _BF16: {_F32, _F64},
    _F32: {_F64},
    _I8: {_I16, _I32, _I64, _F16, _F32, _F64},
    _U8: {_I16, _I32, _I64, _U16, _U32, _U64, _F16, _F32, _F64},
    _I16: {_I32, _I64, _F32, _F64},
    _U16: {_I32, _I64, _U32, _U64, _F32, _F64},
    _I32: {_I64, _F64},
    _U32: {_I64, _U64, _F64},
}


class CastElimination(GraphPass):
    """Cast to the type the value already has -> removed; Cast(Cast(x)) -> Cast(x) when the
    first Cast is lossless for x's type (float32 -> float64 -> float32 -> nothing at all).

    A lossless first Cast keeps the exact value, so the second Cast sees the same number it
    would have seen from x.
    """

    name = "cast_elimination"
    level = GraphOptimizationLevel.ORT_ENABLE_BASIC

    def run(self, model: Model, ctx: OptimizeContext) -> int:
        r = Rewriter(model, ctx)
        changed = 0
        for node in list(r.graph.nodes):
            if not r.alive(node) or node.op_type != "Cast" or node.domain not in ONNX_DOMAINS:
                continue
            first = r.producer(node.inputs[0], "Cast")
            if first is not None:
                source = r.elem_type(first.inputs[0])
                if source is None or cast_target(first) not in _LOSSLESS.get(source, ()):
                    continue
                r.set_input(node, 0, first.inputs[0])
                r.remove_unused([first])
                changed += 1
            if r.elem_type(node.inputs[0]) == cast_target(node):
                r.bypass(node, node.inputs[0])
                changed += first is None
        return changed
