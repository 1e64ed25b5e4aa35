"""InverseVarianceFusion (a variadic op) against a per-element loop and closed forms."""

from __future__ import annotations

import numpy as np
import pytest

import ortcore
from ortcore_sensorfusion import INVERSE_VARIANCE_FUSION


def build_and_run(readings, variances):
    from ortcore.custom_ops import make_model

    names = [f"t{i}" for i in range(len(readings))]
    node = INVERSE_VARIANCE_FUSION.make_node(names, ["fused", "variance"], name="fusion", variances=variances)
    model = make_model([node], [(n, r.dtype, r.shape) for n, r in zip(names, readings)], ["fused", "variance"])
    sess = ortcore.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, dict(zip(names, readings)))


def test_matches_a_per_element_loop_with_failed_sensors():
    rng = np.random.default_rng(0)
    variances = [0.25, 1.0, 4.0]
    readings = [rng.normal(40.0, 1.0, (3, 20)) for _ in variances]
    readings[0][1, 5:9] = np.nan     # a thermocouple fails for a while
    readings[1][2, :] = np.nan
    for r in readings:
        r[0, 3] = np.nan               # nobody reads here
    fused, variance = build_and_run(readings, variances)
    for i in range(3):
        for t in range(20):
            num = den = 0.0
            for r, v in zip(readings, variances):
                if not np.isnan(r[i, t]):
                    num += r[i, t] / v
                    den += 1.0 / v
            if den == 0:
                assert np.isnan(fused[i, t]) and np.isnan(variance[i, t])
            else:
                assert fused[i, t] == pytest.approx(num / den, rel=1e-12)
                assert variance[i, t] == pytest.approx(1.0 / den, rel=1e-12)


def test_equal_variances_give_the_mean_and_variance_over_k():
    readings = [np.full((4,), v, np.float32) for v in (20.0, 21.0, 22.0, 25.0)]
    fused, variance = build_and_run(readings, [2.0] * 4)
    assert fused.dtype == np.float32
    np.testing.assert_allclose(fused, 22.0)
    np.testing.assert_allclose(variance, 0.5)


def test_one_variance_per_reading_is_checked_at_session_creation():
    readings = [np.zeros((2, 3)), np.zeros((2, 3))]
    with pytest.raises(ortcore.InvalidArgument, match=r"attribute 'variances' must have one entry per reading \(2\), got 3"):
        build_and_run(readings, [1.0, 2.0, 3.0])
    with pytest.raises(ortcore.InvalidArgument, match=r"input 'readings' #1 dimension 1 is 4 but d1 is 3"):
        build_and_run([np.zeros((2, 3)), np.zeros((2, 4))], [1.0, 2.0])
    with pytest.raises(ortcore.InvalidArgument, match=r"must all be > 0"):
        build_and_run(readings, [1.0, 0.0])
