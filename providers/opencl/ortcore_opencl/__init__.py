"""ortcore-opencl: the OpenCLExecutionProvider (OpenCL C kernels through PyOpenCL)."""

__version__ = "0.1.0"
