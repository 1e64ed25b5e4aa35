"""RNN, GRU and LSTM: what the ONNX node cases leave out.

Random weights against onnxruntime: every direction with ``sequence_lens``
(including an empty sequence) and ``initial_h``/``initial_c``, ``layout=1``
(onnxruntime's CPU provider refuses it, so its layout-0 result on the
transposed inputs is the truth), clip, every activation with alpha/beta,
GRU's ``linear_before_reset``, LSTM's peepholes and ``input_forget``, constant
(pre-packed) and runtime weights, every schema version, outputs left out, and
float64/float16/bfloat16 against float32 or onnx.reference results.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np
import onnx
import onnxruntime
import pytest
from onnx import helper, numpy_helper
from onnx.reference import ReferenceEvaluator

import ortcore
from ortcore.dtypes import onnx_elem_type
from ortcore.testing import compare_outputs

RNG = np.random.default_rng(11)
GATES = {"RNN": 1, "GRU": 3, "LSTM": 4}
OUTPUTS = {"RNN": 2, "GRU": 2, "LSTM": 3}


def _model(op, inputs, attrs, opset, constant, outputs):
    names = [f"x{i}" if v is not None else "" for i, v in enumerate(inputs)]
    while names and not names[-1]:
        names.pop()
    node = helper.make_node(op, names, outputs, **attrs)
    feeds = {n: v for i, (n, v) in enumerate(zip(names, inputs)) if n and i not in constant}
    inits = [numpy_helper.from_array(inputs[i], names[i]) for i in constant if i < len(names) and names[i]]
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info(n, onnx_elem_type(v.dtype), v.shape) for n, v in feeds.items()],
        [onnx.ValueInfoProto(name=o) for o in outputs if o],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model.SerializeToString(), feeds


def run_ortcore(op, inputs, attrs, *, opset=14, constant=(1, 2, 3, 7), outputs=None):
    outputs = outputs or ["Y", "Y_h", "Y_c"][: OUTPUTS[op]]
    model, feeds = _model(op, inputs, attrs, opset, constant, outputs)
    return ortcore.InferenceSession(model, providers=["CPUExecutionProvider"]).run(None, feeds)


def run_onnxruntime(op, inputs, attrs, *, opset=14):
    outputs = ["Y", "Y_h", "Y_c"][: OUTPUTS[op]]
    model, feeds = _model(op, inputs, attrs, opset, (), outputs)
    return onnxruntime.InferenceSession(model, providers=["CPUExecutionProvider"]).run(None, feeds)


def make_inputs(op, *, nd, seq=5, batch=4, input_size=3, hidden=6, lens=None, bias=True, peepholes=False,
                initial=True, dtype=np.float32):
    g = GATES[op]
    u = lambda *shape: RNG.uniform(-0.6, 0.6, shape).astype(dtype)  # noqa: E731
    inputs = [
        RNG.standard_normal((seq, batch, input_size)).astype(dtype),
        u(nd, g * hidden, input_size),
        u(nd, g * hidden, hidden),
        u(nd, 2 * g * hidden) if bias else None,
        None if lens is None else np.asarray(lens, np.int32),
        RNG.standard_normal((nd, batch, hidden)).astype(dtype) if initial else None,
    ]
    if op == "LSTM":
        inputs.append(RNG.standard_normal((nd, batch, hidden)).astype(dtype) if initial else None)
        inputs.append(u(nd, 3 * hidden) if peepholes else None)
    return inputs


def batch_major(op, inputs):
    """The same inputs for ``layout=1``: X [batch, seq, in], initial states [batch, nd, hidden]."""
    out = list(inputs)
    out[0] = np.ascontiguousarray(inputs[0].swapaxes(0, 1))
    for i in (5, 6):
        if i < len(out) and out[i] is not None:
            out[i] = np.ascontiguousarray(out[i].swapaxes(0, 1))
    return out


def assert_close(expected, actual, rtol=1e-4, atol=1e-5):
    assert len(expected) == len(actual)
    for i, (e, a) in enumerate(zip(expected, actual)):
        compare_outputs(np.asarray(e), a, rtol=rtol, atol=atol, name=f"output {i}")


LENS = {"full": None, "ragged": [5, 3, 1, 4], "empty": [0, 5, 2, 5]}


@pytest.mark.parametrize("op", ["RNN", "GRU", "LSTM"])
@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
@pytest.mark.parametrize("lens", list(LENS))
@pytest.mark.parametrize("constant", [(1, 2, 3, 7), ()], ids=["packed", "runtime"])
def test_directions_sequence_lens(op, direction, lens, constant):
    nd = 2 if direction == "bidirectional" else 1
    inputs = make_inputs(op, nd=nd, lens=LENS[lens], peepholes=True)
    attrs = dict(direction=direction, hidden_size=6)
    expected = run_onnxruntime(op, inputs, attrs)
    assert_close(expected, run_ortcore(op, inputs, attrs, constant=constant))


@pytest.mark.parametrize("op", ["RNN", "GRU", "LSTM"])
@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
@pytest.mark.parametrize("lens", list(LENS))
def test_layout_1(op, direction, lens):
    """layout=1 equals layout=0 on transposed inputs with transposed outputs."""
    nd = 2 if direction == "bidirectional" else 1
    inputs = make_inputs(op, nd=nd, lens=LENS[lens], peepholes=True)
    attrs = dict(direction=direction, hidden_size=6)
    y, *states = run_onnxruntime(op, inputs, attrs)
    expected = [y.transpose(2, 0, 1, 3)] + [s.transpose(1, 0, 2) for s in states]
    actual = run_ortcore(op, batch_major(op, inputs), dict(attrs, layout=1))
    assert_close(expected, actual)


CELL_OPTIONS = [
    ("RNN", dict(clip=0.4)),
    ("GRU", dict(clip=0.4)),
    ("LSTM", dict(clip=0.4)),
    ("GRU", dict(linear_before_reset=1)),
    ("GRU", dict(linear_before_reset=1, clip=0.5)),
    ("LSTM", dict(input_forget=1)),
    ("RNN", dict(activations=["Relu", "Affine"], activation_alpha=[0.7], activation_beta=[0.2])),
    ("RNN", dict(activations=["LeakyRelu", "ScaledTanh"], activation_alpha=[0.3, 1.5], activation_beta=[0.8])),
    ("RNN", dict(activations=["ThresholdedRelu", "Softplus"], activation_alpha=[0.1])),
    ("GRU", dict(activations=["HardSigmoid", "Elu", "Sigmoid", "Softsign"], activation_alpha=[0.3, 0.4],
                 activation_beta=[0.6])),
    ("GRU", dict(activations=["Sigmoid", "Softplus", "HardSigmoid", "ThresholdedRelu"],
                 activation_alpha=[0.25, 0.1], activation_beta=[0.4])),
    ("LSTM", dict(activations=["HardSigmoid", "Tanh", "Softsign", "Sigmoid", "LeakyRelu", "Elu"])),
    ("LSTM", dict(activations=["Sigmoid", "ScaledTanh", "Affine", "Sigmoid", "Tanh", "Tanh"],
                  activation_alpha=[1.2, 0.5], activation_beta=[0.7, 0.1])),
]


@pytest.mark.parametrize("op, options", CELL_OPTIONS, ids=[f"{op}-{sorted(o)}" for op, o in CELL_OPTIONS])
@pytest.mark.parametrize("constant", [(1, 2, 3, 7), ()], ids=["packed", "runtime"])
def test_cell_options(op, options, constant):
    inputs = make_inputs(op, nd=2, lens=[5, 2, 4, 3], peepholes=True)
    attrs = dict(direction="bidirectional", hidden_size=6, **options)
    assert_close(run_onnxruntime(op, inputs, attrs), run_ortcore(op, inputs, attrs, constant=constant))


@pytest.mark.parametrize("op", ["RNN", "GRU", "LSTM"])
def test_without_optional_inputs(op):
    inputs = make_inputs(op, nd=1, bias=False, initial=False)
    assert_close(run_onnxruntime(op, inputs, {"hidden_size": 6}), run_ortcore(op, inputs, {"hidden_size": 6}))


VERSIONS = [("RNN", 1), ("RNN", 7), ("RNN", 14), ("RNN", 22), ("GRU", 1), ("GRU", 3), ("GRU", 7), ("GRU", 14),
            ("GRU", 22), ("LSTM", 1), ("LSTM", 7), ("LSTM", 14), ("LSTM", 22)]


@pytest.mark.parametrize("op, opset", VERSIONS)
def test_every_version(op, opset):
    """Versions before 7 differ only in attributes; onnxruntime runs their semantics at 7."""
    inputs = make_inputs(op, nd=2, lens=[5, 3, 1, 4])
    attrs = dict(direction="bidirectional", hidden_size=6)
    if op == "GRU" and opset >= 3:
        attrs["linear_before_reset"] = 1
    expected = run_onnxruntime(op, inputs, attrs, opset=max(opset, 7))
    assert_close(expected, run_ortcore(op, inputs, attrs, opset=opset))


def test_gru_1_default_direction():
    """GRU-1 spells its default direction "foward"; it means forward."""
    inputs = make_inputs("GRU", nd=1)
    expected = run_onnxruntime("GRU", inputs, {"hidden_size": 6}, opset=7)
    assert_close(expected, run_ortcore("GRU", inputs, {"hidden_size": 6}, opset=1))


@pytest.mark.parametrize("op, which", [(op, i) for op, n in OUTPUTS.items() for i in range(n)])
def test_requested_outputs_only(op, which):
    """A node may name only some outputs; the others are empty names."""
    inputs = make_inputs(op, nd=2, lens=[5, 3, 1, 4], peepholes=True)
    attrs = dict(direction="bidirectional")  # no hidden_size: R's shape says it
    expected = run_onnxruntime(op, inputs, dict(attrs, hidden_size=6))[which]
    outputs = [""] * OUTPUTS[op]
    outputs[which] = "out"
    while not outputs[-1]:
        outputs.pop()
    (actual,) = run_ortcore(op, inputs, attrs, outputs=outputs)
    compare_outputs(expected, actual, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("op", ["RNN", "GRU", "LSTM"])
@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
def test_float64_against_reference(op, direction):
    nd = 2 if direction == "bidirectional" else 1
    inputs = make_inputs(op, nd=nd, dtype=np.float64, peepholes=True)
    attrs = dict(direction=direction, hidden_size=6)
    model, feeds = _model(op, inputs, attrs, 14, (), ["Y", "Y_h", "Y_c"][: OUTPUTS[op]])
    expected = ReferenceEvaluator(onnx.load_model_from_string(model)).run(None, feeds)
    actual = run_ortcore(op, inputs, attrs)
    assert all(a.dtype == np.float64 for a in actual)
    assert_close(expected, actual, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("op", ["RNN", "GRU", "LSTM"])
@pytest.mark.parametrize("dtype, opset", [(np.float16, 14), (ml_dtypes.bfloat16, 22)])
def test_half_types(op, dtype, opset):
    """float16 and bfloat16 are computed in float32 and rounded once at the end."""
    inputs = make_inputs(op, nd=2, lens=[5, 3, 0, 4], peepholes=True, dtype=dtype)
    attrs = dict(direction="bidirectional", hidden_size=6)
    wide = [None if v is None or v.dtype == np.int32 else v.astype(np.float32) for v in inputs]
    wide[4] = inputs[4]
    expected = run_onnxruntime(op, wide, attrs)
    actual = run_ortcore(op, inputs, attrs, opset=opset)
    assert all(a.dtype == dtype for a in actual)
    tol = 1e-2 if dtype == np.float16 else 2e-2
    assert_close([e.astype(dtype) for e in expected], actual, rtol=tol, atol=tol)


def test_long_sequence_matches_onnxruntime():
    """Many steps, a larger hidden size: errors must not accumulate beyond float32 rounding."""
    inputs = make_inputs("LSTM", nd=2, seq=60, batch=3, input_size=16, hidden=32, lens=[60, 17, 42], peepholes=True)
    attrs = dict(direction="bidirectional", hidden_size=32)
    assert_close(run_onnxruntime("LSTM", inputs, attrs), run_ortcore("LSTM", inputs, attrs), rtol=1e-3, atol=1e-5)


def test_wrong_direction_count_is_rejected():
    inputs = make_inputs("RNN", nd=1)
    with pytest.raises(ortcore.errors.OrtCoreError):
        run_ortcore("RNN", inputs, dict(direction="bidirectional"))
