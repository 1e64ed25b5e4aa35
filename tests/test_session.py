"""InferenceSession behaviour: the onnxruntime API surface, memory release, concurrency."""

from __future__ import annotations

import threading
import weakref

import numpy as np
import onnx
import onnxruntime
import pytest
from onnx import TensorProto, helper, numpy_helper

import ortcore
from ortcore.demo import build_demo_model
from ortcore.testing import make_model


@pytest.fixture(scope="module")
def demo_bytes():
    return build_demo_model().SerializeToString()


def _ort(model_bytes):
    return onnxruntime.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])


def test_inputs_outputs_and_metadata_match_onnxruntime(demo_bytes):
    ours, theirs = ortcore.InferenceSession(demo_bytes), _ort(demo_bytes)
    for a, b in zip(ours.get_inputs() + ours.get_outputs(), theirs.get_inputs() + theirs.get_outputs()):
        assert (a.name, a.type, a.shape) == (b.name, b.type, b.shape)
    m1, m2 = ours.get_modelmeta(), theirs.get_modelmeta()
    assert (m1.producer_name, m1.graph_name, m1.version) == (m2.producer_name, m2.graph_name, m2.version)
    assert ours.get_providers() == ["CPUExecutionProvider"]


def test_demo_model_matches_onnxruntime(demo_bytes):
    x = np.random.default_rng(1).standard_normal((3, 3, 32, 32)).astype(np.float32)
    ours = ortcore.InferenceSession(demo_bytes).run(None, {"image": x})[0]
    theirs = _ort(demo_bytes).run(None, {"image": x})[0]
    np.testing.assert_allclose(ours, theirs, rtol=1e-3, atol=1e-5)


def test_load_from_path_bytes_and_modelproto(tmp_path, demo_bytes):
    path = tmp_path / "demo.onnx"
    path.write_bytes(demo_bytes)
    x = np.ones((1, 3, 32, 32), np.float32)
    results = [
        ortcore.InferenceSession(src).run(None, {"image": x})[0]
        for src in (str(path), path, demo_bytes, onnx.load_model_from_string(demo_bytes))
    ]
    for r in results[1:]:
        np.testing.assert_array_equal(r, results[0])


def test_external_data_tensors(tmp_path):
    model = build_demo_model()
    reference_bytes = model.SerializeToString()
    path = tmp_path / "ext.onnx"
    onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="weights.bin", size_threshold=0)
    assert (tmp_path / "weights.bin").exists()
    x = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)
    ours = ortcore.InferenceSession(str(path)).run(None, {"image": x})[0]
    theirs = _ort(reference_bytes).run(None, {"image": x})[0]
    np.testing.assert_allclose(ours, theirs, rtol=1e-3, atol=1e-5)


def test_missing_external_data_file_names_it(tmp_path):
    path = tmp_path / "ext.onnx"
    onnx.save_model(build_demo_model(), str(path), save_as_external_data=True, location="w.bin", size_threshold=0)
    (tmp_path / "w.bin").unlink()
    with pytest.raises(ortcore.NoSuchFile, match="w.bin"):
        ortcore.InferenceSession(str(path))


def test_model_local_functions_are_inlined():
    fn = helper.make_function(
        "local.fns", "AddRelu", ["a", "b"], ["c"],
        [helper.make_node("Add", ["a", "b"], ["t"]), helper.make_node("Relu", ["t"], ["c"])],
        opset_imports=[helper.make_opsetid("", 17)],
    )
    graph = helper.make_graph(
        [helper.make_node("AddRelu", ["x", "y"], ["z"], domain="local.fns")], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4]), helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [4])],
    )
    model = helper.make_model(graph, functions=[fn],
                              opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("local.fns", 1)])
    sess = ortcore.InferenceSession(model.SerializeToString())
    x, y = np.array([1, -2, 3, -4], np.float32), np.array([-2, 1, 1, 1], np.float32)
    np.testing.assert_array_equal(sess.run(None, {"x": x, "y": y})[0], np.maximum(x + y, 0))
    assert [a.node.op_type for a in sess.get_partition().assignments] == ["Add", "Relu"]


def test_symbolic_dims_are_kept():
    sess = ortcore.InferenceSession(build_demo_model(batch="batch").SerializeToString())
    assert sess.get_inputs()[0].shape == ["batch", 3, 32, 32]
    assert sess.get_outputs()[0].shape == ["batch", 10]


def test_ir_writes_back_a_valid_model(tmp_path):
    from ortcore.ir import load_model, model_to_proto
    from ortcore.testing import light_model_path

    for name in ("resnet50", "inception_v1"):
        proto = model_to_proto(load_model(light_model_path(name)))
        onnx.checker.check_model(proto, full_check=True)


def test_optimized_model_file_is_valid_and_equivalent(tmp_path, demo_bytes):
    opts = ortcore.SessionOptions()
    opts.optimized_model_filepath = str(tmp_path / "opt.onnx")
    x = np.random.default_rng(2).standard_normal((2, 3, 32, 32)).astype(np.float32)
    ours = ortcore.InferenceSession(demo_bytes, opts).run(None, {"image": x})[0]
    saved = onnx.load(opts.optimized_model_filepath)
    onnx.checker.check_model(saved)
    np.testing.assert_allclose(_ort(saved.SerializeToString()).run(None, {"image": x})[0], ours, rtol=1e-3, atol=1e-5)


def test_overridable_initializers():
    w = numpy_helper.from_array(np.array([2.0, 3.0], np.float32), "w")
    model = make_model(
        [helper.make_node("Mul", ["x", "w"], ["y"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2]), helper.make_tensor_value_info("w", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
        [w],
    )
    sess, ref = ortcore.InferenceSession(model.SerializeToString()), _ort(model.SerializeToString())
    assert [a.name for a in sess.get_inputs()] == [a.name for a in ref.get_inputs()] == ["x"]
    assert [a.name for a in sess.get_overridable_initializers()] == [a.name for a in ref.get_overridable_initializers()] == ["w"]
    x = np.array([1.0, 1.0], np.float32)
    np.testing.assert_array_equal(sess.run(None, {"x": x})[0], [2.0, 3.0])
    np.testing.assert_array_equal(sess.run(None, {"x": x, "w": np.array([5.0, 7.0], np.float32)})[0], [5.0, 7.0])


def test_output_names_select_and_order(demo_bytes):
    model = make_model(
        [helper.make_node("Neg", ["x"], ["a"]), helper.make_node("Abs", ["x"], ["b"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, [2]), helper.make_tensor_value_info("b", TensorProto.FLOAT, [2])],
    )
    sess = ortcore.InferenceSession(model.SerializeToString())
    b, a = sess.run(["b", "a"], {"x": np.array([-1.0, 2.0], np.float32)})
    np.testing.assert_array_equal(a, [1.0, -2.0])
    np.testing.assert_array_equal(b, [1.0, 2.0])


def test_intermediate_values_are_released_after_last_use():
    """A probe kernel at the end of a chain sees the chain's first intermediate already freed."""
    seen = {}
    registry = ortcore.KernelRegistry("probe")

    @registry.kernel("Remember", since=1, domain="test.probe")
    def remember(x, /):
        out = x * 2
        seen["first"] = weakref.ref(out)
        return out

    @registry.kernel("Check", since=1, domain="test.probe")
    def check(x, /):
        seen["alive_at_check"] = seen["first"]() is not None
        return x

    class Plugin:
        @ortcore.hookimpl
        def ortcore_kernels(self, provider):
            return registry if provider == "CPUExecutionProvider" else None

    ortcore.register_plugin(Plugin(), "probe")
    try:
        model = make_model(
            [helper.make_node("Remember", ["x"], ["r"], domain="test.probe"),
             helper.make_node("Neg", ["r"], ["n"]),
             helper.make_node("Check", ["n"], ["y"], domain="test.probe")],
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1000])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1000])],
            domains=["test.probe"],
        )
        sess = ortcore.InferenceSession(model.SerializeToString())
        y = sess.run(None, {"x": np.ones(1000, np.float32)})[0]
        np.testing.assert_array_equal(y, -2 * np.ones(1000, np.float32))
        assert seen["alive_at_check"] is False
    finally:
        ortcore.unregister_plugin("probe")


def test_concurrent_runs_match_serial_runs(demo_bytes):
    sess = ortcore.InferenceSession(demo_bytes)
    rng = np.random.default_rng(3)
    inputs = [rng.standard_normal((2, 3, 32, 32)).astype(np.float32) for _ in range(8)]
    serial = [sess.run(None, {"image": x})[0] for x in inputs]
    results: dict[int, list[np.ndarray]] = {}
    errors = []

    def worker(t: int) -> None:
        try:
            results[t] = [sess.run(None, {"image": inputs[t]})[0] for _ in range(50)]
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors
    for t in range(8):
        assert len(results[t]) == 50
        for r in results[t]:
            np.testing.assert_array_equal(r, serial[t])


def test_profile_is_a_chrome_trace_with_onnxruntime_input_shapes(tmp_path):
    """One event per kernel call, named after its node, with the inputs' dtypes and shapes as onnxruntime writes them."""
    w = numpy_helper.from_array(np.ones((4, 3), np.float32), "w")
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["h"], name="mm"),
        helper.make_node("Cast", ["h"], ["y"], name="cast", to=TensorProto.INT64),
    ]
    model = make_model(
        nodes,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])],
        [helper.make_tensor_value_info("y", TensorProto.INT64, ["n", 3])],
        [w],
    )
    options = ortcore.SessionOptions()
    options.enable_profiling = True
    options.profile_file_prefix = str(tmp_path / "trace")
    options.graph_optimization_level = ortcore.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ortcore.InferenceSession(model.SerializeToString(), options)
    for n in (2, 5):
        sess.run(None, {"x": np.zeros((n, 4), np.float32)})
    path = sess.end_profiling()
    assert path.startswith(str(tmp_path / "trace"))
    import json

    with open(path) as f:
        events = json.load(f)
    assert [(e["name"], e["args"]["op_name"], e["args"]["provider"]) for e in events] == [
        ("mm", "MatMul", "CPUExecutionProvider"),
        ("cast", "Cast", "CPUExecutionProvider"),
    ] * 2
    assert [e["args"]["input_type_shape"] for e in events] == [
        [{"float": [2, 4]}, {"float": [4, 3]}],
        [{"float": [2, 3]}],
        [{"float": [5, 4]}, {"float": [4, 3]}],
        [{"float": [5, 3]}],
    ]
    assert all(e["ph"] == "X" and e["dur"] >= 0 for e in events)
