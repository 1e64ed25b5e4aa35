"""numpy kernels of the sensor-fusion ops, for CPUExecutionProvider.

Each kernel loops over time (the filters are recursive) and is vectorized over
the batch of sensors. The arithmetic runs in float64 and the outputs take the
inputs' dtype.
"""

from __future__ import annotations

import numpy as np

from ortcore.kernels import KernelRegistry
from ortcore_sensorfusion.schemas import (
    COMPLEMENTARY_FILTER,
    INVERSE_VARIANCE_FUSION,
    KALMAN_FILTER,
    MADGWICK_IMU,
)

registry = KernelRegistry("ortcore-sensorfusion (CPUExecutionProvider)")
FLOAT_TYPES = (np.float32, np.float64)


def tilt(accel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Roll and pitch of the gravity vector an accelerometer at rest measures."""
    ax, ay, az = accel[..., 0], accel[..., 1], accel[..., 2]
    return np.arctan2(ay, az), np.arctan2(-ax, np.hypot(ay, az))


def _wrap(angle: np.ndarray) -> np.ndarray:
    return (angle + np.pi) % (2 * np.pi) - np.pi


@COMPLEMENTARY_FILTER.kernel(registry, dtypes=FLOAT_TYPES)
def complementary_filter(accel, gyro, /, *, alpha=0.98, sample_period=0.01):
    """ai.ortcore.sensorfusion::ComplementaryFilter-1."""
    g = gyro.astype(np.float64)
    roll_acc, pitch_acc = tilt(accel.astype(np.float64))
    n, steps = accel.shape[:2]
    out = np.empty((n, steps, 2))
    if steps == 0:
        return out.astype(accel.dtype)
    roll, pitch = roll_acc[:, 0], pitch_acc[:, 0]
    out[:, 0, 0], out[:, 0, 1] = roll, pitch
    for t in range(1, steps):
        gx, gy, gz = g[:, t, 0], g[:, t, 1], g[:, t, 2]
        sr, cr = np.sin(roll), np.cos(roll)
        # Euler-angle kinematics: body rates -> roll and pitch rates
        roll_pred = roll + (gx + (sr * gy + cr * gz) * np.tan(pitch)) * sample_period
        pitch_pred = pitch + (cr * gy - sr * gz) * sample_period
        roll = _wrap(roll_pred + (1.0 - alpha) * _wrap(roll_acc[:, t] - roll_pred))
        pitch = pitch_pred + (1.0 - alpha) * (pitch_acc[:, t] - pitch_pred)
        out[:, t, 0], out[:, t, 1] = roll, pitch
    return out.astype(accel.dtype)


@KALMAN_FILTER.kernel(registry, dtypes=FLOAT_TYPES)
def kalman_filter(z, f, h, q, r, x0=None, p0=None, /, *, initial_variance=1.0):
    """ai.ortcore.sensorfusion::KalmanFilter-1 (Joseph-form covariance update)."""
    dtype = z.dtype
    z = z.astype(np.float64)
    f, h, q, r = (a.astype(np.float64) for a in (f, h, q, r))
    n_sensors, steps, _ = z.shape
    n = f.shape[0]
    eye = np.eye(n)
    x = np.zeros((n_sensors, n)) if x0 is None else x0.astype(np.float64).copy()
    p = np.broadcast_to(initial_variance * eye, (n_sensors, n, n)).copy() if p0 is None else p0.astype(np.float64)
    states = np.empty((n_sensors, steps, n))
    covariances = np.empty((n_sensors, steps, n, n))
    for t in range(steps):
        x = x @ f.T
        p = f @ p @ f.T + q
        zt = z[:, t]
        seen = ~np.isnan(zt).any(axis=-1)
        if seen.any():
            s = h @ p @ h.T + r                                   # (N, m, m)
            pht = p @ h.T                                         # (N, n, m)
            gain = np.linalg.solve(s, pht.transpose(0, 2, 1)).transpose(0, 2, 1)  # P H' S^-1, S symmetric
            innovation = np.where(seen[:, None], zt, 0.0) - x @ h.T
            x_new = x + np.einsum("nij,nj->ni", gain, innovation)
            a = eye - gain @ h
            p_new = a @ p @ a.transpose(0, 2, 1) + gain @ r @ gain.transpose(0, 2, 1)
            x = np.where(seen[:, None], x_new, x)
            p = np.where(seen[:, None, None], p_new, p)
        states[:, t] = x
        covariances[:, t] = p
    return states.astype(dtype), covariances.astype(dtype)


def _quat_rate(q: np.ndarray, w: np.ndarray) -> np.ndarray:
    """dq/dt = q * (0, w) / 2 for batches of quaternions q (N, 4) and body rates w (N, 3)."""
    q0, q1, q2, q3 = q.T
    wx, wy, wz = w.T
    return 0.5 * np.stack([
        -q1 * wx - q2 * wy - q3 * wz,
        q0 * wx + q2 * wz - q3 * wy,
        q0 * wy - q1 * wz + q3 * wx,
        q0 * wz + q1 * wy - q2 * wx,
    ], axis=1)


def _gravity_gradient(q: np.ndarray, a: np.ndarray) -> np.ndarray:
    """J' f: gradient of |gravity rotated into the sensor frame - a|^2 / 2 over q."""
    q0, q1, q2, q3 = q.T
    f = np.stack([
        2 * (q1 * q3 - q0 * q2) - a[:, 0],
        2 * (q0 * q1 + q2 * q3) - a[:, 1],
        2 * (0.5 - q1 * q1 - q2 * q2) - a[:, 2],
    ], axis=1)
    zero = np.zeros_like(q0)
    jacobian = np.stack([
        np.stack([-2 * q2, 2 * q3, -2 * q0, 2 * q1], axis=1),
        np.stack([2 * q1, 2 * q0, 2 * q3, 2 * q2], axis=1),
        np.stack([zero, -4 * q1, -4 * q2, zero], axis=1),
    ], axis=1)  # (N, 3, 4)
    return np.einsum("nij,ni->nj", jacobian, f)


@MADGWICK_IMU.kernel(registry, dtypes=FLOAT_TYPES)
def madgwick_imu(accel, gyro, q0=None, /, *, beta=0.1, sample_period=0.01):
    """ai.ortcore.sensorfusion::MadgwickIMU-1."""
    a_all = accel.astype(np.float64)
    g_all = gyro.astype(np.float64)
    n, steps = accel.shape[:2]
    q = np.tile([1.0, 0.0, 0.0, 0.0], (n, 1)) if q0 is None else q0.astype(np.float64)
    q = q / np.linalg.norm(q, axis=1, keepdims=True)
    out = np.empty((n, steps, 4))
    for t in range(steps):
        rate = _quat_rate(q, g_all[:, t])
        norm = np.linalg.norm(a_all[:, t], axis=1, keepdims=True)
        usable = norm[:, 0] > 0
        a = np.divide(a_all[:, t], norm, out=np.zeros_like(a_all[:, t]), where=norm > 0)
        grad = _gravity_gradient(q, a)
        grad_norm = np.linalg.norm(grad, axis=1, keepdims=True)
        step = np.divide(grad, grad_norm, out=np.zeros_like(grad), where=grad_norm > 0)
        rate = rate - beta * np.where(usable[:, None], step, 0.0)
        q = q + rate * sample_period
        q = q / np.linalg.norm(q, axis=1, keepdims=True)
        out[:, t] = q
    return out.astype(accel.dtype)


@INVERSE_VARIANCE_FUSION.kernel(registry, dtypes=FLOAT_TYPES)
def inverse_variance_fusion(*readings, variances):
    """ai.ortcore.sensorfusion::InverseVarianceFusion-1."""
    x = np.stack([np.asarray(r, dtype=np.float64) for r in readings])
    weights = 1.0 / np.asarray(variances, dtype=np.float64).reshape((-1,) + (1,) * (x.ndim - 1))
    seen = ~np.isnan(x)
    total = np.where(seen, weights, 0.0).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        fused = np.where(seen, x * weights, 0.0).sum(axis=0) / total
        variance = 1.0 / total
    none = total == 0
    dtype = readings[0].dtype
    return (np.where(none, np.nan, fused).astype(dtype), np.where(none, np.nan, variance).astype(dtype))
