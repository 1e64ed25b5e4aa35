"""Activity recognition on synthetic IMU data: a fusion op feeding a small Conv1D network.

    uv run python plugins-examples/sensor-fusion/examples/activity_classifier.py [--provider NAME]

1. Simulate accelerometer + gyroscope recordings of three activities (resting
   at a random tilt, walking, shaking the device).
2. Build one ONNX model: ComplementaryFilter (roll, pitch) -> Transpose ->
   Conv1D -> Relu -> GlobalAveragePool -> Flatten -> Gemm -> Softmax.
3. Fit the Gemm layer in closed form (ridge regression on the pooled features
   of a training set, computed by running the first half of the same graph),
   then classify a held-out set and print the accuracy and the partition.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import ortcore
from ortcore.custom_ops import make_model
from ortcore_sensorfusion import COMPLEMENTARY_FILTER

ACTIVITIES = ("resting", "walking", "shaking")
RATE = 100.0  # Hz
STEPS = 256
GRAVITY = 9.81


def simulate(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(accel, gyro, labels) for ``n`` recordings of STEPS samples: orientation -> ideal readings + noise."""
    t = np.arange(STEPS) / RATE
    labels = rng.integers(0, len(ACTIVITIES), n)
    roll = np.empty((n, STEPS))
    pitch = np.empty((n, STEPS))
    bumps = np.zeros((n, STEPS, 3))
    for i, label in enumerate(labels):
        r0, p0 = rng.uniform(-0.5, 0.5, 2)
        phase = rng.uniform(0, 2 * np.pi)
        if ACTIVITIES[label] == "resting":
            roll[i], pitch[i] = r0 + 0 * t, p0 + 0 * t
        elif ACTIVITIES[label] == "walking":  # ~2 Hz sway, heel strikes in the vertical axis
            f = rng.uniform(1.6, 2.2)
            roll[i] = r0 + 0.08 * np.sin(2 * np.pi * f * t + phase)
            pitch[i] = p0 + 0.15 * np.sin(2 * np.pi * 2 * f * t + phase)
            bumps[i, :, 2] = 2.0 * np.maximum(np.sin(2 * np.pi * 2 * f * t + phase), 0) ** 4
        else:  # shaking: fast, large roll oscillation
            f = rng.uniform(5.0, 7.0)
            roll[i] = r0 + 0.6 * np.sin(2 * np.pi * f * t + phase)
            pitch[i] = p0 + 0.1 * np.sin(2 * np.pi * f * t + 2 * phase)
    accel = GRAVITY * np.stack(
        [-np.sin(pitch), np.cos(pitch) * np.sin(roll), np.cos(pitch) * np.cos(roll)], axis=-1
    ) + bumps + rng.normal(0, 0.4, (n, STEPS, 3))
    roll_rate = np.gradient(roll, 1 / RATE, axis=1)
    pitch_rate = np.gradient(pitch, 1 / RATE, axis=1)
    # body rates of a roll-pitch motion (inverse of the Euler-angle kinematics, yaw rate 0)
    gyro = np.stack([
        roll_rate,
        np.cos(roll) * pitch_rate,
        -np.sin(roll) * pitch_rate,
    ], axis=-1) + rng.normal(0, 0.03, (n, STEPS, 3))
    return accel.astype(np.float32), gyro.astype(np.float32), labels


def conv_weights() -> np.ndarray:
    """Fixed Conv1D filters over (roll, pitch): levels, first and second differences at two scales."""
    taps = 9
    level = np.full(taps, 1 / taps)
    diff1 = np.zeros(taps)
    diff1[[0, -1]] = [-1, 1]
    diff2 = np.zeros(taps)
    diff2[[0, taps // 2, -1]] = [1, -2, 1]
    short = np.zeros(taps)
    short[[3, 4, 5]] = [1, -2, 1]
    filters = []
    for channel in range(2):
        for kernel in (level, -level, diff1, -diff1, diff2, -diff2, short, -short):
            w = np.zeros((2, taps))
            w[channel] = kernel
            filters.append(w)
    return np.stack(filters).astype(np.float32)  # (16, 2, 9): Relu of +-k gives |k|


def build(head: tuple[np.ndarray, np.ndarray] | None) -> object:
    """The feature extractor (head=None) or the whole classifier with Gemm weights ``head``."""
    from onnx import helper

    nodes = [
        COMPLEMENTARY_FILTER.make_node(["accel", "gyro"], ["angles"], name="fusion", alpha=0.98,
                                       sample_period=1 / RATE),
        helper.make_node("Transpose", ["angles"], ["channels"], perm=[0, 2, 1]),
        helper.make_node("Conv", ["channels", "conv_w"], ["conv"]),
        helper.make_node("Relu", ["conv"], ["act"]),
        helper.make_node("GlobalAveragePool", ["act"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["features"]),
    ]
    weights = {"conv_w": conv_weights()}
    outputs = [("features", np.float32, ["N", 16])]
    if head is not None:
        weights["fc_w"], weights["fc_b"] = head
        nodes += [helper.make_node("Gemm", ["features", "fc_w", "fc_b"], ["logits"]),
                  helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1)]
        outputs = [("probabilities", np.float32, ["N", len(ACTIVITIES)])]
    inputs = [("accel", np.float32, ["N", STEPS, 3]), ("gyro", np.float32, ["N", STEPS, 3])]
    return make_model(nodes, inputs, outputs, weights, name="imu_activity")


def fit_head(features: np.ndarray, labels: np.ndarray, ridge: float = 1e-3) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares fit of one-hot labels (scaled logits) on standardized features."""
    mean, std = features.mean(0), features.std(0) + 1e-6
    x = np.hstack([(features - mean) / std, np.ones((len(features), 1))])
    y = np.eye(len(ACTIVITIES))[labels] * 10.0
    coef = np.linalg.solve(x.T @ x + ridge * np.eye(x.shape[1]), x.T @ y)
    w = coef[:-1] / std[:, None]  # fold the standardization into the layer
    b = coef[-1] - (mean / std) @ coef[:-1]
    return w.astype(np.float32), b.astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--provider", default="CPUExecutionProvider")
    parser.add_argument("--train", type=int, default=300)
    parser.add_argument("--test", type=int, default=200)
    args = parser.parse_args()
    providers = [args.provider] + (["CPUExecutionProvider"] if args.provider != "CPUExecutionProvider" else [])
    rng = np.random.default_rng(0)

    accel, gyro, labels = simulate(args.train, rng)
    extractor = ortcore.InferenceSession(build(None).SerializeToString(), providers=providers)
    (features,) = extractor.run(None, {"accel": accel, "gyro": gyro})
    model = build(fit_head(features, labels))

    accel, gyro, labels = simulate(args.test, rng)
    sess = ortcore.InferenceSession(model.SerializeToString(), providers=providers)
    start = time.perf_counter()
    (probabilities,) = sess.run(None, {"accel": accel, "gyro": gyro})
    elapsed = time.perf_counter() - start
    predicted = probabilities.argmax(axis=1)

    print(f"{args.test} recordings of {STEPS} samples classified in {elapsed * 1e3:.1f} ms")
    print(f"accuracy: {np.mean(predicted == labels):.3f}")
    for k, name in enumerate(ACTIVITIES):
        mask = labels == k
        print(f"  {name:8s} {mask.sum():4d} recordings, recall {np.mean(predicted[mask] == k):.3f}")
    print(sess.get_partition().table())


if __name__ == "__main__":
    main()
