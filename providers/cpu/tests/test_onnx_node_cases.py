"""Every ONNX backend node case of the installed onnx, run on the CPU provider.

Expected outputs come from the onnx package (computed by its own reference
code), so they are independent of ortcore. A case whose ops the CPU provider
does not claim is skipped with the reason, which keeps the report honest: a
skip is "unsupported", never "passed".
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest

import ortcore
from ortcore.testing import RANDOM_CASES, compare_outputs, node_cases

CASES = node_cases()


def _session(case):
    opts = ortcore.SessionOptions()
    opts.disable_fallback = True
    try:
        return ortcore.InferenceSession(case.model, opts, providers=["CPUExecutionProvider"])
    except ortcore.NotImplemented as exc:
        pytest.skip(f"unsupported by CPUExecutionProvider: {str(exc).splitlines()[-1].strip()}")


# ops whose kernels have compiled loops (ortcore_cpu.jit): their cases also run on the numpy paths
_COMPILED_OPS = {"Conv", "MaxPool", "AveragePool", "BatchNormalization"}
NUMPY_PATH_CASES = [
    c for c in CASES if _COMPILED_OPS & {n.op_type for n in onnx.load_model_from_string(c.model).graph.node}
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_node_case(case):
    _check(case)


@pytest.mark.parametrize("case", NUMPY_PATH_CASES, ids=[c.name for c in NUMPY_PATH_CASES])
def test_node_case_on_numpy_paths(case, monkeypatch):
    """The same cases with compiled loops switched off."""
    from ortcore_cpu import jit

    monkeypatch.setenv(jit.ENV, "0")
    _check(case)


def _check(case):
    sess = _session(case)
    model = onnx.load_model_from_string(case.model)
    inits = {t.name for t in model.graph.initializer}
    input_names = [i.name for i in model.graph.input if i.name not in inits]
    output_names = [o.name for o in model.graph.output]
    for inputs, expected in case.data_sets:
        feeds = dict(zip(input_names, inputs))
        actual = sess.run(None, feeds)
        assert len(actual) == len(expected) == len(output_names)
        for name, e, a in zip(output_names, expected, actual):
            if case.name.startswith(RANDOM_CASES):
                assert a.dtype == np.asarray(e).dtype and a.shape == np.asarray(e).shape
                continue
            compare_outputs(e, a, rtol=1e-3, atol=max(case.atol, 1e-5), name=f"{case.name}:{name}")
