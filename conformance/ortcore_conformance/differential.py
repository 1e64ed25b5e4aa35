"""Randomized differential tests: one node, run on the provider and by onnx.reference.

Each test is parametrized by op and dtype; hypothesis draws shapes, attributes
and a seed for the values. The op's opset is the newest one the provider has a
kernel for (from the versions onnx knows); an op or dtype it declines is
reported unsupported before any example runs.
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import onnx
from hypothesis import given, seed
from hypothesis import strategies as st
from onnx import helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from ortcore.kernels import KernelDef
from ortcore.testing import compare_outputs
from ortcore_conformance.target import Target, unsupported

__all__ = [
    "NUMERIC", "FLOATS", "schema_dtypes", "newest_opset", "start", "tolerance", "values", "check_node",
    "examples", "seeds",
]

# The dtypes numpy and onnx.reference compute with natively (no bfloat16, float8, int4, strings).
NUMERIC = tuple(map(np.dtype, (
    "float16", "float32", "float64", "int8", "int16", "int32", "int64",
    "uint8", "uint16", "uint32", "uint64", "bool",
)))
FLOATS = NUMERIC[:3]
seeds = st.integers(0, 2**32 - 1)


def _onnx_type_name(dtype: np.dtype) -> str:
    return helper.tensor_dtype_to_string(helper.np_dtype_to_tensor_dtype(dtype)).split(".")[-1].lower()


def schema_dtypes(op: str) -> list[np.dtype]:
    """The NUMERIC dtypes that onnx's newest schema of ``op`` accepts for its first input."""
    schema = onnx.defs.get_schema(op)
    type_str = schema.inputs[0].type_str
    names = next((c.allowed_type_strs for c in schema.type_constraints if c.type_param_str == type_str), [type_str])
    return [d for d in NUMERIC if f"tensor({_onnx_type_name(d)})" in names]


@functools.lru_cache(maxsize=None)
def _versions(op: str, domain: str = "") -> tuple[int, ...]:
    return tuple(sorted({s.since_version for s in onnx.defs.get_all_schemas_with_history()
                         if s.name == op and s.domain == domain}))


def newest_opset(target: Target, op: str, dtypes: Sequence[Any], *, oldest: int = 1) -> int:
    """The newest schema version of ``op`` the provider claims for ``dtypes``, or skip as unsupported."""
    reasons = []
    for version in reversed(_versions(op)):
        if version < oldest:
            break
        claim = target.claim(op, version, [np.dtype(d) for d in dtypes])
        if isinstance(claim, KernelDef):
            return version
        reasons.append(claim)
    reason = reasons[0] if reasons else f"no kernel for {op}"
    return unsupported(reason + (f" (the suite tests {op} from opset {oldest})" if oldest > 1 else ""))


def start(
    target: Target, record_case: Callable[..., None], op: str, dtypes: Sequence[Any], *, oldest: int = 1
) -> int:
    """Record the case for the report, then return the opset to test (or skip as unsupported)."""
    names = [np.dtype(d).name for d in dtypes]
    record_case("property", [("ai.onnx", op, _versions(op)[-1])], names)
    opset = newest_opset(target, op, dtypes, oldest=oldest)
    record_case("property", [("ai.onnx", op, opset)], names)
    return opset


def tolerance(dtype: np.dtype, *, accumulates: bool = False) -> dict[str, float]:
    """rtol/atol for comparing with onnx.reference; sums of many terms get more room."""
    table = {
        np.dtype("float16"): (1e-2, 5e-2) if accumulates else (4e-3, 1e-3),
        np.dtype("float32"): (1e-4, 1e-4) if accumulates else (1e-4, 1e-5),
        # onnx.reference computes a few float64 ops (Erf) in float32
        np.dtype("float64"): (1e-6, 1e-7),
    }
    rtol, atol = table.get(np.dtype(dtype), (0.0, 0.0))
    return {"rtol": rtol, "atol": atol}


def values(
    rng: np.random.Generator, shape: Sequence[int], dtype: Any, low: float = -10, high: float = 10
) -> np.ndarray:
    """Random values of ``dtype`` in [low, high] (clipped to the dtype's range)."""
    dtype = np.dtype(dtype)
    if dtype == np.bool_:
        return rng.random(shape) < 0.5
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return rng.integers(max(low, info.min), min(high, info.max), shape, endpoint=True).astype(dtype)
    return rng.uniform(low, high, shape).astype(dtype)


def check_node(
    target: Target,
    op: str,
    opset: int,
    inputs: Sequence[np.ndarray | None],
    attrs: dict[str, Any] | None = None,
    *,
    constant: Sequence[int] = (),
    outputs: int = 1,
    rtol: float = 0.0,
    atol: float = 0.0,
) -> None:
    """One ``op`` node on ``inputs``: the provider's outputs must match onnx.reference's.

    Inputs whose positions are in ``constant`` (shapes, axes, pads...) become
    initializers, as in exported models; ``None`` is an omitted optional input.
    """
    names = ["" if x is None else f"x{i}" for i, x in enumerate(inputs)]
    node = helper.make_node(op, names, [f"y{i}" for i in range(outputs)], **(attrs or {}))
    given_inputs = [(i, n, x) for i, (n, x) in enumerate(zip(names, inputs)) if x is not None]
    feeds = {n: x for i, n, x in given_inputs if i not in constant}
    graph = helper.make_graph(
        [node], op,
        [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(x.dtype), x.shape) for n, x in feeds.items()],
        [helper.make_tensor_value_info(o, onnx.TensorProto.UNDEFINED, None) for o in node.output],
        initializer=[numpy_helper.from_array(np.asarray(x), n) for i, n, x in given_inputs if i in constant],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    sess = target.session(model, nodes=1)
    with np.errstate(all="ignore"):
        expected = ReferenceEvaluator(model).run(None, feeds)
    actual = sess.run(None, feeds)
    assert len(actual) == len(expected), f"{op}: {len(actual)} outputs, expected {len(expected)}"
    schema = onnx.defs.get_schema(op, opset)
    for i, (name, e, a) in enumerate(zip(node.output, expected, actual)):
        e = np.asarray(e)
        output_type = schema.outputs[min(i, len(schema.outputs) - 1)].type_str
        if inputs[0] is not None and output_type == schema.inputs[0].type_str:
            # the schema says this output has the first input's dtype; onnx.reference
            # sometimes widens it (ReduceSumSquare on int32 gives int64)
            e = e.astype(inputs[0].dtype)
        compare_outputs(e, a, rtol=rtol, atol=atol, name=f"{op} {name}")


def examples(key: str, **strategies: Any) -> Callable[[Callable[..., None]], Callable[[], None]]:
    """``@given(**strategies)`` with a seed of its own per ``key`` (op and dtype).

    Runs are repeatable, and each op and dtype sees different examples.
    """

    def decorate(fn: Callable[..., None]) -> Callable[[], None]:
        return seed(zlib.crc32(key.encode()))(given(**strategies)(fn))

    return decorate
