"""The OpenCL ComplementaryFilter kernel against the CPU kernel (run on PoCL in CI)."""

from __future__ import annotations

import numpy as np
import pytest

import ortcore
from ortcore_sensorfusion import COMPLEMENTARY_FILTER

OPENCL = "OpenCLExecutionProvider"
pytestmark = pytest.mark.skipif(OPENCL not in ortcore.get_available_providers(),
                                reason="no usable OpenCL provider here")


def _session(model):
    opts = ortcore.SessionOptions()
    opts.disable_fallback = True  # the node must run on the OpenCL device
    # one node, nothing to fuse: the provider's elementwise fusion stays out of this test
    return ortcore.InferenceSession(model.SerializeToString(), opts, providers=[(OPENCL, {"fuse_elementwise": False})])


@pytest.mark.parametrize("dtype,atol", [(np.float32, 2e-4), (np.float64, 1e-10)])
def test_opencl_kernel_matches_the_cpu_kernel(imu, dtype, atol):
    from ortcore.custom_ops import make_model

    accel, gyro = (a.astype(dtype) for a in imu)
    accel[2, 40:] *= -1  # an upside-down stretch: roll crosses +-pi
    node = COMPLEMENTARY_FILTER.make_node(["accel", "gyro"], ["angles"], alpha=0.95, sample_period=0.01)
    model = make_model([node], [("accel", dtype, ["N", "T", 3]), ("gyro", dtype, ["N", "T", 3])],
                       [("angles", dtype, None)])
    sess = _session(model)
    assert [a.provider.name for a in sess.get_partition().assignments] == [OPENCL]
    (got,) = sess.run(None, {"accel": accel, "gyro": gyro})
    cpu = ortcore.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (want,) = cpu.run(None, {"accel": accel, "gyro": gyro})
    assert got.dtype == dtype and got.shape == want.shape == (4, 300, 2)
    diff = np.abs(np.angle(np.exp(1j * (got.astype(np.float64) - want))))  # angles compare modulo 2 pi
    assert diff.max() < atol, diff.max()


def test_opencl_kernel_on_a_stationary_sensor_and_an_empty_batch():
    from ortcore.custom_ops import make_model

    roll, pitch = 0.3, -0.2
    g = np.array([-np.sin(pitch), np.cos(pitch) * np.sin(roll), np.cos(pitch) * np.cos(roll)], np.float32)
    node = COMPLEMENTARY_FILTER.make_node(["accel", "gyro"], ["angles"])
    model = make_model([node], [("accel", np.float32, ["N", "T", 3]), ("gyro", np.float32, ["N", "T", 3])],
                       [("angles", np.float32, None)])
    sess = _session(model)
    accel = np.tile(g * 9.81, (3, 25, 1))
    (got,) = sess.run(None, {"accel": accel, "gyro": np.zeros_like(accel)})
    np.testing.assert_allclose(got[..., 0], roll, atol=1e-6)
    np.testing.assert_allclose(got[..., 1], pitch, atol=1e-6)
    (empty,) = sess.run(None, {"accel": accel[:0], "gyro": accel[:0]})
    assert empty.shape == (0, 25, 2)
