"""The CPU provider as a plugin: discovery, availability, options."""

from __future__ import annotations

import os
import platform
import resource
import subprocess
import sys

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

import ortcore
from ortcore.demo import build_demo_model


def test_cpu_provider_is_discovered_through_its_entry_point():
    pm = ortcore.get_plugin_manager()
    providers = pm.providers()
    info = pm.plugin_infos["cpu"]
    assert info.distribution == "ortcore-cpu" and info.status == "loaded"
    assert info.providers == ["CPUExecutionProvider"]
    assert providers["CPUExecutionProvider"].fallback


def test_intra_op_num_threads_limits_blas_threads():
    blas = [i for i in threadpool_info() if i["user_api"] == "blas"]
    if not blas:
        return  # numpy without a threaded BLAS: nothing to limit
    with threadpool_limits(limits=None):  # restores the previous limits afterwards
        opts = ortcore.SessionOptions()
        opts.intra_op_num_threads = 1
        sess = ortcore.InferenceSession(build_demo_model().SerializeToString(), opts)
        assert all(i["num_threads"] == 1 for i in threadpool_info() if i["user_api"] == "blas")
        out = sess.run(None, {"image": np.zeros((1, 3, 32, 32), np.float32)})[0]
        np.testing.assert_allclose(out.sum(), 1.0, rtol=1e-5)


_ARENA_PROBE = """
import resource, sys

import numpy as np
import ortcore
from ortcore.demo import build_demo_model

opts = ortcore.SessionOptions()
opts.enable_cpu_mem_arena = sys.argv[1] == "on"
ortcore.InferenceSession(build_demo_model().SerializeToString(), opts)
np.ones(16 << 20, np.float32)  # 64 MiB, written, then freed
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
np.ones(16 << 20, np.float32)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the arena uses glibc's allocator settings")
def test_memory_arena_reuses_freed_buffers_without_page_faults():
    """With the arena (onnxruntime's default), a freed 64 MiB buffer is reused, not faulted in again."""

    def faults(mode: str) -> int:
        env = {**os.environ, "NUMPY_MADVISE_HUGEPAGE": "0"}  # count 4 KiB pages, not huge pages
        done = subprocess.run(
            [sys.executable, "-c", _ARENA_PROBE, mode], capture_output=True, text=True, check=True, env=env
        )
        return int(done.stdout.split()[-1])

    pages = (64 << 20) // resource.getpagesize()
    assert faults("off") > pages // 2  # the kernel maps and zero-fills it again
    assert faults("on") < pages // 50


_BROKEN_NUMBA_PROBE = """
import importlib.abc, importlib.machinery, logging, sys

class BrokenNumba(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path=None, target=None):
        if name == "numba":
            return importlib.machinery.ModuleSpec(name, self)
    def create_module(self, spec):
        raise ImportError("numba's LLVM library failed to load")
    def exec_module(self, module):
        pass

sys.meta_path.insert(0, BrokenNumba())
logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s %(message)s")
import numpy as np
import ortcore
from ortcore.demo import build_demo_model

opts = ortcore.SessionOptions()
opts.graph_optimization_level = ortcore.GraphOptimizationLevel.ORT_DISABLE_ALL  # keep BatchNormalization
sess = ortcore.InferenceSession(build_demo_model().SerializeToString(), opts)
out = sess.run(None, {"image": np.ones((1, 3, 32, 32), np.float32)})[0]
print("sum", out.sum())
"""


def test_a_numba_that_fails_to_import_leaves_the_numpy_kernels_running():
    """numba found but broken: a warning names the cause and the session runs on the numpy paths."""
    proc = subprocess.run(
        [sys.executable, "-c", _BROKEN_NUMBA_PROBE],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "ORTCORE_CPU_JIT": "1"},
    )
    assert proc.returncode == 0, proc.stderr
    assert "importing numba failed" in proc.stderr and "LLVM library failed to load" in proc.stderr
    assert abs(float(proc.stdout.split()[-1]) - 1.0) < 1e-5  # the demo ends in a Softmax


def test_compiled_loops_status_is_reported_and_can_be_switched_off(monkeypatch):
    import importlib.util

    from ortcore_cpu import jit

    cpu = ortcore.get_plugin_manager().providers()["CPUExecutionProvider"].cls()
    monkeypatch.setenv(jit.ENV, "0")
    assert jit.status() == (False, f"switched off by {jit.ENV}=0")
    assert "compiled loops off: switched off" in cpu.describe()
    assert jit.loop(test_compiled_loops_status_is_reported_and_can_be_switched_off) is None

    monkeypatch.delenv(jit.ENV)
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "numba" else real_find_spec(name, *a))
    jit._installed.cache_clear()
    try:
        on, why = jit.status()
        assert not on and "numba is not installed" in why and "ortcore-cpu[jit]" in why
    finally:
        monkeypatch.undo()
        jit._installed.cache_clear()
    if real_find_spec("numba") is not None:
        assert jit.status()[0] and "compiled loops on: numba" in cpu.describe()
