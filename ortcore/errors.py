"""Exception classes, named after onnxruntime's status categories.

Every error ortcore raises on purpose derives from :class:`OrtCoreError`, so a
caller can catch one class. The subclasses mirror the categories an
onnxruntime user already handles (``InvalidArgument``, ``NoSuchFile``, ...).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = [
    "OrtCoreError",
    "Fail",
    "InvalidArgument",
    "NoSuchFile",
    "NoModel",
    "EngineError",
    "RuntimeException",
    "InvalidProtobuf",
    "ModelLoaded",
    "NotImplemented",
    "InvalidGraph",
    "EPFail",
    "did_you_mean",
]


class OrtCoreError(Exception):
    """Base class of every error ortcore raises on purpose."""


class Fail(OrtCoreError):
    """A generic failure, for example a kernel that raised while running."""


class InvalidArgument(OrtCoreError, ValueError):
    """A caller-supplied argument is wrong: a feed's name, dtype, rank or shape."""


class NoSuchFile(OrtCoreError, FileNotFoundError):
    """A model path that does not exist."""


class NoModel(OrtCoreError):
    """No model was given where one is needed."""


class EngineError(OrtCoreError):
    """An internal inconsistency of the runtime."""


class RuntimeException(OrtCoreError, RuntimeError):
    """An error raised while running a graph."""


class InvalidProtobuf(OrtCoreError):
    """The bytes or file are not a readable ONNX ModelProto (corrupt or truncated)."""


class ModelLoaded(OrtCoreError):
    """The model was already loaded."""


class NotImplemented(OrtCoreError, NotImplementedError):  # noqa: A001 - onnxruntime's name
    """No installed provider implements an operator, attribute or dtype."""


class InvalidGraph(OrtCoreError):
    """The model's graph is malformed: undefined values, cycles, bad attributes."""


class EPFail(OrtCoreError):
    """An execution provider failed: unavailable device, failed plugin."""


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """Return ``" (did you mean 'x'?)"`` for the closest candidate, or ``""``."""
    candidates = list(candidates)
    by_lower = {c.lower(): c for c in candidates}
    if name.lower() in by_lower:
        return f" (did you mean {by_lower[name.lower()]!r}?)"
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.5)
    return f" (did you mean {close[0]!r}?)" if close else ""
