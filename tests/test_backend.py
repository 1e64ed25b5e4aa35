"""onnx's BackendTest drives ortcore.backend as it drives onnxruntime.

Every case of the installed onnx (node, simple, pytorch-converted,
pytorch-operator and the light models) runs on the CPU provider, compared with
onnx's stored or reference outputs at each case's own rtol/atol. Known
failures live in the CPU provider's expected_failures.txt, each with a reason,
and run as strict xfails.
"""

from __future__ import annotations

import os
import re
import unittest
from pathlib import Path

import numpy as np
import onnx.backend.test
import pytest
from onnx import TensorProto, helper

import ortcore.backend
from ortcore.testing import load_expected_failures

import ortcore_cpu

EXPECTED = {
    f"{name}_cpu": reason
    for name, reason in load_expected_failures(Path(ortcore_cpu.__file__).parent / "expected_failures.txt").items()
}
# Failures of onnx's runner itself, whatever the backend.
EXPECTED["test_loop16_seq_none_cpu"] = (
    "onnx's BackendTest runner recurses into a sequence output and calls len() on its 0-d first element; "
    "the same case passes in providers/cpu/tests/test_onnx_node_cases.py and in the conformance suite"
)
# Random by nature: onnx's expected values cannot match any other generator.
RANDOM = {"test_bernoulli_cpu", "test_bernoulli_double_cpu", "test_bernoulli_seed_cpu",
          "test_bernoulli_expanded_cpu", "test_bernoulli_double_expanded_cpu", "test_bernoulli_seed_expanded_cpu"}


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


def _collect():
    backend_test = onnx.backend.test.BackendTest(ortcore.backend, __name__)
    cpu = re.compile(r"_cpu$")
    tests = []
    for cls in backend_test.test_cases.values():  # unittest.TestCase classes, one per kind
        for name in unittest.defaultTestLoader.getTestCaseNames(cls):
            if cpu.search(name):
                tests.append((cls, name))
    return tests


CASES = _collect()


@pytest.mark.parametrize("cls,name", CASES, ids=[n for _, n in CASES])
def test_backend_case(cls, name, request):
    if name in RANDOM:
        pytest.skip("random by nature: onnx's stored outputs come from another generator")
    if name in EXPECTED:
        request.node.add_marker(pytest.mark.xfail(reason=EXPECTED[name], strict=True))
    result = unittest.TestResult()
    cls(name).run(result)
    problems = result.errors + result.failures
    assert not problems, problems[0][1][-3000:]
    assert not result.skipped, result.skipped


def test_every_kind_is_collected():
    kinds = {cls.__name__ for cls, _ in CASES}
    assert {"OnnxBackendNodeModelTest", "OnnxBackendRealModelTest", "OnnxBackendSimpleModelTest",
            "OnnxBackendPyTorchConvertedModelTest", "OnnxBackendPyTorchOperatorModelTest"} <= kinds
    names = {n for _, n in CASES}
    for model in ("resnet50", "densenet121", "vgg19", "bvlc_alexnet"):
        assert f"test_{model}_cpu" in names


def test_expected_failures_name_real_cases():
    names = {n for _, n in CASES}
    assert set(EXPECTED) <= names, sorted(set(EXPECTED) - names)


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
