"""The provider contract: availability, host<->device round trips, kernel declarations,
concurrent runs and clear errors on bad feeds."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import ortcore
from ortcore.testing import node_cases
from ortcore_conformance.cases import feed_names
from ortcore_conformance.target import unsupported

THREADS = 8


def test_availability_is_reported_with_a_reason(target, record_case):
    record_case("contract")
    available, reason = target.info.cls.availability()
    assert isinstance(available, bool) and isinstance(reason, str), (available, reason)
    assert available or reason.strip(), "an unavailable provider must say why"
    if available:
        assert isinstance(target.provider.device, str) and target.provider.device


def test_host_device_round_trip(target, record_case, declared_dtype):
    record_case("contract", dtypes=[declared_dtype.name])
    for shape in [(2, 3), (0,), (3, 0, 2), ()]:  # empty and 0-d tensors included
        n = int(np.prod(shape))
        if declared_dtype.kind == "O":
            x = np.array([str(i) for i in range(n)], dtype=object).reshape(shape)
        else:
            x = (np.arange(n) % 7).astype(declared_dtype).reshape(shape)
        back = target.provider.to_host(target.provider.from_host(x))
        assert isinstance(back, np.ndarray), f"to_host returned {type(back).__name__}"
        assert (back.dtype, back.shape) == (x.dtype, x.shape), f"{back.dtype} {back.shape} != {x.dtype} {x.shape}"
        same = back.tolist() == x.tolist() if x.dtype.kind == "O" else back.tobytes() == x.tobytes()
        assert same, f"shape {shape}: {back!r} != {x!r}"


def test_kernels_declare_opset_ranges_and_dtypes(target, record_case):
    record_case("contract")
    problems = []
    for kdef in target.kernels():
        where = f"{kdef.domain or 'ai.onnx'}::{kdef.op_type} ({kdef.name})"
        if not 1 <= kdef.since <= kdef.until:
            problems.append(f"{where}: opset range {kdef.since}..{kdef.until}")
        if kdef.dtypes is not None and (not kdef.dtypes or not all(kdef.dtypes.values())):
            problems.append(f"{where}: restricts dtypes to an empty set {dict(kdef.dtypes)}")
    assert not problems, "\n".join(problems)


def _mlp() -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    weights = {"w1": (16, 32), "b1": (32,), "w2": (32, 10)}
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h"]), helper.make_node("Add", ["h", "b1"], ["a"]),
        helper.make_node("Relu", ["a"], ["r"]), helper.make_node("MatMul", ["r", "w2"], ["o"]),
        helper.make_node("Softmax", ["o"], ["y"], axis=-1),
    ]
    graph = helper.make_graph(
        nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 10])],
        [numpy_helper.from_array(rng.standard_normal(s).astype(np.float32), n) for n, s in weights.items()],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def _candidates():
    """(model, feeds per thread): a small MLP, then node cases whose first input has a declared rank."""
    rng = np.random.default_rng(0)
    yield _mlp(), [{"x": rng.standard_normal((4, 16)).astype(np.float32)} for _ in range(THREADS)]
    for case in node_cases():
        model = onnx.load_model_from_string(case.model)
        inputs, outputs = case.data_sets[0]
        names = feed_names(model)
        arrays = all(isinstance(v, np.ndarray) and v.dtype.kind in "biuf" for v in [*inputs, *outputs])
        if names and arrays and len(model.graph.input[0].type.tensor_type.shape.dim) > 0:
            yield model, [dict(zip(names, inputs))] * THREADS


@pytest.fixture(scope="module")
def runnable(target):
    """A model the provider runs whole, and one feed per thread."""
    target.require_available()
    for model, feeds in _candidates():
        try:
            target.session(model)
        except pytest.skip.Exception:
            continue
        return model, feeds
    unsupported(f"{target.name} runs neither a MatMul/Add/Relu/Softmax model nor any node case")


def test_concurrent_runs_on_one_session_agree(target, record_case, runnable):
    record_case("contract")
    model, feeds = runnable
    sess = target.session(model)
    expected = [sess.run(None, f) for f in feeds]
    start = threading.Barrier(THREADS)

    def work(i):
        start.wait()
        return [sess.run(None, feeds[i]) for _ in range(10)]

    with ThreadPoolExecutor(THREADS) as pool:
        results = list(pool.map(work, range(THREADS)))
    for i, runs in enumerate(results):
        for outputs in runs:
            for e, a in zip(expected[i], outputs):
                assert (a.dtype, a.shape, a.tobytes()) == (e.dtype, e.shape, e.tobytes()), f"thread {i} differs"


def test_bad_feeds_raise_invalid_argument(target, record_case, runnable):
    record_case("contract")
    model, feeds = runnable
    sess = target.session(model)
    name, good = next(iter(feeds[0].items()))
    wrong_dtype = good.astype(np.float32 if good.dtype == np.float64 else np.float64)
    with pytest.raises(ortcore.InvalidArgument):
        sess.run(None, {**feeds[0], name: wrong_dtype})
    with pytest.raises(ortcore.InvalidArgument):
        sess.run(None, {**feeds[0], name: good[None]})  # one dimension too many
    sess.run(None, feeds[0])  # and the session still works
