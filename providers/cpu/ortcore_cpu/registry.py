"""The CPU provider's kernel registry; op modules register into it with ``@kernel``."""

from __future__ import annotations

from ortcore.kernels import KernelRegistry

registry = KernelRegistry("CPUExecutionProvider")
kernel = registry.kernel
