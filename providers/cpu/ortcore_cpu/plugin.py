"""Entry point of the ``ortcore-cpu`` distribution (group ``ortcore``, name ``cpu``)."""

from __future__ import annotations

from ortcore.hookspecs import hookimpl


@hookimpl
def ortcore_execution_providers():
    from ortcore_cpu.provider import CPUExecutionProvider

    return [CPUExecutionProvider]
