"""Plugin discovery through real entry-point metadata of throwaway distributions."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from onnx import TensorProto, helper

import ortcore
from ortcore import plugin
from ortcore.testing import make_model, write_plugin_distribution

FAKE_PROVIDER = '''
import numpy as np
from ortcore.hookspecs import hookimpl
from ortcore.kernels import KernelRegistry
from ortcore.provider import ExecutionProvider

registry = KernelRegistry("FakeExecutionProvider")


class Box:
    """An array on the fake device: host code cannot use it without to_host."""
    def __init__(self, array):
        self.array = array


@registry.kernel("Add", since=7, until=100)
def add(a, b, /):
    return Box(a.array + b.array)


class FakeExecutionProvider(ExecutionProvider):
    name = "FakeExecutionProvider"

    def kernel_registry(self):
        return registry

    @property
    def device(self):
        return "fake:0"

    def from_host(self, array):
        return Box(np.asarray(array))

    def to_host(self, box):
        return box.array


class AbsentExecutionProvider(ExecutionProvider):
    name = "AbsentExecutionProvider"

    @classmethod
    def availability(cls):
        return False, "no absent device on this machine"

    def kernel_registry(self):
        return KernelRegistry()


@hookimpl
def ortcore_execution_providers():
    return [FakeExecutionProvider, AbsentExecutionProvider]
'''

BROKEN = "raise ImportError('the broken plugin needs a library that is not installed')\n"


@pytest.fixture
def fake_plugins(tmp_path, monkeypatch):
    write_plugin_distribution(tmp_path, "ortcore-fake", "0.3.1", "fake", "ortcore_fake_plugin",
                              {"ortcore_fake_plugin.py": FAKE_PROVIDER})
    write_plugin_distribution(tmp_path, "ortcore-broken", "9.9", "broken", "ortcore_broken_plugin",
                              {"ortcore_broken_plugin.py": BROKEN})
    monkeypatch.syspath_prepend(str(tmp_path))
    plugin._discover.cache_clear()
    yield tmp_path
    plugin._discover.cache_clear()
    for name in ("ortcore_fake_plugin", "ortcore_broken_plugin"):
        sys.modules.pop(name, None)


@pytest.fixture
def add_relu_bytes():
    return make_model(
        [helper.make_node("Add", ["x", "y"], ["s"], name="add"), helper.make_node("Relu", ["s"], ["out"], name="relu")],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 2]),
         helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 2])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [2, 2])],
    ).SerializeToString()


def test_third_party_provider_is_discovered_without_registration(fake_plugins):
    assert "FakeExecutionProvider" in ortcore.get_all_providers()
    assert "FakeExecutionProvider" in ortcore.get_available_providers()
    pm = ortcore.get_plugin_manager()
    info = pm.plugin_infos["fake"]
    assert (info.distribution, info.version, info.status) == ("ortcore-fake", "0.3.1", "loaded")
    assert ortcore.get_available_providers()[-1] == "CPUExecutionProvider"


def test_absent_device_is_listed_but_unavailable_with_reason(fake_plugins, add_relu_bytes):
    assert "AbsentExecutionProvider" in ortcore.get_all_providers()
    assert "AbsentExecutionProvider" not in ortcore.get_available_providers()
    with pytest.raises(ortcore.EPFail, match="no absent device on this machine"):
        ortcore.InferenceSession(add_relu_bytes, providers=["AbsentExecutionProvider"])


def test_plugin_failing_at_import_is_reported_and_cpu_still_runs(fake_plugins, add_relu_bytes, caplog):
    plugin._discover.cache_clear()
    with caplog.at_level("WARNING", logger="ortcore.plugin"):
        pm = ortcore.get_plugin_manager()
    broken = pm.plugin_infos["broken"]
    assert broken.status == "failed" and "needs a library that is not installed" in broken.error
    assert any("broken" in r.getMessage() for r in caplog.records)
    sess = ortcore.InferenceSession(add_relu_bytes, providers=["CPUExecutionProvider"])
    x = np.array([[1, -2], [3, -4]], np.float32)
    np.testing.assert_array_equal(sess.run(None, {"x": x, "y": x})[0], np.maximum(2 * x, 0))


def test_providers_command_shows_plugins_versions_availability_and_reasons(fake_plugins):
    env_path = str(fake_plugins)
    result = subprocess.run(
        [sys.executable, "-c", f"import sys; sys.path.insert(0, {env_path!r}); from ortcore.cli import main; main(['providers'])"],
        capture_output=True, text=True, check=True,
    )
    out = result.stdout
    assert "ortcore-fake" in out and "0.3.1" in out
    assert "broken" in out and "failed" in out and "needs a library that is not installed" in out
    assert "AbsentExecutionProvider" in out and "no absent device on this machine" in out
    assert "CPUExecutionProvider" in out


def test_unclaimed_nodes_fall_back_to_cpu_with_visible_transfers(fake_plugins, add_relu_bytes):
    sess = ortcore.InferenceSession(add_relu_bytes, providers=["FakeExecutionProvider"])
    assert sess.get_providers() == ["FakeExecutionProvider", "CPUExecutionProvider"]
    part = sess.get_partition()
    by_node = {a.node.name: a for a in part.assignments}
    assert by_node["add"].provider.name == "FakeExecutionProvider"
    assert by_node["relu"].provider.name == "CPUExecutionProvider"
    assert "no kernel for ai.onnx::Relu" in by_node["relu"].declined["FakeExecutionProvider"]
    moves = {(t.value, t.source, t.target) for t in part.transfers}
    assert moves == {("x", "cpu", "fake:0"), ("y", "cpu", "fake:0"), ("s", "fake:0", "cpu")}
    x = np.array([[1, -2], [3, -4]], np.float32)
    y = np.array([[0.5, 0.5], [-5, 5]], np.float32)
    np.testing.assert_array_equal(sess.run(None, {"x": x, "y": y})[0], np.maximum(x + y, 0))


def test_disabled_fallback_raises_listing_unclaimed_nodes(fake_plugins, add_relu_bytes):
    opts = ortcore.SessionOptions()
    opts.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
    with pytest.raises(ortcore.NotImplemented, match=r"'relu' \(Relu\).*FakeExecutionProvider: no kernel"):
        ortcore.InferenceSession(add_relu_bytes, opts, providers=["FakeExecutionProvider"])


def test_plugins_can_be_disabled_by_session_options_and_environment(fake_plugins, add_relu_bytes, monkeypatch):
    opts = ortcore.SessionOptions()
    opts.disabled_plugins = ["fake"]
    with pytest.raises(ortcore.EPFail, match="'FakeExecutionProvider' is not installed"):
        ortcore.InferenceSession(add_relu_bytes, opts, providers=["FakeExecutionProvider"])
    monkeypatch.setenv("ORTCORE_DISABLE_PLUGINS", "ortcore-fake")
    assert "FakeExecutionProvider" not in ortcore.get_all_providers()
    assert ortcore.get_plugin_manager().plugin_infos["fake"].status == "disabled"


def test_import_ortcore_is_light():
    code = "import sys, ortcore; print(any(m in sys.modules for m in ('onnx', 'ortcore.session', 'cupy', 'pyopencl')))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
