"""Graph IR and ONNX (de)serialization."""

from ortcore.ir.core import Dim, Graph, Model, Node, TensorType, Value
from ortcore.ir.onnx_io import load_model, model_from_proto, model_to_proto

__all__ = [
    "Dim",
    "Graph",
    "Model",
    "Node",
    "TensorType",
    "Value",
    "load_model",
    "model_from_proto",
    "model_to_proto",
]
