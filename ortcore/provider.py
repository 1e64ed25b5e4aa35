"""The execution provider base class that every provider plugin subclasses."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ortcore.kernels import OPEN_END, KernelDef, KernelRegistry, NodeContext

if TYPE_CHECKING:
    from ortcore.ir import Graph
    from ortcore.partition import FusedGroup, NodeAssignment

__all__ = ["ExecutionProvider"]


def _version_ranges(defs: Sequence[KernelDef]) -> str:
    return ", ".join(
        f"{k.since}+" if k.until == OPEN_END else f"{k.since}..{k.until}" for k in defs
    )


class ExecutionProvider:
    """A device plus a kernel registry.

    Subclasses set ``name`` (onnxruntime's provider name), implement
    :meth:`kernel_registry`, and override :meth:`availability`,
    :meth:`from_host` / :meth:`to_host` when their arrays do not live in host
    memory. ``fallback = True`` marks a provider that runs any node the user's
    preferred providers decline (the CPU provider); the core never names it.
    """

    name: ClassVar[str] = ""
    fallback: ClassVar[bool] = False
    #: the array module kernels declared with ``xp=True`` receive
    xp: Any = np

    def __init__(
        self,
        options: Mapping[str, Any] | None = None,
        extra_registries: Sequence[KernelRegistry] = (),
    ) -> None:
        self.options = dict(options or {})
        self.registries: list[KernelRegistry] = [self.kernel_registry(), *extra_registries]

    # -- identity and availability -------------------------------------------------
    @classmethod
    def availability(cls) -> tuple[bool, str]:
        """``(True, "")`` when the provider can run here, else ``(False, reason)``."""
        return True, ""

    @property
    def device(self) -> str:
        """The device arrays live on, e.g. ``"cpu"``, ``"cuda:0"``, ``"opencl:0"``."""
        return "cpu"

    def describe(self) -> str:
        """One line about the device, shown by ``ortcore providers``."""
        return self.device

    # -- kernels ------------------------------------------------------------------
    def kernel_registry(self) -> KernelRegistry:
        """The provider's own kernels."""
        raise NotImplementedError(f"{type(self).__name__} must implement kernel_registry()")

    def claim(
        self, domain: str, op_type: str, version: int, input_dtypes: list[np.dtype | None]
    ) -> KernelDef | str:
        """The kernel this provider runs the node with, or the reason it declines."""
        known: list[KernelDef] = []
        for registry in self.registries:
            kdef = registry.lookup(domain, op_type, version)
            if kdef is not None:
                reason = kdef.dtype_mismatch(input_dtypes)
                if reason is None:
                    return kdef
                return reason
            known.extend(registry.versions(domain, op_type))
        op = f"{domain or 'ai.onnx'}::{op_type}"
        if known:
            return f"no kernel for {op} opset {version} (kernels cover opsets {_version_ranges(known)})"
        return f"no kernel for {op}"

    def create_kernel(
        self, kdef: KernelDef, ctx: NodeContext, attrs: dict[str, Any]
    ) -> Callable[..., Any]:
        """Instantiate a kernel for one node; called once at session creation."""
        return kdef.instantiate(ctx, attrs)

    def fuse(
        self,
        assignments: Sequence[NodeAssignment],
        graph: Graph,
        types: Mapping[str, Any],
        constants: Mapping[str, Any],
    ) -> list[FusedGroup]:
        """Groups of this provider's nodes to compile into one step each.

        Called once at session creation with the nodes assigned to this
        provider, in topological order. A provider that generates code (for
        example one kernel for a chain of elementwise ops) returns
        :class:`ortcore.partition.FusedGroup` objects; nodes in a group get no
        kernel of their own. The default fuses nothing.
        """
        return []

    def set_intra_op_threads(self, threads: int) -> None:
        """Use ``threads`` threads inside kernels (SessionOptions.intra_op_num_threads > 0)."""

    def use_memory_arena(self) -> None:
        """Keep freed memory for reuse by later allocations (SessionOptions.enable_cpu_mem_arena)."""

    # -- memory -------------------------------------------------------------------
    def from_host(self, array: np.ndarray) -> Any:
        """Move a host (numpy) array to this provider's device."""
        return array

    def to_host(self, array: Any) -> np.ndarray:
        """Move one of this provider's arrays to host memory as numpy."""
        return array
