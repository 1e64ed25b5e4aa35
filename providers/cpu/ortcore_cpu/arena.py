"""A host memory arena for numpy buffers, the CPU provider's ``enable_cpu_mem_arena``.

numpy takes array memory from the C heap. With glibc's defaults, every block
above the mmap threshold (128 KiB, growing up to 32 MiB) is a fresh ``mmap``
and goes back to the kernel on ``free``; the next run then page-faults the
same memory in again, zero-filled, for every large activation. onnxruntime
avoids this with its own arena. The same effect here comes from glibc's
allocator settings: serve large blocks from the heap and never trim it, so
freed activation memory is reused by the next allocation of the run (and the
next run) without returning to the kernel.

This is process-wide: it applies from the first session that asks for it,
like the BLAS thread count. Memory that a run frees stays with the process,
as with onnxruntime's arena; the peak is unchanged. On a C library other than
glibc it does nothing and :func:`enable` reports that.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import platform

# mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# The largest mmap threshold glibc accepts on 64-bit systems is 32 MiB on old
# versions and unbounded on newer ones; try the large value first.
_THRESHOLDS = (1 << 30, 32 << 20)


@functools.lru_cache(maxsize=1)
def enable() -> tuple[bool, str]:
    """Turn the arena on once for this process; ``(on, reason when off)``."""
    libc_name, _ = platform.libc_ver()
    if libc_name != "glibc":
        return False, f"the C library is {libc_name or 'not glibc'}; its allocator is left as it is"
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError) as exc:
        return False, f"glibc's mallopt is not reachable: {exc}"
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    if not any(mallopt(_M_MMAP_THRESHOLD, value) for value in _THRESHOLDS):
        return False, "glibc refused the mmap threshold"
    if not mallopt(_M_TRIM_THRESHOLD, (1 << 31) - 1):
        return False, "glibc refused the trim threshold"
    return True, ""
