"""OpenCL kernel of ComplementaryFilter, for OpenCLExecutionProvider.

Imported only when the OpenCL provider asks the plugin for kernels, so
pyopencl is never imported by discovery. One work-item filters one sensor's
whole sequence (the filter is recursive in time); the batch of sensors runs
in parallel. The arithmetic is in the inputs' precision.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ortcore.kernels import KernelRegistry, NodeContext
from ortcore_sensorfusion.schemas import COMPLEMENTARY_FILTER

registry = KernelRegistry("ortcore-sensorfusion (OpenCLExecutionProvider)")

SOURCE = r"""
#ifdef USE_FP64
#pragma OPENCL EXTENSION cl_khr_fp64 : enable
#endif
#define PI ((REAL)3.14159265358979323846)

REAL wrap(REAL a) {  /* to [-pi, pi), floor-based like Python's % */
    return a - (REAL)2 * PI * floor((a + PI) / ((REAL)2 * PI));
}

__kernel void complementary_filter(__global const REAL *accel, __global const REAL *gyro,
                                   __global REAL *angles, const int steps,
                                   const REAL alpha, const REAL dt) {
    const size_t s = get_global_id(0);
    __global const REAL *a = accel + s * steps * 3;
    __global const REAL *g = gyro + s * steps * 3;
    __global REAL *out = angles + s * steps * 2;
    REAL roll = 0, pitch = 0;
    for (int t = 0; t < steps; ++t) {
        const REAL ax = a[3 * t], ay = a[3 * t + 1], az = a[3 * t + 2];
        const REAL roll_acc = atan2(ay, az);
        const REAL pitch_acc = atan2(-ax, hypot(ay, az));
        if (t == 0) {
            roll = roll_acc;
            pitch = pitch_acc;
        } else {
            const REAL gx = g[3 * t], gy = g[3 * t + 1], gz = g[3 * t + 2];
            const REAL sr = sin(roll), cr = cos(roll);
            const REAL roll_pred = roll + (gx + (sr * gy + cr * gz) * tan(pitch)) * dt;
            const REAL pitch_pred = pitch + (cr * gy - sr * gz) * dt;
            roll = wrap(roll_pred + ((REAL)1 - alpha) * wrap(roll_acc - roll_pred));
            pitch = pitch_pred + ((REAL)1 - alpha) * (pitch_acc - pitch_pred);
        }
        out[2 * t] = roll;
        out[2 * t + 1] = pitch;
    }
}
"""


def _contiguous(array: Any) -> Any:
    return array if array.flags.c_contiguous and getattr(array, "offset", 0) == 0 else array.copy()


@COMPLEMENTARY_FILTER.kernel(registry, dtypes=(np.float32, np.float64), factory=True)
def complementary_filter(ctx: NodeContext, *, alpha: float = 0.98, sample_period: float = 0.01):
    """ai.ortcore.sensorfusion::ComplementaryFilter-1 as an OpenCL C kernel."""
    from ortcore.errors import InvalidArgument
    from ortcore_opencl.runtime import ctype

    runtime = ctx.provider.runtime
    dtype = np.dtype(ctx.input_dtypes[0] or np.float32)
    options = [f"-DREAL={ctype(dtype)}"] + (["-DUSE_FP64"] if dtype == np.float64 else [])
    knl = runtime.kernel(SOURCE, "complementary_filter", options)
    scalar = dtype.type

    def run(accel: Any, gyro: Any) -> Any:
        if accel.shape != gyro.shape or accel.ndim != 3 or accel.shape[2] != 3:
            raise InvalidArgument(
                f"ComplementaryFilter: accel and gyro must both be (N, T, 3), got {accel.shape} and {gyro.shape}"
            )
        n, steps, _ = accel.shape
        angles = runtime.empty((n, steps, 2), dtype)
        if n and steps:
            runtime.launch(knl, (n,), None, _contiguous(accel).data, _contiguous(gyro).data, angles.data,
                           np.int32(steps), scalar(alpha), scalar(sample_period))
        return angles

    return run
