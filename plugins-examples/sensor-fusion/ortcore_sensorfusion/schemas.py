"""Schemas and type/shape inference of the sensor-fusion ops.

Every op works on a batch of N sensors, each a sequence of T samples, so one
node filters a whole fleet of devices at once. Angles are radians, rates
radians per second, quaternions ``(w, x, y, z)``; the sensor frame is x
forward, y left, z up, so a sensor lying flat measures ``accel = (0, 0, +g)``.
"""

from __future__ import annotations

from ortcore.custom_ops import Attr, OpSpec, Param, ShapeContext

DOMAIN = "ai.ortcore.sensorfusion"
FLOATS = {"T": ["tensor(float)", "tensor(double)"]}


def _positive(ctx: ShapeContext, name: str) -> None:
    value = ctx.attrs[name]
    if not value > 0:
        raise ctx.fail(f"attribute {name!r} must be > 0, got {value}")


COMPLEMENTARY_FILTER = OpSpec(
    DOMAIN, "ComplementaryFilter", 1,
    inputs=[
        Param("accel", doc="accelerometer samples (N, T, 3), any unit"),
        Param("gyro", doc="gyroscope samples (N, T, 3) in rad/s"),
    ],
    outputs=[Param("angles", doc="roll and pitch (N, T, 2) in radians")],
    type_constraints=FLOATS,
    attributes=[
        Attr("alpha", "float", 0.98, "weight of the gyro-propagated angle, in [0, 1]"),
        Attr("sample_period", "float", 0.01, "seconds between samples"),
    ],
    doc=(
        "Roll and pitch from an accelerometer and a gyroscope. The previous angles are "
        "propagated with the gyro rates through the Euler-angle kinematics, then pulled "
        "towards the accelerometer's tilt: angle = pred + (1 - alpha) * wrap(tilt - pred). "
        "The first sample is the accelerometer's tilt."
    ),
)


@COMPLEMENTARY_FILTER.infer
def _complementary(ctx: ShapeContext):
    accel = ctx.input("accel", ("N", "T", 3))
    ctx.input("gyro", ("N", "T", 3))
    if not 0.0 <= ctx.attrs["alpha"] <= 1.0:
        raise ctx.fail(f"attribute 'alpha' must be in [0, 1], got {ctx.attrs['alpha']}")
    _positive(ctx, "sample_period")
    return [(accel.dtype, ("N", "T", 2))]


KALMAN_FILTER = OpSpec(
    DOMAIN, "KalmanFilter", 1,
    inputs=[
        Param("measurements", doc="z (N, T, m); a sample with any NaN is missing: no update"),
        Param("transition", doc="F (n, n)"),
        Param("observation", doc="H (m, n)"),
        Param("process_noise", doc="Q (n, n)"),
        Param("measurement_noise", doc="R (m, m)"),
        Param("initial_state", optional=True, doc="x0 (N, n), the estimate before the first sample; zeros"),
        Param("initial_covariance", optional=True, doc="P0 (N, n, n); initial_variance * I"),
    ],
    outputs=[
        Param("states", doc="filtered x_t|t (N, T, n)"),
        Param("covariances", doc="filtered P_t|t (N, T, n, n)"),
    ],
    type_constraints=FLOATS,
    attributes=[Attr("initial_variance", "float", 1.0, "P0 = initial_variance * I when P0 is not given")],
    doc=(
        "Linear Kalman filter over a sequence, per sensor: predict x = F x, P = F P F' + Q; "
        "then update with z_t: K = P H' (H P H' + R)^-1, x += K (z_t - H x), "
        "P = (I - K H) P (I - K H)' + K R K'. Missing samples (NaN) skip the update."
    ),
)


@KALMAN_FILTER.infer
def _kalman(ctx: ShapeContext):
    z = ctx.input("measurements", ("N", "T", "m"))
    ctx.input("transition", ("n", "n"))
    ctx.input("observation", ("m", "n"))
    ctx.input("process_noise", ("n", "n"))
    ctx.input("measurement_noise", ("m", "m"))
    ctx.input("initial_state", ("N", "n"))
    ctx.input("initial_covariance", ("N", "n", "n"))
    _positive(ctx, "initial_variance")
    return [(z.dtype, ("N", "T", "n")), (z.dtype, ("N", "T", "n", "n"))]


MADGWICK_IMU = OpSpec(
    DOMAIN, "MadgwickIMU", 1,
    inputs=[
        Param("accel", doc="accelerometer samples (N, T, 3), any unit; all-zero samples are ignored"),
        Param("gyro", doc="gyroscope samples (N, T, 3) in rad/s"),
        Param("initial_orientation", optional=True, doc="q0 (N, 4) (w, x, y, z); identity"),
    ],
    outputs=[Param("orientation", doc="unit quaternions (N, T, 4), sensor frame to earth frame")],
    type_constraints=FLOATS,
    attributes=[
        Attr("beta", "float", 0.1, "gradient-descent gain (rad/s)"),
        Attr("sample_period", "float", 0.01, "seconds between samples"),
    ],
    doc=(
        "Madgwick's gradient-descent orientation filter for a 6-axis IMU: integrate "
        "q' = q * (0, gyro) / 2 - beta * grad / |grad|, where grad = J' f is the gradient of "
        "the error between gravity rotated into the sensor frame and the normalized accelerometer."
    ),
)


@MADGWICK_IMU.infer
def _madgwick(ctx: ShapeContext):
    accel = ctx.input("accel", ("N", "T", 3))
    ctx.input("gyro", ("N", "T", 3))
    ctx.input("initial_orientation", ("N", 4))
    if not ctx.attrs["beta"] >= 0:
        raise ctx.fail(f"attribute 'beta' must be >= 0, got {ctx.attrs['beta']}")
    _positive(ctx, "sample_period")
    return [(accel.dtype, ("N", "T", 4))]


INVERSE_VARIANCE_FUSION = OpSpec(
    DOMAIN, "InverseVarianceFusion", 1,
    inputs=[Param("readings", variadic=True, doc="K redundant sensors' readings, all of one shape; NaN = no reading")],
    outputs=[
        Param("fused", doc="sum(x_k / var_k) / sum(1 / var_k) over the sensors that read"),
        Param("variance", doc="1 / sum(1 / var_k) over the sensors that read"),
    ],
    type_constraints=FLOATS,
    attributes=[Attr("variances", "floats", doc="noise variance of each sensor, one per reading")],
    doc=(
        "Fuses redundant sensors (several thermocouples on one part, two IMUs on one board) "
        "by inverse-variance weighting, the minimum-variance unbiased combination of "
        "independent readings. A NaN reading (a failed sensor) is left out; where no sensor "
        "read, both outputs are NaN."
    ),
)


@INVERSE_VARIANCE_FUSION.infer
def _fusion(ctx: ShapeContext):
    readings = ctx.variadic("readings")
    variances = ctx.attrs["variances"]
    if len(variances) != len(readings):
        raise ctx.fail(f"attribute 'variances' must have one entry per reading ({len(readings)}), "
                       f"got {len(variances)}")
    if not all(v > 0 for v in variances):
        raise ctx.fail(f"attribute 'variances' must all be > 0, got {list(variances)}")
    first = readings[0]
    shape = None if first.shape is None else tuple(f"d{i}" for i in range(len(first.shape)))
    ctx.variadic("readings", shape)
    return [(first.dtype, shape), (first.dtype, shape)]


SPECS = [COMPLEMENTARY_FILTER, KALMAN_FILTER, MADGWICK_IMU, INVERSE_VARIANCE_FUSION]
