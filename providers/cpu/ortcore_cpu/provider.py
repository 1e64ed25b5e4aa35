"""CPUExecutionProvider: runs kernels on numpy arrays in host memory."""

from __future__ import annotations

import functools
import logging

import numpy as np

from ortcore.kernels import KernelRegistry
from ortcore.provider import ExecutionProvider

log = logging.getLogger("ortcore.cpu")


@functools.lru_cache(maxsize=1)
def _loaded_registry() -> KernelRegistry:
    from ortcore_cpu import ops
    from ortcore_cpu.registry import registry

    ops.load_all()
    return registry


class CPUExecutionProvider(ExecutionProvider):
    """numpy kernels; the fallback for nodes no preferred provider claims."""

    name = "CPUExecutionProvider"
    fallback = True
    xp = np

    def kernel_registry(self) -> KernelRegistry:
        return _loaded_registry()

    def describe(self) -> str:
        from ortcore_cpu import jit

        on, why = jit.status()
        return f"cpu (numpy {np.__version__}; compiled loops {'on: ' if on else 'off: '}{why})"

    def set_intra_op_threads(self, threads: int) -> None:
        """Limit BLAS/OpenMP threads. numpy's BLAS pool is per process, so this is too."""
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=threads)

    def use_memory_arena(self) -> None:
        """Large numpy buffers are reused from the heap, not mapped afresh per run (see arena.py)."""
        from ortcore_cpu import arena

        on, reason = arena.enable()
        if not on:
            log.debug("CPU memory arena is off: %s", reason)
