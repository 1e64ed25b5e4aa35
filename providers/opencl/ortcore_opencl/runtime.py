"""One OpenCL device as the provider uses it: context, queue, buffer pool, program cache.

A :class:`Runtime` is shared by every session on the same device, so a
program is compiled once per (device, source, options) and then reused; run()
never compiles. Arrays are ``pyopencl.array.Array`` objects allocated from a
memory pool, so buffers freed by one node (the plan deletes each value after
its last use) are reused by the next node and by later runs.

Kernel launches go through :meth:`Runtime.launch`: setting a kernel's
arguments and enqueueing it is one atomic step (a ``cl.Kernel`` holds its
arguments, so two threads running the same session must not interleave), and
launches are counted so tests can see how many kernels a run enqueued.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyopencl as cl
import pyopencl.array as cl_array
import pyopencl.tools as cl_tools

from ortcore.errors import EPFail, InvalidArgument

__all__ = ["Runtime", "runtime_for", "select_device", "list_devices", "ctype", "Array"]

Array = cl_array.Array

_CTYPES = {
    np.dtype(np.float32): "float",
    np.dtype(np.float16): "half",
    np.dtype(np.float64): "double",
    np.dtype(np.int8): "char",
    np.dtype(np.uint8): "uchar",
    np.dtype(np.int16): "short",
    np.dtype(np.uint16): "ushort",
    np.dtype(np.int32): "int",
    np.dtype(np.uint32): "uint",
    np.dtype(np.int64): "long",
    np.dtype(np.uint64): "ulong",
    np.dtype(np.bool_): "uchar",  # OpenCL C has no bool in buffers; numpy's bool is one byte 0/1
}


def ctype(dtype: Any) -> str:
    """The OpenCL C type that holds one element of ``dtype``."""
    try:
        return _CTYPES[np.dtype(dtype)]
    except KeyError:
        raise InvalidArgument(f"the OpenCL provider has no element type for dtype {np.dtype(dtype)}") from None


def list_devices() -> list[tuple[int, int, cl.Platform, cl.Device]]:
    """Every (platform index, device index, platform, device) visible here."""
    found = []
    for p, platform in enumerate(cl.get_platforms()):
        try:
            devices = platform.get_devices()
        except cl.Error:  # a platform with no devices raises DEVICE_NOT_FOUND
            devices = []
        found.extend((p, d, platform, device) for d, device in enumerate(devices))
    return found


def _matches(selector: Any, index: int, name: str) -> bool:
    if selector is None or selector == "":
        return True
    if isinstance(selector, int) or (isinstance(selector, str) and selector.isdigit()):
        return int(selector) == index
    return str(selector).lower() in name.lower()


def select_device(platform: Any = None, device: Any = None) -> tuple[int, int, cl.Device]:
    """The first device matching the platform and device selectors (index or name substring)."""
    try:
        candidates = list_devices()
    except cl.Error as exc:
        raise EPFail(f"OpenCL is not usable here: {exc}") from exc
    for p, d, plat, dev in candidates:
        if _matches(platform, p, plat.name) and _matches(device, d, dev.name):
            return p, d, dev
    seen = "; ".join(f"platform {p} {plat.name!r} device {d} {dev.name.strip()!r}" for p, d, plat, dev in candidates)
    raise InvalidArgument(
        f"no OpenCL device matches platform={platform!r} device={device!r}; "
        f"available: {seen or 'none'}"
    )


class Runtime:
    """Context, in-order queue, memory pool and compiled programs of one device."""

    def __init__(self, device: cl.Device, index: tuple[int, int] = (0, 0)) -> None:
        self.device = device
        self.index = index
        self.name = device.name.strip()
        self.context = cl.Context([device])
        self.queue = cl.CommandQueue(self.context)
        self.pool = cl_tools.MemoryPool(cl_tools.ImmediateAllocator(self.queue))
        extensions = device.extensions.split()
        self.has_fp16 = "cl_khr_fp16" in extensions
        self.has_fp64 = "cl_khr_fp64" in extensions or device.double_fp_config != 0
        self.max_work_group_size = int(device.max_work_group_size)
        self.compute_units = int(device.max_compute_units)
        self._programs: dict[tuple[str, tuple[str, ...]], cl.Program] = {}
        self._kernels: dict[tuple[int, str], cl.Kernel] = {}
        self._compile_lock = threading.Lock()
        self._launch_lock = threading.Lock()
        #: kernels enqueued through launch() since the runtime was created
        self.launches = 0
        #: programs compiled (each distinct source/options pair once)
        self.compiles = 0

    # -- programs -------------------------------------------------------------------
    def program(self, source: str, options: Sequence[str] = ()) -> cl.Program:
        """The built program for ``source``; compiled on first request only."""
        key = (source, tuple(options))
        prog = self._programs.get(key)
        if prog is None:
            with self._compile_lock:
                prog = self._programs.get(key)
                if prog is None:
                    prog = cl.Program(self.context, source).build(options=list(options))
                    self._programs[key] = prog
                    self.compiles += 1
        return prog

    def kernel(self, source: str, name: str, options: Sequence[str] = ()) -> cl.Kernel:
        """One kernel of a (cached) program; the same object for the same request."""
        prog = self.program(source, options)
        key = (id(prog), name)
        knl = self._kernels.get(key)
        if knl is None:
            knl = self._kernels[key] = getattr(prog, name)
        return knl

    def launch(
        self,
        kernel: cl.Kernel,
        global_size: tuple[int, ...],
        local_size: tuple[int, ...] | None,
        *args: Any,
    ) -> None:
        """Set ``args`` and enqueue ``kernel`` as one step (safe under concurrent runs)."""
        with self._launch_lock:
            kernel.set_args(*args)
            cl.enqueue_nd_range_kernel(self.queue, kernel, global_size, local_size)
            self.launches += 1

    def copy(
        self,
        dst: cl.Buffer,
        src: cl.Buffer,
        nbytes: int,
        dst_offset: int = 0,
        src_offset: int = 0,
        rows: int = 1,
        dst_pitch: int = 0,
        src_pitch: int = 0,
    ) -> None:
        """Device-side copy of ``rows`` blocks of ``nbytes`` (byte offsets and row pitches).

        Buffer copies are the driver's own memcpy, far faster than an indexing
        kernel for the contiguous blocks of Concat, Split and Slice.
        """
        with self._launch_lock:
            if rows == 1:
                cl.enqueue_copy(self.queue, dst, src, byte_count=nbytes, src_offset=src_offset, dst_offset=dst_offset)
            else:
                cl.enqueue_copy(
                    self.queue, dst, src, src_origin=(src_offset, 0, 0), dst_origin=(dst_offset, 0, 0),
                    region=(nbytes, rows, 1), src_pitches=(src_pitch, 0), dst_pitches=(dst_pitch, 0),
                )
            self.launches += 1

    # -- memory ---------------------------------------------------------------------
    def empty(self, shape: Sequence[int], dtype: Any) -> cl_array.Array:
        """An uninitialized device array from the pool."""
        return cl_array.Array(self.queue, tuple(int(s) for s in shape), np.dtype(dtype), allocator=self.pool)

    def to_device(self, array: np.ndarray) -> cl_array.Array:
        host = array if array.flags.c_contiguous else np.ascontiguousarray(array)  # keeps 0-d as 0-d
        out = self.empty(host.shape, host.dtype)
        if host.size:
            out.set(host)
        return out

    def to_host(self, array: cl_array.Array) -> np.ndarray:
        host = np.empty(array.shape, array.dtype)
        if array.size:
            array.get(ary=host)
        return host

    def describe(self) -> str:
        return f"opencl:{self.index[0]}.{self.index[1]} {self.name} ({self.device.platform.name.strip()})"


_runtimes: dict[tuple[int, int], Runtime] = {}
_runtimes_lock = threading.Lock()


def runtime_for(platform: Any = None, device: Any = None) -> Runtime:
    """The shared runtime of the selected device (created on first use)."""
    p, d, dev = select_device(platform, device)
    with _runtimes_lock:
        rt = _runtimes.get((p, d))
        if rt is None:
            rt = _runtimes[(p, d)] = Runtime(dev, (p, d))
        return rt
