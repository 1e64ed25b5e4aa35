"""TemplateExecutionProvider: a device, its availability, its kernels and its copies."""

from __future__ import annotations

import numpy as np

from ortcore.kernels import KernelRegistry
from ortcore.provider import ExecutionProvider
from ortcore_provider_template.device import DeviceArray, probe


class TemplateExecutionProvider(ExecutionProvider):
    """Runs its kernels on the pretend device; nodes it declines fall back to CPU."""

    name = "TemplateExecutionProvider"

    @classmethod
    def availability(cls) -> tuple[bool, str]:
        return probe()

    @property
    def device(self) -> str:
        return f"template:{int(self.options.get('device_id', 0))}"

    def describe(self) -> str:
        return f"{self.device} (pretend device: numpy memory behind DeviceArray handles)"

    def kernel_registry(self) -> KernelRegistry:
        from ortcore_provider_template.kernels import registry

        return registry

    def from_host(self, array: np.ndarray) -> DeviceArray:
        return DeviceArray.upload(np.asarray(array))

    def to_host(self, array: DeviceArray) -> np.ndarray:
        return array.download()
