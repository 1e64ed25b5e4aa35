"""ortcore-conformance: does an execution provider implement ONNX as ortcore expects?

Run it as ``ortcore conformance PROVIDER [--quick] [--report DIR] [-k PATTERN]``
or as a pytest plugin, ``pytest --ortcore-provider PROVIDER``. See
docs/conformance.md.
"""

from __future__ import annotations

from collections.abc import Sequence

__version__ = "0.1.0"
__all__ = ["main"]


def main(provider: str, *, quick: bool = False, report: str | None = None, keyword: str | None = None,
         extra: Sequence[str] = ()) -> int:
    """Run the suite against ``provider``; returns pytest's exit code."""
    import pytest

    from ortcore_conformance.plugin import SUITE

    # The suite's own ini file: the caller's pytest configuration (addopts, testpaths) stays out.
    args = [str(SUITE), "-c", str(SUITE / "pytest.ini"), "--ortcore-provider", provider]
    if quick:
        args.append("--ortcore-quick")
    if report:
        args += ["--ortcore-report", str(report)]
    if keyword:
        args += ["-k", keyword]
    return int(pytest.main([*args, *extra]))
