"""The OpenCL provider's kernel registry, filled by the modules in :mod:`ortcore_opencl.ops`."""

from __future__ import annotations

from ortcore.kernels import KernelRegistry

registry = KernelRegistry("opencl")
kernel = registry.kernel
