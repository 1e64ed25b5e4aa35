"""QDQ -> integer kernels: ``DequantizeLinear -> Conv/MatMul -> QuantizeLinear`` becomes
``QLinearConv`` / ``QLinearMatMul``.

Quantization tools write integer models in QDQ form: float ops wrapped in
DequantizeLinear/QuantizeLinear pairs, so any runtime can run them in float.
Running the wrapped op on the integer tensors directly saves the dequantize,
the float intermediate and the requantize. Both targets are standard ONNX ops,
so a saved optimized model still loads anywhere. Constant folding leaves the
weight DequantizeLinear of such a group alone (:func:`in_qdq_group`) so that
this pass can still see the integer weights.
"""

from __future__ import annotations

import numpy as np

from ortcore.ir import Model, Node
from ortcore.optimizer.base import GraphPass, OptimizeContext
from ortcore.optimizer.fusions import Matcher
from ortcore.options import GraphOptimizationLevel

__all__ = ["QDQFusion", "in_qdq_group"]

_TARGETS = {"Conv": "QLinearConv", "MatMul": "QLinearMatMul"}
_INT8 = (np.dtype(np.int8), np.dtype(np.uint8))


def in_qdq_group(node: Node, consumers: dict[str, list[Node]]) -> bool:
    """Whether ``node`` is a DequantizeLinear feeding Conv/MatMul whose only reader is a QuantizeLinear."""
    if node.op_type != "DequantizeLinear" or node.domain not in ("", "ai.onnx"):
        return False
    users = consumers.get(node.outputs[0], [])
    for op in users:
        after = consumers.get(op.outputs[0], []) if op.outputs else []
        if op.op_type not in _TARGETS or len(after) != 1 or after[0].op_type != "QuantizeLinear":
            return False
    return bool(users)


class QDQFusion(GraphPass):
    """DQ(x), DQ(w)[, DQ(bias)] -> Conv|MatMul -> Q  =>  QLinearConv|QLinearMatMul."""

    name = "qdq_fusion"
    level = GraphOptimizationLevel.ORT_ENABLE_EXTENDED

    def run(self, model: Model, ctx: OptimizeContext) -> int:
        m = Matcher(model, ctx)
        producer = {o: n for n in m.graph.nodes for o in n.outputs if o}
        fused = 0
        for op in list(m.graph.nodes):
            target = _TARGETS.get(op.op_type)
            if target is None or op.domain not in ("", "ai.onnx") or not op.outputs:
                continue
            q = m.sole_consumer(op.outputs[0])
            if q is None or q.op_type != "QuantizeLinear" or not self._per_tensor(m, q):
                continue
            dqs = [producer.get(name) for name in op.inputs]
            if any(d is None or d.op_type != "DequantizeLinear" for d in dqs):
                continue
            parts = self._quantized_inputs(m, op, dqs)
            if parts is None or not m.supports(op, "", target):
                continue
            (x, xs, xz), (w, ws, wz) = parts[0], parts[1]
            ys, yz = q.inputs[1], self._zero_point(m, q, q.inputs[2] if len(q.inputs) > 2 else "", x)
            if ys is None or yz is None:
                continue
            inputs = [x, xs, xz, w, ws, wz, ys, yz]
            if target == "QLinearConv" and len(parts) > 2:
                inputs.append(parts[2][0])
            attrs = dict(op.attrs) if target == "QLinearConv" else {}
            fused_node = Node(target, inputs, [q.outputs[0]], attrs, name=f"{op.name or op.outputs[0]}_quant",
                              attr_types={k: v for k, v in op.attr_types.items() if k in attrs})
            m.replace([op, q], fused_node)
            fused += 1
        return fused

    @staticmethod
    def _per_tensor(m: Matcher, node: Node) -> bool:
        scale = m.constant(node.inputs[1]) if len(node.inputs) > 1 else None
        return scale is not None and scale.size == 1 and scale.dtype == np.float32 and not node.attrs.get("block_size")

    def _quantized_inputs(self, m: Matcher, op: Node, dqs: list[Node]) -> list[tuple[str, str, str]] | None:
        """(integer tensor, scale, zero point) per input, or None where the pattern does not fit."""
        x_dq, w_dq = dqs[0], dqs[1]
        if not self._per_tensor(m, x_dq):
            return None
        x_type = m.types.get(x_dq.inputs[0])
        w = m.constant(w_dq.inputs[0])
        if x_type is None or x_type.dtype not in _INT8 or w is None or w.dtype not in _INT8:
            return None
        w_scale = m.constant(w_dq.inputs[1])
        if w_scale is None or w_scale.dtype != np.float32 or w_dq.attrs.get("block_size"):
            return None
        if w_scale.size > 1:
            # per-channel weights: QLinearConv takes them along output channels, QLinearMatMul along columns
            axis = int(w_dq.attrs.get("axis", 1))
            along = 0 if op.op_type == "Conv" else 1
            if w.ndim != (w.ndim if op.op_type == "Conv" else 2) or axis % w.ndim != along:
                return None
        xz = self._zero_point(m, x_dq, x_dq.inputs[2] if len(x_dq.inputs) > 2 else "", x_dq.inputs[0])
        wz = self._zero_point(m, w_dq, w_dq.inputs[2] if len(w_dq.inputs) > 2 else "", w_dq.inputs[0])
        if xz is None or wz is None:
            return None
        parts = [(x_dq.inputs[0], x_dq.inputs[1], xz), (w_dq.inputs[0], w_dq.inputs[1], wz)]
        if len(dqs) > 2:
            bias = self._bias(m, dqs[2], m.constant(x_dq.inputs[1]), w_scale)
            if bias is None:
                return None
            parts.append((bias, "", ""))
        return parts

    @staticmethod
    def _bias(m: Matcher, dq: Node, x_scale: np.ndarray, w_scale: np.ndarray) -> str | None:
        """The int32 bias, if it is quantized with scale x_scale * w_scale and zero point 0 as QLinearConv needs."""
        b = m.constant(dq.inputs[0])
        scale = m.constant(dq.inputs[1])
        zero = m.constant(dq.inputs[2]) if len(dq.inputs) > 2 and dq.inputs[2] else np.zeros(1, np.int32)
        if b is None or b.dtype != np.int32 or scale is None or zero is None or np.any(zero != 0):
            return None
        expected = (x_scale.reshape(-1) * w_scale.reshape(-1)).astype(np.float32)
        if not np.allclose(np.broadcast_to(scale.reshape(-1), expected.shape), expected, rtol=1e-5, atol=0):
            return None
        return dq.inputs[0]

    @staticmethod
    def _zero_point(m: Matcher, node: Node, name: str, like: str) -> str | None:
        """The zero point input, made explicit (QLinear ops require it) when the Q/DQ node omits it."""
        if name:
            return name if m.constant(name) is not None else None
        t = m.types.get(like)
        dtype = t.dtype if t is not None else None
        if node.op_type == "QuantizeLinear":
            if node.attrs.get("output_dtype", 0) not in (0, 2):  # 2: TensorProto.UINT8
                return None
            dtype = np.dtype(np.uint8)  # QuantizeLinear without a zero point produces uint8
        if dtype not in _INT8:
            return None
        return m.add_initializer(f"{node.name or node.outputs[0]}_zero_point", np.zeros((), dtype))
