"""Entry point of the ``ortcore-opencl`` distribution (group ``ortcore``, name ``opencl``).

Importing this module imports neither pyopencl nor numpy kernels: the provider
class is imported when providers are listed, and pyopencl only when the
provider checks its availability or starts.
"""

from __future__ import annotations

from ortcore.hookspecs import hookimpl


@hookimpl
def ortcore_execution_providers():
    from ortcore_opencl.provider import OpenCLExecutionProvider

    return [OpenCLExecutionProvider]
