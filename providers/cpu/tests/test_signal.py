"""DFT, STFT, windows and MelWeightMatrix: what the ONNX node cases leave out.

DFT on random shapes, every axis, real and complex input, onesided and inverse,
shorter and longer dft_length, in float16/32/64 and bfloat16, against numpy.fft
(closed form); STFT against frames transformed by numpy.fft; windows against
their closed forms and onnxruntime; MelWeightMatrix against onnx.reference and
onnxruntime. Expected values never come from ortcore.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from onnx import TensorProto, helper

from ortcore.testing import compare_outputs, run_onnxruntime, run_ortcore, run_reference
from ortcore.testing import single_node_model as make_model

RNG = np.random.default_rng(7)
BF16 = np.dtype(ml_dtypes.bfloat16)


def as_complex(x):
    x = x.astype(np.float64)
    return x[..., 0] if x.shape[-1] == 1 else x[..., 0] + 1j * x[..., 1]


def interleave(c):
    return np.stack([c.real, c.imag], axis=-1)


# --- DFT against numpy.fft ------------------------------------------------------------------


def expected_dft(x, n, axis, inverse, onesided):
    signal = as_complex(x)
    axis = axis % x.ndim
    if inverse and onesided:
        n = 2 * (signal.shape[axis] - 1) if n is None else n
        return np.fft.irfft(signal, n=n, axis=axis)[..., np.newaxis]
    n = signal.shape[axis] if n is None else n
    out = (np.fft.ifft if inverse else np.fft.fft)(signal, n=n, axis=axis)
    if onesided:
        out = np.take(out, np.arange(n // 2 + 1), axis=axis)
    return interleave(out)


DFT_CASES = [
    # shape, axis, inverse, onesided, dft_length
    ((3, 16, 1), 1, 0, 0, None),
    ((3, 16, 2), 1, 0, 0, None),
    ((2, 5, 7, 1), 2, 0, 0, None),
    ((2, 5, 7, 2), 1, 0, 0, 9),
    ((2, 5, 7, 2), -3, 0, 0, 4),
    ((2, 12, 1), 1, 0, 1, None),
    ((2, 11, 1), 1, 0, 1, 16),
    ((4, 6, 3, 2), 0, 1, 0, None),
    ((2, 9, 2), 1, 1, 0, 12),
    ((2, 5, 2), 1, 1, 1, None),
    ((2, 5, 2), 1, 1, 1, 9),
    ((3, 8, 4, 2), -2, 1, 1, 6),
    ((1, 1, 1), 1, 0, 0, None),
]


@pytest.mark.parametrize("opset", [17, 20])
@pytest.mark.parametrize("shape,axis,inverse,onesided,n", DFT_CASES)
def test_dft_matches_numpy_fft(opset, shape, axis, inverse, onesided, n):
    x = RNG.standard_normal(shape).astype(np.float32)
    inputs = {"x": x, "n": None if n is None else np.array(n, np.int64)}
    attrs = {"inverse": inverse, "onesided": onesided}
    if opset == 20:
        inputs["axis"] = np.array(axis, np.int64)
    else:
        attrs["axis"] = axis
    model = make_model("DFT", inputs, [np.float32], opset=opset, initializers=("n", "axis"), **attrs)
    (actual,) = run_ortcore(model, inputs)
    compare_outputs(expected_dft(x, n, axis, inverse, onesided).astype(np.float32), actual, rtol=1e-4, atol=1e-4)


def test_dft_axis_and_length_as_graph_inputs():
    x = RNG.standard_normal((2, 3, 10, 2)).astype(np.float32)
    inputs = {"x": x, "n": np.array(8, np.int64), "axis": np.array(-3, np.int64)}
    model = make_model("DFT", inputs, [np.float32], opset=20)
    (actual,) = run_ortcore(model, inputs)
    compare_outputs(expected_dft(x, 8, -3, 0, 0).astype(np.float32), actual, rtol=1e-4, atol=1e-4)


def test_dft_opset17_default_axis_is_one_and_opset20_default_is_minus_two():
    x = RNG.standard_normal((2, 3, 4, 1)).astype(np.float32)
    (a17,) = run_ortcore(make_model("DFT", {"x": x}, [np.float32], opset=17), {"x": x})
    (a20,) = run_ortcore(make_model("DFT", {"x": x}, [np.float32], opset=20), {"x": x})
    compare_outputs(expected_dft(x, None, 1, 0, 0).astype(np.float32), a17, rtol=1e-4, atol=1e-4)
    compare_outputs(expected_dft(x, None, -2, 0, 0).astype(np.float32), a20, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-10), (np.float16, 2e-2), (BF16, 1e-1)])
def test_dft_dtypes(dtype, tol):
    x = RNG.standard_normal((2, 8, 2)).astype(dtype)
    model = make_model("DFT", {"x": x}, [dtype], opset=20, onesided=0)
    (actual,) = run_ortcore(model, {"x": x})
    assert actual.dtype == np.dtype(dtype)
    expected = expected_dft(x.astype(np.float64), None, 1, 0, 0)
    np.testing.assert_allclose(actual.astype(np.float64), expected, rtol=tol, atol=tol * 8)


def test_dft_round_trip_rfft_irfft():
    x = RNG.standard_normal((3, 14, 1)).astype(np.float64)
    spec = make_model("DFT", {"x": x}, [np.float64], opset=20, onesided=1)
    (half,) = run_ortcore(spec, {"x": x})
    back = make_model("DFT", {"h": half, "n": np.array(14, np.int64)}, [np.float64], opset=20, initializers=("n",), inverse=1, onesided=1)
    (restored,) = run_ortcore(back, {"h": half, "n": np.array(14, np.int64)})
    np.testing.assert_allclose(restored, x, atol=1e-12)


def test_dft_matches_onnxruntime():
    x = RNG.standard_normal((2, 10, 2)).astype(np.float32)
    inputs = {"x": x, "n": np.array(12, np.int64)}
    model = make_model("DFT", inputs, [np.float32], opset=20, initializers=("n",), inverse=1)
    compare_outputs(run_onnxruntime(model, inputs)[0], run_ortcore(model, inputs)[0], rtol=1e-4, atol=1e-5)


# --- STFT ---------------------------------------------------------------------------


def expected_stft(signal, step, window, length, onesided):
    sig = as_complex(signal)
    count = (sig.shape[1] - length) // step + 1
    frames = np.stack([sig[:, i * step : i * step + length] for i in range(count)], axis=1)
    if window is not None:
        frames = frames * window
    out = np.fft.fft(frames, axis=-1)
    if onesided:
        out = out[..., : length // 2 + 1]
    return interleave(out)


@pytest.mark.parametrize(
    "shape,step,window_len,frame_len,onesided",
    [
        ((2, 64, 1), 8, 16, None, 1),
        ((2, 64, 1), 8, 16, 16, 0),
        ((1, 50, 1), 7, None, 12, 1),
        ((3, 40, 2), 5, 10, None, 0),
        ((1, 33, 1), 4, None, None, 1),
        ((2, 20, 1), 3, 7, None, 1),
    ],
)
def test_stft_matches_numpy(shape, step, window_len, frame_len, onesided):
    signal = RNG.standard_normal(shape).astype(np.float32)
    window = np.hanning(window_len).astype(np.float32) if window_len else None
    length = frame_len or window_len or shape[1]
    inputs = {
        "signal": signal,
        "step": np.array(step, np.int64),
        "window": window,
        "length": None if frame_len is None else np.array(frame_len, np.int64),
    }
    model = make_model("STFT", inputs, [np.float32], opset=17, initializers=("step", "length"), onesided=onesided)
    (actual,) = run_ortcore(model, inputs)
    expected = expected_stft(signal, step, window, length, onesided).astype(np.float32)
    compare_outputs(expected, actual, rtol=1e-4, atol=1e-4)
    if shape[-1] == 1 and frame_len is not None:  # onnxruntime needs frame_length
        compare_outputs(run_onnxruntime(model, inputs)[0], actual, rtol=1e-4, atol=1e-4)


# --- windows --------------------------------------------------------------------------


def closed_form_window(kind, size, periodic):
    n = np.arange(size)
    denominator = size if periodic else size - 1
    angle = 2 * np.pi * n / denominator
    if kind == "HannWindow":
        return 0.5 - 0.5 * np.cos(angle)
    if kind == "HammingWindow":
        return 25 / 46 - 21 / 46 * np.cos(angle)
    return 0.42 - 0.5 * np.cos(angle) + 0.08 * np.cos(2 * angle)


@pytest.mark.parametrize("kind", ["HannWindow", "HammingWindow", "BlackmanWindow"])
@pytest.mark.parametrize("periodic", [0, 1])
@pytest.mark.parametrize("size", [2, 7, 32])
@pytest.mark.parametrize("constant", [True, False])
def test_windows_closed_form(kind, periodic, size, constant):
    inputs = {"size": np.array(size, np.int64)}
    model = make_model(kind, inputs, [np.float64], opset=17, initializers=("size",) if constant else (), periodic=periodic, output_datatype=TensorProto.DOUBLE)
    (actual,) = run_ortcore(model, inputs)
    assert actual.dtype == np.float64
    np.testing.assert_allclose(actual, closed_form_window(kind, size, periodic), atol=1e-12)


def test_hann_symmetric_equals_numpy_hanning():
    inputs = {"size": np.array(9, np.int32)}
    model = make_model("HannWindow", inputs, [np.float32], opset=17, periodic=0)
    np.testing.assert_allclose(run_ortcore(model, inputs)[0], np.hanning(9), atol=1e-6)


@pytest.mark.parametrize("kind", ["HannWindow", "HammingWindow", "BlackmanWindow"])
@pytest.mark.parametrize("out_type", [TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.DOUBLE])
def test_windows_match_onnxruntime(kind, out_type):
    # Integer outputs truncate values like 0.99999994 (float32) that onnxruntime computes
    # differently from the spec's float32 function body; they are left out here.
    inputs = {"size": np.array(10, np.int64)}
    dtype = helper.tensor_dtype_to_np_dtype(out_type)
    model = make_model(kind, inputs, [dtype], opset=17, output_datatype=out_type)
    compare_outputs(run_onnxruntime(model, inputs)[0], run_ortcore(model, inputs)[0], rtol=1e-3, atol=1e-3)


# --- MelWeightMatrix ------------------------------------------------------------------


@pytest.mark.parametrize(
    "bins,dft,rate,low,high",
    [(8, 16, 8192, 0.0, 4096.0), (10, 64, 16000, 20.0, 8000.0), (40, 512, 22050, 0.0, 11025.0), (4, 31, 1000, 100.0, 400.0)],
)
@pytest.mark.parametrize("constant", [True, False])
def test_mel_weight_matrix(bins, dft, rate, low, high, constant):
    inputs = {
        "bins": np.array(bins, np.int64),
        "dft": np.array(dft, np.int64),
        "rate": np.array(rate, np.int64),
        "low": np.array(low, np.float32),
        "high": np.array(high, np.float32),
    }
    model = make_model("MelWeightMatrix", inputs, [np.float32], opset=17, initializers=tuple(inputs) if constant else ())
    (actual,) = run_ortcore(model, inputs)
    assert actual.shape == (dft // 2 + 1, bins)
    compare_outputs(run_reference(model, inputs)[0], actual, rtol=1e-5, atol=1e-6)
    compare_outputs(run_onnxruntime(model, inputs)[0], actual, rtol=1e-5, atol=1e-6)
