"""Optimizer steps of the ``ai.onnx.preview.training`` domain: Adagrad, Adam, Momentum.

Each op updates any number of tensors at once: after the scalar learning rate
R and update count T come all the X's, then all their G's, then each state
list (H for Adagrad; V for Momentum; V then H for Adam), and the outputs list
all new X's and then each new state list. The scalar coefficients are Python
floats so the arithmetic stays in each tensor's own dtype; kernels are
array-module generic (``xp``).

Gradient (the fourth op of the domain) needs reverse-mode differentiation of
the graph and is not implemented.
"""

from __future__ import annotations

import math
from typing import Any

from ortcore_cpu.registry import kernel

DOMAIN = "ai.onnx.preview.training"


def _groups(op: str, tensors: tuple[Any, ...], n_groups: int) -> list[tuple[Any, ...]]:
    """Split ``X1..Xn, G1..Gn, ...`` into per-tensor tuples ``(Xi, Gi, ...)``."""
    if not tensors or len(tensors) % n_groups:
        raise ValueError(
            f"{op} expects {n_groups} inputs per optimized tensor, got {len(tensors)} inputs after R and T"
        )
    n = len(tensors) // n_groups
    return [tuple(tensors[i + k * n] for k in range(n_groups)) for i in range(n)]


def _scalar(value: Any) -> float:
    return value.item()


def _cast(value: Any, like: Any) -> Any:
    return value.astype(like.dtype, copy=False)


@kernel("Adagrad", since=1, domain=DOMAIN, xp=True, multi_output=True)
def adagrad(xp, r, t, /, *tensors, decay_factor=0.0, epsilon=1e-6, norm_coefficient=0.0):
    """Adagrad: H += g^2; X -= R / (1 + T * decay) * g / (sqrt(H) + eps), g = G + norm * X."""
    rate = _scalar(r) / (1.0 + _scalar(t) * decay_factor)
    xs, hs = [], []
    for x, g, h in _groups("Adagrad", tensors, 3):
        g = norm_coefficient * x + g
        h_new = h + g * g
        xs.append(_cast(x - rate * g / (xp.sqrt(h_new) + epsilon), x))
        hs.append(_cast(h_new, h))
    return (*xs, *hs)


@kernel("Momentum", since=1, domain=DOMAIN, xp=True, multi_output=True)
def momentum(xp, r, t, /, *tensors, alpha, beta, mode, norm_coefficient):
    """Momentum: V = alpha * V + beta' * g (beta' = 1 at T == 0); standard or Nesterov update."""
    if mode not in ("standard", "nesterov"):
        raise ValueError(f"mode must be 'standard' or 'nesterov', got {mode!r}")
    rate = _scalar(r)
    beta_t = beta if int(_scalar(t)) > 0 else 1.0
    xs, vs = [], []
    for x, g, v in _groups("Momentum", tensors, 3):
        g = norm_coefficient * x + g
        v_new = alpha * v + beta_t * g
        step = v_new if mode == "standard" else g + alpha * v_new
        xs.append(_cast(x - rate * step, x))
        vs.append(_cast(v_new, v))
    return (*xs, *vs)


@kernel("Adam", since=1, domain=DOMAIN, xp=True, multi_output=True)
def adam(
    xp, r, t, /, *tensors, alpha=0.9, beta=0.999, epsilon=1e-6, norm_coefficient=0.0, norm_coefficient_post=0.0
):
    """Adam with bias correction for T > 0 and optional post-update decay."""
    steps = int(_scalar(t))
    rate = _scalar(r)
    if steps > 0:
        rate = rate * math.sqrt(1.0 - beta**steps) / (1.0 - alpha**steps)
    xs, vs, hs = [], [], []
    for x, g, v, h in _groups("Adam", tensors, 4):
        g = norm_coefficient * x + g
        v_new = alpha * v + (1.0 - alpha) * g
        h_new = beta * h + (1.0 - beta) * (g * g)
        x_new = x - rate * (v_new / (xp.sqrt(h_new) + epsilon))
        xs.append(_cast((1.0 - norm_coefficient_post) * x_new, x))
        vs.append(_cast(v_new, v))
        hs.append(_cast(h_new, h))
    return (*xs, *vs, *hs)
