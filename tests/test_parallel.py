"""ExecutionMode.ORT_PARALLEL: independent nodes run concurrently on an inter-op pool."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from onnx import TensorProto, helper

import ortcore
from ortcore.testing import light_model_path, make_model

registry = ortcore.KernelRegistry("probe")
threads_seen: dict[str, str] = {}
barrier = threading.Barrier(2, timeout=10)


@registry.kernel("Meet", since=1, domain="test.parallel", factory=True)
def meet(ctx, /):
    """Waits until a second Meet node runs at the same time: proves two nodes overlap."""
    name = ctx.node.name

    def run(x):
        threads_seen[name] = threading.current_thread().name
        barrier.wait()
        return x + 1

    return run


@registry.kernel("Echo", since=1, domain="test.parallel")
def echo(x, /):
    return x + 1


@registry.kernel("Explode", since=1, domain="test.parallel")
def explode(x, /):
    raise ValueError("kernel failure on purpose")


class _Plugin:
    @ortcore.hookimpl
    def ortcore_kernels(self, provider):
        return registry if provider == "CPUExecutionProvider" else None


@pytest.fixture(autouse=True)
def probe_plugin():
    ortcore.register_plugin(_Plugin(), "parallel-probe")
    threads_seen.clear()
    barrier.reset()
    yield
    ortcore.unregister_plugin("parallel-probe")


def _options(mode=ortcore.ExecutionMode.ORT_PARALLEL, threads=2):
    options = ortcore.SessionOptions()
    options.execution_mode = mode
    options.inter_op_num_threads = threads
    return options


def _two_branches(left="Meet", right="Meet"):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])
    return make_model(
        [helper.make_node(left, ["x"], ["a"], domain="test.parallel", name="left"),
         helper.make_node(right, ["x"], ["b"], domain="test.parallel", name="right"),
         helper.make_node("Add", ["a", "b"], ["y"], name="join")],
        [x], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])], domains=["test.parallel"],
    )


def test_independent_nodes_run_at_the_same_time_on_two_threads():
    sess = ortcore.InferenceSession(_two_branches().SerializeToString(), _options())
    y = sess.run(None, {"x": np.arange(4, dtype=np.float32)})[0]
    np.testing.assert_array_equal(y, 2 * np.arange(4, dtype=np.float32) + 2)
    # each Meet waits at a two-party barrier: had they run one after the other, the first would time out
    assert len(set(threads_seen.values())) == 2


def test_sequential_mode_uses_no_pool():
    sess = ortcore.InferenceSession(_two_branches().SerializeToString(), _options(ortcore.ExecutionMode.ORT_SEQUENTIAL))
    assert "result()" not in sess.plan.source


def test_an_error_in_a_node_on_the_pool_names_that_node():
    # the first node of a level goes to the pool; its exception surfaces where its result is taken
    sess = ortcore.InferenceSession(_two_branches("Explode", "Echo").SerializeToString(), _options())
    with pytest.raises(ortcore.Fail, match=r"node 'left' \(test.parallel::Explode\).*kernel failure on purpose"):
        sess.run(None, {"x": np.zeros(4, np.float32)})


def test_a_branchy_model_gives_the_sequential_results():
    path = str(light_model_path("inception_v1"))
    x = np.random.default_rng(0).random((1, 3, 224, 224), np.float32)
    sequential = ortcore.InferenceSession(path, _options(ortcore.ExecutionMode.ORT_SEQUENTIAL))
    parallel = ortcore.InferenceSession(path, _options())
    assert "result()" in parallel.plan.source
    feed = {sequential.get_inputs()[0].name: x}
    np.testing.assert_array_equal(parallel.run(None, feed)[0], sequential.run(None, feed)[0])
