"""Compiled loops (numba) for the passes numpy does slowly; optional.

numpy pays per pass over an array, and more again for a per-channel operand
broadcast along rows. A 3x3 depthwise conv is 18 such passes, a pool 4 to 9, a
conv epilogue (bias, skip input, activation) 3, where one compiled loop over
the data does each in one pass with the values in registers.

With numba installed (``pip install ortcore-cpu[jit]``) the kernels that have
a compiled loop use it; without numba, or with ``ORTCORE_CPU_JIT=0`` in the
environment when a session is created, they run their numpy path. Both paths
are tested against the same independent references.

numba is imported on the first compile (about a second), not when ortcore is
imported; each loop is compiled on its first call for the dtypes it is given
and cached on disk by numba, so later processes load it.
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import logging
import os
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger("ortcore.cpu")

ENV = "ORTCORE_CPU_JIT"
_OFF = ("0", "false", "off", "no")


def status() -> tuple[bool, str]:
    """``(on, why)``: whether kernels created now use compiled loops, and the reason or version."""
    setting = os.environ.get(ENV, "")
    if setting.strip().lower() in _OFF:
        return False, f"switched off by {ENV}={setting}"
    return _installed()


@functools.lru_cache(maxsize=1)
def _installed() -> tuple[bool, str]:
    if importlib.util.find_spec("numba") is None:
        return False, "numba is not installed (pip install ortcore-cpu[jit])"
    try:
        return True, f"numba {importlib.metadata.version('numba')}"
    except importlib.metadata.PackageNotFoundError:
        return True, "numba"


def enabled() -> bool:
    return status()[0]


_HELPERS_LOCK = threading.Lock()


@functools.lru_cache(maxsize=None)
def _compile(fn: Callable[..., Any]) -> Callable[..., Any] | None:
    try:
        import numba
    except Exception as exc:  # a broken numba install must not break the provider
        log.warning("compiled CPU loops are off: importing numba failed: %s", exc)
        return None
    # nogil: concurrent run() calls and ORT_PARALLEL branches overlap in these loops.
    # Only FMA contraction is allowed: no reassociation, NaN and inf behave as in numpy.
    options = dict(cache=True, nogil=True, boundscheck=False, error_model="numpy", fastmath={"contract"})
    # Functions the loop calls are named in its module's JIT_HELPERS; they are
    # compiled too, inlined where they are called (a call per short row costs
    # more than its work), and bound in the module in their place (numba calls
    # only compiled functions; from Python the compiled one behaves the same).
    module = fn.__globals__
    with _HELPERS_LOCK:
        for name in module.get("JIT_HELPERS", ()):
            if not hasattr(module[name], "py_func"):
                module[name] = numba.njit(inline="always", **options)(module[name])
    return numba.njit(**options)(fn)


def loop(fn: Callable[..., Any]) -> Callable[..., Any] | None:
    """``fn`` (a numba-compatible loop) compiled, or None where compiled loops are off.

    Call it when a kernel is created, not per run: the answer is fixed for the
    kernel's life. It compiles lazily, on the first call with given dtypes.
    """
    return _compile(fn) if enabled() else None


@functools.lru_cache(maxsize=1)
def _gemm_engine() -> Any:
    try:
        from ortcore_cpu.ops.nn import _gemm

        return _gemm.engine()
    except Exception as exc:  # a numba or LLVM that cannot build it leaves the BLAS paths in place
        log.warning("the conv GEMM engine is off: %s: %s", type(exc).__name__, exc)
        return None


def gemm_engine() -> Any:
    """The float32 conv GEMM engine (:mod:`ortcore_cpu.ops.nn._gemm`), or None where compiled loops are off."""
    return _gemm_engine() if enabled() else None
