"""The OpenCL provider's contract: discovery, device selection, transfers, fallback, threads, memory."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from onnx import TensorProto, helper

import ortcore
from ortcore.errors import InvalidArgument
from ortcore.testing import make_model, single_node_model

OCL = "OpenCLExecutionProvider"
rng = np.random.default_rng(3)


def test_available_and_listed_with_its_device(capsys, runtime):
    from ortcore.cli import main
    from ortcore_opencl.provider import OpenCLExecutionProvider

    ok, reason = OpenCLExecutionProvider.availability()
    assert ok is True and reason == ""
    assert OCL in ortcore.get_available_providers()
    assert main(["providers"]) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith(OCL))
    assert "yes" in line and runtime.name in line and "opencl:" in line


def test_device_selection_by_index_and_by_name(runtime):
    from ortcore_opencl.provider import OpenCLExecutionProvider

    p, d = runtime.index
    platform_name = runtime.device.platform.name.strip()
    by_index = OpenCLExecutionProvider({"platform": p, "device": d})
    by_string_index = OpenCLExecutionProvider({"platform": str(p), "device": str(d)})
    by_name = OpenCLExecutionProvider({"platform": platform_name[:6].lower(), "device": runtime.name[-8:].upper()})
    assert by_index.runtime is by_string_index.runtime is by_name.runtime is runtime
    assert by_index.device == f"opencl:{p}.{d}"


def test_bad_selector_lists_the_devices(runtime):
    with pytest.raises(InvalidArgument, match="no OpenCL device matches") as info:
        ortcore.InferenceSession(
            single_node_model("Relu", {"x": np.zeros(2, np.float32)}, [np.float32], opset=14).SerializeToString(),
            providers=[(OCL, {"device": "no-such-device-xyz"})],
        )
    assert runtime.name in str(info.value) and "available" in str(info.value)
    with pytest.raises(InvalidArgument):
        from ortcore_opencl.provider import OpenCLExecutionProvider

        OpenCLExecutionProvider({"platform": 97})


def test_unknown_option_is_rejected():
    from ortcore_opencl.provider import OpenCLExecutionProvider

    with pytest.raises(InvalidArgument, match="unknown OpenCLExecutionProvider option.*fuse_elementwize"):
        OpenCLExecutionProvider({"fuse_elementwize": False})


DTYPES = [np.float32, np.float64, np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32,
          np.int64, np.uint64, np.bool_, np.float16]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(), (0,), (2, 0, 3), (3, 5)])
def test_host_device_round_trip(dtype, shape):
    from ortcore_opencl.provider import OpenCLExecutionProvider

    provider = OpenCLExecutionProvider()
    host = (rng.standard_normal(shape) * 100).astype(dtype)
    device = provider.from_host(host)
    back = provider.to_host(device)
    assert isinstance(back, np.ndarray) and back.dtype == host.dtype and back.shape == host.shape
    np.testing.assert_array_equal(back, host)
    # a non-contiguous host view arrives as its values
    if host.ndim == 2:
        np.testing.assert_array_equal(provider.to_host(provider.from_host(host.T)), host.T)


def _mixed_model():
    """Relu (OpenCL) -> TopK (not claimed by OpenCL) -> Add (OpenCL)."""
    nodes = [
        helper.make_node("Relu", ["x"], ["r"]),
        helper.make_node("TopK", ["r", "k"], ["v", "i"], axis=-1),
        helper.make_node("Add", ["v", "b"], ["y"]),
    ]
    inits = [helper.make_tensor("k", TensorProto.INT64, (1,), [3]), helper.make_tensor("b", TensorProto.FLOAT, (), [0.5])]
    return make_model(
        nodes,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, (4, 6))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None), helper.make_tensor_value_info("i", TensorProto.INT64, None)],
        inits,
    )


def test_cpu_fallback_with_visible_transfers(ocl):
    model = _mixed_model()
    x = rng.standard_normal((4, 6)).astype(np.float32)
    out, sess = ocl.check(model, {"x": x}, all_on_opencl=False)
    where = {a.node.op_type: a.provider.name for a in sess.get_partition().assignments}
    assert where == {"Relu": OCL, "TopK": "CPUExecutionProvider", "Add": OCL}
    moved = {(t.value, t.source.split(":")[0], t.target.split(":")[0]) for t in sess.get_partition().transfers}
    assert ("r", "opencl", "cpu") in moved and ("v", "cpu", "opencl") in moved
    expected = np.sort(np.maximum(x, 0), axis=-1)[:, ::-1][:, :3] + 0.5
    np.testing.assert_allclose(out[0], expected, rtol=1e-6)


def test_concurrent_runs_match_serial(ocl):
    nodes = [
        helper.make_node("Mul", ["x", "a"], ["m"]),
        helper.make_node("Transpose", ["m"], ["t"], perm=[1, 0]),
        helper.make_node("Tanh", ["t"], ["y"]),
        helper.make_node("Concat", ["y", "y"], ["z"], axis=0),
    ]
    model = make_model(
        nodes,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, (None, 16)), helper.make_tensor_value_info("a", TensorProto.FLOAT, (16,))],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, None)],
    )
    sess = ocl.session(model)
    inputs = [{"x": rng.standard_normal((n, 16)).astype(np.float32), "a": rng.standard_normal(16).astype(np.float32)} for n in range(1, 9)]
    serial = [sess.run(None, f)[0] for f in inputs]
    results: dict[int, list[np.ndarray]] = {}
    errors: list[BaseException] = []

    def worker(t: int) -> None:
        try:
            results[t] = [sess.run(None, inputs[(t + i) % 8])[0] for i in range(16)]
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=120)
    assert not errors, errors
    for t, outs in results.items():
        for i, out in enumerate(outs):
            np.testing.assert_array_equal(out, serial[(t + i) % 8])


def test_buffers_are_reused_across_runs(ocl, runtime):
    model = _mixed_model()
    sess = ocl.session(model)
    x = rng.standard_normal((4, 6)).astype(np.float32)
    for _ in range(5):
        sess.run(None, {"x": x})
    held = runtime.pool.held_blocks + runtime.pool.active_blocks
    for _ in range(200):
        sess.run(None, {"x": x})
    assert runtime.pool.held_blocks + runtime.pool.active_blocks <= held + 2
