"""ComplementaryFilter against a per-sample loop of the textbook equations and closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ortcore_sensorfusion import COMPLEMENTARY_FILTER


def reference(accel, gyro, alpha, dt):
    """One sensor, one sample at a time, with scalar math."""
    alpha, dt = float(np.float32(alpha)), float(np.float32(dt))  # ONNX float attributes are 32-bit
    n, steps, _ = accel.shape
    out = np.zeros((n, steps, 2))
    for i in range(n):
        roll = pitch = 0.0
        for t in range(steps):
            ax, ay, az = (float(v) for v in accel[i, t])
            roll_acc = math.atan2(ay, az)
            pitch_acc = math.atan2(-ax, math.sqrt(ay * ay + az * az))
            if t == 0:
                roll, pitch = roll_acc, pitch_acc
            else:
                p, q, r = (float(v) for v in gyro[i, t])
                roll_dot = p + math.tan(pitch) * (q * math.sin(roll) + r * math.cos(roll))
                pitch_dot = q * math.cos(roll) - r * math.sin(roll)
                roll_pred = roll + dt * roll_dot
                pitch_pred = pitch + dt * pitch_dot
                # blend along the shorter way round the circle
                roll = math.remainder(roll_pred + (1 - alpha) * math.remainder(roll_acc - roll_pred, 2 * math.pi),
                                      2 * math.pi)
                pitch = alpha * pitch_pred + (1 - alpha) * pitch_acc
            out[i, t] = roll, pitch
    return out


@pytest.mark.parametrize("alpha,dt", [(0.98, 0.01), (0.5, 0.02), (1.0, 0.01), (0.0, 0.01)])
def test_matches_the_per_sample_loop(run_op, imu, alpha, dt):
    accel, gyro = imu
    got = run_op(COMPLEMENTARY_FILTER, {"accel": accel, "gyro": gyro}, alpha=alpha, sample_period=dt)
    np.testing.assert_allclose(got, reference(accel, gyro, alpha, dt), rtol=1e-9, atol=1e-9)


def test_float32_matches_the_loop_within_float32_precision(run_op, imu):
    accel, gyro = (a.astype(np.float32) for a in imu)
    got = run_op(COMPLEMENTARY_FILTER, {"accel": accel, "gyro": gyro})
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, reference(accel, gyro, 0.98, 0.01), atol=1e-5)


def test_a_stationary_tilted_sensor_reads_its_tilt_from_gravity(run_op):
    roll, pitch = np.array([0.3, -1.0, 2.5]), np.array([-0.2, 0.7, 0.1])
    g = np.stack([-np.sin(pitch), np.cos(pitch) * np.sin(roll), np.cos(pitch) * np.cos(roll)], -1) * 9.81
    accel = np.repeat(g[:, None], 40, axis=1)
    got = run_op(COMPLEMENTARY_FILTER, {"accel": accel, "gyro": np.zeros_like(accel)}, alpha=0.9)
    np.testing.assert_allclose(got[:, :, 0], np.repeat(roll[:, None], 40, 1), atol=1e-12)
    np.testing.assert_allclose(got[:, :, 1], np.repeat(pitch[:, None], 40, 1), atol=1e-12)


def test_alpha_one_integrates_the_gyro(run_op):
    """Level start, constant pitch rate, roll 0: pitch(t) = w * t * dt exactly."""
    steps, w, dt = 100, 0.5, 0.01
    accel = np.tile([0.0, 0.0, 9.81], (2, steps, 1))
    gyro = np.tile([0.0, w, 0.0], (2, steps, 1))
    got = run_op(COMPLEMENTARY_FILTER, {"accel": accel, "gyro": gyro}, alpha=1.0, sample_period=dt)
    np.testing.assert_allclose(got[..., 1], np.tile(np.arange(steps) * w * dt, (2, 1)), atol=1e-12)
    np.testing.assert_allclose(got[..., 0], 0.0, atol=1e-12)


def test_roll_near_upside_down_does_not_average_across_the_wrap(run_op):
    """Tilt readings jitter around +-pi; the estimate must stay near pi, not swing to 0."""
    roll = np.where(np.arange(50) % 2 == 0, np.pi - 0.01, -np.pi + 0.01)
    accel = np.stack([np.zeros(50), 9.81 * np.sin(roll), 9.81 * np.cos(roll)], -1)[None]
    got = run_op(COMPLEMENTARY_FILTER, {"accel": accel, "gyro": np.zeros_like(accel)}, alpha=0.5)
    assert np.all(np.abs(got[0, :, 0]) > np.pi - 0.02)
