"""The pytest plugin (entry point group ``pytest11``): ``pytest --ortcore-provider NAME``.

Without ``--ortcore-provider`` the plugin only declares its options, so it
never changes another test run. With it, the suite under ``suite/`` runs
against the named provider (when no test paths are given), expected failures
become strict xfails, and every outcome is recorded for the report.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

__all__ = ["SUITE", "ConformanceRun"]

SUITE = Path(__file__).parent / "suite"
PLUGIN_NAME = "ortcore-conformance-run"
UNSUPPORTED = "unsupported: "  # how a skip that means "the provider declines this case" begins


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("ortcore-conformance", "ortcore conformance suite")
    group.addoption("--ortcore-provider", metavar="NAME", help="run the conformance suite against provider NAME")
    group.addoption("--ortcore-quick", action="store_true", help="few randomized examples and light models (CI)")
    group.addoption("--ortcore-report", metavar="DIR", help="write report.json, report.md and report.html to DIR")


def pytest_configure(config: pytest.Config) -> None:
    name = config.getoption("ortcore_provider")
    if not name:
        return
    config.addinivalue_line("markers", "ortcore_full: left out of --ortcore-quick runs")
    config.pluginmanager.register(ConformanceRun(config, name), PLUGIN_NAME)
    if config.args_source is not pytest.Config.ArgsSource.ARGS:
        config.args[:] = [str(SUITE)]


def get_run(config: pytest.Config) -> ConformanceRun | None:
    return config.pluginmanager.get_plugin(PLUGIN_NAME)


class ConformanceRun:
    """One conformance run: the provider under test and what happened to every case."""

    def __init__(self, config: pytest.Config, provider: str) -> None:
        from hypothesis import HealthCheck, settings
        from hypothesis.configuration import set_hypothesis_home_dir

        from ortcore.testing import cache_dir
        from ortcore_conformance.target import Target

        self.quick = bool(config.getoption("ortcore_quick"))
        self.report_dir = config.getoption("ortcore_report")
        self.target = Target(provider)
        self.cases: dict[str, dict[str, Any]] = {}
        self.written: list[Path] = []
        settings.register_profile(
            "ortcore-conformance",
            max_examples=4 if self.quick else 100,
            deadline=None,
            database=None,  # runs repeat through each test's own seed, not through a database
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
        )
        settings.load_profile("ortcore-conformance")
        set_hypothesis_home_dir(cache_dir() / "hypothesis")  # not a .hypothesis folder wherever the user stands

    # -- collection: expected failures and the quick selection ---------------------
    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[pytest.Item]) -> None:
        expected = self.target.expected_failures
        keep, dropped = [], []
        for item in items:
            if SUITE not in item.path.parents:
                keep.append(item)
                continue
            if self.quick and item.get_closest_marker("ortcore_full"):
                dropped.append(item)
                continue
            keep.append(item)
            param = item.callspec.id if hasattr(item, "callspec") else item.name
            reason = expected.get(item.name) or expected.get(param)
            if reason:
                item.add_marker(pytest.mark.xfail(reason=reason, strict=True))
            self.cases[item.nodeid] = {
                "name": item.name, "id": param, "kind": "contract", "outcome": None,
                "ops": [], "dtypes": [], "message": "",
            }
        if dropped:
            config.hook.pytest_deselected(items=dropped)
            items[:] = keep

    # -- outcomes -----------------------------------------------------------------
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        case = self.cases.get(report.nodeid)
        if case is None:
            return
        for key, value in report.user_properties:
            if key == "ortcore":
                case.update(value)
        if report.failed:
            if case["outcome"] != "failed":
                crash = getattr(report.longrepr, "reprcrash", None)
                message = crash.message if crash else str(report.longrepr)
                case["outcome"], case["message"] = "failed", message[:2000]
        elif case["outcome"] is None and report.skipped:
            if hasattr(report, "wasxfail"):
                case["outcome"], case["message"] = "xfailed", report.wasxfail
            else:
                reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
                case["outcome"] = "unsupported"
                case["message"] = reason.removeprefix("Skipped: ").removeprefix(UNSUPPORTED)
        elif case["outcome"] is None and report.when == "call":
            case["outcome"] = "passed"

    def results(self) -> list[dict[str, Any]]:
        return [c for c in self.cases.values() if c["outcome"] is not None]

    def data(self) -> dict[str, Any]:
        import onnx

        from ortcore_conformance.report import OUTCOMES, by_op, summary_line

        target, info = self.target, self.target.info
        try:
            device = target.provider.device if target.available else ""
        except Exception as exc:  # noqa: BLE001 - reported, the contract tests fail on it
            device = f"failed to start: {type(exc).__name__}: {exc}"
        cases = self.results()
        used = {c["name"] for c in cases} | {c["id"] for c in cases}
        return {
            "provider": {
                "name": target.name, "distribution": info.plugin.distribution, "version": info.plugin.version,
                "available": target.available, "reason": info.reason, "device": device,
            },
            "mode": "quick" if self.quick else "full",
            "onnx": onnx.__version__,
            "summary": summary_line(cases),
            "totals": {o: sum(c["outcome"] == o for c in cases) for o in OUTCOMES},
            "expected_failures": {
                "file": str(target.expected_failures_file) if target.expected_failures_file else None,
                "unused": sorted(set(target.expected_failures) - used),
            },
            "ops": by_op(cases),
            "cases": cases,
        }

    # -- the end of the run -----------------------------------------------------------
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.report_dir:
            from ortcore_conformance.report import write_report

            self.written = write_report(self.report_dir, self.data())

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        for path in self.written:
            terminalreporter.write_line(f"ortcore conformance report: {path}")

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        from ortcore_conformance.report import summary_line

        # Printed last, after pytest's own summary, so that the run ends with it.
        config.get_terminal_writer().line(summary_line(self.results()))
