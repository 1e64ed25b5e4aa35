"""ortcore: run ONNX models with the onnxruntime API on pluggable execution providers.

``import ortcore`` is cheap: the session, the IR and plugin discovery load on
first use.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "InferenceSession": "ortcore.session",
    "NodeArg": "ortcore.session",
    "ModelMetadata": "ortcore.session",
    "SessionOptions": "ortcore.options",
    "RunOptions": "ortcore.options",
    "GraphOptimizationLevel": "ortcore.options",
    "ExecutionMode": "ortcore.options",
    "ExecutionProvider": "ortcore.provider",
    "KernelRegistry": "ortcore.kernels",
    "NodeContext": "ortcore.kernels",
    "hookimpl": "ortcore.hookspecs",
    "get_plugin_manager": "ortcore.plugin",
    "register_plugin": "ortcore.plugin",
    "unregister_plugin": "ortcore.plugin",
    "errors": "ortcore.errors",
    "OpSpec": "ortcore.custom_ops",
    "Param": "ortcore.custom_ops",
    "Attr": "ortcore.custom_ops",
    "ShapeContext": "ortcore.custom_ops",
    "make_model": "ortcore.custom_ops",
    "register_custom_ops": "ortcore.custom_ops",
}
_ERRORS = {
    "OrtCoreError", "Fail", "InvalidArgument", "NoSuchFile", "NoModel", "EngineError",
    "RuntimeException", "InvalidProtobuf", "ModelLoaded", "NotImplemented", "InvalidGraph", "EPFail",
}

__all__ = sorted({*_LAZY, *_ERRORS, "get_available_providers", "get_all_providers", "get_device"})


def __getattr__(name: str) -> Any:
    if name in _ERRORS:
        return getattr(importlib.import_module("ortcore.errors"), name)
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'ortcore' has no attribute {name!r}")
    mod = importlib.import_module(module)
    return mod if name == "errors" else getattr(mod, name)


def get_all_providers() -> list[str]:
    """Names of every installed provider, available here or not."""
    from ortcore.plugin import get_plugin_manager

    return list(get_plugin_manager().providers())


def get_available_providers() -> list[str]:
    """Names of the installed providers that can run on this machine, in priority order.

    Fallback providers (the CPU provider) come last, as in onnxruntime.
    """
    from ortcore.plugin import get_plugin_manager

    infos = [i for i in get_plugin_manager().providers().values() if i.available]
    return [i.name for i in sorted(infos, key=lambda i: i.fallback)]


def get_device() -> str:
    """onnxruntime's build device string: the first available provider's device kind."""
    return "CPU"
