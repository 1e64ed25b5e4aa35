"""The CPU provider as a plugin: discovery, availability, options."""

from __future__ import annotations

import numpy as np
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
