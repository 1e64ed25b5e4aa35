from __future__ import annotations

import numpy as np
import pytest

import ortcore
from ortcore.custom_ops import make_model


def build(spec, inputs, n_out=1, **attrs):
    """A one-node model of ``spec``: ``inputs`` maps input names to arrays (None: omitted)."""
    names = list(inputs)
    while names and inputs[names[-1]] is None:
        names.pop()
    outs = [f"y{i}" for i in range(n_out)]
    node = spec.make_node([n if inputs[n] is not None else "" for n in names], outs, name="fusion", **attrs)
    values = [(n, a.dtype, a.shape) for n, a in inputs.items() if a is not None]
    return make_model([node], values, outs)


@pytest.fixture
def run_op():
    def run(spec, inputs, n_out=1, providers=("CPUExecutionProvider",), **attrs):
        model = build(spec, inputs, n_out, **attrs)
        sess = ortcore.InferenceSession(model.SerializeToString(), providers=list(providers))
        outputs = sess.run(None, {k: v for k, v in inputs.items() if v is not None})
        return outputs if n_out > 1 else outputs[0]

    return run


@pytest.fixture
def imu():
    """Synthetic IMU data for 4 sensors, 300 samples: a wobbling tilt plus noise."""
    rng = np.random.default_rng(7)
    t = np.arange(300) * 0.01
    roll = 0.4 * np.sin(2 * np.pi * 0.5 * t)[None] + rng.uniform(-0.3, 0.3, (4, 1))
    pitch = 0.3 * np.cos(2 * np.pi * 0.3 * t)[None] + rng.uniform(-0.3, 0.3, (4, 1))
    g = 9.81
    accel = np.stack([-g * np.sin(pitch), g * np.cos(pitch) * np.sin(roll), g * np.cos(pitch) * np.cos(roll)], -1)
    accel += rng.normal(0, 0.3, accel.shape)
    gyro = np.stack([np.gradient(roll, 0.01, axis=1), np.gradient(pitch, 0.01, axis=1),
                     np.zeros_like(roll)], -1) + rng.normal(0, 0.02, accel.shape)
    return accel, gyro
