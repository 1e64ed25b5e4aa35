"""The onnx package's model cases and helpers to read any case's graph and data."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from ortcore.testing import LIGHT_MODELS, compare_outputs, light_model_path

__all__ = [
    "ModelCase", "model_cases", "load_data_sets", "ops_of", "dtypes_of", "feed_names", "node_count", "check_outputs",
]

DATA_KINDS = ("simple", "pytorch-converted", "pytorch-operator")


@dataclass(frozen=True)
class ModelCase:
    """A whole-model case: a data directory of the onnx package, or a light model."""

    name: str
    kind: str
    path: Path
    rtol: float
    atol: float


def model_cases() -> list[ModelCase]:
    """The cases of onnx's simple, pytorch-converted and pytorch-operator data, then the light models."""
    from onnx.backend.test.loader import load_model_tests

    cases = [
        ModelCase(t.name, kind, Path(t.model_dir) / "model.onnx", t.rtol, t.atol)
        for kind in DATA_KINDS
        for t in sorted(load_model_tests(kind=kind), key=lambda t: t.name)
    ]
    # The "real" kind describes the light models (their tolerances); the files ship in data/light.
    light = {t.model_name: t for t in load_model_tests(kind="real")}
    for name in LIGHT_MODELS:
        t = light[name]
        cases.append(ModelCase(f"test_{name}", "light", light_model_path(name), t.rtol, t.atol))
    return cases


_PROTO_OF = {
    "sequence_type": (onnx.SequenceProto, numpy_helper.to_list),
    "optional_type": (onnx.OptionalProto, numpy_helper.to_optional),
    "tensor_type": (onnx.TensorProto, numpy_helper.to_array),
}


def _load_pb(path: Path, type_proto: onnx.TypeProto) -> Any:
    proto_cls, convert = _PROTO_OF[type_proto.WhichOneof("value")]
    proto = proto_cls()
    proto.ParseFromString(path.read_bytes())
    return convert(proto)


def _load_all(folder: Path, prefix: str, values: Any) -> list[Any]:
    count = len(list(folder.glob(f"{prefix}_*.pb")))
    return [_load_pb(folder / f"{prefix}_{i}.pb", values[i].type) for i in range(count)]


def load_data_sets(case: ModelCase, model: onnx.ModelProto) -> list[tuple[list[Any], list[Any]]]:
    """The stored ``test_data_set_*`` inputs and outputs of a data-directory case."""
    return [
        (_load_all(folder, "input", model.graph.input), _load_all(folder, "output", model.graph.output))
        for folder in sorted(case.path.parent.glob("test_data_set_*"))
    ]


def feed_names(model: onnx.ModelProto) -> list[str]:
    inits = {t.name for t in model.graph.initializer}
    return [i.name for i in model.graph.input if i.name not in inits]


def node_count(model: onnx.ModelProto) -> int:
    """Nodes the session sees (model-local functions are inlined at load)."""
    return len((onnx.inliner.inline_local_functions(model) if model.functions else model).graph.node)


def ops_of(model: onnx.ModelProto) -> list[tuple[str, str, int]]:
    """Distinct (domain, op type, opset) of the main graph's nodes, in graph order."""
    opsets = {(o.domain or "ai.onnx"): o.version for o in model.opset_import}
    seen = {}
    for node in model.graph.node:
        domain = node.domain or "ai.onnx"
        seen.setdefault((domain, node.op_type), opsets.get(domain, 1))
    return [(domain, op, opset) for (domain, op), opset in seen.items()]


def _arrays(values: Any) -> Iterator[np.ndarray]:
    for value in values:
        if isinstance(value, list):
            yield from _arrays(value)
        elif value is not None:
            yield np.asarray(value)


def dtypes_of(*values: Any) -> list[str]:
    """Names of the dtypes of arrays in ``values`` (nested lists are sequences)."""
    return sorted({a.dtype.name for a in _arrays(values)})


def check_outputs(
    model: onnx.ModelProto, expected: list[Any], actual: list[Any], *, rtol: float, atol: float, random: bool = False
) -> None:
    """Every output matches its expected value; for outputs random by nature, dtype and shape only."""
    names = [o.name for o in model.graph.output]
    assert len(actual) == len(expected), f"{len(actual)} outputs, expected {len(expected)}"
    for name, e, a in zip(names, expected, actual):
        if random:
            assert (a.dtype, a.shape) == (np.asarray(e).dtype, np.asarray(e).shape), name
        else:
            compare_outputs(e, a, rtol=rtol, atol=atol, name=f"output {name!r}")
