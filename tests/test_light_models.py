"""The onnx package's light model zoo on the CPU provider, against onnxruntime.

The shipped models' weights are constants (see TESTING.md), so each model is
run as a copy with seeded random weights; onnxruntime runs the same copy on
the same random input. The optimized graph ortcore saves
(``optimized_model_filepath``, with its com.microsoft fused ops) must load and
give the same outputs in onnxruntime too.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime
import pytest

import ortcore
from ortcore.testing import LIGHT_MODELS, light_model_path, randomize_light_model


@pytest.mark.parametrize("compiled_loops", ["on", "off"])
@pytest.mark.parametrize("name", LIGHT_MODELS)
def test_light_model_matches_onnxruntime(name, compiled_loops, tmp_path, monkeypatch):
    """With the CPU provider's compiled loops (where numba is installed) and on its numpy paths alone."""
    monkeypatch.setenv("ORTCORE_CPU_JIT", "1" if compiled_loops == "on" else "0")
    model = randomize_light_model(onnx.load(light_model_path(name)), seed=7)
    data = model.SerializeToString()
    opts = ortcore.SessionOptions()
    opts.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    sess = ortcore.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
    ref = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
    assert set(sess.get_partition().counts()) == {"CPUExecutionProvider"}
    rng = np.random.default_rng(11)
    feeds = {
        i.name: rng.standard_normal([d if isinstance(d, int) else 1 for d in i.shape]).astype(np.float32)
        for i in ref.get_inputs()
    }
    expected = ref.run(None, feeds)
    saved = onnxruntime.InferenceSession(opts.optimized_model_filepath, providers=["CPUExecutionProvider"])
    for actual in (sess.run(None, feeds), saved.run(None, feeds)):
        for e, a in zip(expected, actual):
            assert a.dtype == e.dtype and a.shape == e.shape
            np.testing.assert_allclose(a, e, rtol=1e-3, atol=1e-5)
    # the randomized weights make outputs differ between classes; a uniform answer would hide bugs
    assert np.ptp(expected[0]) > 1e-3
