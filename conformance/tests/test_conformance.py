"""The conformance suite run as users run it: `ortcore conformance PROVIDER` in a subprocess.

Every provider in this repository gets a quick run; a throwaway provider
distribution (real entry-point metadata) that claims only Add checks that the
report is honest: Add cases run on it, everything else is unsupported.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import ortcore
from ortcore.cli import main
from ortcore_conformance.report import by_op, summary_line
from ortcore_conformance.target import expected_failures_path
from ortcore.testing import write_plugin_distribution

REPO = Path(__file__).resolve().parents[2]
SUMMARY = re.compile(r"^(\d+) passed, (\d+) failed, (\d+) unsupported, (\d+) xfailed$")


def _repo_providers() -> list[str]:
    """Providers shipped in this repository: under providers/ and the provider examples."""
    providers = ortcore.get_plugin_manager().providers()
    roots = [REPO / "providers", REPO / "plugins-examples"]
    return [
        name for name, info in providers.items()
        if any(Path(sys.modules[info.cls.__module__].__file__).resolve().is_relative_to(root) for root in roots)
    ]


def _conformance(*args: str, path: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if path is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(path), env.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-m", "ortcore", "conformance", *args], capture_output=True, text=True, env=env, cwd=path,
    )


@pytest.fixture(scope="module", params=_repo_providers())
def quick_run(request, tmp_path_factory):
    report = tmp_path_factory.mktemp("report")
    result = _conformance(request.param, "--quick", "--report", str(report))
    return request.param, result, json.loads((report / "report.json").read_text()), report


def test_quick_run_ends_with_the_counts_and_writes_the_report(quick_run):
    name, result, data, report = quick_run
    last = result.stdout.strip().splitlines()[-1]
    counts = SUMMARY.match(last)
    assert counts, result.stdout[-3000:] + result.stderr[-3000:]
    assert dict(zip(("passed", "failed", "unsupported", "xfailed"), map(int, counts.groups()))) == data["totals"]
    assert result.returncode == (1 if data["totals"]["failed"] else 0)
    assert data["provider"]["name"] == name and data["mode"] == "quick"
    assert {"node", "model", "property", "contract"} <= {c["kind"] for c in data["cases"]}
    assert sum(data["totals"].values()) == len(data["cases"])
    for row in data["ops"]:
        assert set(row) == {"op", "domain", "opsets", "dtypes", "passed", "failed", "unsupported", "xfailed",
                            "first_failure"}
    assert {p.name for p in report.iterdir()} == {"report.json", "report.md", "report.html"}
    assert "| op | domain | opsets |" in (report / "report.md").read_text()


def test_quick_run_of_a_repo_provider_has_no_failures(quick_run):
    name, _, data, _ = quick_run
    failures = [f"{c['name']}: {c['message'][:300]}" for c in data["cases"] if c["outcome"] == "failed"]
    assert not failures, f"{name} fails conformance:\n" + "\n".join(failures)


def test_the_cpu_provider_passes_most_node_cases(quick_run):
    name, _, data, _ = quick_run
    node = [c for c in data["cases"] if c["kind"] == "node"]
    assert len(node) > 1500
    if name == "CPUExecutionProvider":
        assert sum(c["outcome"] == "passed" for c in node) > 0.97 * len(node)


FAKE_ADD = '''
import numpy as np
from ortcore.hookspecs import hookimpl
from ortcore.kernels import KernelRegistry
from ortcore.provider import ExecutionProvider

registry = KernelRegistry("FakeAddExecutionProvider")


class Box:
    """An array on the fake device: host code cannot use it without to_host."""
    def __init__(self, array):
        self.array = array


@registry.kernel("Add", since=7, until=100)
def add(a, b, /):
    total = np.asarray(a.array + b.array)  # numpy makes a scalar of 0-d + 0-d
    # the fake device has no float64 adder (its expected_failures.txt says so)
    return Box(total.astype(np.float32) if total.dtype == np.float64 else total)


class FakeAddExecutionProvider(ExecutionProvider):
    name = "FakeAddExecutionProvider"

    def kernel_registry(self):
        return registry

    @property
    def device(self):
        return "fake:0"

    def from_host(self, array):
        return Box(np.asarray(array))

    def to_host(self, box):
        return box.array


class AbsentExecutionProvider(ExecutionProvider):
    name = "AbsentExecutionProvider"

    @classmethod
    def availability(cls):
        return False, "no absent device on this machine"

    def kernel_registry(self):
        return KernelRegistry()


@hookimpl
def ortcore_execution_providers():
    return [FakeAddExecutionProvider, AbsentExecutionProvider]
'''

FAKE_EXPECTED = """\
# the fake device narrows float64 sums to float32
Add-float64: no float64 adder on the fake device
"""


@pytest.fixture
def fake_distribution(tmp_path):
    write_plugin_distribution(
        tmp_path, "ortcore-fake-add", "0.1", "fake_add", "ortcore_fake_add",
        {"ortcore_fake_add/__init__.py": FAKE_ADD, "ortcore_fake_add/expected_failures.txt": FAKE_EXPECTED},
    )
    return tmp_path


def test_a_provider_claiming_only_add_gets_an_honest_report(fake_distribution):
    report = fake_distribution / "report"
    result = _conformance("FakeAddExecutionProvider", "--quick", "--report", str(report), path=fake_distribution)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    data = json.loads((report / "report.json").read_text())
    listed = {line.split(":")[0] for line in FAKE_EXPECTED.splitlines() if not line.startswith("#")}
    for case in data["cases"]:
        ops = {op for _, op, _ in case["ops"]}
        if case["kind"] == "contract":
            assert case["outcome"] == "passed", case
        elif ops == {"Add"} and min(opset for _, _, opset in case["ops"]) >= 7:  # the kernel's range
            assert case["outcome"] == ("xfailed" if case["id"] in listed else "passed"), case
        else:
            assert case["outcome"] == "unsupported", case
    passed = {c["id"] for c in data["cases"] if c["outcome"] == "passed" and c["kind"] != "contract"}
    assert {"test_add", "test_add_bcast", "test_add_uint8", "Add-float32", "Add-int64"} <= passed
    assert data["totals"]["xfailed"] == 1
    add = next(row for row in data["ops"] if row["op"] == "Add")
    assert add["failed"] == 0 and add["passed"] >= 15
    assert SUMMARY.match(result.stdout.strip().splitlines()[-1])


def test_an_unavailable_provider_reports_why_and_runs_nothing(fake_distribution):
    result = _conformance("AbsentExecutionProvider", "--quick", "--report", "out", "-k", "Add or availability",
                          path=fake_distribution)
    data = json.loads((fake_distribution / "out" / "report.json").read_text())
    assert data["provider"]["available"] is False and "no absent device" in data["provider"]["reason"]
    outcomes = {c["name"]: c["outcome"] for c in data["cases"]}
    assert outcomes.pop("test_availability_is_reported_with_a_reason") == "passed"
    assert outcomes and set(outcomes.values()) == {"unsupported"}, result.stdout[-2000:]


def test_bad_arguments_and_bad_expected_failures_are_usage_errors(fake_distribution):
    result = _conformance("NoSuchExecutionProvider", path=fake_distribution)
    assert result.returncode == 4 and "'NoSuchExecutionProvider' is not installed" in result.stderr
    (fake_distribution / "ortcore_fake_add" / "expected_failures.txt").write_text("test_add\n")
    result = _conformance("FakeAddExecutionProvider", "--quick", path=fake_distribution)
    assert result.returncode == 4 and "expected failure 'test_add' has no reason" in result.stderr


def test_expected_failures_file_is_found_through_the_provider_class(tmp_path):
    import ortcore_cpu.provider

    cpu = ortcore_cpu.provider.CPUExecutionProvider
    assert expected_failures_path(cpu) == REPO / "providers/cpu/ortcore_cpu/expected_failures.txt"
    own = type("Own", (cpu,), {"expected_failures_file": str(tmp_path / "mine.txt")})
    assert expected_failures_path(own) == tmp_path / "mine.txt"
    plain = type("Plain", (cpu,), {"__module__": "__main__"})
    assert expected_failures_path(plain) is None  # a plain module has no package folder


def test_the_op_table_counts_a_case_under_every_op_it_uses():
    cases = [
        {"name": "a", "outcome": "passed", "ops": [["ai.onnx", "Add", 14]], "dtypes": ["float32"], "message": ""},
        {"name": "b", "outcome": "failed", "ops": [["ai.onnx", "Add", 7], ["ai.onnx", "Relu", 14]],
         "dtypes": ["int8"], "message": "boom"},
        {"name": "c", "outcome": "unsupported", "ops": [], "dtypes": [], "message": "no kernel"},
    ]
    add, relu = by_op(cases)
    assert (add["op"], add["opsets"], add["dtypes"]) == ("Add", [7, 14], ["float32", "int8"])
    assert (add["passed"], add["failed"], relu["passed"], relu["failed"]) == (1, 1, 0, 1)
    assert add["first_failure"] == relu["first_failure"] == "b: boom"
    assert summary_line(cases) == "1 passed, 1 failed, 1 unsupported, 0 xfailed"


def test_cli_says_how_to_install_the_suite_when_missing(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ortcore_conformance", None)  # as if not installed
    assert main(["conformance", "CPUExecutionProvider"]) == 2
    assert "pip install ortcore-conformance" in capsys.readouterr().err


def test_the_plugin_leaves_other_test_runs_alone(tmp_path):
    (tmp_path / "test_other.py").write_text(textwrap.dedent("""
        def test_one():
            assert True
    """))
    result = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", str(tmp_path)],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0 and "1 passed" in result.stdout
    assert not SUMMARY.match(result.stdout.strip().splitlines()[-1])
