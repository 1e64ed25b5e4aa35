"""The pass interface and the driver that runs passes by level."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ortcore.ir import Model
from ortcore.options import GraphOptimizationLevel

__all__ = ["GraphPass", "OptimizeContext", "optimize", "builtin_passes"]

log = logging.getLogger("ortcore.optimizer")


@dataclass
class OptimizeContext:
    """What passes may use: the providers (to run kernels when folding) and frozen names.

    ``frozen`` holds initializer names the caller may override at run time;
    passes must not treat them as constants.
    """

    providers: list[Any]
    frozen: set[str] = field(default_factory=set)
    log: list[str] = field(default_factory=list)


class GraphPass:
    """A rewrite of ``model.graph``; ``run`` returns how many changes it made."""

    name: ClassVar[str] = ""
    level: ClassVar[GraphOptimizationLevel] = GraphOptimizationLevel.ORT_ENABLE_BASIC

    def run(self, model: Model, ctx: OptimizeContext) -> int:
        raise NotImplementedError


def builtin_passes() -> list[GraphPass]:
    from ortcore.optimizer.basic import ConstantFolding, DeadNodeElimination, IdentityElimination
    from ortcore.optimizer.cleanup import (
        CastElimination,
        CommonSubexpressionElimination,
        ReshapeFusion,
        ShapeFolding,
        TransposeFusion,
    )
    from ortcore.optimizer.fusions import (
        BatchNormAffineFusion,
        ConvActivationFusion,
        ConvAddActivationFusion,
        ConvAddFusion,
        ConvBatchNormFusion,
        ConvMulFusion,
        GemmActivationFusion,
        MatMulAddFusion,
    )
    from ortcore.optimizer.qdq import QDQFusion
    from ortcore.optimizer.transformer import (
        AttentionFusion,
        BiasGeluFusion,
        FastGeluFusion,
        GeluFusion,
        LayerNormFusion,
        SimplifiedLayerNormFusion,
        SkipLayerNormFusion,
    )

    return [
        # basic: shape arithmetic first, so that folding sees the constants it leaves
        IdentityElimination(),
        CommonSubexpressionElimination(),
        ShapeFolding(),
        ConstantFolding(),
        TransposeFusion(),
        ReshapeFusion(),
        CastElimination(),
        DeadNodeElimination(),
        # extended: QDQ groups before the float Conv fusions could take their Conv;
        # Gelu before the bias fusion that extends it, normalizations before the
        # Skip fusion that consumes them
        QDQFusion(),
        ConvBatchNormFusion(),
        ConvMulFusion(),
        ConvAddFusion(),
        BatchNormAffineFusion(),
        ConvActivationFusion(),
        ConvAddActivationFusion(),
        MatMulAddFusion(),
        GemmActivationFusion(),
        GeluFusion(),
        FastGeluFusion(),
        BiasGeluFusion(),
        LayerNormFusion(),
        SimplifiedLayerNormFusion(),
        SkipLayerNormFusion(),
        AttentionFusion(),
    ]


def optimize(
    model: Model,
    level: GraphOptimizationLevel,
    session: Any,
    *,
    frozen: set[str] | None = None,
    passes: list[GraphPass] | None = None,
) -> OptimizeContext:
    """Apply every pass whose level is at most ``level``, in order, until nothing changes."""
    ctx = OptimizeContext(list(getattr(session, "_providers", [])), set(frozen or ()))
    if passes is None:
        passes = builtin_passes() + list(session._pm.graph_passes() if session is not None else [])
    selected = [p for p in passes if p.level <= level]
    for _ in range(4):
        changed = 0
        for p in selected:
            n = p.run(model, ctx)
            if n:
                ctx.log.append(f"{p.name}: {n} change(s)")
                log.debug("pass %s made %d change(s)", p.name, n)
            changed += n
        if not changed:
            break
    return ctx
