"""Entry point of ``ortcore-sensorfusion`` (group ``ortcore``, name ``sensorfusion``).

Nothing heavy happens at import: kernels load when a provider asks for them,
and pyopencl is imported only for ``OpenCLExecutionProvider``.
"""

from __future__ import annotations

from typing import Any

from ortcore.hookspecs import hookimpl


@hookimpl
def ortcore_op_schemas() -> list[Any]:
    from ortcore_sensorfusion.schemas import SPECS

    return [spec.schema for spec in SPECS]


@hookimpl
def ortcore_kernels(provider: str) -> Any:
    if provider == "CPUExecutionProvider":
        from ortcore_sensorfusion.cpu import registry

        return registry
    if provider == "OpenCLExecutionProvider":
        from ortcore_sensorfusion.opencl import registry

        return registry
    return None
