"""KalmanFilter against a per-sample loop of the textbook equations and closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ortcore_sensorfusion import KALMAN_FILTER


def reference(z, f, h, q, r, x0, p0):
    """One sensor at a time; simple-form update P = (I - K H) P, explicit inverse of S."""
    n_sensors, steps, _ = z.shape
    n = f.shape[0]
    states, covs = np.zeros((n_sensors, steps, n)), np.zeros((n_sensors, steps, n, n))
    for i in range(n_sensors):
        x, p = x0[i].copy(), p0[i].copy()
        for t in range(steps):
            x = f.dot(x)
            p = f.dot(p).dot(f.T) + q
            if not np.isnan(z[i, t]).any():
                s = h.dot(p).dot(h.T) + r
                k = p.dot(h.T).dot(np.linalg.inv(s))
                x = x + k.dot(z[i, t] - h.dot(x))
                p = (np.eye(n) - k.dot(h)).dot(p)
            states[i, t], covs[i, t] = x, p
    return states, covs


def constant_velocity(dt=0.1):
    f = np.array([[1.0, dt], [0.0, 1.0]])
    h = np.array([[1.0, 0.0]])
    q = 0.05 * np.array([[dt**3 / 3, dt**2 / 2], [dt**2 / 2, dt]])
    r = np.array([[0.4]])
    return f, h, q, r


def test_constant_velocity_tracking_matches_the_loop(run_op):
    rng = np.random.default_rng(1)
    f, h, q, r = constant_velocity()
    truth = np.cumsum(np.full((5, 120), 0.1) * rng.uniform(-2, 2, (5, 1)), axis=1)
    z = (truth + rng.normal(0, 0.6, truth.shape))[..., None]
    z[1, 10:20] = np.nan  # a sensor drops out for a while
    z[3, ::7] = np.nan
    x0 = rng.normal(size=(5, 2))
    p0 = np.stack([np.diag(rng.uniform(0.5, 3, 2)) for _ in range(5)])
    states, covs = run_op(KALMAN_FILTER, {
        "measurements": z, "transition": f, "observation": h, "process_noise": q, "measurement_noise": r,
        "initial_state": x0, "initial_covariance": p0}, n_out=2)
    want_x, want_p = reference(z, f, h, q, r, x0, p0)
    np.testing.assert_allclose(states, want_x, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(covs, want_p, rtol=1e-9, atol=1e-10)
    # during the dropout the estimate is pure prediction: the variance grows
    assert np.all(np.diff(covs[1, 10:20, 0, 0]) > 0)


def test_two_dimensional_measurements_and_defaults(run_op):
    """A 3-state model observed in 2 dimensions; x0 = 0 and P0 = initial_variance * I by default."""
    rng = np.random.default_rng(2)
    f = np.array([[1.0, 0.1, 0.0], [0.0, 1.0, 0.1], [0.0, 0.0, 0.9]])
    h = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    q, r = 0.01 * np.eye(3), np.array([[0.3, 0.05], [0.05, 0.2]])
    z = rng.normal(size=(3, 60, 2))
    states, covs = run_op(KALMAN_FILTER, {
        "measurements": z, "transition": f, "observation": h, "process_noise": q, "measurement_noise": r,
    }, n_out=2, initial_variance=4.0)
    want_x, want_p = reference(z, f, h, q, r, np.zeros((3, 3)), np.tile(4.0 * np.eye(3), (3, 1, 1)))
    np.testing.assert_allclose(states, want_x, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(covs, want_p, rtol=1e-9, atol=1e-10)


def test_scalar_random_walk_reaches_the_riccati_steady_state(run_op):
    """F = H = 1: the filtered variance converges to P = (-q + sqrt(q^2 + 4 q r)) / 2 (solved by hand)."""
    qv, rv = 0.2, 1.5
    z = np.random.default_rng(3).normal(size=(2, 200, 1))
    _, covs = run_op(KALMAN_FILTER, {
        "measurements": z, "transition": np.ones((1, 1)), "observation": np.ones((1, 1)),
        "process_noise": np.full((1, 1), qv), "measurement_noise": np.full((1, 1), rv)}, n_out=2,
        initial_variance=100.0)
    p_pred = (qv + math.sqrt(qv * qv + 4 * qv * rv)) / 2  # the predicted variance solves P^2 - qP - qr = 0
    steady = p_pred * rv / (p_pred + rv)
    np.testing.assert_allclose(covs[:, -1, 0, 0], steady, rtol=1e-12)


def test_a_constant_with_no_process_noise_is_estimated_by_the_running_mean(run_op):
    """Q = 0, F = H = 1 and a vague prior: x_t is the mean of z_1..z_t, P_t = r / t."""
    z = np.random.default_rng(4).normal(5.0, 1.0, size=(3, 50, 1))
    states, covs = run_op(KALMAN_FILTER, {
        "measurements": z, "transition": np.ones((1, 1)), "observation": np.ones((1, 1)),
        "process_noise": np.zeros((1, 1)), "measurement_noise": np.ones((1, 1))}, n_out=2,
        initial_variance=1e12)
    t = np.arange(1, 51)
    np.testing.assert_allclose(states[..., 0], np.cumsum(z[..., 0], axis=1) / t, rtol=1e-6)
    np.testing.assert_allclose(covs[..., 0, 0], np.broadcast_to(1.0 / t, (3, 50)), rtol=1e-6)


def test_float32_inputs_give_float32_outputs_close_to_the_loop(run_op):
    rng = np.random.default_rng(5)
    f, h, q, r = (a.astype(np.float32) for a in constant_velocity())
    z = rng.normal(size=(2, 40, 1)).astype(np.float32)
    states, covs = run_op(KALMAN_FILTER, {
        "measurements": z, "transition": f, "observation": h, "process_noise": q, "measurement_noise": r,
    }, n_out=2)
    assert states.dtype == covs.dtype == np.float32
    want_x, want_p = reference(z.astype(np.float64), *(a.astype(np.float64) for a in (f, h, q, r)),
                               np.zeros((2, 2)), np.tile(np.eye(2), (2, 1, 1)))
    np.testing.assert_allclose(states, want_x, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(covs, want_p, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name,shape,message", [
    ("observation", (1, 3), "input 'observation' dimension 1 is 3 but n is 2"),
    ("measurement_noise", (2, 2), "input 'measurement_noise' dimension 0 is 2 but m is 1"),
    ("transition", (2, 2, 1), "input 'transition' must have rank 2"),
])
def test_mismatched_matrices_are_rejected_at_session_creation(run_op, name, shape, message):
    import ortcore

    f, h, q, r = constant_velocity()
    inputs = {"measurements": np.zeros((2, 5, 1)), "transition": f, "observation": h, "process_noise": q,
              "measurement_noise": r}
    inputs[name] = np.zeros(shape)
    with pytest.raises(ortcore.InvalidArgument) as info:
        run_op(KALMAN_FILTER, inputs, n_out=2)
    assert "ai.ortcore.sensorfusion::KalmanFilter node 'fusion'" in str(info.value)
    assert message in str(info.value)
