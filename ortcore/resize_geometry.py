"""Where ONNX Resize samples its input: the host-side arithmetic every provider shares.

Providers differ in how they move the data (numpy gathers, OpenCL kernels), not
in which input positions each output reads. This module holds that part of the
Resize/Upsample spec once: the node's settings, the output shape from
scales/sizes/axes/keep_aspect_ratio_policy, the coordinate transformation
modes, nearest rounding, and the linear/cubic filter taps and weights. All of
it is float64 numpy on vectors of one axis's length.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ortcore.errors import InvalidArgument

__all__ = [
    "AxisGeometry",
    "ResizeSettings",
    "axis_geometry",
    "interpolation_taps",
    "legacy_settings",
    "nearest_index",
    "source_coordinates",
]


@dataclass(frozen=True)
class ResizeSettings:
    """A Resize/Upsample node's attributes, normalized across versions."""

    mode: str = "nearest"
    coord: str = "half_pixel"
    nearest: str = "round_prefer_floor"
    cubic_a: float = -0.75
    exclude_outside: bool = False
    extrapolation_value: float = 0.0
    antialias: bool = False
    axes: tuple[int, ...] | None = None
    policy: str = "stretch"


def legacy_settings(mode: str) -> ResizeSettings:
    """Resize-10 and Upsample: asymmetric coordinates, floor/ceil nearest rounding."""
    return ResizeSettings(mode="linear" if mode in ("linear", "bilinear") else mode, coord="asymmetric",
                          nearest="simple")


@dataclass(frozen=True)
class AxisGeometry:
    """One resized axis: input and output lengths, the scale and the roi bounds it uses."""

    axis: int
    in_len: int
    out_len: int
    scale: float
    roi: tuple[Any, Any]

    @property
    def unscaled(self) -> bool:
        """An axis that is copied as it is, whatever the coordinate mode says."""
        return self.out_len == self.in_len and math.isclose(self.scale, 1.0) and tuple(self.roi) == (0.0, 1.0)


def _values(a: Any) -> list[float] | None:
    if a is None or np.asarray(a).size == 0:
        return None
    return np.asarray(a, dtype=np.float64).reshape(-1).tolist()


def axis_geometry(s: ResizeSettings, shape: tuple[int, ...], roi: Any, scales: Any, sizes: Any,
                  what: str = "Resize") -> list[AxisGeometry]:
    """The geometry of every axis the node resizes (``s.axes``, or all), validated against ``shape``."""
    rank = len(shape)
    if s.axes is None:
        axes = list(range(rank))
    else:
        axes = [a + rank if a < 0 else a for a in s.axes]
        if any(not 0 <= a < rank for a in axes) or len(set(axes)) != len(axes):
            raise InvalidArgument(f"{what}: axes {list(s.axes)} are invalid for an input of rank {rank}")
    in_lens = [shape[a] for a in axes]
    size_list, scale_list = _values(sizes), _values(scales)
    if size_list is not None:
        if len(size_list) != len(axes):
            raise InvalidArgument(f"{what}: sizes has {len(size_list)} values, expected {len(axes)}")
        out_lens = [int(v) for v in size_list]
        ratios = [o / i if i else 1.0 for o, i in zip(out_lens, in_lens)]
        if s.policy != "stretch":
            common = min(ratios) if s.policy == "not_larger" else max(ratios)
            ratios = [common] * len(axes)
            out_lens = [int(common * i + 0.5) for i in in_lens]
    elif scale_list is not None:
        if len(scale_list) != len(axes):
            raise InvalidArgument(f"{what}: scales has {len(scale_list)} values, expected {len(axes)}")
        if any(r <= 0 for r in scale_list):
            raise InvalidArgument(f"{what}: scales must be positive, got {scale_list}")
        ratios = scale_list
        out_lens = [math.floor(i * r) for i, r in zip(in_lens, ratios)]
    else:
        raise InvalidArgument(f"{what}: one of scales and sizes must be given")
    if any(o < 0 for o in out_lens):
        raise InvalidArgument(f"{what}: sizes must not be negative, got {out_lens}")
    roi_list = None
    if s.coord == "tf_crop_and_resize" and roi is not None and np.asarray(roi).size:
        roi_list = list(np.asarray(roi).reshape(-1))  # kept in its own dtype, as the reference does
        if len(roi_list) != 2 * len(axes):
            raise InvalidArgument(f"{what}: roi has {len(roi_list)} values, expected {2 * len(axes)}")
    return [
        AxisGeometry(axis, in_lens[k], out_lens[k], ratios[k],
                     (roi_list[k], roi_list[len(axes) + k]) if roi_list else (0.0, 1.0))
        for k, axis in enumerate(axes)
    ]


def source_coordinates(s: ResizeSettings, out_len: int, in_len: int, scale: float, roi: tuple) -> np.ndarray:
    """Source coordinate of every output position (coordinate_transformation_mode).

    Like onnx.reference (whose results the ONNX node tests hold), align_corners,
    pytorch_half_pixel and tf_crop_and_resize use the fractional ``width = scale * in_len``
    where the spec text and onnxruntime use the integer output length; the two differ
    only when the scales do not divide evenly (and for pytorch_half_pixel with one output,
    where the reference samples -0.5 and onnxruntime 0).
    """
    y = np.arange(out_len, dtype=np.float64)
    width = scale * in_len
    mode = s.coord
    if mode == "half_pixel":
        return (y + 0.5) / scale - 0.5
    if mode == "asymmetric":
        return y / scale
    if mode == "pytorch_half_pixel":
        return (y + 0.5) / scale - 0.5 if width != 1 else np.full_like(y, -0.5)
    if mode == "align_corners":
        return y * (in_len - 1) / (width - 1) if width != 1 else np.zeros_like(y)
    if mode == "tf_half_pixel_for_nn":
        return (y + 0.5) / scale
    if mode == "half_pixel_symmetric":
        offset = in_len / 2 * (1 - out_len / width)
        return offset + (y + 0.5) / scale - 0.5
    if mode == "tf_crop_and_resize":
        start, end = roi
        if width != 1:
            return y * (end - start) * (in_len - 1) / (width - 1) + start * (in_len - 1)
        return np.full_like(y, (end - start) * (in_len - 1) / 2) + start * (in_len - 1)
    raise InvalidArgument(f"Resize: unknown coordinate_transformation_mode {mode!r}")


def nearest_index(rule: str, x: np.ndarray, scale: float) -> np.ndarray:
    """Nearest source index (as floats, not yet clipped) of coordinates ``x`` under ``nearest_mode``."""
    if rule == "simple":  # Resize-10 / Upsample: floor when enlarging, ceil when shrinking
        rule = "ceil" if scale < 1 else "floor"
    if rule == "round_prefer_floor":
        return np.ceil(x - 0.5)
    if rule == "round_prefer_ceil":
        return np.floor(x + 0.5)
    if rule == "floor":
        return np.floor(x)
    if rule == "ceil":
        return np.ceil(x)
    raise InvalidArgument(f"Resize: unknown nearest_mode {rule!r}")


def _kernel_weights(s: ResizeSettings, t: np.ndarray) -> np.ndarray:
    t = np.abs(t)
    if s.mode == "linear":
        return np.maximum(1.0 - t, 0.0)
    a = s.cubic_a
    near = ((a + 2) * t - (a + 3)) * t * t + 1
    far = ((a * t - 5 * a) * t + 8 * a) * t - 4 * a
    return np.where(t <= 1, near, np.where(t < 2, far, 0.0))


def interpolation_taps(s: ResizeSettings, x: np.ndarray, in_len: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """(taps, weights), each [out_len, n], of linear or cubic interpolation at coordinates ``x``.

    Taps are source indices clipped into the input (as floats; callers pick the
    integer type). With antialias a shrinking axis stretches the filter by
    1/scale (more taps, weights renormalized); exclude_outside drops taps
    outside the input.
    """
    support = 1.0 if s.mode == "linear" else 2.0
    stretch = min(scale, 1.0) if s.antialias else 1.0
    start = math.floor(-support / stretch) + 1
    offsets = np.arange(start, 2 - start, dtype=np.float64)
    # base + 1 is the first tap at or above x; the ratio is in (0, 1] like the reference
    base = np.ceil(x) - 1
    weights = _kernel_weights(s, (offsets[None, :] - (x - base)[:, None]) * stretch)
    if s.antialias:
        weights /= weights.sum(axis=1, keepdims=True)
    taps = base[:, None] + offsets[None, :]
    if s.exclude_outside:
        weights = np.where((taps < 0) | (taps > in_len - 1), 0.0, weights)
        total = weights.sum(axis=1, keepdims=True)
        weights /= np.where(total == 0, 1.0, total)
    return np.clip(taps, 0, max(in_len - 1, 0)), weights
