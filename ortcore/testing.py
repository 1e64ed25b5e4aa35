"""Helpers for testing providers against independent truth.

:func:`node_cases` returns the ONNX backend node test cases generated from the
installed onnx package (inputs and expected outputs as numpy), cached on disk
because generating them takes seconds. :func:`compare_outputs` checks one
output against its expected value with onnxruntime's backend-test tolerances.
"""

from __future__ import annotations

import hashlib
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["NodeCase", "node_cases", "compare_outputs", "cache_dir", "RANDOM_CASES"]

# Cases whose outputs are random by nature: only dtype and shape can be compared.
RANDOM_CASES = ("test_bernoulli",)


@dataclass
class NodeCase:
    name: str
    model: bytes
    data_sets: list[tuple[list[Any], list[Any]]]
    rtol: float
    atol: float

    @property
    def ops(self) -> list[tuple[str, str]]:
        import onnx

        model = onnx.load_model_from_string(self.model)
        return [(n.domain, n.op_type) for n in model.graph.node]


def cache_dir() -> Path:
    root = os.environ.get("ORTCORE_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "ortcore"
    )
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _to_numpy(value: Any) -> Any:
    import onnx
    from onnx import numpy_helper

    if isinstance(value, onnx.TensorProto):
        return numpy_helper.to_array(value)
    if isinstance(value, onnx.SequenceProto):
        return numpy_helper.to_list(value)
    if isinstance(value, onnx.OptionalProto):
        return numpy_helper.to_optional(value)
    if isinstance(value, list):
        return [_to_numpy(v) for v in value]
    if value is None:
        return None
    return np.asarray(value)


def _generate() -> list[NodeCase]:
    from onnx.backend.test.case.node import collect_testcases

    cases = []
    for case in collect_testcases(None):
        if case.model is None or not case.data_sets:
            continue
        data = [([_to_numpy(x) for x in ins], [_to_numpy(y) for y in outs]) for ins, outs in case.data_sets]
        cases.append(NodeCase(case.name, case.model.SerializeToString(), data, case.rtol, case.atol))
    return cases


def node_cases() -> list[NodeCase]:
    """All ONNX backend node cases of the installed onnx, cached per onnx version."""
    import onnx

    key = hashlib.sha1(f"{onnx.__version__}:{onnx.__file__}:{np.__version__}".encode()).hexdigest()[:12]
    path = cache_dir() / f"node_cases-{onnx.__version__}-{key}.pkl"
    if path.exists():
        try:
            with path.open("rb") as f:
                return pickle.load(f)
        except Exception:  # noqa: BLE001 - a stale or partial cache is regenerated
            pass
    cases = _generate()
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    with tmp.open("wb") as f:
        pickle.dump(cases, f, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(tmp, path)
    return cases


def compare_outputs(expected: Any, actual: Any, *, rtol: float = 1e-3, atol: float = 1e-5, name: str = "output") -> None:
    """Assert ``actual`` matches ``expected``: same kind, dtype and shape, close values."""
    if isinstance(expected, list):
        assert isinstance(actual, list), f"{name}: expected a sequence, got {type(actual).__name__}"
        assert len(actual) == len(expected), f"{name}: sequence length {len(actual)} != {len(expected)}"
        for i, (e, a) in enumerate(zip(expected, actual)):
            compare_outputs(e, a, rtol=rtol, atol=atol, name=f"{name}[{i}]")
        return
    if expected is None:
        assert actual is None, f"{name}: expected an empty optional, got {type(actual).__name__}"
        return
    expected = np.asarray(expected)
    assert isinstance(actual, np.ndarray), f"{name}: expected an ndarray, got {type(actual).__name__}"
    if expected.dtype.kind in "OUS":
        assert actual.dtype.kind in "OUS", f"{name}: expected strings, got {actual.dtype}"
        assert actual.shape == expected.shape, f"{name}: shape {actual.shape} != {expected.shape}"
        assert actual.astype(str).tolist() == expected.astype(str).tolist(), f"{name}: strings differ"
        return
    assert actual.dtype == expected.dtype, f"{name}: dtype {actual.dtype} != expected {expected.dtype}"
    assert actual.shape == expected.shape, f"{name}: shape {actual.shape} != expected {expected.shape}"
    if expected.dtype.kind in "biu":
        np.testing.assert_array_equal(actual, expected, err_msg=name)
        return
    # floats, complex, and ml_dtypes types (bfloat16, float8, int4) compared as numbers
    wide = np.complex128 if expected.dtype.kind == "c" else np.float64
    np.testing.assert_allclose(
        actual.astype(wide), expected.astype(wide), rtol=rtol, atol=atol, equal_nan=True, err_msg=name
    )


LIGHT_MODELS = (
    "bvlc_alexnet", "densenet121", "inception_v1", "inception_v2", "resnet50",
    "shufflenet", "squeezenet", "vgg19", "zfnet512",
)


def light_model_path(name: str) -> Path:
    """Path of ``light_<name>.onnx`` shipped in the onnx package."""
    import onnx

    return Path(onnx.__file__).parent / "backend" / "test" / "data" / "light" / f"light_{name}.onnx"


def randomize_light_model(model: Any, seed: int = 0) -> Any:
    """A copy of a light model whose constant weights are seeded random values.

    The shipped light models build every weight with ConstantOfShape, so every
    channel is identical and a per-channel bug goes unseen. Each such weight is
    replaced by an initializer of the same shape: He-scaled normals for
    Conv/Gemm weights, [0.5, 1.5] for scales and variances, [-0.1, 0.1] for
    biases and means. Float initializers get the same treatment.
    """
    import onnx
    from onnx import numpy_helper

    model = _copy(model)
    graph = model.graph
    rng = np.random.default_rng(seed)
    consumers: dict[str, list[tuple[Any, int]]] = {}
    for node in graph.node:
        for i, name in enumerate(node.input):
            consumers.setdefault(name, []).append((node, i))
    inits = {t.name: t for t in graph.initializer}

    def role(name: str) -> str:
        for node, i in consumers.get(name, []):
            op = node.op_type
            if op in ("Conv", "Gemm"):
                return "weight" if i == 1 else "bias"
            if op == "Reshape" and i == 0:
                return "weight"
            if op == "BatchNormalization":
                return "scale" if i in (1, 4) else "bias"
            if op == "Unsqueeze":
                return role(node.output[0])
            if op == "Mul":
                return "scale"
        return "bias"

    def value(name: str, shape: tuple[int, ...]) -> np.ndarray:
        kind = role(name)
        if kind == "weight":
            fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else max(shape[0], 1)
            for node, i in consumers.get(name, []):
                if node.op_type == "Gemm" and not any(a.name == "transB" and a.i for a in node.attribute):
                    fan_in = shape[0]
            return (rng.standard_normal(shape) * np.sqrt(2.0 / max(fan_in, 1))).astype(np.float32)
        if kind == "scale":
            return rng.uniform(0.5, 1.5, shape).astype(np.float32)
        return rng.uniform(-0.1, 0.1, shape).astype(np.float32)

    kept = []
    for node in graph.node:
        shape_name = node.input[0] if node.op_type == "ConstantOfShape" else None
        if shape_name in inits:
            shape = tuple(int(d) for d in numpy_helper.to_array(inits[shape_name]))
            graph.initializer.append(numpy_helper.from_array(value(node.output[0], shape), node.output[0]))
            continue
        kept.append(node)
    del graph.node[:]
    graph.node.extend(kept)
    for t in list(graph.initializer):
        if t.data_type == onnx.TensorProto.FLOAT and t.dims and consumers.get(t.name):
            t.CopyFrom(numpy_helper.from_array(value(t.name, tuple(t.dims)), t.name))
    return model


def _copy(model: Any) -> Any:
    copy = type(model)()
    copy.CopyFrom(model)
    return copy


def make_model(nodes, inputs, outputs, initializers=(), *, opset=17, ir_version=8, domains=()):
    """A ModelProto from onnx.helper pieces, with opset ``opset`` and custom domains at version 1."""
    from onnx import helper

    graph = helper.make_graph(list(nodes), "test", list(inputs), list(outputs), initializer=list(initializers))
    opsets = [helper.make_opsetid("", opset)] + [helper.make_opsetid(d, 1) for d in domains]
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = ir_version
    return model


def load_expected_failures(path: str | os.PathLike) -> dict[str, str]:
    """Read an expected-failures file: one ``case_name: reason`` per line, ``#`` comments.

    Every entry must give a reason; an entry without one is an error, so an
    exclusion can never be silent.
    """
    entries: dict[str, str] = {}
    for number, raw in enumerate(Path(path).read_text().splitlines(), start=1):
        line = raw.split("#", 1)[0].strip() if raw.lstrip().startswith("#") else raw.strip()
        if not line:
            continue
        name, sep, reason = line.partition(":")
        if not sep or not reason.strip():
            raise ValueError(f"{path}:{number}: expected failure {name.strip()!r} has no reason")
        entries[name.strip()] = reason.strip()
    return entries


def single_node_model(op, inputs, out_dtypes, *, opset, initializers=(), domain="", **attrs):
    """A model of one ``op`` node: ``inputs`` maps names to arrays (None: an omitted input).

    Names listed in ``initializers`` become initializers; the others graph
    inputs. Outputs are ``y0, y1, ...`` with the given dtypes.
    """
    from onnx import helper, numpy_helper

    from ortcore.dtypes import onnx_elem_type

    names = [name if value is not None else "" for name, value in inputs.items()]
    while names and names[-1] == "":
        names.pop()
    graph_inputs, inits = [], []
    for name, value in inputs.items():
        if value is None:
            continue
        if name in initializers:
            inits.append(numpy_helper.from_array(np.asarray(value), name))
        else:
            graph_inputs.append(helper.make_tensor_value_info(name, onnx_elem_type(value.dtype), value.shape))
    outs = [f"y{i}" for i in range(len(out_dtypes))]
    node = helper.make_node(op, names, outs, domain=domain or None, **attrs)
    graph = helper.make_graph(
        [node], "g", graph_inputs,
        [helper.make_tensor_value_info(o, onnx_elem_type(np.dtype(t)), None) for o, t in zip(outs, out_dtypes)],
        inits,
    )
    imports = [helper.make_opsetid("", opset)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    model = helper.make_model(graph, opset_imports=imports)
    model.ir_version = 10
    return model


def feeds_of(model, inputs):
    """The entries of ``inputs`` that are graph inputs of ``model``."""
    names = {i.name for i in model.graph.input}
    return {k: v for k, v in inputs.items() if k in names}


def run_ortcore(model, inputs, providers=("CPUExecutionProvider",)):
    import ortcore

    sess = ortcore.InferenceSession(model.SerializeToString(), providers=list(providers))
    return sess.run(None, feeds_of(model, inputs))


def run_reference(model, inputs):
    from onnx.reference import ReferenceEvaluator

    return ReferenceEvaluator(model).run(None, feeds_of(model, inputs))


def run_onnxruntime(model, inputs):
    import onnxruntime

    sess = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds_of(model, inputs))


def write_plugin_distribution(root, dist: str, version: str, entry_point: str, module: str, files: dict[str, str]) -> Path:
    """Write a throwaway installed distribution under ``root`` (put ``root`` on sys.path).

    ``files`` maps paths relative to ``root`` to their text; the dist-info
    declares ``entry_point = module`` in the ``ortcore`` group, so discovery
    finds it exactly as it finds a pip-installed plugin.
    """
    root = Path(root)
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[ortcore]\n{entry_point} = {module}\n")
    return root


def check_model(model, feeds, expected=None, *, truth: str = "ort", providers=("CPUExecutionProvider",)) -> list:
    """Run ``model`` in ortcore and compare each output with ``expected``, else with
    onnxruntime (``truth="ort"``) or onnx.reference (``truth="reference"``)."""
    import ortcore

    actual = ortcore.InferenceSession(model.SerializeToString(), providers=list(providers)).run(None, feeds)
    if expected is None:
        if truth == "ort":
            import onnxruntime

            sess = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
            expected = sess.run(None, feeds)
        else:
            from onnx.reference import ReferenceEvaluator

            expected = ReferenceEvaluator(model).run(None, feeds)
    assert len(actual) == len(expected)
    for i, (e, a) in enumerate(zip(expected, actual)):
        compare_outputs(e, a, name=f"output {i}")
    return actual


def check_node(op, inputs, attrs=None, *, opset, expected=None, n_out=1, const=(), domain="", rtol=1e-3, atol=1e-5):
    """Run one ``op`` node in ortcore; compare with ``expected`` or else onnx.reference.

    ``inputs`` is positional (None: omitted input); positions in ``const``
    become initializers, the others graph inputs named ``x0, x1, ...``.
    """
    import onnx
    from onnx import helper, numpy_helper
    from onnx.reference import ReferenceEvaluator

    import ortcore
    from ortcore.dtypes import onnx_elem_type

    names = [f"x{i}" if v is not None else "" for i, v in enumerate(inputs)]
    graph = helper.make_graph(
        [helper.make_node(op, names, [f"y{i}" for i in range(n_out)], domain=domain or None, **(attrs or {}))],
        "g",
        [helper.make_tensor_value_info(n, onnx_elem_type(v.dtype), v.shape)
         for i, (n, v) in enumerate(zip(names, inputs)) if n and i not in const],
        [onnx.ValueInfoProto(name=f"y{i}") for i in range(n_out)],
        [numpy_helper.from_array(inputs[i], names[i]) for i in const],
    )
    imports = [helper.make_opsetid("", opset)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    model = helper.make_model(graph, opset_imports=imports)
    feeds = {f"x{i}": v for i, v in enumerate(inputs) if v is not None and i not in const}
    actual = ortcore.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)
    if expected is None:
        expected = ReferenceEvaluator(model).run(None, feeds)
    elif not isinstance(expected, list):
        expected = [expected]
    assert len(actual) == len(expected)
    for e, a in zip(expected, actual):
        compare_outputs(e, a, rtol=rtol, atol=atol, name=op)
    return actual
