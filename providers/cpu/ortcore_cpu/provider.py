"""CPUExecutionProvider: runs kernels on numpy arrays in host memory."""

from __future__ import annotations

import functools
import logging

import numpy as np

from ortcore.kernels import KernelRegistry
from ortcore.provider import ExecutionProvider

log = logging.getLogger("ortcore.cpu")


def _share_cores(threads: int | None) -> None:
    """Give the cores to the conv GEMM engine's threads, or to numpy's BLAS where it has none.

    The engine's threads and OpenBLAS's spinning workers must not run at once
    (each takes the cores the other waits for), so where the engine runs in
    parallel numpy's BLAS runs on one thread. ``threads`` None: as many as
    there are cores.
    """
    from threadpoolctl import threadpool_limits

    from ortcore_cpu import jit

    engine = jit.gemm_engine()
    if engine is not None and engine.parallel:
        if threads is not None:
            engine.set_threads(threads)
        threadpool_limits(limits=1, user_api="blas")
    elif threads is not None:
        threadpool_limits(limits=threads)


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

    def __init__(self, options=None, extra_registries=()) -> None:
        super().__init__(options, extra_registries)
        _share_cores(None)

    def set_intra_op_threads(self, threads: int) -> None:
        """Run the conv GEMM engine, or else numpy's BLAS, on ``threads`` threads (per process, as both pools are)."""
        _share_cores(threads)

    def use_memory_arena(self) -> None:
        """Large numpy buffers are reused from the heap, not mapped afresh per run (see arena.py)."""
        from ortcore_cpu import arena

        on, reason = arena.enable()
        if not on:
            log.debug("CPU memory arena is off: %s", reason)
