"""Every ONNX backend node case of the installed onnx package, on the provider under test.

Expected outputs are onnx's own (computed by its reference code when the
cases are generated), so they are independent of ortcore and of the provider.
"""

from __future__ import annotations

import onnx
import pytest

from ortcore.testing import RANDOM_CASES, node_cases
from ortcore_conformance.cases import check_outputs, dtypes_of, feed_names, ops_of

CASES = node_cases()


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_node_case(case, target, record_case):
    model = onnx.load_model_from_string(case.model)
    record_case("node", ops_of(model), dtypes_of(*case.data_sets[0]))
    sess = target.session(case.model, nodes=len(model.graph.node))
    names = feed_names(model)
    for inputs, expected in case.data_sets:
        actual = sess.run(None, dict(zip(names, inputs)))
        check_outputs(
            model, expected, actual, rtol=max(case.rtol, 1e-3), atol=max(case.atol, 1e-5),
            random=case.name.startswith(RANDOM_CASES),
        )
