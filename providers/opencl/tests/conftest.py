"""Shared fixtures of the OpenCL provider's tests: skip without a device, run models both ways."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pytest

OCL = "OpenCLExecutionProvider"


def _available() -> tuple[bool, str]:
    try:
        from ortcore_opencl.provider import OpenCLExecutionProvider
    except Exception as exc:  # noqa: BLE001 - no pyopencl at all
        return False, f"{type(exc).__name__}: {exc}"
    return OpenCLExecutionProvider.availability()


_OK, _WHY = _available()


@pytest.fixture(autouse=True)
def _needs_opencl() -> None:
    if not _OK:
        pytest.skip(f"no OpenCL device: {_WHY}")


class OpenCLRunner:
    """Runs a model on OpenCL (CPU fallback allowed) and on the CPU provider, and compares."""

    def session(self, model: Any, options: Mapping[str, Any] | None = None, *, optimize: bool = True) -> Any:
        import ortcore

        so = ortcore.SessionOptions()
        if not optimize:
            so.graph_optimization_level = ortcore.GraphOptimizationLevel.ORT_DISABLE_ALL
        data = model if isinstance(model, bytes) else model.SerializeToString()
        return ortcore.InferenceSession(data, so, providers=[(OCL, dict(options or {})), "CPUExecutionProvider"])

    def cpu(self, model: Any, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        import ortcore

        so = ortcore.SessionOptions()
        so.graph_optimization_level = ortcore.GraphOptimizationLevel.ORT_DISABLE_ALL
        sess = ortcore.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
        return sess.run(None, dict(feeds))

    def providers_of(self, sess: Any) -> list[str]:
        return [a.provider.name for a in sess.get_partition().assignments]

    def check(
        self,
        model: Any,
        feeds: Mapping[str, np.ndarray],
        *,
        expected: Sequence[np.ndarray] | None = None,
        rtol: float = 1e-3,
        atol: float = 1e-4,
        all_on_opencl: bool = True,
        options: Mapping[str, Any] | None = None,
    ) -> tuple[list[np.ndarray], Any]:
        """Outputs on OpenCL compared with ``expected`` (else the CPU provider); returns (outputs, session)."""
        from ortcore.testing import compare_outputs

        sess = self.session(model, options, optimize=False)
        if all_on_opencl:
            where = self.providers_of(sess)
            assert where and all(p == OCL for p in where), sess.get_partition().table()
        actual = sess.run(None, dict(feeds))
        truth = list(expected) if expected is not None else self.cpu(model, feeds)
        assert len(actual) == len(truth)
        for i, (e, a) in enumerate(zip(truth, actual)):
            compare_outputs(e, a, rtol=rtol, atol=atol, name=f"output {i}")
        return actual, sess


@pytest.fixture
def ocl() -> OpenCLRunner:
    return OpenCLRunner()


@pytest.fixture
def runtime() -> Any:
    from ortcore_opencl.runtime import runtime_for

    return runtime_for()
