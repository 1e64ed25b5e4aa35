"""The compiled-provider path: a provider compiles groups of its nodes into one plan step.

A throwaway provider fuses the node groups named in its provider options into
one step that evaluates the group's nodes itself and counts its calls; the
core must run each group once per run, keep the results equal to the unfused
run, show the grouping in the partition, and reject groups that would hide a
value another node reads.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import ortcore
from ortcore.errors import InvalidGraph
from ortcore.partition import FusedGroup
from ortcore.testing import make_model

registry = ortcore.KernelRegistry("fusing")
_NUMPY = {"Add": np.add, "Mul": np.multiply, "Relu": lambda x: np.maximum(x, 0)}


@registry.kernel("Add", since=7, until=100)
def add(a, b, /):
    return a + b


@registry.kernel("Mul", since=7, until=100)
def mul(a, b, /):
    return a * b


@registry.kernel("Relu", since=6, until=100)
def relu(x, /):
    return np.maximum(x, 0)


class FusingExecutionProvider(ortcore.ExecutionProvider):
    name = "FusingExecutionProvider"
    calls: list[str] = []

    def kernel_registry(self):
        return registry

    def fuse(self, assignments, graph, types, constants):
        by_name = {a.node.name: a.node for a in assignments}
        groups = []
        for names, outputs in self.options.get("groups", []):
            nodes = [by_name[n] for n in names]
            produced = {o for n in nodes for o in n.outputs}
            inputs = sorted({i for n in nodes for i in n.inputs if i not in produced})
            groups.append(FusedGroup(f"group_{'_'.join(names)}", nodes, inputs, list(outputs),
                                     self._evaluator(nodes, inputs, outputs, constants)))
        return groups

    def _evaluator(self, nodes, inputs, outputs, constants):
        calls = self.calls

        def run(*args):
            env = dict(constants)
            env.update(zip(inputs, args))
            for node in nodes:
                env[node.outputs[0]] = _NUMPY[node.op_type](*(env[i] for i in node.inputs))
            calls.append("group")
            return env[outputs[0]] if len(outputs) == 1 else tuple(env[o] for o in outputs)

        return run


class _Plugin:
    @ortcore.hookimpl
    def ortcore_execution_providers(self):
        return [FusingExecutionProvider]


@pytest.fixture(autouse=True)
def fusing_provider():
    ortcore.register_plugin(_Plugin(), "fusing")
    FusingExecutionProvider.calls.clear()
    yield
    ortcore.unregister_plugin("fusing")


def _chain_model(extra_output: str | None = None):
    """s = x + b; t = Relu(s); y = t * x; z = Relu(y)."""
    b = onnx.numpy_helper.from_array(np.array([0.5, -1.0, 2.0], np.float32), "b")
    nodes = [
        helper.make_node("Add", ["x", "b"], ["s"], name="a"),
        helper.make_node("Relu", ["s"], ["t"], name="r"),
        helper.make_node("Mul", ["t", "x"], ["y"], name="m"),
        helper.make_node("Relu", ["y"], ["z"], name="r2"),
    ]
    outputs = [helper.make_tensor_value_info("z", TensorProto.FLOAT, [2, 3])]
    if extra_output:
        outputs.append(helper.make_tensor_value_info(extra_output, TensorProto.FLOAT, [2, 3]))
    return make_model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])], outputs, [b])


def _session(model, groups):
    options = ortcore.SessionOptions()
    options.graph_optimization_level = ortcore.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ortcore.InferenceSession(
        model.SerializeToString(), options, providers=[("FusingExecutionProvider", {"groups": groups})],
    )


X = np.array([[1.0, -2.0, 3.0], [-0.5, 4.0, -1.0]], np.float32)


def _expected(x):
    return np.maximum(np.maximum(x + np.array([0.5, -1.0, 2.0], np.float32), 0) * x, 0)


def test_a_group_runs_as_one_step_with_the_unfused_result():
    sess = _session(_chain_model(), [(["a", "r", "m"], ["y"])])
    for _ in range(3):
        np.testing.assert_allclose(sess.run(None, {"x": X})[0], _expected(X), rtol=1e-6)
    assert FusingExecutionProvider.calls == ["group"] * 3
    part = sess.get_partition()
    assert [a.group for a in part.assignments] == ["group_a_r_m"] * 3 + [None]
    assert part.as_dict()["nodes"][0]["fused_into"] == "group_a_r_m"
    assert "[group_a_r_m]" in part.table() and "1 fused groups" in part.table()
    unfused = _session(_chain_model(), [])
    np.testing.assert_array_equal(unfused.run(None, {"x": X})[0], sess.run(None, {"x": X})[0])


def test_a_group_can_export_a_graph_output_and_a_value_read_later():
    sess = _session(_chain_model("s"), [(["a", "r", "m"], ["y", "s"])])
    z, s = sess.run(None, {"x": X})
    np.testing.assert_allclose(z, _expected(X), rtol=1e-6)
    np.testing.assert_allclose(s, X + np.array([0.5, -1.0, 2.0], np.float32), rtol=1e-6)


def test_a_group_that_hides_a_value_another_node_reads_is_rejected():
    with pytest.raises(InvalidGraph, match=r"group_a_r.*reads 't'"):
        _session(_chain_model(), [(["a", "r"], ["s"])])


def test_a_group_that_hides_a_graph_output_is_rejected():
    with pytest.raises(InvalidGraph, match=r"hides graph output.*'s'"):
        _session(_chain_model("s"), [(["a", "r", "m"], ["y"])])


def test_a_group_output_read_before_the_group_ends_is_rejected():
    # the group {a, m} runs where m runs, but r (between them) reads s
    with pytest.raises(InvalidGraph, match=r"reads 's'"):
        _session(_chain_model(), [(["a", "m"], ["y", "s"])])


def test_a_group_with_outputs_its_nodes_do_not_make_is_rejected():
    with pytest.raises(InvalidGraph, match=r"not produced by its nodes"):
        _session(_chain_model(), [(["a", "r", "m"], ["nope"])])


def test_a_group_shows_in_the_profile():
    options = ortcore.SessionOptions()
    options.enable_profiling = True
    options.graph_optimization_level = ortcore.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ortcore.InferenceSession(
        _chain_model().SerializeToString(), options,
        providers=[("FusingExecutionProvider", {"groups": [(["a", "r", "m"], ["y"])]})],
    )
    sess.run(None, {"x": X})
    assert [op for op, _, _ in sess.profiler.summary()].count("FusedGroup") == 1
