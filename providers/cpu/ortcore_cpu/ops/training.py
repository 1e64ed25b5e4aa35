"""Optimizer steps of the ``ai.onnx.preview.training`` domain: Adagrad, Adam, Momentum.

Each op updates any number of tensors at once: after the scalar learning rate
R and update count T come all the X's, then all their G's, then each state
list (H for Adagrad; V for Momentum; V then H for Adam), and the outputs list
all new X's and then each new state list. The scalar coefficients are Python
floats so the arithmetic stays in each tensor's own dtype; kernels are
array-module generic (``xp``).

Gradient differentiates the slice of the enclosing graph between its inputs
and ``y`` in reverse mode; it knows the elementwise arithmetic ops (Add, Sub,
Mul, Div, Neg, Identity) and declines, at session creation, slices with others.
"""

from __future__ import annotations

import math
from typing import Any

from ortcore.errors import NotImplemented
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


# --- Gradient -----------------------------------------------------------------------------

_FORWARD = {
    "Add": lambda xp, a, b: a + b,
    "Sub": lambda xp, a, b: a - b,
    "Mul": lambda xp, a, b: a * b,
    "Div": lambda xp, a, b: a / b,
    "Neg": lambda xp, a: -a,
    "Identity": lambda xp, a: a,
}
_BACKWARD = {  # upstream gradient g and the forward inputs -> one gradient per input
    "Add": lambda g, a, b: (g, g),
    "Sub": lambda g, a, b: (g, -g),
    "Mul": lambda g, a, b: (g * b, g * a),
    "Div": lambda g, a, b: (g / b, -g * a / (b * b)),
    "Neg": lambda g, a: (-g,),
    "Identity": lambda g, a: (g,),
}


def _unbroadcast(xp, grad, shape):
    """Sum ``grad`` over the axes numpy broadcasting added or stretched to reach it from ``shape``."""
    extra = grad.ndim - len(shape)
    if extra:
        grad = grad.sum(axis=tuple(range(extra)))
    stretched = tuple(i for i, d in enumerate(shape) if d == 1 and grad.shape[i] != 1)
    return grad.sum(axis=stretched, keepdims=True) if stretched else grad


def _slice(graph, sources, y):
    """The nodes of ``graph`` on a path from ``sources`` to ``y``, in graph order."""
    depends, on_path = set(sources), []
    for node in graph.nodes:
        if any(i in depends for i in node.inputs):
            depends.update(o for o in node.outputs if o)
            on_path.append(node)
    needed, kept = {y}, []
    for node in reversed(on_path):
        if any(o in needed for o in node.outputs):
            needed.update(i for i in node.inputs if i)
            kept.append(node)
    return kept[::-1]


@kernel("Gradient", since=1, domain=DOMAIN, factory=True, multi_output=True)
def make_gradient(ctx, /, *, xs, y, zs=None):
    """Gradient-1: d y / d xs of the graph slice from xs (and zs) to y, by reverse mode."""
    sources = list(xs) + list(zs or [])
    nodes = _slice(ctx.graph, sources, y)
    for node in nodes:
        if node.domain not in ("", "ai.onnx") or node.op_type not in _FORWARD:
            raise NotImplemented(
                f"Gradient through {node.describe()} is not supported: the CPU kernel differentiates "
                f"{', '.join(sorted(_FORWARD))}"
            )
    constants = ctx.graph.initializers
    xp = ctx.xp

    def run(*values):
        env = dict(constants)
        env.update(zip(sources, values))
        for node in nodes:
            env[node.outputs[0]] = _FORWARD[node.op_type](xp, *(env[i] for i in node.inputs))
        grads = {y: xp.ones_like(env[y])}
        for node in reversed(nodes):
            g = grads.get(node.outputs[0])
            if g is None:
                continue
            args = [env[i] for i in node.inputs]
            for name, arg, part in zip(node.inputs, args, _BACKWARD[node.op_type](g, *args)):
                part = _unbroadcast(xp, xp.asarray(part), xp.shape(arg))
                grads[name] = grads[name] + part if name in grads else part
        return tuple(
            xp.asarray(grads.get(x, xp.zeros_like(env[x]))).astype(env[x].dtype, copy=False) for x in xs
        )

    return run
