"""Entry point of ``ortcore-provider-template`` (group ``ortcore``, name ``template``).

Keep this module light: it is imported during discovery, before anyone knows
whether the provider will be used. Import the device library inside the hooks.
"""

from __future__ import annotations

from typing import Any

from ortcore.hookspecs import hookimpl


@hookimpl
def ortcore_execution_providers() -> list[Any]:
    from ortcore_provider_template.provider import TemplateExecutionProvider

    return [TemplateExecutionProvider]
