"""ortcore-provider-template: TemplateExecutionProvider, a pretend device to copy.

Its arrays are :class:`DeviceArray` objects (numpy data behind a handle, as a
real device's buffers would be), so every host <-> device copy is explicit and
shows in ``session.get_partition().transfers``.
"""

from __future__ import annotations

from ortcore_provider_template.device import DeviceArray, probe
from ortcore_provider_template.provider import TemplateExecutionProvider

__all__ = ["DeviceArray", "TemplateExecutionProvider", "probe"]
