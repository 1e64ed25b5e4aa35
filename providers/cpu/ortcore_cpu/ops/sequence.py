"""Sequences and optionals: SequenceConstruct, SequenceEmpty, SequenceAt, SequenceInsert,
SequenceErase, SequenceLength, SplitToSequence, ConcatFromSequence, Optional,
OptionalHasElement, OptionalGetElement.

A sequence is a Python list of arrays and an optional is None or its value.
Kernels never change a list they are given (a Loop may still hold it): the
ones that edit a sequence return a new list sharing the tensors. Those that
make arrays are array-module generic (``xp``) so a CuPy provider can reuse them.
"""

from __future__ import annotations

import itertools
from typing import Any

from ortcore_cpu.registry import kernel


def _position(pos: Any, length: int, *, inclusive_end: bool) -> int:
    """A sequence position in ``[-length, length)`` (``[-length, length]`` for inserts), made non-negative."""
    if pos.size != 1:
        raise ValueError(f"position must be a scalar, got shape {pos.shape}")
    p = int(pos.reshape(()).item())
    high = length if inclusive_end else length - 1
    if not -length <= p <= high:
        raise IndexError(f"position {p} is out of range for a sequence of length {length}")
    return p + length if p < 0 else p


@kernel("SequenceConstruct", since=11)
def sequence_construct(*inputs):
    """SequenceConstruct: the inputs as a sequence."""
    return list(inputs)


@kernel("SequenceEmpty", since=11)
def sequence_empty(*, dtype=1):
    """SequenceEmpty: an empty sequence (its element type lives in the graph's types)."""
    return []


@kernel("SequenceAt", since=11)
def sequence_at(input_sequence, position, /):
    """SequenceAt: the element at a (possibly negative) position."""
    return input_sequence[_position(position, len(input_sequence), inclusive_end=False)]


@kernel("SequenceInsert", since=11)
def sequence_insert(input_sequence, tensor, position=None, /):
    """SequenceInsert: a new sequence with ``tensor`` inserted (appended by default)."""
    out = list(input_sequence)
    if position is None:
        out.append(tensor)
    else:
        out.insert(_position(position, len(out), inclusive_end=True), tensor)
    return out


@kernel("SequenceErase", since=11)
def sequence_erase(input_sequence, position=None, /):
    """SequenceErase: a new sequence without the element at ``position`` (the last by default)."""
    out = list(input_sequence)
    if position is None:
        if not out:
            raise IndexError("cannot erase from an empty sequence")
        out.pop()
    else:
        del out[_position(position, len(out), inclusive_end=False)]
    return out


@kernel("SequenceLength", since=11, xp=True)
def sequence_length(xp, input_sequence, /):
    """SequenceLength: the number of elements as an int64 scalar."""
    return xp.asarray(len(input_sequence), dtype=xp.int64)


@kernel("SplitToSequence", since=11, xp=True)
@kernel("SplitToSequence", since=24, xp=True)
def split_to_sequence(xp, input, split=None, /, *, axis=0, keepdims=1):
    """SplitToSequence: chunks along ``axis``: of size 1 (dropping the axis unless keepdims),
    of a scalar size (the last one shorter), or of the sizes listed in a 1-D ``split``."""
    axis = axis + input.ndim if axis < 0 else axis
    if not 0 <= axis < input.ndim:
        raise ValueError(f"axis is out of range for an input of rank {input.ndim}")
    dim = input.shape[axis]
    if split is None:
        if keepdims:
            return [input[(slice(None),) * axis + (slice(i, i + 1),)] for i in range(dim)]
        return [input[(slice(None),) * axis + (i,)] for i in range(dim)]
    if split.ndim == 0:
        size = int(split)
        if size <= 0:
            raise ValueError(f"split must be positive, got {size}")
        sizes = [size] * (dim // size) + ([dim % size] if dim % size else [])
    else:
        sizes = [int(s) for s in split.reshape(-1)]
        if any(s < 0 for s in sizes) or sum(sizes) != dim:
            raise ValueError(f"split {sizes} does not add up to dimension {dim} of axis {axis}")
    bounds = [0, *itertools.accumulate(sizes)]
    lead = (slice(None),) * axis
    return [input[lead + (slice(a, b),)] for a, b in zip(bounds[:-1], bounds[1:])]


@kernel("ConcatFromSequence", since=11, xp=True)
def concat_from_sequence(xp, input_sequence, /, *, axis, new_axis=0):
    """ConcatFromSequence: Concat of the elements, or Stack along a new axis with new_axis=1."""
    if not input_sequence:
        raise ValueError("cannot concatenate an empty sequence")
    if new_axis:
        return xp.stack(input_sequence, axis=axis)
    return xp.concatenate(input_sequence, axis=axis)


# -- optionals -----------------------------------------------------------------------------


@kernel("Optional", since=15)
@kernel("Optional", since=28)
def optional(input=None, /, *, type=None):  # noqa: A002 - the spec's attribute name
    """Optional: the input itself, or an empty optional (None) when it is omitted."""
    return input


@kernel("OptionalHasElement", since=15, xp=True)
@kernel("OptionalHasElement", since=18, xp=True)
@kernel("OptionalHasElement", since=28, xp=True)
def optional_has_element(xp, input=None, /):
    """OptionalHasElement: whether the optional holds a value (a plain tensor or sequence does)."""
    return xp.asarray(input is not None)


@kernel("OptionalGetElement", since=15)
@kernel("OptionalGetElement", since=18)
@kernel("OptionalGetElement", since=28)
def optional_get_element(input, /):
    """OptionalGetElement: the optional's value; an empty optional is an error."""
    if input is None:
        raise ValueError("the optional input is empty")
    return input
