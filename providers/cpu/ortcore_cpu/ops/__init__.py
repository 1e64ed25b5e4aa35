"""CPU kernels, one module per op family. Importing this package fills the registry."""

from __future__ import annotations

import importlib

# Explicit list: a module is registered because it is named here, not found by scanning.
OP_MODULES = (
    "elementwise",
    "reduce",
    "tensor",
    "shape",
    "resize",
    "math",
    "nn.activation",
    "nn.conv",
    "nn.pool",
    "nn.norm",
    "nn.attention",
    "nn.image",
    "control_flow",
    "sequence",
    "loss",
    "training",
    "rnn",
    "quantize",
    "random",
    "signal",
    "string",
    "misc",
    "contrib.fused",
    "contrib.normalization",
    "contrib.attention",
    "contrib.quantized",
    "ml.linear",
    "ml.trees",
    "ml.svm",
    "ml.preprocess",
    "ml.encode",
    "ml.maps",
)


def load_all() -> None:
    for name in OP_MODULES:
        try:
            importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
