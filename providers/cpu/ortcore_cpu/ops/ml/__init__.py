"""Kernels of the ai.onnx.ml domain, one module per family."""
