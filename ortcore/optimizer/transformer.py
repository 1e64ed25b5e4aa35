"""Extended-level fusions for transformer models, with onnxruntime's op names and semantics.

* the erf GELU subgraph -> ``com.microsoft::Gelu``, the tanh one -> ``FastGelu``; a bias
  Add before either -> ``BiasGelu`` / ``FastGelu(x, bias)``;
* decomposed layer normalization over the last axis -> ``LayerNormalization`` (onnxruntime
  registers it in the ONNX domain for every opset, so older models get it too), the RMS
  form -> ``SimplifiedLayerNormalization``;
* residual Add + either normalization -> ``com.microsoft::SkipLayerNormalization`` /
  ``SkipSimplifiedLayerNormalization``;
* BERT-style self-attention, and GPT-2-style with a packed QKV projection and a constant
  causal mask -> ``com.microsoft::Attention``.

A fusion into a ``com.microsoft`` op is only made when the provider that would run the
original node also has a kernel for the fused op, and it adds the ``com.microsoft`` import.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from onnx import TensorProto

from ortcore.ir import Model, Node
from ortcore.optimizer._match import MS_DOMAIN, ONNX_DOMAINS, Rewriter, cast_target
from ortcore.optimizer.base import GraphPass, OptimizeContext
from ortcore.options import GraphOptimizationLevel

__all__ = [
    "GeluFusion",
    "FastGeluFusion",
    "BiasGeluFusion",
    "LayerNormFusion",
    "SimplifiedLayerNormFusion",
    "SkipLayerNormFusion",
    "AttentionFusion",
]

_EXTENDED = GraphOptimizationLevel.ORT_ENABLE_EXTENDED


# -- GELU: element-wise subgraphs recognised by what they compute ----------------------------

_erf = np.vectorize(math.erf, otypes=[np.float64])
_UNARY: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "Erf": _erf, "Tanh": np.tanh, "Sqrt": np.sqrt, "Neg": np.negative, "Reciprocal": np.reciprocal,
}
_BINARY: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide, "Pow": np.power,
}
_SAMPLES = np.concatenate([np.linspace(-6.0, 6.0, 121), [-0.05, 0.05, 1e-3, 30.0, -30.0]])
_MAX_REGION = 12


def _gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


def _fast_gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


def _elementwise(r: Rewriter, name: str) -> Node | None:
    node = r.producer(name, *_UNARY, *_BINARY)
    if node is None or len(node.inputs) != (1 if node.op_type in _UNARY else 2):
        return None
    return node


def _region(r: Rewriter, x: str, final: Node) -> list[Node] | None:
    """The element-wise nodes computing ``final`` from ``x`` and scalar constants alone,
    each read only inside the region; None if ``final`` depends on anything else."""
    region: dict[int, Node] = {}
    stack = [final]
    while stack:
        node = stack.pop()
        if id(node) in region:
            continue
        region[id(node)] = node
        if len(region) > _MAX_REGION:
            return None
        for name in node.inputs:
            if name == x or r.scalar(name) is not None:
                continue
            producer = _elementwise(r, name)
            if producer is None:
                return None
            stack.append(producer)
    for node in region.values():
        if node is not final and any(id(u) not in region for u in r.users(node.outputs[0])):
            return None
        if node is not final and node.outputs[0] in r.pinned:
            return None
    # in evaluation order: a node after the region nodes it reads
    ordered, done, pending = [], set(), list(region.values())
    while pending:
        ready = [n for n in pending if all(i not in r.producers or id(r.producers[i]) not in region
                                           or id(r.producers[i]) in done for i in n.inputs)]
        if not ready:
            return None
        ordered += ready
        done.update(id(n) for n in ready)
        pending = [n for n in pending if id(n) not in done]
    return ordered


# how closely a subgraph must follow the formula: its constants are rounded to x's type
_TOLERANCE = {"float16": 2e-3, "bfloat16": 1.6e-2}


def _computes(r: Rewriter, x: str, nodes: list[Node], target: Callable[[np.ndarray], np.ndarray]) -> bool:
    """Whether ``nodes`` evaluated on sample points of ``x`` give ``target`` (in float64,
    within what the precision of x's type allows its constants)."""
    tol = _TOLERANCE.get(r.dtype(x).name, 1e-5)
    env = {x: _SAMPLES}
    with np.errstate(all="ignore"):
        for node in nodes:
            args = [env[n] if n in env else r.scalar(n) for n in node.inputs]
            fn = _UNARY.get(node.op_type) or _BINARY[node.op_type]
            env[node.outputs[0]] = np.asarray(fn(*args), np.float64)
        got = env[nodes[-1].outputs[0]]
        return bool(np.all(np.isfinite(got)) and np.allclose(got, target(_SAMPLES), rtol=tol, atol=tol))


def _upstream_names(r: Rewriter, start: str, depth: int = 6) -> list[str]:
    """Non-constant values feeding ``start`` through element-wise nodes, nearest first."""
    seen, order, frontier = {start}, [start], [start]
    for _ in range(depth):
        nxt = []
        for name in frontier:
            node = _elementwise(r, name)
            if node is None:
                continue
            for i in node.inputs:
                if i not in seen and r.constant(i) is None:
                    seen.add(i)
                    order.append(i)
                    nxt.append(i)
        frontier = nxt
    return order


class GeluFusion(GraphPass):
    """x * 0.5 * (1 + Erf(x / sqrt(2))) in any exporter's arrangement -> com.microsoft Gelu.

    The subgraph around each ``Erf`` (``Tanh`` for :class:`FastGeluFusion`) is taken as
    a candidate when it computes one value from one input ``x`` and scalar constants with
    element-wise ops; it is fused when it evaluates to the GELU formula on sample points.
    This covers Div by sqrt(2) or Mul by 1/sqrt(2), the 0.5 applied to x, to the sum or at
    the end, Pow(x, 3) or x*x*x, and any operand order.
    """

    name = "gelu_fusion"
    level = _EXTENDED
    anchor, target, formula = "Erf", "Gelu", staticmethod(_gelu)

    def run(self, model: Model, ctx: OptimizeContext) -> int:
        r = Rewriter(model, ctx)
        fused = 0
        for node in list(r.graph.nodes):
            if not r.alive(node) or node.op_type != self.anchor or node.domain not in ONNX_DOMAINS:
                continue
            match = self._match(r, node)
            if match is None or not r.supports(node, MS_DOMAIN, self.target):
                continue
            x, nodes = match
            final = nodes[-1]
            gelu = Node(self.target, [x], [final.outputs[0]], domain=MS_DOMAIN, name=final.name or final.outputs[0])
            r.fuse([gelu], final, nodes)
            fused += 1
        return fused

    def _match(self, r: Rewriter, anchor: Node) -> tuple[str, list[Node]] | None:
        finals, node = [], anchor
        for _ in range(4):
            node = r.only_user(node.outputs[0], *_BINARY, *_UNARY)
            if node is None:
                break
            finals.append(node)
        candidates = _upstream_names(r, anchor.inputs[0])
        for final in finals:
            for x in candidates:
                dtype = r.dtype(x)
                if dtype is None or dtype.kind != "f" or not r.shape(x):
                    continue  # a 0-d x would take the rank of 1-element constants
                nodes = _region(r, x, final)
                if nodes is not None and any(n is anchor for n in nodes) and _computes(r, x, nodes, self.formula):
                    return x, nodes
        return None


class FastGeluFusion(GeluFusion):
    """0.5 * x * (1 + Tanh(sqrt(2/pi) * (x + 0.044715 * x^3))) and its rearrangements
    (x * (1 + 0.044715 * x * x) inside the Tanh, ...) -> com.microsoft FastGelu."""

    name = "fast_gelu_fusion"
    anchor, target, formula = "Tanh", "FastGelu", staticmethod(_fast_gelu)


class BiasGeluFusion(GraphPass):
    """Add of a 1-D bias along the last axis + com.microsoft Gelu -> BiasGelu(x, bias);
    + FastGelu -> FastGelu(x, bias)."""

    name = "bias_gelu_fusion"
    level = _EXTENDED

    def run(self, model: Model, ctx: OptimizeContext) -> int:
        r = Rewriter(model, ctx)
        fused = 0
        for node in list(r.graph.nodes):
            if not r.alive(node) or node.domain != MS_DOMAIN or node.op_type not in ("Gelu", "FastGelu"):
                continue
            if len(node.inputs) != 1:
                continue
            add = r.producer(node.inputs[0], "Add")
            users = r.users(add.outputs[0]) if add is not None else []
            if add is None or add.outputs[0] in r.pinned or len(users) != 1 or users[0] is not node:
                continue
            bias = _bias_add(r, add)
            if bias is None:
                continue
            target = "BiasGelu" if node.op_type == "Gelu" else "FastGelu"
            if not r.supports(node, MS_DOMAIN, target):
                continue
            new = Node(target, list(bias), list(node.outputs), domain=MS_DOMAIN, name=node.name)
            r.fuse([new], node, [add, node])
            fused += 1
        return fused


def _bias_add(r: Rewriter, add: Node) -> tuple[str, str] | None:
    """(x, bias) of ``Add(x, bias)`` with ``bias`` a 1-D constant as long as x's static last axis."""
    parts = r.split_const(add)
    if parts is None:
        return None
    x, bias = parts
    value, shape = r.constant(bias), r.shape(x)
    if value.ndim != 1 or not shape or shape[-1] != value.shape[0] or value.dtype != r.dtype(x):
        return None
    return x, bias


# -- layer normalization ------------------------------------------------------------------


def _last_axis_mean(r: Rewriter, node: Node | None, x: str) -> bool:
    """Whether ``node`` is ReduceMean(x) over x's last axis only, keeping it."""
    if node is None or node.op_type != "ReduceMean" or node.inputs[0] != x or not node.attrs.get("keepdims", 1):
        return False
    axes, shape = r.axes(node), r.shape(x)
    if not axes or len(axes) != 1 or shape is None:
        return False
    return axes[0] in (-1, len(shape) - 1)


def _square_of(r: Rewriter, node: Node, x: str) -> bool:
    """Whether ``node`` is x^2 as Pow(x, 2) or Mul(x, x)."""
    if node.op_type == "Pow":
        return node.inputs[0] == x and r.is_scalar(node.inputs[1], 2.0, rtol=0)
    return node.op_type == "Mul" and node.inputs == [x, x]


def _inv_root(r: Rewriter, mean_sq: Node) -> tuple[float, Node, list[Node]] | None:
    """From mean(d^2): Add(eps) -> Sqrt; returns (eps, the Sqrt, the nodes)."""
    add = r.only_user(mean_sq.outputs[0], "Add")
    if add is None:
        return None
    parts = r.split_const(add)
    eps = r.scalar(parts[1]) if parts is not None else None
    sqrt = r.only_user(add.outputs[0], "Sqrt")
    if eps is None or sqrt is None:
        return None
    return eps, sqrt, [add, sqrt]


def _divided(r: Rewriter, sqrt: Node, numerators: set[str]) -> tuple[str, Node, list[Node]] | None:
    """d / sqrt as Div(d, sqrt) or Mul(d, Reciprocal(sqrt)); returns (d, the last node, nodes)."""
    user = r.only_user(sqrt.outputs[0], "Div", "Reciprocal")
    if user is None:
        return None
    if user.op_type == "Div":
        if user.inputs[1] != sqrt.outputs[0] or user.inputs[0] not in numerators:
            return None
        return user.inputs[0], user, [user]
    mul = r.only_user(user.outputs[0], "Mul")
    d = r.other_input(mul, user.outputs[0]) if mul is not None else None
    return (d, mul, [user, mul]) if d in numerators else None


def _affine(r: Rewriter, start: Node, x: str, ops: tuple[str, ...]) -> tuple[dict[str, str], Node, list[Node]]:
    """The Mul(gamma) and Add(beta) (those of ``ops``) that follow ``start`` in that order.

    Returns {op: a 1-D constant's name}, the last node and the nodes; the constant must
    broadcast along the last axis of ``x`` only (a new 1-D copy is made if it is not 1-D).
    """
    shape, dtype = r.shape(x), r.dtype(x)
    found: dict[str, str] = {}
    nodes, last = [], start
    for op in ops:
        user = r.only_user(last.outputs[0], op)
        parts = r.split_const(user) if user is not None else None
        if parts is None or parts[0] != last.outputs[0]:
            continue
        value = r.constant(parts[1])
        if value.dtype != dtype or value.size != shape[-1] or value.ndim > len(shape):
            continue
        if any(d != 1 for d in value.shape[:-1]):
            continue
        found[op] = parts[1] if value.ndim == 1 else r.add_constant(f"{parts[1]}_1d", value.reshape(-1))
        nodes.append(user)
        last = user
    return found, last, nodes


def _float_with_width(r: Rewriter, x: str) -> bool:
    shape, dtype = r.shape(x), r.dtype(x)
    return bool(shape) and isinstance(shape[-1], int) and dtype is not None and dtype.kind == "f"


class LayerNormFusion(GraphPass):
    """ReduceMean, Sub, Pow(2) or Mul, ReduceMean, Add(eps), Sqrt, Div (or Reciprocal and
    Mul), Mul(gamma), Add(beta) over the last axis -> LayerNormalization(axis=-1).

    The mean may be subtracted once or twice (one Sub for the variance, one for the
    division); gamma and beta may be missing.
    """

    name = "layer_norm_fusion"
    level = _EXTENDED

    def run(self, model: Model, ctx: OptimizeContext) -> int:
        r = Rewriter(model, ctx)
        fused = 0
        for node in list(r.graph.nodes):
            if not r.alive(node) or node.op_type != "ReduceMean" or node.domain not in ONNX_DOMAINS:
                continue
            match = self._match(r, node)
            if match is None or not r.supports(node, "", "LayerNormalization"):
                continue
            x, eps, gamma, beta, last, nodes = match
            inputs = [x, gamma] + ([beta] if beta else [])
            ln = Node("LayerNormalization", inputs, [last.outputs[0]], {"axis": -1, "epsilon": eps},
                      name=last.name or last.outputs[0])
            r.fuse([ln], last, nodes)
            fused += 1
        return fused

    @staticmethod
    def _match(r: Rewriter, mean: Node):
        x = mean.inputs[0]
        if not _last_axis_mean(r, mean, x) or mean.outputs[0] in r.pinned:
            return None
        subs = r.users(mean.outputs[0])
        if not 1 <= len(subs) <= 2:
            return None
        if any(s.op_type != "Sub" or s.domain not in ONNX_DOMAINS or s.inputs != [x, mean.outputs[0]] for s in subs):
            return None
        diffs = {s.outputs[0] for s in subs}
        squares = [u for s in subs for u in r.users(s.outputs[0]) if _square_of(r, u, s.outputs[0])]
        if len(squares) != 1:
            return None
        square = squares[0]
        mean_sq = r.only_user(square.outputs[0], "ReduceMean")
        if mean_sq is None or not _last_axis_mean(r, mean_sq, square.outputs[0]):
            return None
        root = _inv_root(r, mean_sq)
        if root is None:
            return None
        eps, sqrt, root_nodes = root
        div = _divided(r, sqrt, diffs)
        if div is None:
            return None
        _, normalized, div_nodes = div
        expected_users = {id(square), *(id(n) for n in div_nodes)}
        for s in subs:
            if s.outputs[0] in r.pinned or any(id(u) not in expected_users for u in r.users(s.outputs[0])):
                return None
        if not _float_with_width(r, x):
            return None
        params, last, affine_nodes = _affine(r, normalized, x, ("Mul", "Add"))
        gamma = params.get("Mul") or r.add_constant(f"{last.outputs[0]}_scale", np.ones(r.shape(x)[-1], r.dtype(x)))
        beta = params.get("Add")
        nodes = [mean, *subs, square, mean_sq, *root_nodes, *div_nodes, *affine_nodes]
        return x, eps, gamma, beta, last, nodes


class SimplifiedLayerNormFusion(GraphPass):
    """Pow(x, 2) or Mul(x, x), ReduceMean over the last axis, Add(eps), Sqrt, Div (or
    Reciprocal and Mul), Mul(gamma) -> SimplifiedLayerNormalization (RMS norm)."""

    name = "simplified_layer_norm_fusion"
    level = _EXTENDED

    def run(self, model: Model, ctx: OptimizeContext) -> int:
        r = Rewriter(model, ctx)
        fused = 0
        for node in list(r.graph.nodes):
            if not r.alive(node) or node.op_type not in ("Pow", "Mul") or node.domain not in ONNX_DOMAINS:
                continue
            x = node.inputs[0]
            if not _square_of(r, node, x):
                continue
            mean_sq = r.only_user(node.outputs[0], "ReduceMean")
            if mean_sq is None or not _last_axis_mean(r, mean_sq, node.outputs[0]):
                continue
            root = _inv_root(r, mean_sq)
            div = _divided(r, root[1], {x}) if root is not None else None
            if div is None or not _float_with_width(r, x):
                continue
            params, last, affine_nodes = _affine(r, div[1], x, ("Mul",))
            if "Mul" not in params or not r.supports(mean_sq, "", "SimplifiedLayerNormalization"):
                continue
            gamma = params["Mul"]
            sln = Node("SimplifiedLayerNormalization",
                       [x, gamma], [last.outputs[0]],
                       {"axis": -1, "epsilon": root[0]}, name=last.name or last.outputs[0])
            r.fuse([sln], last, [node, mean_sq, *root[2], *div[2], *affine_nodes])
            fused += 1
        return fused


class SkipLayerNormFusion(GraphPass):
    """Add(input, skip) [+ Add(bias) before it] + LayerNormalization over the last axis ->
    com.microsoft SkipLayerNormalization; + SimplifiedLayerNormalization ->
    SkipSimplifiedLayerNormalization.

    When the sum is read elsewhere too (pre-norm residual streams), it becomes the fused
    node's fourth output, ``input_skip_bias_sum``.
    """

    name = "skip_layer_norm_fusion"
    level = _EXTENDED
    targets = {"LayerNormalization": "SkipLayerNormalization",
               "SimplifiedLayerNormalization": "SkipSimplifiedLayerNormalization"}

    def run(self, model: Model, ctx: OptimizeContext) -> int:
        r = Rewriter(model, ctx)
        fused = 0
        for ln in list(r.graph.nodes):
            if not r.alive(ln) or ln.op_type not in self.targets or ln.domain not in ONNX_DOMAINS:
                continue
            match = self._match(r, ln)
            target = self.targets[ln.op_type]
            if match is None or not r.supports(ln, MS_DOMAIN, target):
                continue
            (x, skip, bias), matched, total = match
            if ln.op_type == "LayerNormalization":
                beta = ln.inputs[2] if len(ln.inputs) > 2 else ""
                inputs = [x, skip, ln.inputs[1], beta, bias]
            else:
                inputs = [x, skip, ln.inputs[1], bias]
            while not inputs[-1]:
                inputs.pop()
            outputs = [ln.outputs[0]] + (["", "", total] if total else [])
            eps = float(ln.attrs.get("epsilon", 1e-5))
            new = Node(target, inputs, outputs, {"epsilon": eps}, MS_DOMAIN, name=ln.name or ln.outputs[0])
            # at the residual Add: the sum output may have readers before the normalization
            r.fuse([new], matched[0], [*matched, ln])
            fused += 1
        return fused

    @staticmethod
    def _match(r: Rewriter, ln: Node) -> tuple[list[str], list[Node], str] | None:
        if any(o and (o in r.pinned or r.users(o)) for o in ln.outputs[1:]):
            return None
        shape = r.shape(ln.inputs[0])
        if shape is None or len(shape) not in (2, 3) or int(ln.attrs.get("axis", -1)) not in (-1, len(shape) - 1):
            return None
        if any(r.constant(n) is None or r.constant(n).ndim != 1 for n in ln.inputs[1:] if n):
            return None
        add = r.producer(ln.inputs[0], "Add")
        if add is None or r.split_const(add) is not None or len(add.inputs) != 2:
            return None
        a, b = add.inputs
        if r.shape(a) != shape or r.shape(b) != shape or any(not isinstance(d, (int, str)) for d in shape):
            return None  # equal shapes, so the sum has the shape of either operand
        total = ""
        if add.outputs[0] in r.pinned or len(r.users(add.outputs[0])) != 1:
            total = add.outputs[0]
        bias, matched = "", [add]
        for x, skip in ((a, b), (b, a)):
            bias_add = r.producer(x, "Add")
            parts = _bias_add(r, bias_add) if bias_add is not None else None
            if parts is not None and r.only_user(x) is add:
                return [parts[0], skip, parts[1]], [add, bias_add], total
        return [a, b, bias], matched, total


# -- attention ----------------------------------------------------------------------------


def _perm_is(node: Node | None, perm: list[int]) -> bool:
    return node is not None and [int(p) for p in node.attrs.get("perm", [])] == perm


def _scaled(r: Rewriter, name: str) -> tuple[str, float, list[Node]]:
    """Peel Mul/Div by scalar constants off ``name``: (what is scaled, the factor, the nodes)."""
    factor, nodes = 1.0, []
    while True:
        node = r.producer(name, "Mul", "Div")
        parts = r.split_const(node) if node is not None else None
        value = r.scalar(parts[1]) if parts is not None else None
        if value is None or value == 0 or (node.op_type == "Div" and node.inputs[1] != parts[1]):
            return name, factor, nodes
        factor *= 1.0 / value if node.op_type == "Div" else value
        name = parts[0]
        nodes.append(node)


def _lead_dims_ok(shape: list[int], lead: tuple, trailing: list[int]) -> bool:
    """Whether Reshape ``shape`` keeps the two leading dims ``lead`` and ends with ``trailing``."""
    if len(shape) != 2 + len(trailing) or shape[2:] != trailing or shape.count(-1) > 1:
        return False
    return all(v == 0 or v == -1 or (isinstance(d, int) and v == d) for v, d in zip(shape[:2], lead))


class _Heads:
    """One of Q, K, V: projection, Reshape to heads and Transpose."""

    def __init__(self, proj: str, heads: int, head_size: int, nodes: list[Node]) -> None:
        self.proj, self.heads, self.head_size, self.nodes = proj, heads, head_size, nodes


def _heads(r: Rewriter, name: str, perm: list[int]) -> _Heads | None:
    """Transpose(Reshape(proj, [B, S, N, H]), perm) -> the projection and N, H."""
    t = r.producer(name, "Transpose")
    if not _perm_is(t, perm) or r.only_user(t.outputs[0]) is None:
        return None
    rs = r.producer(t.inputs[0], "Reshape")
    shape = r.ints(rs.inputs[1]) if rs is not None and len(rs.inputs) > 1 else None
    if shape is None or len(shape) != 4 or rs.attrs.get("allowzero", 0) or r.only_user(rs.outputs[0]) is not t:
        return None
    heads, size = shape[2], shape[3]
    proj_shape = r.shape(rs.inputs[0])
    if heads <= 0 or size <= 0 or proj_shape is None or len(proj_shape) != 3:
        return None
    if not _lead_dims_ok(shape, proj_shape[:2], [heads, size]):
        return None
    return _Heads(rs.inputs[0], heads, size, [t, rs])


def _linear(r: Rewriter, proj: str) -> tuple[str, np.ndarray, np.ndarray | None, list[Node]] | None:
    """proj = MatMul(x, W) [+ b]: (x, W, b, nodes), W a constant [D_in, D], b a constant [D]."""
    add = r.producer(proj, "Add")
    bias, nodes = None, []
    if add is not None:
        parts = r.split_const(add)
        if parts is None:
            return None
        proj, bias = parts[0], r.constant(parts[1])
        nodes.append(add)
        if r.only_user(proj) is not add:
            return None
    mm = r.producer(proj, "MatMul")
    weight = r.constant(mm.inputs[1]) if mm is not None else None
    if weight is None or weight.ndim != 2 or r.constant(mm.inputs[0]) is not None:
        return None
    if bias is not None and (bias.ndim != 1 or bias.shape[0] != weight.shape[1] or bias.dtype != weight.dtype):
        return None
    return mm.inputs[0], weight, bias, [mm, *nodes]


def _padding_mask(r: Rewriter, name: str, dtype: np.dtype) -> tuple[str, float, list[Node]] | None:
    """(1 - Cast(Unsqueeze(mask, [1, 2]))) * c, the additive form of a [B, T] 0/1 mask.

    Returns (the integer or bool mask, c, the nodes); Attention masks a key whose mask_index
    is 0 with ``mask_filter_value`` c, which equals the original for 0/1 masks.
    """
    mul = r.producer(name, "Mul")
    parts = r.split_const(mul) if mul is not None else None
    value = r.scalar(parts[1]) if parts is not None else None
    sub = r.producer(parts[0], "Sub") if parts is not None else None
    if value is None or sub is None or not r.is_scalar(sub.inputs[0], 1.0, rtol=0):
        return None
    if r.constant(sub.inputs[1]) is not None:
        return None
    nodes, cur, casts = [mul, sub], sub.inputs[1], []
    unsqueezes: list[list[int]] = []
    while True:
        node = r.producer(cur, "Cast", "Unsqueeze")
        if node is None:
            break
        if node.op_type == "Cast":
            casts.append(cast_target(node))
        else:
            axes = r.axes(node)
            if not axes:
                return None
            unsqueezes.append(axes)
        nodes.append(node)
        cur = node.inputs[0]
    mask_dtype, mask_shape = r.dtype(cur), r.shape(cur)
    if not casts or mask_dtype is None or mask_dtype.kind not in "biu" or mask_shape is None or len(mask_shape) != 2:
        return None
    if r.dtype(sub.outputs[0]) != dtype:
        return None
    dims: list[object] = ["B", "T"]
    for axes in reversed(unsqueezes):
        rank = len(dims) + len(axes)
        for a in sorted(a + rank if a < 0 else a for a in axes):
            dims.insert(a, 1)
    if dims != ["B", 1, 1, "T"]:
        return None
    return cur, value, nodes


def _causal(r: Rewriter, name: str) -> tuple[str, list[Node]] | None:
    """Where(tril, scores, fill) with a constant lower-triangular tril and a very negative
    fill, as GPT-2 exports mask future keys: (the scores, the nodes)."""
    where = r.producer(name, "Where")
    if where is None:
        return None
    cond, fill = r.constant(where.inputs[0]), r.scalar(where.inputs[2])
    if cond is None or fill is None or fill > -1e4 or cond.dtype != np.bool_ or cond.ndim < 2:
        return None
    s = cond.shape[-1]
    if cond.shape[-2] != s or any(d != 1 for d in cond.shape[:-2]):
        return None
    if not np.array_equal(cond.reshape(s, s), np.tri(s, dtype=bool)):
        return None
    return where.inputs[1], [where]


# With a causal mask, Attention sets future keys to the lowest float where the model had
# Where's fill (+ the padding term). In a row whose visible keys are all padding, those keys
# score about c; a c near the lowest float (HF's finfo.min) would tie them with the future
# keys in Attention but not in the model, so such padding masks are not fused with a causal one.
_MAX_CAUSAL_PADDING_FILL = -1e30


class AttentionFusion(GraphPass):
    """Multi-head self-attention subgraphs -> com.microsoft Attention.

    BERT-style: Q, K and V each MatMul(+ bias Add) of the same input with constant weights,
    Reshape to [B, S, N, H] and Transpose (K to [0, 2, 3, 1]); MatMul; Div or Mul by a
    scale (also on Q and K separately); an optional additive padding mask
    ``(1 - mask) * c`` from a [B, T] integer mask; Softmax; MatMul with V; Transpose and
    Reshape back to [B, S, N*H]. GPT-2-style: one packed QKV projection Split in three,
    and future keys masked by ``Where`` with a constant lower-triangular condition
    (``unidirectional=1``). The Q, K and V weights are packed into one [D_in, 3 D] weight.
    """

    name = "attention_fusion"
    level = _EXTENDED

    def run(self, model: Model, ctx: OptimizeContext) -> int:
        r = Rewriter(model, ctx)
        fused = 0
        for node in list(r.graph.nodes):
            if not r.alive(node) or node.op_type != "Softmax" or node.domain not in ONNX_DOMAINS:
                continue
            fused += self._fuse(r, node)
        return fused

    def _fuse(self, r: Rewriter, softmax: Node) -> int:
        m = self._match(r, softmax)
        if m is None:
            return 0
        x, weight, bias, heads, scale, causal, mask, out, nodes = m
        like = next(n for n in nodes if n.op_type == "MatMul" and n.inputs[0] == x)
        if not r.supports(like, MS_DOMAIN, "Attention"):
            return 0
        new_nodes, mask_input = [], ""
        if mask is not None:
            mask_input, cast = self._mask_index(r, mask[0], out)
            new_nodes += cast
        attrs: dict[str, object] = {"num_heads": heads}
        head_size = weight.shape[1] // 3 // heads
        if abs(scale - 1.0 / math.sqrt(head_size)) > 1e-6 * scale:
            attrs["scale"] = float(scale)
        if causal:
            attrs["unidirectional"] = 1
        if mask is not None and mask[1] != -10000.0:
            attrs["mask_filter_value"] = float(mask[1])
        base = out.outputs[0]
        inputs = [x, r.add_constant(f"{base}_qkv_weight", weight), r.add_constant(f"{base}_qkv_bias", bias)]
        if mask_input:
            inputs.append(mask_input)
        new_nodes.append(Node("Attention", inputs, [out.outputs[0]], attrs, MS_DOMAIN, name=out.name or base))
        r.fuse(new_nodes, out, nodes + (mask[2] if mask is not None else []))
        return 1

    @staticmethod
    def _mask_index(r: Rewriter, mask: str, before: Node) -> tuple[str, list[Node]]:
        """The mask as int32: itself, an earlier Cast to int32, or a new Cast."""
        if r.elem_type(mask) == TensorProto.INT32:
            return mask, []
        position = r.position(before)
        for user in r.users(mask):
            if (user.op_type == "Cast" and user.domain in ONNX_DOMAINS and cast_target(user) == TensorProto.INT32
                    and r.position(user) < position):
                return user.outputs[0], []
        name = r.fresh(f"{mask}_int32")
        r.declare(name, TensorProto.INT32, r.shape(mask))
        return name, [Node("Cast", [mask], [name], {"to": TensorProto.INT32}, name=name)]

    @staticmethod
    def _match(r: Rewriter, softmax: Node):
        scores_type = r.shape(softmax.inputs[0])
        axis = int(softmax.attrs.get("axis", -1 if r.opset(softmax) >= 13 else 1))
        if axis not in (-1, 3) or scores_type is None or len(scores_type) != 4:
            return None
        dtype = r.dtype(softmax.inputs[0])
        # softmax -> MatMul(V) -> Transpose -> Reshape to [B, S, N*H]
        pv = r.only_user(softmax.outputs[0], "MatMul")
        if pv is None or pv.inputs[0] != softmax.outputs[0]:
            return None
        merge = r.only_user(pv.outputs[0], "Transpose")
        out = r.only_user(merge.outputs[0], "Reshape") if _perm_is(merge, [0, 2, 1, 3]) else None
        out_shape = r.ints(out.inputs[1]) if out is not None and len(out.inputs) > 1 else None
        if out_shape is None or out.attrs.get("allowzero", 0):
            return None
        nodes = [softmax, pv, merge, out]
        # scores: [Add(mask)] [Where(causal)] [Mul/Div scale] MatMul(Q, K^T)
        scores, mask, causal = softmax.inputs[0], None, False
        add = r.producer(scores, "Add")
        if add is not None and r.only_user(add.outputs[0]) is softmax:
            for s, other in ((add.inputs[0], add.inputs[1]), (add.inputs[1], add.inputs[0])):
                mask = _padding_mask(r, other, dtype)
                if mask is not None:
                    scores = s
                    nodes.append(add)
                    break
            if mask is None:
                return None
        where = _causal(r, scores)
        if where is not None and r.only_user(scores) is not None:
            if mask is not None and mask[1] < _MAX_CAUSAL_PADDING_FILL:
                return None
            scores, causal = where[0], True
            nodes += where[1]
        qk_scaled, scale, scale_nodes = _scaled(r, scores)
        qk = r.producer(qk_scaled, "MatMul")
        if qk is None:
            return None
        q_name, q_scale, q_nodes = _scaled(r, qk.inputs[0])
        k_name, k_scale, k_nodes = _scaled(r, qk.inputs[1])
        nodes += [*scale_nodes, qk, *q_nodes, *k_nodes]
        q, k = _heads(r, q_name, [0, 2, 1, 3]), _heads(r, k_name, [0, 2, 3, 1])
        v = _heads(r, pv.inputs[1], [0, 2, 1, 3])
        if q is None or k is None or v is None or len({(h.heads, h.head_size) for h in (q, k, v)}) != 1:
            return None
        nodes += q.nodes + k.nodes + v.nodes
        heads, hidden = q.heads, q.heads * q.head_size
        packed = AttentionFusion._projections(r, q.proj, k.proj, v.proj, hidden)
        if packed is None:
            return None
        x, weight, bias, proj_nodes = packed
        nodes += proj_nodes
        x_shape = r.shape(x)
        if x_shape is None or len(x_shape) != 3 or r.dtype(x) != dtype or weight.dtype != dtype:
            return None
        if not _lead_dims_ok(out_shape, x_shape[:2], [hidden]):
            return None
        # every intermediate is read only inside the pattern
        inside = {id(n) for n in nodes}
        for node in nodes:
            if node is out:
                continue
            for o in node.outputs:
                if o and (o in r.pinned or any(id(u) not in inside for u in r.users(o))):
                    return None
        return x, weight, bias, heads, scale * q_scale * k_scale, causal, mask, out, nodes

    @staticmethod
    def _projections(r: Rewriter, q: str, k: str, v: str, hidden: int):
        """The packed [D_in, 3 D] weight and [3 D] bias behind Q, K, V: three MatMul(+Add)
        of one input, or one MatMul(+Add) Split in three along the last axis."""
        split = r.producer(q, "Split")
        if split is not None:
            if [q, k, v] != split.outputs[:3] or len(split.outputs) != 3:
                return None
            sizes = r.ints(split.inputs[1]) if len(split.inputs) > 1 and split.inputs[1] else split.attrs.get("split")
            shape = r.shape(split.inputs[0])
            if int(split.attrs.get("axis", 0)) not in (-1, 2) or shape is None or len(shape) != 3:
                return None
            if sizes is not None and list(sizes) != [hidden] * 3:
                return None
            lin = _linear(r, split.inputs[0])
            if lin is None or lin[1].shape[1] != 3 * hidden:
                return None
            x, weight, bias, nodes = lin
            bias = bias if bias is not None else np.zeros(3 * hidden, weight.dtype)
            return x, weight, bias, [split, *nodes]
        parts = [_linear(r, name) for name in (q, k, v)]
        if any(p is None for p in parts) or len({p[0] for p in parts}) != 1:
            return None
        first = parts[0][1]
        if any(p[1].shape != (first.shape[0], hidden) or p[1].dtype != first.dtype for p in parts):
            return None
        dtype = parts[0][1].dtype
        weight = np.concatenate([p[1] for p in parts], axis=1)
        bias = np.concatenate([p[2] if p[2] is not None else np.zeros(hidden, dtype) for p in parts])
        return parts[0][0], weight, bias, [n for p in parts for n in p[3]]
