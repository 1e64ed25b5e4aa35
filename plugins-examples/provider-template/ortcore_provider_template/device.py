"""The pretend device: buffers, and the check whether a device is present.

A vendor replaces this module with calls into the device's driver or runtime.
Here a buffer is numpy memory behind a handle that host code cannot index,
and the device is "absent" when ``ORTCORE_TEMPLATE_DEVICE=absent``.
"""

from __future__ import annotations

import os

import numpy as np

ENV = "ORTCORE_TEMPLATE_DEVICE"


class DeviceArray:
    """A tensor in device memory: host code must copy it back (``to_host``) to read it."""

    __slots__ = ("data",)

    def __init__(self, data: np.ndarray) -> None:
        #: the device-side memory; only kernels (the "device code") touch it
        self.data = data

    @classmethod
    def upload(cls, array: np.ndarray) -> DeviceArray:
        return cls(np.array(array, copy=True))

    def download(self) -> np.ndarray:
        return self.data.copy()

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    def __repr__(self) -> str:
        return f"DeviceArray(shape={self.shape}, dtype={self.dtype})"


def probe() -> tuple[bool, str]:
    """Whether a device is present here: ``(True, "")`` or ``(False, why not)``."""
    if os.environ.get(ENV, "").lower() == "absent":
        return False, f"no template device: {ENV}=absent marks it as missing"
    return True, ""
