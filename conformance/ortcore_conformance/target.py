"""The provider under test: its sessions, claims, kernels and expected failures."""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest

import ortcore
from ortcore.kernels import KernelDef
from ortcore.partition import partition_graph
from ortcore.plugin import ProviderInfo, get_plugin_manager
from ortcore.provider import ExecutionProvider
from ortcore.testing import load_expected_failures
from ortcore_conformance.plugin import UNSUPPORTED

__all__ = ["Target", "expected_failures_path", "unsupported"]


def unsupported(reason: str) -> None:
    """Skip the current case as unsupported by the provider (never counted as passed)."""
    pytest.skip(UNSUPPORTED + reason)


def expected_failures_path(cls: type) -> Path | None:
    """Where a provider lists its expected failures.

    A provider class may name its file in ``expected_failures_file``; otherwise
    it is ``expected_failures.txt`` in the top-level package of the class's module.
    """
    path = getattr(cls, "expected_failures_file", None)
    if path is not None:
        return Path(path)
    top = sys.modules.get(cls.__module__.partition(".")[0])
    if top is None or not hasattr(top, "__path__"):
        return None  # a plain module, not a package: no package directory to look in
    return Path(top.__file__).parent / "expected_failures.txt"


@functools.lru_cache(maxsize=1)
def onnx_dtypes() -> tuple[np.dtype, ...]:
    """The numpy dtypes of every ONNX tensor element type (strings are object arrays)."""
    found = []
    for elem_type in onnx.TensorProto.DataType.values():
        try:
            dtype = onnx.helper.tensor_dtype_to_np_dtype(elem_type)
        except (KeyError, ValueError):  # UNDEFINED, and types numpy has no dtype for
            continue
        if dtype not in found:
            found.append(dtype)
    return tuple(found)


def _declined(exc: ortcore.NotImplemented) -> bool:
    """Whether session creation failed because the partitioner found unclaimed nodes."""
    tb = exc.__traceback__
    while tb.tb_next is not None:
        tb = tb.tb_next
    return tb.tb_frame.f_code is partition_graph.__code__


class Target:
    """The provider named on the command line, as the suite tests it."""

    def __init__(self, name: str) -> None:
        self.name = name
        providers = get_plugin_manager().providers()
        if name not in providers:
            raise pytest.UsageError(
                f"execution provider {name!r} is not installed (installed: {', '.join(providers) or 'none'})"
            )
        self.info: ProviderInfo = providers[name]
        path = expected_failures_path(self.info.cls)
        self.expected_failures_file = path if path is not None and path.exists() else None
        try:
            self.expected_failures = load_expected_failures(path) if self.expected_failures_file else {}
        except ValueError as exc:  # an entry without a reason
            raise pytest.UsageError(str(exc)) from exc

    @property
    def available(self) -> bool:
        return self.info.available

    @property
    def fallback(self) -> bool:
        return self.info.fallback

    def require_available(self) -> None:
        if not self.available:
            unsupported(f"{self.name} is unavailable: {self.info.reason}")

    @functools.cached_property
    def provider(self) -> ExecutionProvider:
        """An instance with the kernels every plugin contributes, as a session would make it."""
        self.require_available()
        return self.info.cls({}, get_plugin_manager().extra_kernels(self.name))

    def kernels(self) -> list[KernelDef]:
        return [kdef for registry in self.provider.registries for kdef in registry]

    def declared_dtypes(self) -> list[np.dtype]:
        """Every dtype a kernel declares; a kernel that declares none accepts any ONNX dtype."""
        declared: set[np.dtype] = set()
        for kdef in self.kernels():
            for dtypes in kdef.dtypes.values() if kdef.dtypes is not None else [onnx_dtypes()]:
                declared.update(dtypes)
        return sorted(declared, key=str)

    def claim(self, op: str, opset: int, dtypes: list[Any], domain: str = "") -> KernelDef | str:
        return self.provider.claim(domain, op, opset, dtypes)

    def options(self) -> ortcore.SessionOptions:
        opts = ortcore.SessionOptions()
        # No rewrites: every node of the model must reach the provider (folding
        # or identity removal would let a node "pass" without running on it).
        opts.graph_optimization_level = ortcore.GraphOptimizationLevel.ORT_DISABLE_ALL
        # Nothing may fall back. For the fallback provider itself this changes
        # nothing: providers=[PROVIDER] is then the whole list.
        opts.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
        return opts

    def session(self, model: bytes | onnx.ModelProto, nodes: int | None = None) -> ortcore.InferenceSession:
        """A session running all ``nodes`` nodes of ``model`` on this provider, or skip as unsupported.

        Declining a node makes the case unsupported; any other failure to create
        the session is a failure, since the provider claimed every node.
        """
        self.require_available()
        try:
            sess = ortcore.InferenceSession(model, self.options(), providers=[self.name])
        except ortcore.NotImplemented as exc:
            if _declined(exc):
                unsupported(str(exc))
            raise
        assignments = sess.get_partition().assignments
        assert sess.get_providers() == [self.name], sess.get_providers()
        assert all(a.provider.name == self.name for a in assignments), sess.get_partition().table()
        assert nodes is None or len(assignments) == nodes, f"{len(assignments)} of {nodes} nodes were assigned"
        return sess
