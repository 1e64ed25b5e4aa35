"""Entry point of the ``ortcore-cpu`` distribution (group ``ortcore``, name ``cpu``)."""

from __future__ import annotations

from ortcore.hookspecs import hookimpl


@hookimpl
def ortcore_execution_providers():
    from ortcore_cpu.provider import CPUExecutionProvider

    return [CPUExecutionProvider]


@hookimpl
def ortcore_graph_passes():
    from ortcore_cpu.passes import BatchNormActivationFusion

    return [BatchNormActivationFusion()]
