"""MatMul, Gemm and com.microsoft FusedGemm on the OpenCL provider, against the CPU provider.

Every case runs one node on random data, asserts that the node really ran on
OpenCL, and compares with the CPU (numpy) provider; MatMul is also checked
against numpy's matmul in float64. All cases share one compiled program.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pyopencl")

import ortcore
from ortcore.errors import OrtCoreError
from ortcore.testing import compare_outputs, feeds_of, run_ortcore, single_node_model

OPENCL = "OpenCLExecutionProvider"


@pytest.fixture(scope="module", autouse=True)
def _available():
    if OPENCL not in ortcore.get_available_providers():
        pytest.skip("no OpenCL device here")


def _rand(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


def run_opencl(model, inputs):
    """Outputs of ``model`` on OpenCL alone, and the session (to inspect the partition)."""
    sess = ortcore.InferenceSession(model.SerializeToString(), providers=[OPENCL])
    return sess.run(None, feeds_of(model, inputs)), sess


def check(op, inputs, *, initializers=(), domain="", opset=13, **attrs):
    model = single_node_model(op, inputs, [np.float32], opset=opset, initializers=initializers, domain=domain,
                              **attrs)
    expected = run_ortcore(model, inputs)
    actual, sess = run_opencl(model, inputs)
    assignment = sess.get_partition().assignments[0]
    assert assignment.provider.name == OPENCL, f"{op} ran on {assignment.provider.name}"
    compare_outputs(expected[0], actual[0], rtol=1e-3, atol=1e-4, name=op)
    return actual[0], sess


MATMUL_SHAPES = [
    ((5, 7), (7, 9)),
    ((64, 300), (300, 70)),  # several tiles in both directions, ragged edges
    ((3, 5, 7), (3, 7, 9)),  # batched
    ((3, 5, 7), (7, 9)),  # batched left, shared right
    ((5, 7), (4, 7, 9)),  # shared left, batched right
    ((2, 1, 5, 7), (3, 7, 9)),  # broadcast batch dims
    ((2, 3, 1, 2, 4, 5), (3, 1, 5, 6)),  # four batch dims with broadcasting
    ((7,), (3, 7, 9)),  # 1-D left
    ((3, 5, 7), (7,)),  # 1-D right
    ((7,), (7,)),  # dot product: 0-d output
    ((1, 1), (1, 1)),
]


@pytest.mark.parametrize("a_shape,b_shape", MATMUL_SHAPES, ids=[f"{a}x{b}" for a, b in MATMUL_SHAPES])
@pytest.mark.parametrize("const_b", [False, True], ids=["b-input", "b-const"])
def test_matmul(a_shape, b_shape, const_b):
    rng = np.random.default_rng(len(a_shape) * 10 + len(b_shape))
    a, b = _rand(rng, *a_shape), _rand(rng, *b_shape)
    actual, _ = check("MatMul", {"a": a, "b": b}, initializers=("b",) if const_b else ())
    np.testing.assert_allclose(actual, np.matmul(a.astype(np.float64), b), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("a_shape,b_shape", [((0, 4), (4, 3)), ((3, 0), (0, 4)), ((2, 0, 5), (5, 3))])
def test_matmul_zero_size(a_shape, b_shape):
    rng = np.random.default_rng(0)
    actual, _ = check("MatMul", {"a": _rand(rng, *a_shape), "b": _rand(rng, *b_shape)})
    assert actual.shape == np.matmul(np.zeros(a_shape), np.zeros(b_shape)).shape
    assert not actual.any()  # an empty sum is zero


def test_matmul_declines_integers():
    rng = np.random.default_rng(0)
    a = rng.integers(-5, 5, (3, 4)).astype(np.int32)
    model = single_node_model("MatMul", {"a": a, "b": a.T.copy()}, [np.int32], opset=13)
    sess = ortcore.InferenceSession(model.SerializeToString(), providers=[OPENCL, "CPUExecutionProvider"])
    assert sess.get_partition().assignments[0].provider.name == "CPUExecutionProvider"


def test_matmul_inner_mismatch_is_an_ortcore_error():
    rng = np.random.default_rng(0)
    model = single_node_model("MatMul", {"a": _rand(rng, 3, 4), "b": _rand(rng, 4, 2)}, [np.float32], opset=13)
    # shapes given at run time disagree with the model's declared ones only in the inner dim
    model.graph.input[0].type.tensor_type.shape.dim[1].dim_param = "k"
    model.graph.input[1].type.tensor_type.shape.dim[0].dim_param = "k2"
    sess = ortcore.InferenceSession(model.SerializeToString(), providers=[OPENCL])
    with pytest.raises(OrtCoreError, match="MatMul"):
        sess.run(None, {"a": _rand(rng, 3, 4), "b": _rand(rng, 5, 2)})


C_SHAPES = [None, (), (1,), (9,), (1, 9), (6, 1), (6, 9)]


@pytest.mark.parametrize("trans_a", [0, 1])
@pytest.mark.parametrize("trans_b", [0, 1])
@pytest.mark.parametrize("c_shape", C_SHAPES, ids=[str(c) for c in C_SHAPES])
def test_gemm(trans_a, trans_b, c_shape):
    rng = np.random.default_rng(trans_a * 2 + trans_b)
    m, k, n = 6, 35, 9
    inputs = {
        "a": _rand(rng, *((k, m) if trans_a else (m, k))),
        "b": _rand(rng, *((n, k) if trans_b else (k, n))),
        "c": None if c_shape is None else _rand(rng, *c_shape),
    }
    actual, _ = check("Gemm", inputs, alpha=0.75, beta=-1.5, transA=trans_a, transB=trans_b)
    a = inputs["a"].T if trans_a else inputs["a"]
    b = inputs["b"].T if trans_b else inputs["b"]
    expected = 0.75 * (a.astype(np.float64) @ b)
    if c_shape is not None:
        expected = expected - 1.5 * inputs["c"]
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("opset", [7, 9, 11, 13])
@pytest.mark.parametrize("trans_b", [0, 1])
def test_gemm_constant_weights(opset, trans_b):
    rng = np.random.default_rng(opset)
    b = _rand(rng, *((70, 130) if trans_b else (130, 70)))
    inputs = {"a": _rand(rng, 20, 130), "b": b, "c": _rand(rng, 70)}
    _, sess = check("Gemm", inputs, initializers=("b", "c"), opset=opset, transB=trans_b)
    rt = sess.get_partition().assignments[0].provider.runtime
    before = rt.launches
    sess.run(None, {"a": inputs["a"]})
    assert rt.launches - before == 2, "constant weights must be packed once, at session creation"


FUSED_GEMM_ACTIVATIONS = [
    ("Relu", {}),
    ("LeakyRelu", {"activation_alpha": 0.2}),
    ("Sigmoid", {}),
    ("Tanh", {}),
    ("HardSigmoid", {"activation_alpha": 0.3, "activation_beta": 0.4}),
    ("Elu", {"activation_alpha": 0.7}),
    ("Softsign", {}),
    ("Softplus", {}),
    ("ThresholdedRelu", {"activation_alpha": 0.5}),
]


@pytest.mark.parametrize("activation,params", FUSED_GEMM_ACTIVATIONS, ids=[a for a, _ in FUSED_GEMM_ACTIVATIONS])
def test_fused_gemm(activation, params):
    rng = np.random.default_rng(1)
    inputs = {"a": _rand(rng, 13, 40) * 2, "b": _rand(rng, 21, 40), "c": _rand(rng, 21)}
    check("FusedGemm", inputs, initializers=("b",), domain="com.microsoft", opset=13, transB=1, alpha=0.5,
          activation=activation, **params)


def test_fused_gemm_from_the_optimizer():
    """Gemm + Relu becomes FusedGemm when the OpenCL provider claims both; the result still matches."""
    from onnx import helper, numpy_helper

    from ortcore.testing import make_model

    rng = np.random.default_rng(3)
    w, bias, x = _rand(rng, 50, 30), _rand(rng, 30), _rand(rng, 8, 50)
    model = make_model(
        [helper.make_node("Gemm", ["x", "w", "bias"], ["g"]), helper.make_node("Relu", ["g"], ["y"])],
        [helper.make_tensor_value_info("x", 1, [8, 50])],
        [helper.make_tensor_value_info("y", 1, None)],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(bias, "bias")],
        opset=13,
    )
    sess = ortcore.InferenceSession(model.SerializeToString(), providers=[OPENCL, "CPUExecutionProvider"])
    ops = {(a.node.op_type, a.provider.name) for a in sess.get_partition().assignments}
    assert ("FusedGemm", OPENCL) in ops
    compare_outputs(np.maximum(x.astype(np.float64) @ w + bias, 0).astype(np.float32),
                    sess.run(None, {"x": x})[0], rtol=1e-4, atol=1e-4)
