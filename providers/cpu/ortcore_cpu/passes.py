"""Graph passes the CPU provider contributes (hook ``ortcore_graph_passes``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ortcore.ir import Model, Node
from ortcore.optimizer import GraphPass, OptimizeContext
from ortcore.optimizer.fusions import ACTIVATIONS, MS_DOMAIN, Matcher, activation_of, inference_batchnorm
from ortcore.options import GraphOptimizationLevel
from ortcore_cpu import jit


class BatchNormActivationFusion(GraphPass):
    """Inference BatchNormalization + activation -> FusedConv, as a 1x1 depthwise conv.

    Inference BatchNormalization is ``x * a + b`` per channel: a depthwise 1x1
    conv with weights ``a`` and bias ``b``. As com.microsoft FusedConv it takes
    the activation along, and the compiled depthwise loop then does both in one
    pass over the data where BatchNormalization and the activation took two
    (DenseNet's pre-activation blocks: 62 pairs). The result is plain
    onnxruntime FusedConv, so a saved optimized model still loads there.

    Only for float32 4-D nodes the CPU provider runs, and only while its
    compiled loops are on: on the numpy paths a depthwise conv is slower than
    the two nodes it replaces.
    """

    name = "batchnorm_activation_fusion"
    level = GraphOptimizationLevel.ORT_ENABLE_ALL

    def run(self, model: Model, ctx: OptimizeContext) -> int:
        if not jit.enabled():
            return 0
        m = Matcher(model, ctx)
        fused = 0
        for bn, act in m.pairs("BatchNormalization", ACTIVATIONS):
            params = inference_batchnorm(m, bn)
            spec = activation_of(m, act)
            x_type = m.types.get(bn.inputs[0])
            if params is None or spec is None or x_type is None or x_type.rank != 4:
                continue
            if x_type.dtype != np.float32 or not _runs_on_cpu(m, bn) or not m.supports(bn, MS_DOMAIN, "FusedConv"):
                continue
            scale, bias, mean, var = (p.astype(np.float64) for p in params)
            a = scale / np.sqrt(var + bn.attrs.get("epsilon", 1e-5))
            name = bn.name or act.outputs[0]
            channels = a.shape[0]
            weight = m.add_initializer(f"{name}_weight", a.astype(np.float32).reshape(channels, 1, 1, 1))
            shift = m.add_initializer(f"{name}_bias", (bias - mean * a).astype(np.float32))
            attrs: dict[str, Any] = {"group": channels, "kernel_shape": [1, 1], "activation": spec[0]}
            if spec[1]:
                attrs["activation_params"] = spec[1]
            m.replace([bn, act], Node("FusedConv", [bn.inputs[0], weight, shift], [act.outputs[0]], attrs, MS_DOMAIN, name=name))
            model.opset_imports.setdefault(MS_DOMAIN, 1)
            fused += 1
        return fused


def _runs_on_cpu(m: Matcher, node: Node) -> bool:
    """Whether the first of the session's providers that claims ``node`` is this one."""
    from ortcore_cpu.provider import CPUExecutionProvider

    return isinstance(m.claimant(node), CPUExecutionProvider)
