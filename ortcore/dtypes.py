"""Element types: ONNX TensorProto codes, numpy dtypes and onnxruntime's type strings."""

from __future__ import annotations

import functools

import numpy as np
import onnx
from onnx import helper

__all__ = ["np_dtype", "onnx_elem_type", "type_string", "type_name", "dtype_name"]


@functools.lru_cache(maxsize=None)
def np_dtype(elem_type: int) -> np.dtype | None:
    """numpy dtype of an ONNX element type (None for UNDEFINED)."""
    if elem_type == onnx.TensorProto.UNDEFINED:
        return None
    if elem_type == onnx.TensorProto.STRING:
        return np.dtype(object)
    return np.dtype(helper.tensor_dtype_to_np_dtype(elem_type))


@functools.lru_cache(maxsize=None)
def onnx_elem_type(dtype: np.dtype) -> int:
    """ONNX element type code of a numpy dtype (object and str map to STRING)."""
    dtype = np.dtype(dtype)
    if dtype.kind in "OUS":
        return onnx.TensorProto.STRING
    return helper.np_dtype_to_tensor_dtype(dtype)


@functools.lru_cache(maxsize=None)
def _elem_type_name(elem_type: int) -> str:
    return onnx.TensorProto.DataType.Name(elem_type).lower()


def type_string(elem_type: int) -> str:
    """onnxruntime's NodeArg type string, for example ``'tensor(float)'``."""
    return f"tensor({_elem_type_name(elem_type)})"


def type_name(dtype: np.dtype) -> str:
    """ONNX's lower-case name of a numpy dtype's element type (``float``, ``double``, ``int64``), as onnxruntime's profiles write it."""
    return _elem_type_name(onnx_elem_type(dtype))


def dtype_name(dtype: np.dtype | None) -> str:
    """A short readable name of a numpy dtype for messages (``float32``, ``string``)."""
    if dtype is None:
        return "unknown"
    dtype = np.dtype(dtype)
    if dtype.kind in "OUS":
        return "string"
    return str(dtype)
