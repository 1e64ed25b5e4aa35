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
