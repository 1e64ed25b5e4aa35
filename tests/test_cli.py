"""The command line: the quick-start demo, partition and run."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime

from ortcore.cli import main
from ortcore.demo import build_demo_model
from ortcore.testing import light_model_path


def test_demo_prints_outputs_partition_and_latency(capsys):
    assert main(["demo", "--repeat", "3"]) == 0
    out = capsys.readouterr().out
    assert "output 'probabilities': float32 (2, 10)" in out
    assert "conv1" in out and "CPUExecutionProvider" in out
    assert "latency over 3 runs: median" in out
    # the printed prediction agrees with onnxruntime on the same seeded input
    image = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    ref = onnxruntime.InferenceSession(build_demo_model().SerializeToString(), providers=["CPUExecutionProvider"])
    expected = ref.run(None, {"image": image})[0].argmax(axis=1).tolist()
    assert f"predicted classes: {expected}" in out


def test_partition_json_lists_every_node(capsys):
    path = str(light_model_path("squeezenet"))
    assert main(["partition", path, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["nodes"] and all(n["provider"] == "CPUExecutionProvider" for n in data["nodes"])
    assert data["transfers"] == []


def test_run_reports_errors_without_traceback(capsys, tmp_path):
    assert main(["run", str(tmp_path / "missing.onnx")]) == 1
    err = capsys.readouterr().err
    assert "NoSuchFile" in err and "missing.onnx" in err and "Traceback" not in err


def test_optimize_prints_each_pass_and_writes_a_model_onnxruntime_runs(capsys, tmp_path):
    src, out = tmp_path / "demo.onnx", tmp_path / "demo.opt.onnx"
    src.write_bytes(build_demo_model().SerializeToString())
    assert main(["optimize", str(src), str(out), "--level", "extended"]) == 0
    printed = capsys.readouterr().out
    assert "conv_batchnorm_fusion: 1 change(s)" in printed and "conv_activation_fusion: 2 change(s)" in printed
    assert "10 nodes -> 7 nodes" in printed
    image = np.random.default_rng(1).standard_normal((1, 3, 32, 32)).astype(np.float32)
    optimized = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(None, {"image": image})[0]
    original = onnxruntime.InferenceSession(str(src), providers=["CPUExecutionProvider"]).run(None, {"image": image})[0]
    np.testing.assert_allclose(optimized, original, rtol=1e-3, atol=1e-5)


def test_output_cut_short_by_its_reader_is_not_an_error():
    """``ortcore providers | head -1``: the closed pipe ends the command quietly, exit status 0."""
    import subprocess
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; from ortcore.cli import main; sys.exit(main(['providers']))"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    proc.stdout.readline()
    proc.stdout.close()  # the reader goes away after one line
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0, stderr
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr
