"""TemplateExecutionProvider: discovery, availability, transfers, kernels, and a kernels-only plugin."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import ortcore
from ortcore.testing import write_plugin_distribution
from ortcore_provider_template import DeviceArray, TemplateExecutionProvider

NAME = "TemplateExecutionProvider"


def python(code: str, path: str | None = None, **env: str) -> subprocess.CompletedProcess:
    environ = {**os.environ, **env}
    if path:
        environ["PYTHONPATH"] = os.pathsep.join([path, environ.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          env=environ, timeout=120)


def mlp(with_sigmoid: bool = False):
    rng = np.random.default_rng(0)
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["h"]),
        helper.make_node("Add", ["h", "b"], ["a"]),
        helper.make_node("Relu", ["a"], ["r"]),
        helper.make_node("Sigmoid" if with_sigmoid else "Tanh", ["r"], ["s"]),  # Tanh: not a template op
        helper.make_node("Transpose", ["s"], ["t"], perm=[1, 0]),
        helper.make_node("Softmax", ["t"], ["y"], axis=0),
    ]
    graph = helper.make_graph(
        nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [5, "N"])],
        [numpy_helper.from_array(rng.normal(size=(8, 5)).astype(np.float32), "w"),
         numpy_helper.from_array(rng.normal(size=5).astype(np.float32), "b")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def expected(model, x):
    return ortcore.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})


def test_found_through_its_entry_point_and_available():
    info = ortcore.get_plugin_manager().providers()[NAME]
    assert info.plugin.distribution == "ortcore-provider-template" and info.available
    assert NAME in ortcore.get_available_providers()


def test_an_absent_device_is_unavailable_with_the_reason(tmp_path):
    (tmp_path / "mlp.onnx").write_bytes(mlp().SerializeToString())
    result = python(f"""
        import ortcore
        info = ortcore.get_plugin_manager().providers()["TemplateExecutionProvider"]
        print(info.available, "|", info.reason)
        try:
            ortcore.InferenceSession({str(tmp_path / "mlp.onnx")!r}, providers=["TemplateExecutionProvider"])
        except ortcore.EPFail as exc:
            print(exc)
    """, ORTCORE_TEMPLATE_DEVICE="absent")
    first, second = result.stdout.splitlines()
    assert first == "False | no template device: ORTCORE_TEMPLATE_DEVICE=absent marks it as missing"
    assert "'TemplateExecutionProvider' is unavailable: no template device" in second


def test_runs_its_ops_on_the_device_and_falls_back_for_the_rest():
    model = mlp()
    x = np.random.default_rng(1).normal(size=(3, 8)).astype(np.float32)
    # default optimization: MatMul+Add is not turned into Gemm, which this provider lacks
    sess = ortcore.InferenceSession(model.SerializeToString(), providers=[NAME, "CPUExecutionProvider"])
    (y,) = sess.run(None, {"x": x})
    np.testing.assert_allclose(y, expected(model, x)[0], rtol=1e-5, atol=1e-6)
    part = sess.get_partition()
    where = {a.node.op_type: a.provider.name for a in part.assignments}
    assert where == {"MatMul": NAME, "Add": NAME, "Relu": NAME, "Tanh": "CPUExecutionProvider",
                     "Transpose": NAME, "Softmax": NAME}
    moves = {(t.value, t.source, t.target) for t in part.transfers}
    assert moves == {("x", "cpu", "template:0"), ("r", "template:0", "cpu"), ("s", "cpu", "template:0"),
                     ("y", "template:0", "cpu")}


def test_arrays_live_on_the_device_between_nodes():
    provider = TemplateExecutionProvider({}, [])
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    on_device = provider.from_host(x)
    assert isinstance(on_device, DeviceArray) and not isinstance(on_device, np.ndarray)
    x[0, 0] = 100  # the device holds its own copy
    back = provider.to_host(on_device)
    assert back[0, 0] == 0 and back.dtype == np.float32 and back.shape == (2, 3)
    assert provider.claim("", "Add", 14, [np.dtype(np.float32)] * 2).op_type == "Add"
    assert "kernel supports" in provider.claim("", "Add", 14, [np.dtype(np.bool_)] * 2)
    assert provider.claim("", "Softmax", 11, [np.dtype(np.float32)]) == (
        "no kernel for ai.onnx::Softmax opset 11 (kernels cover opsets 13+)")


SIGMOID_PLUGIN = '''
import numpy as np
from ortcore.hookspecs import hookimpl
from ortcore.kernels import KernelRegistry
from ortcore_provider_template import DeviceArray

registry = KernelRegistry("template sigmoid")


@registry.kernel("Sigmoid", since=13, dtypes=(np.float32,))
def sigmoid(x, /):
    return DeviceArray((1 / (1 + np.exp(-x.data))).astype(x.dtype))


@hookimpl
def ortcore_kernels(provider):
    return registry if provider == "TemplateExecutionProvider" else None
'''


def test_a_kernels_only_plugin_adds_an_op_to_the_provider(tmp_path):
    """A separate distribution contributes Sigmoid to the template provider, changing nothing else."""
    write_plugin_distribution(tmp_path, "template-sigmoid", "0.1", "template_sigmoid", "template_sigmoid",
                              {"template_sigmoid/__init__.py": SIGMOID_PLUGIN})
    model_path = tmp_path / "mlp.onnx"
    model_path.write_bytes(mlp(with_sigmoid=True).SerializeToString())
    code = f"""
        import json, numpy as np, ortcore
        sess = ortcore.InferenceSession({str(model_path)!r}, providers=["TemplateExecutionProvider", "CPUExecutionProvider"])
        x = np.random.default_rng(1).normal(size=(3, 8)).astype(np.float32)
        (y,) = sess.run(None, {{"x": x}})
        where = {{a.node.op_type: a.provider.name for a in sess.get_partition().assignments}}
        print(json.dumps([where["Sigmoid"], y.tolist()]))
    """
    with_plugin = json.loads(python(code, str(tmp_path)).stdout)
    without = json.loads(python(code).stdout)
    assert with_plugin[0] == NAME and without[0] == "CPUExecutionProvider"
    np.testing.assert_allclose(with_plugin[1], without[1], rtol=1e-6)


@pytest.mark.parametrize("op,inputs,attrs", [
    ("Add", [np.array([250, 7], np.uint8), np.array([10, 1], np.uint8)], {}),
    ("Mul", [np.arange(6, dtype=np.int64).reshape(2, 3), np.array([3], np.int64)], {}),
    ("MatMul", [np.ones((2, 3, 4), np.float64), np.ones((4, 5), np.float64)], {}),
    ("Softmax", [np.array([[1.0, 2.0, 3.0]], np.float16)], {"axis": 1}),
    ("Transpose", [np.array([["a", "b"]], dtype=object)], {}),
])
def test_single_ops_match_the_cpu_provider(op, inputs, attrs):
    from ortcore.testing import compare_outputs, single_node_model

    model = single_node_model(op, {f"x{i}": v for i, v in enumerate(inputs)}, [inputs[0].dtype], opset=17, **attrs)
    feeds = {f"x{i}": v for i, v in enumerate(inputs)}
    opts = ortcore.SessionOptions()
    opts.disable_fallback = True
    (got,) = ortcore.InferenceSession(model.SerializeToString(), opts, providers=[NAME]).run(None, feeds)
    (want,) = ortcore.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)
    compare_outputs(want, got, name=op)
