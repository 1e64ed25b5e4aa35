"""Sequence and optional kernels: what the ONNX node cases leave out.

Negative positions, defaults (insert at the back, erase the last), empty
sequences, SplitToSequence's split forms and keepdims, ConcatFromSequence with
new_axis and negative axes, inputs left unchanged, optionals of tensors and
sequences (full and empty), and out-of-range errors. Expected values come from
onnxruntime, onnx.reference or closed-form numpy, never from ortcore itself.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnx.parser
import pytest

import ortcore
from ortcore.testing import check_model as check

RNG = np.random.default_rng(0)
F32 = np.float32
I64 = np.int64


def _model(text: str, opset: int = 18) -> onnx.ModelProto:
    model = onnx.parser.parse_model(f'<ir_version: 8, opset_import: ["" : {opset}]>\n{text}')
    onnx.checker.check_model(model)
    return model


def _ortcore(model: onnx.ModelProto) -> ortcore.InferenceSession:
    return ortcore.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def _seq(*shapes):
    return [RNG.standard_normal(s).astype(F32) for s in shapes]


# -- SequenceAt / Insert / Erase / Length ----------------------------------------------------

_EDIT = """
agraph (seq(float) s, float[N] t, int64 p) => (float[M] at, seq(float) ins, seq(float) era, int64 n) {
  at = SequenceAt(s, p)
  ins = SequenceInsert(s, t, p)
  era = SequenceErase(s, p)
  n = SequenceLength(ins)
}
"""


@pytest.mark.parametrize("pos", [0, 1, 2, -1, -3])
def test_at_insert_erase_positions(pos):
    s, t = _seq(2, 3, 4), _seq(5)[0]
    model = _model(_EDIT)
    feeds = {"s": s, "t": t, "p": np.array(pos, I64)}
    ins = list(s)
    ins.insert(pos if pos >= 0 else pos + len(s), t)
    era = list(s)
    del era[pos]
    check(model, feeds, [s[pos], ins, era, np.array(4, I64)])
    check(model, feeds)


def test_insert_at_end_position_and_defaults():
    s, t = _seq(2, 3), _seq(5)[0]
    model = _model("""
    agraph (seq(float) s, float[N] t, int32 p) => (seq(float) ins, seq(float) back, seq(float) era) {
      ins = SequenceInsert(s, t, p)
      back = SequenceInsert(s, t)
      era = SequenceErase(s)
    }
    """)
    feeds = {"s": s, "t": t, "p": np.array(2, np.int32)}  # position == length appends
    check(model, feeds, [[*s, t], [*s, t], s[:1]])
    check(model, feeds)


def test_inputs_are_not_changed():
    s, t = _seq(2, 3), _seq(5)[0]
    kept = list(s)
    model = _model("""
    agraph (seq(float) s, float[N] t) => (seq(float) a, seq(float) b) {
      a = SequenceInsert(s, t)
      b = SequenceErase(s)
    }
    """)
    _ortcore(model).run(None, {"s": s, "t": t})
    assert len(s) == 2 and all(x is y for x, y in zip(s, kept))


@pytest.mark.parametrize(
    ("op", "pos"), [("SequenceAt", 3), ("SequenceAt", -4), ("SequenceErase", 3), ("SequenceInsert", 4)]
)
def test_out_of_range_position_fails(op, pos):
    args = "s, t, p" if op == "SequenceInsert" else "s, p"
    out = "float[N] y" if op == "SequenceAt" else "seq(float) y"
    model = _model(f"agraph (seq(float) s, float[N] t, int64 p) => ({out}) {{ y = {op}({args}) }}")
    with pytest.raises(ortcore.Fail, match=f"\\({op}\\).*out of range"):
        _ortcore(model).run(None, {"s": _seq(1, 2, 3), "t": _seq(1)[0], "p": np.array(pos, I64)})


def test_empty_sequence():
    model = _model("""
    agraph (float[2] x) => (int64 n0, int64 n1, seq(float) back, seq(float) empty) {
      e = SequenceEmpty<dtype = 1>()
      n0 = SequenceLength(e)
      one = SequenceInsert(e, x)
      n1 = SequenceLength(one)
      empty = SequenceErase(one)
      back = Identity(e)
    }
    """)
    x = _seq(2)[0]
    check(model, {"x": x}, [np.array(0, I64), np.array(1, I64), [], []])


def test_construct_and_concat_empty_sequence_fails():
    model = _model("""
    agraph (float[2] x) => (float[N] y) {
      e = SequenceEmpty<dtype = 1>()
      y = ConcatFromSequence<axis = 0>(e)
    }
    """)
    with pytest.raises(ortcore.Fail, match="ConcatFromSequence"):
        _ortcore(model).run(None, {"x": _seq(2)[0]})


# -- SplitToSequence / ConcatFromSequence -----------------------------------------------------


@pytest.mark.parametrize(
    ("split", "axis", "keepdims"),
    [
        (None, 0, 1),
        (None, 1, 0),
        (None, -1, 0),
        (np.array(2, I64), 1, 1),  # 5 = 2 + 2 + 1: the last chunk is shorter
        (np.array(5, I64), 1, 1),
        (np.array([1, 3, 1], I64), 1, 0),  # keepdims is ignored with a split input
        (np.array([0, 3], np.int32), 0, 1),
        (np.array([3], I64), -2, 1),
    ],
)
def test_split_to_sequence(split, axis, keepdims):
    x = RNG.standard_normal((3, 5)).astype(F32)
    inputs, args, feeds = "float[3,5] x", "x", {"x": x}
    if split is not None:
        inputs += f", {'int32' if split.dtype == np.int32 else 'int64'}{list(split.shape)} split"
        args += ", split"
        feeds["split"] = split
    model = _model(f"""
    agraph ({inputs.replace('[]', '')}) => (seq(float) y) {{
      y = SplitToSequence<axis = {axis}, keepdims = {keepdims}>({args})
    }}
    """)
    dim = x.shape[axis]
    if split is None:
        parts = [np.take(x, [i], axis=axis) for i in range(dim)]
        if not keepdims:
            parts = [np.squeeze(p, axis=axis) for p in parts]
    else:
        sizes = split.tolist()
        if split.ndim == 0:
            sizes = [int(split)] * (dim // int(split)) + ([dim % int(split)] if dim % int(split) else [])
        parts = np.split(x, np.cumsum(sizes)[:-1], axis=axis)
    check(model, feeds, [parts])
    if split is None or split.ndim == 0 or 0 not in split.tolist():
        check(model, feeds)


@pytest.mark.parametrize(("axis", "new_axis"), [(0, 0), (1, 0), (-1, 0), (0, 1), (2, 1), (-1, 1), (-3, 1)])
def test_concat_from_sequence(axis, new_axis):
    s = [RNG.standard_normal((2, 3)).astype(F32) for _ in range(4)]
    model = _model(f"""
    agraph (seq(float[2,3]) s) => (float y) {{
      y = ConcatFromSequence<axis = {axis}, new_axis = {new_axis}>(s)
    }}
    """)
    expected = np.stack(s, axis=axis) if new_axis else np.concatenate(s, axis=axis)
    check(model, {"s": s}, [expected])
    check(model, {"s": s})


def test_split_then_concat_round_trip_and_construct():
    model = _model("""
    agraph (float[4,3] x, float[4,3] z) => (float[4,3] y, float[2,4,3] pair) {
      s = SplitToSequence<axis = 0>(x)
      y = ConcatFromSequence<axis = 0>(s)
      p = SequenceConstruct(x, z)
      pair = ConcatFromSequence<axis = 0, new_axis = 1>(p)
    }
    """)
    x, z = RNG.standard_normal((4, 3)).astype(F32), RNG.standard_normal((4, 3)).astype(F32)
    check(model, {"x": x, "z": z}, [x, np.stack([x, z])])


# -- optionals -------------------------------------------------------------------------------


def test_optional_tensor_full_and_empty():
    model = _model("""
    agraph (float[3] x) => (bool full, bool empty, float[3] got, bool bare) {
      o = Optional(x)
      full = OptionalHasElement(o)
      none = Optional<type = float>()
      empty = OptionalHasElement(none)
      got = OptionalGetElement(o)
      bare = OptionalHasElement(x)
    }
    """)
    x = _seq(3)[0]
    check(model, {"x": x}, [np.array(True), np.array(False), x, np.array(True)])
    check(model, {"x": x})


def test_optional_sequence_including_an_empty_one():
    model = _model("""
    agraph (float[3] x) => (bool full, bool empty_seq, seq(float) got) {
      s = SequenceConstruct(x, x)
      o = Optional(s)
      full = OptionalHasElement(o)
      e = SequenceEmpty<dtype = 1>()
      oe = Optional(e)
      empty_seq = OptionalHasElement(oe)
      got = OptionalGetElement(o)
    }
    """)
    x = _seq(3)[0]
    # an optional holding an empty sequence still holds an element
    check(model, {"x": x}, [np.array(True), np.array(True), [x, x]])


def test_optional_input_fed_empty():
    model = _model("""
    agraph (optional(float[2]) o) => (bool has) {
      has = OptionalHasElement(o)
    }
    """)
    check(model, {"o": None}, [np.array(False)])
    check(model, {"o": _seq(2)[0]}, [np.array(True)])


def test_optional_get_element_of_empty_fails():
    model = _model("""
    agraph (float[3] x) => (float[3] y) {
      none = Optional<type = float>()
      y = OptionalGetElement(none)
    }
    """)
    with pytest.raises(ortcore.Fail, match=r"\(OptionalGetElement\).*empty"):
        _ortcore(model).run(None, {"x": _seq(3)[0]})


def test_optional_with_no_input_at_opset_15():
    model = _model("""
    agraph (float[3] x) => (bool empty) {
      none = Optional<type = float>()
      empty = OptionalHasElement(none)
    }
    """, opset=15)
    check(model, {"x": _seq(3)[0]}, [np.array(False)])
