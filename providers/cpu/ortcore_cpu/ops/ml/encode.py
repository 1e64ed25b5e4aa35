"""Value encoders: LabelEncoder (ai.onnx.ml 1, 2 and 4), CategoryMapper and OneHotEncoder (1).

A mapping is decided once per node: numeric keys become a sorted array looked
up with ``searchsorted`` (float NaN keys match NaN inputs), string keys a dict
looked up element by element. Repeated keys: the first one counts in
LabelEncoder-2 (onnxruntime's map insertion), the last one in LabelEncoder-4
(the specification) and in the older ops.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ortcore_cpu.ops.ml._common import ML, strings
from ortcore_cpu.registry import kernel


class _Mapping:
    """``keys[i] -> values[i]``, anything else -> ``default``; output dtype of ``values``."""

    def __init__(self, keys: Sequence[Any] | np.ndarray, values: np.ndarray, default: Any, *, last_wins: bool):
        if len(keys) != len(values):
            raise ValueError(f"{len(keys)} keys but {len(values)} values")
        self.dtype = values.dtype
        self.default = default
        keys = np.asarray(keys) if not isinstance(keys, np.ndarray) else keys
        self.by_string = keys.dtype.kind in "OUS"
        if self.by_string:
            pairs = zip(keys.tolist(), values.tolist())
            self.table = dict(pairs) if last_wins else dict(reversed(list(pairs)))
            return
        self.nan_value = None
        if keys.dtype.kind == "f":
            nan = np.isnan(keys)
            if nan.any():
                self.nan_value = values[nan][-1 if last_wins else 0]
            keys, values = keys[~nan], values[~nan]
        if last_wins:
            keys, values = keys[::-1], values[::-1]
        self.keys, first = np.unique(keys, return_index=True)
        self.values = values[first]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if self.by_string:
            get, default = self.table.get, self.default
            found = [get(v, default) for v in x.ravel().tolist()]
            if self.dtype.kind == "O":
                return strings(found).reshape(x.shape)
            return np.asarray(found, dtype=self.dtype).reshape(x.shape)
        out = np.full(x.shape, self.default, dtype=self.dtype)
        if self.keys.size:
            pos = np.minimum(np.searchsorted(self.keys, x), self.keys.size - 1)
            hit = self.keys[pos] == x
            out[hit] = self.values[pos[hit]]
        if self.nan_value is not None:
            out[np.isnan(x)] = self.nan_value
        return out


def _typed(values, dtype) -> np.ndarray:
    if dtype == object:
        return strings(values)
    return np.asarray(values, dtype=dtype)


# -- LabelEncoder ----------------------------------------------------------------------------


@kernel("LabelEncoder", since=1, domain=ML, dtypes=(np.object_, np.int64), factory=True)
def label_encoder_1(ctx, *, classes_strings=None, default_int64=-1, default_string="_Unused"):
    """LabelEncoder-1: a string's index in classes_strings, or an index's string."""
    classes = list(classes_strings or [])
    to_index = _Mapping(strings(classes), np.arange(len(classes), dtype=np.int64), default_int64, last_wins=True)
    to_string = _Mapping(np.arange(len(classes), dtype=np.int64), strings(classes), default_string, last_wins=True)

    def run(x, /):
        return to_index(x) if x.dtype.kind in "OUS" else to_string(x)

    return run


def _label_encoder(keys_floats, keys_int64s, keys_strings, keys_tensor, values_floats, values_int64s,
                   values_strings, values_tensor, default_float, default_int64, default_string,
                   default_tensor, *, last_wins):
    given = [k for k in (keys_floats, keys_int64s, keys_strings) if k] + ([keys_tensor] if keys_tensor is not None else [])
    if len(given) != 1:
        raise ValueError("LabelEncoder needs exactly one of the keys_* attributes")
    if keys_tensor is not None:
        keys = np.asarray(keys_tensor).ravel()
    elif keys_floats:
        keys = np.asarray(keys_floats, dtype=np.float32)
    elif keys_int64s:
        keys = np.asarray(keys_int64s, dtype=np.int64)
    else:
        keys = strings(keys_strings)
    if values_tensor is not None:
        values = np.asarray(values_tensor).ravel()
    elif values_floats:
        values = _typed(values_floats, np.float32)
    elif values_int64s:
        values = _typed(values_int64s, np.int64)
    elif values_strings:
        values = strings(values_strings)
    else:
        raise ValueError("LabelEncoder needs one of the values_* attributes")
    if default_tensor is not None:
        default = np.asarray(default_tensor).ravel()[0]
    elif values.dtype.kind == "O":
        default = default_string
    elif values.dtype.kind == "f":
        default = default_float
    else:
        default = default_int64
    return _Mapping(keys, values, default, last_wins=last_wins)


@kernel("LabelEncoder", since=2, domain=ML, dtypes=(np.object_, np.int64, np.float32), factory=True)
def label_encoder_2(
    ctx, *, default_float=-0.0, default_int64=-1, default_string="_Unused", keys_floats=None,
    keys_int64s=None, keys_strings=None, values_floats=None, values_int64s=None, values_strings=None,
):
    """LabelEncoder-2: keys_* to values_* element by element, default_* for the rest."""
    mapping = _label_encoder(keys_floats, keys_int64s, keys_strings, None, values_floats, values_int64s,
                             values_strings, None, default_float, default_int64, default_string, None,
                             last_wins=False)
    return mapping


@kernel("LabelEncoder", since=4, domain=ML,
        dtypes=(np.object_, np.int64, np.float32, np.int32, np.int16, np.float64), factory=True)
def label_encoder_4(
    ctx, *, default_float=-0.0, default_int64=-1, default_string="_Unused", default_tensor=None,
    keys_floats=None, keys_int64s=None, keys_strings=None, keys_tensor=None, values_floats=None,
    values_int64s=None, values_strings=None, values_tensor=None,
):
    """LabelEncoder-4: also keys, values and default as tensors of any of the six types."""
    return _label_encoder(keys_floats, keys_int64s, keys_strings, keys_tensor, values_floats, values_int64s,
                          values_strings, values_tensor, default_float, default_int64, default_string,
                          default_tensor, last_wins=True)


# -- CategoryMapper / OneHotEncoder ----------------------------------------------------------


@kernel("CategoryMapper", since=1, domain=ML, dtypes=(np.object_, np.int64), factory=True)
def category_mapper(ctx, *, cats_int64s=None, cats_strings=None, default_int64=-1, default_string="_Unused"):
    """CategoryMapper-1: strings to integers through the paired cats_* lists, or back."""
    ints = np.asarray(cats_int64s or [], dtype=np.int64)
    strs = strings(cats_strings or [])
    if ints.size != strs.size:
        raise ValueError(f"CategoryMapper: {ints.size} cats_int64s but {strs.size} cats_strings")
    to_int = _Mapping(strs, ints, default_int64, last_wins=True)
    to_string = _Mapping(ints, strs, default_string, last_wins=True)

    def run(x, /):
        return to_int(x) if x.dtype.kind in "OUS" else to_string(x)

    return run


@kernel("OneHotEncoder", since=1, domain=ML,
        dtypes=(np.object_, np.int64, np.int32, np.float32, np.float64), factory=True)
def one_hot_encoder(ctx, *, cats_int64s=None, cats_strings=None, zeros=1):
    """OneHotEncoder-1: a trailing axis with a 1 at the category's position; numbers are truncated
    to int64 first. Unknown values give all zeros, or an error with zeros=0."""
    if bool(cats_int64s) == bool(cats_strings):
        raise ValueError("OneHotEncoder needs exactly one of cats_int64s and cats_strings")
    cats = cats_strings if cats_strings else cats_int64s
    keys = strings(cats) if cats_strings else np.asarray(cats, dtype=np.int64)
    position = _Mapping(keys, np.arange(len(cats), dtype=np.int64), -1, last_wins=True)

    def run(x, /):
        if x.dtype.kind not in "OUS":
            x = x.astype(np.int64)
        pos = position(x)
        if not zeros and (pos < 0).any():
            raise ValueError("OneHotEncoder: a value is not among the categories and zeros=0")
        return (pos[..., None] == np.arange(len(cats))).astype(np.float32)

    return run
