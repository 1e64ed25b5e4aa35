"""The onnx light model zoo entirely on OpenCL, against the CPU provider.

Each model runs as a copy with seeded random weights (the shipped weights are
constants, see TESTING.md), optimized as a user's session would be, with
``disable_fallback`` so that any node the OpenCL provider does not claim
fails the test instead of quietly running on the CPU.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest

import ortcore
from ortcore.testing import LIGHT_MODELS, light_model_path, randomize_light_model

OCL = "OpenCLExecutionProvider"


@pytest.mark.parametrize("name", LIGHT_MODELS)
def test_light_model_runs_wholly_on_opencl_and_matches_cpu(name):
    data = randomize_light_model(onnx.load(light_model_path(name)), seed=7).SerializeToString()
    options = ortcore.SessionOptions()
    options.disable_fallback = True
    sess = ortcore.InferenceSession(data, options, providers=[OCL])
    partition = sess.get_partition()
    assert set(partition.counts()) == {OCL}, partition.table()
    # only the session's own input and output cross the host boundary
    assert len(partition.transfers) == len(sess.get_inputs()) + len(sess.get_outputs()), partition.table()
    cpu = ortcore.InferenceSession(data, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(11)
    feeds = {
        i.name: rng.standard_normal([d if isinstance(d, int) else 1 for d in i.shape]).astype(np.float32)
        for i in cpu.get_inputs()
    }
    expected = cpu.run(None, feeds)
    actual = sess.run(None, feeds)
    for e, a in zip(expected, actual):
        assert a.dtype == e.dtype and a.shape == e.shape
        np.testing.assert_allclose(a, e, rtol=1e-3, atol=1e-4)
    assert np.ptp(expected[0]) > 1e-3  # random weights: the classes differ
