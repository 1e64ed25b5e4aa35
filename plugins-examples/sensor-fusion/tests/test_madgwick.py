"""MadgwickIMU against a per-sample loop of the filter's scalar equations and closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ortcore_sensorfusion import MADGWICK_IMU


def reference(accel, gyro, q0, beta, dt):
    """One sensor, one sample at a time: quaternion product and J' f written out by hand."""
    beta, dt = float(np.float32(beta)), float(np.float32(dt))  # ONNX float attributes are 32-bit
    n, steps, _ = accel.shape
    out = np.zeros((n, steps, 4))
    for i in range(n):
        w, x, y, z = (float(v) for v in q0[i])
        norm = math.sqrt(w * w + x * x + y * y + z * z)
        w, x, y, z = w / norm, x / norm, y / norm, z / norm
        for t in range(steps):
            gx, gy, gz = (float(v) for v in gyro[i, t])
            dw = 0.5 * (-x * gx - y * gy - z * gz)
            dx = 0.5 * (w * gx + y * gz - z * gy)
            dy = 0.5 * (w * gy - x * gz + z * gx)
            dz = 0.5 * (w * gz + x * gy - y * gx)
            ax, ay, az = (float(v) for v in accel[i, t])
            a_norm = math.sqrt(ax * ax + ay * ay + az * az)
            if a_norm > 0:
                ax, ay, az = ax / a_norm, ay / a_norm, az / a_norm
                f1 = 2 * (x * z - w * y) - ax
                f2 = 2 * (w * x + y * z) - ay
                f3 = 2 * (0.5 - x * x - y * y) - az
                s0 = -2 * y * f1 + 2 * x * f2
                s1 = 2 * z * f1 + 2 * w * f2 - 4 * x * f3
                s2 = -2 * w * f1 + 2 * z * f2 - 4 * y * f3
                s3 = 2 * x * f1 + 2 * y * f2
                s_norm = math.sqrt(s0 * s0 + s1 * s1 + s2 * s2 + s3 * s3)
                if s_norm > 0:
                    dw, dx, dy, dz = (dw - beta * s0 / s_norm, dx - beta * s1 / s_norm,
                                      dy - beta * s2 / s_norm, dz - beta * s3 / s_norm)
            w, x, y, z = w + dw * dt, x + dx * dt, y + dy * dt, z + dz * dt
            norm = math.sqrt(w * w + x * x + y * y + z * z)
            w, x, y, z = w / norm, x / norm, y / norm, z / norm
            out[i, t] = w, x, y, z
    return out


def roll_pitch(q):
    w, x, y, z = np.moveaxis(q, -1, 0)
    return np.arctan2(2 * (w * x + y * z), 1 - 2 * (x * x + y * y)), np.arcsin(np.clip(2 * (w * y - z * x), -1, 1))


def test_matches_the_per_sample_loop(run_op, imu):
    accel, gyro = imu
    q0 = np.random.default_rng(3).normal(size=(4, 4))
    got = run_op(MADGWICK_IMU, {"accel": accel, "gyro": gyro, "initial_orientation": q0}, beta=0.05)
    np.testing.assert_allclose(got, reference(accel, gyro, q0, 0.05, 0.01), rtol=1e-7, atol=1e-8)


def test_identity_start_float32_and_dropped_accelerometer_samples(run_op, imu):
    accel, gyro = (a.astype(np.float32) for a in imu)
    accel[1, 50:80] = 0.0  # no accelerometer reading: gyro only
    got = run_op(MADGWICK_IMU, {"accel": accel, "gyro": gyro})
    assert got.dtype == np.float32
    want = reference(accel.astype(np.float64), gyro.astype(np.float64), np.tile([1.0, 0, 0, 0], (4, 1)), 0.1, 0.01)
    np.testing.assert_allclose(got, want, atol=2e-5)
    np.testing.assert_allclose(np.linalg.norm(got, axis=-1), 1.0, atol=1e-6)


def test_a_stationary_tilted_sensor_converges_to_its_tilt(run_op):
    roll, pitch = np.array([0.5, -0.8]), np.array([0.3, -0.4])
    g = np.stack([-np.sin(pitch), np.cos(pitch) * np.sin(roll), np.cos(pitch) * np.cos(roll)], -1)
    accel = np.repeat(g[:, None], 3000, axis=1)
    got = run_op(MADGWICK_IMU, {"accel": accel, "gyro": np.zeros_like(accel)}, beta=0.05)
    est_roll, est_pitch = roll_pitch(got[:, -1])
    # a normalized gradient step chatters around the optimum by about beta * dt
    np.testing.assert_allclose(est_roll, roll, atol=2e-3)
    np.testing.assert_allclose(est_pitch, pitch, atol=2e-3)


def test_pure_yaw_rotation_without_accelerometer_integrates_the_gyro(run_op):
    """Accel zero, gyro (0, 0, w): q(t) = (cos(w t / 2), 0, 0, sin(w t / 2)) up to integration error."""
    steps, w, dt = 500, 1.2, 0.002
    gyro = np.tile([0.0, 0.0, w], (1, steps, 1))
    got = run_op(MADGWICK_IMU, {"accel": np.zeros_like(gyro), "gyro": gyro}, sample_period=dt)
    angle = w * dt * np.arange(1, steps + 1)
    want = np.stack([np.cos(angle / 2), 0 * angle, 0 * angle, np.sin(angle / 2)], -1)[None]
    np.testing.assert_allclose(got, want, atol=1e-4)


def test_a_wrong_initial_orientation_shape_names_the_input(run_op):
    import ortcore

    x = np.zeros((2, 10, 3))
    with pytest.raises(ortcore.InvalidArgument, match=r"MadgwickIMU node 'fusion': input 'initial_orientation' "
                                                      r"dimension 1 must be 4 .* got shape \(2, 3\)"):
        run_op(MADGWICK_IMU, {"accel": x, "gyro": x, "initial_orientation": np.zeros((2, 3))})
