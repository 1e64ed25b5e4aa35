"""Graph rewrites applied at session creation, by optimization level."""

from ortcore.optimizer.base import GraphPass, OptimizeContext, optimize
from ortcore.optimizer.basic import ConstantFolding, DeadNodeElimination, IdentityElimination

__all__ = [
    "GraphPass",
    "OptimizeContext",
    "optimize",
    "ConstantFolding",
    "DeadNodeElimination",
    "IdentityElimination",
]
