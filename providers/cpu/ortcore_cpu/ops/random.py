"""Random generators: RandomUniform, RandomNormal, RandomUniformLike, RandomNormalLike,
Multinomial, Bernoulli (ONNX spec sections of the same names).

Each call builds its own ``numpy.random.Generator``: from the node's ``seed`` when
it has one, from fresh OS entropy otherwise. A seeded node therefore returns the
same values on every run, like onnx.reference (which seeds a new RandomState per
run). The alternative, one generator per node advanced under a lock as
onnxruntime does, would make the values a run sees depend on how concurrent runs
interleave and would keep state across runs; a per-call generator keeps the kernel
stateless and costs a few microseconds.

The seed is a float attribute; its float32 bit pattern seeds the generator, so
seeds that differ only in their fraction still differ. Values are drawn in float32
(float64 for double outputs) and cast, so float16 and bfloat16 come from the same
draws.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ortcore.dtypes import np_dtype
from ortcore.errors import InvalidArgument
from ortcore_cpu.registry import kernel

_FLOAT = 1  # TensorProto.FLOAT, the spec's default dtype
_INT32 = 6  # TensorProto.INT32, Multinomial's default dtype


def _generator_factory(seed: float | None) -> Callable[[], np.random.Generator]:
    if seed is None:
        return np.random.default_rng
    key = int(np.float32(seed).view(np.uint32))
    return lambda: np.random.default_rng(key)


def _draw_dtype(dtype: np.dtype) -> np.dtype:
    return np.dtype(np.float64) if dtype == np.float64 else np.dtype(np.float32)


def _uniform(rng: np.random.Generator, shape, dtype: np.dtype, low: float, high: float) -> np.ndarray:
    draw = _draw_dtype(dtype)
    values = rng.random(shape, dtype=draw)
    values *= draw.type(high - low)
    values += draw.type(low)
    return values.astype(dtype, copy=False)


def _normal(rng: np.random.Generator, shape, dtype: np.dtype, mean: float, scale: float) -> np.ndarray:
    draw = _draw_dtype(dtype)
    values = rng.standard_normal(shape, dtype=draw)
    values *= draw.type(scale)
    values += draw.type(mean)
    return values.astype(dtype, copy=False)


def _output_dtype(dtype: int | None, like: np.dtype | None, op: str) -> np.dtype:
    """The ``dtype`` attribute, or for the *Like ops the input's type (which must then be a float)."""
    if dtype is not None:
        out = np_dtype(dtype)
    else:
        out = like
    if out is None or not (out.kind == "f" or out.name == "bfloat16"):
        raise InvalidArgument(f"{op}: output type {out} is not a float type; set the dtype attribute")
    return out


@kernel("RandomUniform", since=1, factory=True)
@kernel("RandomUniform", since=22, factory=True)
def random_uniform(ctx, *, shape, dtype=_FLOAT, high=1.0, low=0.0, seed=None):
    """RandomUniform: values in [low, high) of the given shape."""
    out, new_rng, shape = _output_dtype(dtype, None, "RandomUniform"), _generator_factory(seed), tuple(shape)
    return lambda: _uniform(new_rng(), shape, out, low, high)


@kernel("RandomNormal", since=1, factory=True)
@kernel("RandomNormal", since=22, factory=True)
def random_normal(ctx, *, shape, dtype=_FLOAT, mean=0.0, scale=1.0, seed=None):
    """RandomNormal: normal values with the given mean and standard deviation."""
    out, new_rng, shape = _output_dtype(dtype, None, "RandomNormal"), _generator_factory(seed), tuple(shape)
    return lambda: _normal(new_rng(), shape, out, mean, scale)


def _like_dtype(ctx: Any, dtype: int | None, op: str) -> np.dtype | None:
    """Resolved at creation when possible; None means "the input's type, at run time"."""
    if dtype is not None:
        return _output_dtype(dtype, None, op)
    like = ctx.input_dtypes[0] if ctx.input_dtypes else None
    return _output_dtype(None, like, op) if like is not None else None


@kernel("RandomUniformLike", since=1, factory=True)
@kernel("RandomUniformLike", since=22, factory=True)
def random_uniform_like(ctx, *, dtype=None, high=1.0, low=0.0, seed=None):
    """RandomUniformLike: RandomUniform with the input's shape (and type, unless dtype is set)."""
    out, new_rng = _like_dtype(ctx, dtype, "RandomUniformLike"), _generator_factory(seed)

    def run(x, /):
        return _uniform(new_rng(), x.shape, out or _output_dtype(None, x.dtype, "RandomUniformLike"), low, high)

    return run


@kernel("RandomNormalLike", since=1, factory=True)
@kernel("RandomNormalLike", since=22, factory=True)
def random_normal_like(ctx, *, dtype=None, mean=0.0, scale=1.0, seed=None):
    """RandomNormalLike: RandomNormal with the input's shape (and type, unless dtype is set)."""
    out, new_rng = _like_dtype(ctx, dtype, "RandomNormalLike"), _generator_factory(seed)

    def run(x, /):
        return _normal(new_rng(), x.shape, out or _output_dtype(None, x.dtype, "RandomNormalLike"), mean, scale)

    return run


@kernel("Multinomial", since=7, factory=True)
@kernel("Multinomial", since=22, factory=True)
def multinomial(ctx, *, dtype=_INT32, sample_size=1, seed=None):
    """Multinomial: ``sample_size`` class indices per row of unnormalized log-probabilities."""
    out = np_dtype(dtype)
    if out not in (np.dtype(np.int32), np.dtype(np.int64)):
        raise InvalidArgument(f"Multinomial: dtype must be int32 or int64, got {out}")
    new_rng = _generator_factory(seed)

    def run(x, /):
        logits = x.astype(np.float64)
        probs = np.exp(logits - logits.max(axis=-1, keepdims=True))
        cdf = np.cumsum(probs, axis=-1)
        u = new_rng().random((x.shape[0], sample_size)) * cdf[:, -1:]
        # inverse CDF: the first class whose cumulative weight exceeds u
        samples = np.empty((x.shape[0], sample_size), dtype=out)
        for row in range(x.shape[0]):
            samples[row] = np.searchsorted(cdf[row], u[row], side="right")
        return np.minimum(samples, x.shape[1] - 1, out=samples)

    return run


@kernel("Bernoulli", since=15, factory=True)
@kernel("Bernoulli", since=22, factory=True)
def bernoulli(ctx, *, dtype=None, seed=None):
    """Bernoulli: 1 with probability ``input``, else 0, in ``dtype`` (default: the input's type)."""
    out, new_rng = (np_dtype(dtype) if dtype is not None else None), _generator_factory(seed)

    def run(p, /):
        draw_dtype = _draw_dtype(p.dtype)
        draw = new_rng().random(p.shape, dtype=draw_dtype)
        return (draw < p.astype(draw_dtype, copy=False)).astype(out or p.dtype)

    return run
