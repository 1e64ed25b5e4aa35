"""Whole models: the onnx package's model data directories and its light models.

Data-directory models are compared with their stored outputs. A light model
is compared with its stored output when the provider under test is the
fallback (CPU) provider; any other provider runs a copy with seeded random
weights (see ortcore.testing.randomize_light_model) and is compared with the
fallback provider on the same copy, since the shipped weights are constants
that hide per-channel bugs.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

import ortcore
from ortcore.testing import randomize_light_model
from ortcore_conformance.cases import (
    check_outputs, dtypes_of, feed_names, load_data_sets, model_cases, node_count, ops_of,
)

CASES = model_cases()
# The light models a --ortcore-quick run keeps: the two that take well under a second.
QUICK_LIGHT = ("test_squeezenet", "test_shufflenet")


@pytest.mark.parametrize("case", [c for c in CASES if c.kind != "light"], ids=lambda c: c.name)
def test_model_case(case, target, record_case):
    model = onnx.load(case.path)
    data_sets = load_data_sets(case, model)
    record_case("model", ops_of(model), dtypes_of(*data_sets[0]))
    sess = target.session(model, nodes=node_count(model))
    for inputs, expected in data_sets:
        actual = sess.run(None, dict(zip(feed_names(model), inputs)))
        check_outputs(model, expected, actual, rtol=case.rtol, atol=case.atol)


@pytest.mark.parametrize("case", [
    pytest.param(c, id=c.name, marks=() if c.name in QUICK_LIGHT else pytest.mark.ortcore_full)
    for c in CASES if c.kind == "light"
])
def test_light_model(case, target, record_case):
    model = onnx.load(case.path)
    record_case("model", ops_of(model), ["float32"])
    if target.fallback:
        _against_stored_output(target, case, model)
    else:
        _against_fallback_provider(target, case, randomize_light_model(model, seed=0))


def _against_stored_output(target, case, model):
    from onnx.backend.test.runner import Runner

    sess = target.session(model, nodes=len(model.graph.node))
    names = set(feed_names(model))
    # the inputs onnx's BackendTest made its stored output from
    feeds = {i.name: Runner.generate_dummy_data(i) for i in model.graph.input if i.name in names}
    expected = [
        numpy_helper.to_array(onnx.load_tensor(str(case.path.with_name(f"{case.path.stem}_output_{i}.pb"))))
        for i in range(len(model.graph.output))
    ]
    check_outputs(model, expected, sess.run(None, feeds), rtol=case.rtol, atol=case.atol)


def _against_fallback_provider(target, case, model):
    sess = target.session(model, nodes=len(model.graph.node))
    rng = np.random.default_rng(0)
    feeds = {
        i.name: rng.standard_normal([d if isinstance(d, int) else 1 for d in i.shape]).astype(np.float32)
        for i in sess.get_inputs()
    }
    expected = ortcore.InferenceSession(model).run(None, feeds)  # providers=None: the fallback provider(s)
    check_outputs(model, expected, sess.run(None, feeds), rtol=1e-3, atol=1e-5)
