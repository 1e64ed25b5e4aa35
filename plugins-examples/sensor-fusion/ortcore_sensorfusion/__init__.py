"""Sensor-fusion operators for ortcore, in the domain ``ai.ortcore.sensorfusion`` (version 1).

Installing this distribution is all a user does: its entry point contributes
the op schemas (with shape inference) and the CPU kernels, and OpenCL kernels
when the OpenCL provider asks. Build nodes with the specs, for example
``COMPLEMENTARY_FILTER.make_node(["accel", "gyro"], ["angles"], alpha=0.98)``.
"""

from __future__ import annotations

from ortcore_sensorfusion.schemas import (
    COMPLEMENTARY_FILTER,
    DOMAIN,
    INVERSE_VARIANCE_FUSION,
    KALMAN_FILTER,
    MADGWICK_IMU,
    SPECS,
)

__all__ = [
    "DOMAIN", "SPECS", "COMPLEMENTARY_FILTER", "KALMAN_FILTER", "MADGWICK_IMU", "INVERSE_VARIANCE_FUSION",
]
