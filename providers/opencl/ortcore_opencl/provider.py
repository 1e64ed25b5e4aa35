"""OpenCLExecutionProvider: OpenCL C kernels on ``pyopencl.array.Array`` device arrays.

Provider options (``providers=[("OpenCLExecutionProvider", {...})]``):

* ``platform``: platform index or a substring of its name (default: any);
* ``device``: device index within the platform or a substring of its name
  (default: the first device);
* ``fuse_elementwise``: compile chains of elementwise ops into one generated
  kernel (default ``True``).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ortcore.errors import InvalidArgument
from ortcore.kernels import KernelRegistry
from ortcore.provider import ExecutionProvider

_OPTIONS = ("platform", "device", "fuse_elementwise")


@functools.lru_cache(maxsize=1)
def _loaded_registry() -> KernelRegistry:
    from ortcore_opencl import ops
    from ortcore_opencl.registry import registry

    ops.load_all()
    return registry


class OpenCLExecutionProvider(ExecutionProvider):
    """Runs claimed nodes on one OpenCL device; tensors stay there between nodes."""

    name = "OpenCLExecutionProvider"

    def __init__(self, options: Mapping[str, Any] | None = None, extra_registries: Sequence[KernelRegistry] = ()) -> None:
        unknown = sorted(set(options or {}) - set(_OPTIONS))
        if unknown:
            raise InvalidArgument(
                f"unknown OpenCLExecutionProvider option(s) {unknown}; known options: {list(_OPTIONS)}"
            )
        super().__init__(options, extra_registries)
        from ortcore_opencl.runtime import runtime_for

        self.runtime = runtime_for(self.options.get("platform"), self.options.get("device"))
        self.fuse_elementwise = bool(self.options.get("fuse_elementwise", True))

    @classmethod
    def availability(cls) -> tuple[bool, str]:
        try:
            import pyopencl  # noqa: F401
        except Exception as exc:  # noqa: BLE001 - any import failure means "unavailable"
            return False, f"pyopencl cannot be imported: {type(exc).__name__}: {exc}"
        from ortcore_opencl.runtime import list_devices

        try:
            devices = list_devices()
        except Exception as exc:  # noqa: BLE001 - no ICD loader, no platform...
            return False, f"no OpenCL platform: {type(exc).__name__}: {exc}"
        if not devices:
            return False, "no OpenCL device found (install a driver, or PoCL: pip install pyopencl[pocl])"
        return True, ""

    @property
    def device(self) -> str:
        p, d = self.runtime.index
        return f"opencl:{p}.{d}"

    def describe(self) -> str:
        return self.runtime.describe()

    def kernel_registry(self) -> KernelRegistry:
        return _loaded_registry()

    def claim(self, domain: str, op_type: str, version: int, input_dtypes: list[np.dtype | None]):
        # float16 needs cl_khr_fp16 and float64 cl_khr_fp64 on this device
        for dt in input_dtypes:
            if dt == np.float16 and not self.runtime.has_fp16:
                return f"device {self.runtime.name!r} lacks cl_khr_fp16 (float16)"
            if dt == np.float64 and not self.runtime.has_fp64:
                return f"device {self.runtime.name!r} lacks cl_khr_fp64 (float64)"
        return super().claim(domain, op_type, version, input_dtypes)

    def fuse(self, assignments, graph, types, constants):
        if not self.fuse_elementwise:
            return []
        from ortcore_opencl.fusion import elementwise_groups

        return elementwise_groups(self, assignments, graph, types, constants)

    def from_host(self, array: Any) -> Any:
        return self.runtime.to_device(np.asarray(array))

    def to_host(self, array: Any) -> np.ndarray:
        return self.runtime.to_host(array)
