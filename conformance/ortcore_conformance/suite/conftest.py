"""Fixtures of the conformance suite: the provider under test and the case record."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import pytest

from ortcore_conformance.plugin import get_run
from ortcore_conformance.target import Target


@pytest.fixture(scope="session")
def target(pytestconfig: pytest.Config) -> Target:
    run = get_run(pytestconfig)
    if run is None:
        pytest.skip("the conformance suite runs with --ortcore-provider NAME (or `ortcore conformance NAME`)")
    return run.target


@pytest.fixture
def record_case(record_property: Callable[[str, Any], None]) -> Callable[..., None]:
    """Tell the report what a case exercises: kind, ops as (domain, op, opset), dtypes."""

    def record(kind: str, ops: Iterable[tuple[str, str, int]] = (), dtypes: Iterable[str] = ()) -> None:
        record_property("ortcore", {"kind": kind, "ops": [list(o) for o in ops], "dtypes": sorted(set(dtypes))})

    return record


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # the host<->device round trip runs once per dtype the provider's kernels declare
    if "declared_dtype" in metafunc.fixturenames:
        run = get_run(metafunc.config)
        dtypes = run.target.declared_dtypes() if run is not None and run.target.available else []
        metafunc.parametrize("declared_dtype", dtypes, ids=str)
