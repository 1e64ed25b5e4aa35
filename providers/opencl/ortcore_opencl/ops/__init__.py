"""OpenCL kernels, one module per op family. Importing this package fills the registry."""

from __future__ import annotations

import importlib

# Explicit list: a module is registered because it is named here, not found by scanning.
OP_MODULES = (
    "elementwise",
    "tensor",
    "gemm",
    "conv",
    "pool",
    "norm",
    "reduce",
    "softmax",
    "resize",
)


def load_all() -> None:
    for name in OP_MODULES:
        try:
            importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
