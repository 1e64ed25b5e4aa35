"""onnx's BackendTest drives ortcore.backend through the light-model cases, as for onnxruntime."""

from __future__ import annotations

import os
import re
import unittest

import numpy as np
import onnx
import onnx.backend.test
import pytest
from onnx import TensorProto, helper

import ortcore.backend
from ortcore.testing import LIGHT_MODELS


@pytest.fixture(scope="module", autouse=True)
def _onnx_home(tmp_path_factory):
    # BackendTest writes generated inputs under ONNX_HOME; keep them out of the user's home.
    old = os.environ.get("ONNX_HOME")
    os.environ["ONNX_HOME"] = str(tmp_path_factory.mktemp("onnx_home"))
    yield
    if old is None:
        os.environ.pop("ONNX_HOME", None)
    else:
        os.environ["ONNX_HOME"] = old


def _light_cases():
    backend_test = onnx.backend.test.BackendTest(ortcore.backend, __name__)
    pattern = "|".join(LIGHT_MODELS)
    wanted = re.compile(rf"^test_({pattern})_cpu$")
    backend_test.include(wanted.pattern)
    tests = []
    for cls in backend_test.test_cases.values():  # unittest.TestCase classes
        for name in unittest.defaultTestLoader.getTestCaseNames(cls):
            if wanted.match(name):
                tests.append((cls, name))
    return tests


LIGHT_CASES = _light_cases()


@pytest.mark.parametrize("cls,name", LIGHT_CASES, ids=[n for _, n in LIGHT_CASES])
def test_backend_light_model(cls, name):
    result = unittest.TestResult()
    cls(name).run(result)
    problems = result.errors + result.failures
    assert not problems, problems[0][1]
    assert not result.skipped, result.skipped


def test_all_light_models_are_collected():
    assert len(LIGHT_CASES) == len(LIGHT_MODELS)


def test_run_node_and_supports_device():
    node = helper.make_node("Relu", ["x"], ["y"])
    x = np.array([-1.0, 2.0], np.float32)
    (y,) = ortcore.backend.run_node(node, [x])
    np.testing.assert_array_equal(y, [0.0, 2.0])
    assert ortcore.backend.supports_device("CPU")
    assert not ortcore.backend.supports_device("FPGA")


def test_prepare_and_run_model():
    graph = helper.make_graph(
        [helper.make_node("Neg", ["x"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    rep = ortcore.backend.prepare(model)
    np.testing.assert_array_equal(rep.run([np.array([1.0, -1.0], np.float32)])[0], [-1.0, 1.0])
    np.testing.assert_array_equal(ortcore.backend.run_model(model, [np.array([3.0, 0.0], np.float32)])[0], [-3.0, -0.0])
