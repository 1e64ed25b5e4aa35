"""The installed plugin as a user meets it: no registration code, onnx tools, disabling it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import ortcore
from ortcore_sensorfusion import COMPLEMENTARY_FILTER, DOMAIN, SPECS


def python(code: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=120)


@pytest.fixture
def model_path(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    node = helper.make_node("ComplementaryFilter", ["accel", "gyro"], ["tilt"], domain=DOMAIN, alpha=0.9)
    graph = helper.make_graph(
        [node, helper.make_node("Identity", ["tilt"], ["angles"])], "imu",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", "T", 3]) for n in ("accel", "gyro")],
        [helper.make_tensor_value_info("angles", TensorProto.FLOAT, ["N", "T", 2])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(DOMAIN, 1)])
    path = tmp_path / "imu.onnx"
    onnx.save(model, path)
    return path


def test_a_fresh_process_runs_the_model_with_no_registration_code(model_path):
    result = python(f"""
        import json, numpy as np, ortcore
        sess = ortcore.InferenceSession({str(model_path)!r}, providers=["CPUExecutionProvider"])
        accel = np.tile(np.array([0.0, 0.0, 9.81], np.float32), (2, 5, 1))
        (angles,) = sess.run(None, {{"accel": accel, "gyro": np.zeros_like(accel)}})
        print(json.dumps([angles.shape, str(angles.dtype), float(abs(angles).max())]))
    """)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [[2, 5, 2], "float32", 0.0]


def test_without_the_plugin_session_creation_names_the_domain_and_op(model_path):
    result = python(f"""
        import ortcore
        try:
            ortcore.InferenceSession({str(model_path)!r}, providers=["CPUExecutionProvider"])
        except ortcore.NotImplemented as exc:
            print(exc)
    """, ORTCORE_DISABLE_PLUGINS="ortcore-sensorfusion")
    assert result.returncode == 0, result.stderr
    assert "ComplementaryFilter" in result.stdout and f"domain {DOMAIN}" in result.stdout, result.stdout


def test_disabling_the_plugin_through_session_options(model_path):
    opts = ortcore.SessionOptions()
    opts.disabled_plugins = ["sensorfusion"]
    with pytest.raises(ortcore.NotImplemented, match=rf"ComplementaryFilter.*domain {DOMAIN}.*no kernel"):
        ortcore.InferenceSession(str(model_path), opts, providers=["CPUExecutionProvider"])


def test_onnx_checker_and_shape_inference_accept_the_model_once_registered(model_path):
    result = python(f"""
        import onnx, ortcore
        model = onnx.load({str(model_path)!r})
        print("before:", len(onnx.shape_inference.infer_shapes(model).graph.value_info))
        ortcore.register_custom_ops()
        onnx.checker.check_model(model, full_check=True)
        (tilt,) = onnx.shape_inference.infer_shapes(model, strict_mode=True).graph.value_info
        shape = [d.dim_param or d.dim_value for d in tilt.type.tensor_type.shape.dim]
        print("after:", tilt.name, tilt.type.tensor_type.elem_type, shape)
        model.graph.input[1].type.tensor_type.elem_type = onnx.TensorProto.INT32
        try:
            onnx.checker.check_model(model, full_check=True)
        except Exception as exc:
            print("int32 gyro:", type(exc).__name__, exc)
    """)
    assert result.returncode == 0, result.stderr
    before, after, bad = result.stdout.splitlines()
    assert before == "before: 0"  # onnx knew nothing of the op: no type for its output
    assert after == "after: tilt 1 ['N', 'T', 2]"
    assert "input 'gyro' must be one of tensor(float), tensor(double), got tensor(int32)" in bad


def test_a_wrong_static_shape_fails_at_session_creation_naming_op_and_input():
    from ortcore.custom_ops import make_model

    node = COMPLEMENTARY_FILTER.make_node(["accel", "gyro"], ["angles"], name="cf")
    model = make_model([node], [("accel", np.float32, [4, 100, 3]), ("gyro", np.float32, [4, 100, 2])],
                       [("angles", np.float32, None)])
    with pytest.raises(ortcore.InvalidArgument) as info:
        ortcore.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    assert str(info.value) == (
        f"{DOMAIN}::ComplementaryFilter node 'cf': input 'gyro' dimension 2 must be 3 "
        "(expected shape (N, T, 3)), got shape (4, 100, 2)"
    )


def test_a_wrong_dtype_and_a_bad_attribute_are_named():
    from ortcore.custom_ops import make_model

    node = COMPLEMENTARY_FILTER.make_node(["accel", "gyro"], ["angles"], name="cf")
    model = make_model([node], [("accel", np.float32, [1, 4, 3]), ("gyro", np.float64, [1, 4, 3])],
                       [("angles", np.float32, None)])
    with pytest.raises(ortcore.InvalidArgument, match=r"input 'gyro' is tensor\(double\) but T is tensor\(float\)"):
        ortcore.InferenceSession(model.SerializeToString())
    node = COMPLEMENTARY_FILTER.make_node(["accel", "gyro"], ["angles"], name="cf", alpha=1.5)
    model = make_model([node], [("accel", np.float32, [1, 4, 3]), ("gyro", np.float32, [1, 4, 3])],
                       [("angles", np.float32, None)])
    with pytest.raises(ortcore.InvalidArgument, match=r"attribute 'alpha' must be in \[0, 1\], got 1.5"):
        ortcore.InferenceSession(model.SerializeToString())


def test_the_plugin_is_found_through_its_distribution_and_imports_no_device_library():
    info = ortcore.get_plugin_manager().plugin_infos["sensorfusion"]
    assert (info.distribution, info.status) == ("ortcore-sensorfusion", "loaded")
    names = {(s.domain, s.name) for s in ortcore.get_plugin_manager().op_schemas()}
    assert names == {(DOMAIN, spec.name) for spec in SPECS}
    result = python("""
        import sys, ortcore
        ortcore.InferenceSession  # a session's worth of imports
        import ortcore_sensorfusion.plugin as plugin, ortcore_sensorfusion.cpu
        plugin.ortcore_kernels(provider="CPUExecutionProvider")
        print("pyopencl" in sys.modules)
    """)
    assert result.stdout.strip() == "False", result.stderr
