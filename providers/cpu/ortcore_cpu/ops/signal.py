"""Signal processing: DFT, STFT, the Hann/Hamming/Blackman windows and MelWeightMatrix.

Complex tensors are real tensors whose last axis holds (real, imaginary); a
real signal has a last axis of size 1. Transforms run in numpy's pocketfft, in
float32 for float32/float16/bfloat16 inputs and float64 for double, and the
result is cast back to the input type. Windows and mel matrices whose inputs
are constants are computed once, at session creation.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ortcore.dtypes import np_dtype
from ortcore_cpu.registry import kernel

_FLOATS = (np.float16, np.float32, np.float64)


def _scalar(value: Any) -> int:
    """A scalar (or one-element) integer tensor as a Python int."""
    return int(np.asarray(value).reshape(-1)[0])


def _work_dtype(dtype: np.dtype) -> np.dtype:
    return np.dtype(np.float64) if dtype == np.float64 else np.dtype(np.float32)


def _as_complex(x: np.ndarray) -> tuple[np.ndarray, bool]:
    """(signal without the last axis, is_real): real float or complex array."""
    x = x.astype(_work_dtype(x.dtype), copy=False)
    if x.shape[-1] == 1:
        return x[..., 0], True
    if x.shape[-1] != 2:
        raise ValueError(f"the last axis of a DFT/STFT input must be 1 (real) or 2 (complex), got {x.shape[-1]}")
    return x[..., 0] + 1j * x[..., 1], False


def _interleave(c: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """A complex array as a real one with a trailing (real, imaginary) axis."""
    c = np.ascontiguousarray(c)
    return c.view(c.real.dtype).reshape(c.shape + (2,)).astype(dtype, copy=False)


def _dft(x: np.ndarray, n: int | None, axis: int, inverse: int, onesided: int) -> np.ndarray:
    rank = x.ndim
    if not -rank <= axis <= rank - 2 or axis == -1:
        raise ValueError(f"DFT axis {axis} is out of range for an input of rank {rank}")
    axis %= rank
    signal, is_real = _as_complex(x)
    if inverse and onesided:  # IRFFT: one-sided spectrum -> real signal
        if n is None:
            n = 2 * (signal.shape[axis] - 1)
        out = np.fft.irfft(signal, n=n, axis=axis)
        return out[..., np.newaxis].astype(x.dtype, copy=False)
    if n is None:
        n = signal.shape[axis]
    if inverse:
        out = np.fft.ifft(signal, n=n, axis=axis)
    elif onesided and is_real:
        out = np.fft.rfft(signal, n=n, axis=axis)
    else:
        out = np.fft.fft(signal, n=n, axis=axis)
        if onesided:  # complex input: keep the non-negative frequencies, as onnx.reference does
            out = out[(slice(None),) * axis + (slice(0, n // 2 + 1),)]
    return _interleave(out, x.dtype)


@kernel("DFT", since=17, dtypes=_FLOATS + (np_dtype(16),))
def dft_17(x, dft_length=None, /, *, axis=1, inverse=0, onesided=0):
    """DFT-17: axis attribute (default 1, the axis after the batch axis)."""
    return _dft(x, None if dft_length is None else _scalar(dft_length), axis, inverse, onesided)


@kernel("DFT", since=20, dtypes=_FLOATS + (np_dtype(16),))
def dft_20(x, dft_length=None, axis=None, /, *, inverse=0, onesided=0):
    """DFT-20: axis as an optional input (default -2, the last signal axis)."""
    n = None if dft_length is None else _scalar(dft_length)
    return _dft(x, n, -2 if axis is None else _scalar(axis), inverse, onesided)


@kernel("STFT", since=17, dtypes=_FLOATS + (np_dtype(16),))
def stft(signal, frame_step, window=None, frame_length=None, /, *, onesided=1):
    """STFT-17: frames of ``frame_length`` every ``frame_step`` samples, windowed, DFT'd."""
    step = _scalar(frame_step)
    length = signal.shape[1]
    if frame_length is not None:
        size = _scalar(frame_length)
        if window is not None and window.shape[0] != size:
            raise ValueError(f"STFT window length {window.shape[0]} != frame_length {size}")
    else:
        size = window.shape[0] if window is not None else length
    if step < 1 or not 0 < size <= length:
        raise ValueError(f"STFT needs 0 < frame_length ({size}) <= signal length ({length}) and frame_step >= 1")
    sig, is_real = _as_complex(signal)  # [batch, length]
    frames = np.lib.stride_tricks.sliding_window_view(sig, size, axis=1)[:, ::step]  # [batch, frames, size]
    if window is not None:
        frames = frames * window.astype(sig.real.dtype, copy=False)
    if onesided and is_real:
        out = np.fft.rfft(frames, axis=-1)
    else:
        out = np.fft.fft(frames, axis=-1)
        if onesided:
            out = out[..., : size // 2 + 1]
    return _interleave(out, signal.dtype)


# -- windows ----------------------------------------------------------------------------


def _cosine_window(size: int, periodic: int, coefficients: tuple[float, ...], dtype: np.dtype) -> np.ndarray:
    """a0 - a1 cos(2 pi n / N) + a2 cos(4 pi n / N), N = size (periodic) or size - 1.

    Double outputs are computed in double; every other type follows the spec's function
    body, which computes in float32 and casts (so integer outputs truncate the same values).
    """
    ftype = np.float64 if dtype == np.float64 else np.float32
    denominator = size if periodic else size - 1
    if denominator <= 0:  # a symmetric window of one point is [1], as in scipy and torch
        return np.ones(size, dtype=dtype)
    a0, a1, a2 = (ftype(c) for c in coefficients)
    angle = np.arange(size, dtype=ftype) * (ftype(2 * np.pi) / ftype(denominator))
    out = a0 - a1 * np.cos(angle) + a2 * np.cos(angle * ftype(2))
    return out.astype(dtype)


def _window_factory(ctx: Any, coefficients: tuple[float, ...], periodic: int, output_datatype: int) -> Any:
    dtype = np_dtype(output_datatype)

    def make(size: Any) -> np.ndarray:
        return _cosine_window(_scalar(size), periodic, coefficients, dtype)

    if 0 in ctx.constants:
        fixed = make(ctx.constants[0])
        return lambda size, /: fixed.copy()
    return make


@kernel("HannWindow", since=17, factory=True)
def hann_window(ctx, /, *, periodic=1, output_datatype=1):
    """HannWindow-17: 0.5 - 0.5 cos(2 pi n / N)."""
    return _window_factory(ctx, (0.5, 0.5, 0.0), periodic, output_datatype)


@kernel("HammingWindow", since=17, factory=True)
def hamming_window(ctx, /, *, periodic=1, output_datatype=1):
    """HammingWindow-17: 25/46 - 21/46 cos(2 pi n / N)."""
    return _window_factory(ctx, (25 / 46, 21 / 46, 0.0), periodic, output_datatype)


@kernel("BlackmanWindow", since=17, factory=True)
def blackman_window(ctx, /, *, periodic=1, output_datatype=1):
    """BlackmanWindow-17: 0.42 - 0.5 cos(2 pi n / N) + 0.08 cos(4 pi n / N)."""
    return _window_factory(ctx, (0.42, 0.5, 0.08), periodic, output_datatype)


# -- MelWeightMatrix -------------------------------------------------------------------


def _mel_weight_matrix(num_mel_bins: int, dft_length: int, sample_rate: int, lower_hz: float, upper_hz: float) -> np.ndarray:
    """Triangular filters with peak 1 on mel(f) = 2595 log10(1 + f / 700), as float64."""
    n_spectrum = dft_length // 2 + 1
    low = 2595 * np.log10(1 + lower_hz / 700)
    high = 2595 * np.log10(1 + upper_hz / 700)
    mel = low + np.arange(num_mel_bins + 2) * ((high - low) / (num_mel_bins + 2))
    hz = 700 * (10 ** (mel / 2595) - 1)
    edges = np.floor((dft_length + 1) * hz / sample_rate).astype(np.int64)  # spectrum bin of each edge
    left, center, right = edges[:-2], edges[1:-1], edges[2:]
    j = np.arange(n_spectrum)[:, np.newaxis]
    with np.errstate(divide="ignore", invalid="ignore"):
        rising = (j - left) / (center - left)
        falling = (right - j) / (right - center)
    out = np.where((j >= left) & (j < center), rising, 0.0)
    out = np.where((j > center) & (j < right), falling, out)
    return np.where(j == center, 1.0, out)


@kernel("MelWeightMatrix", since=17, factory=True)
def mel_weight_matrix(ctx, /, *, output_datatype=1):
    """MelWeightMatrix-17: [dft_length // 2 + 1, num_mel_bins] triangular filter bank."""
    dtype = np_dtype(output_datatype)

    def make(num_mel_bins, dft_length, sample_rate, lower_edge_hertz, upper_edge_hertz, /):
        return _mel_weight_matrix(
            _scalar(num_mel_bins),
            _scalar(dft_length),
            _scalar(sample_rate),
            float(np.asarray(lower_edge_hertz).reshape(-1)[0]),
            float(np.asarray(upper_edge_hertz).reshape(-1)[0]),
        ).astype(dtype)

    if all(i in ctx.constants for i in range(5)):
        fixed = make(*(ctx.constants[i] for i in range(5)))
        return lambda *inputs: fixed.copy()
    return make
