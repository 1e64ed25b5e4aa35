"""Control flow (If, Loop, Scan, SequenceMap): what the ONNX node cases leave out.

Outer-scope values read by bodies (also two scopes up, through an If nested in a
Loop), the Loop trip-count/condition modes, loop-carried values that change
shape, scan-output stacking (also after zero iterations), Scan directions and
axes, Scan-8's batches with sequence_lens, SequenceMap over sequences and
tensors, and body failures. Expected values come from onnxruntime (or
onnx.reference, or closed-form numpy), never from ortcore itself.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnx.parser
import pytest

import ortcore
from ortcore.session import InferenceSession
from ortcore.testing import check_model as check
from ortcore.testing import compare_outputs

RNG = np.random.default_rng(0)
F32 = np.float32


def _model(text: str, opset: int = 17) -> onnx.ModelProto:
    model = onnx.parser.parse_model(f'<ir_version: 8, opset_import: ["" : {opset}]>\n{text}')
    onnx.checker.check_model(model)
    return model


def _ortcore(model: onnx.ModelProto) -> ortcore.InferenceSession:
    return ortcore.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


# -- Loop ----------------------------------------------------------------------------------

# x_out = x_in + step; cond_out = x_out < limit; scan output: x_in and the iteration number.
_COUNTING_LOOP = """
agraph ({inputs}float x, float step, float limit) => (float y, float[N] xs, int64[N] its) {{
  y, xs, its = Loop ({m}, {cond}, x) <body = body (int64 i, bool c, float xi) => (bool co, float xo, float so, int64 io) {{
    xo = Add(xi, step)
    co = Less(xo, limit)
    so = Identity(xi)
    io = Identity(i)
  }}>
}}
"""


@pytest.mark.parametrize(
    ("m", "cond", "limit", "n_iter"),
    [
        (5, None, 100.0, 5),  # trip count only: a for loop
        (5, None, 3.0, 3),  # the body's condition still ends it early, as in onnxruntime
        (None, True, 4.0, 4),  # condition only: a while loop
        (10, True, 4.0, 4),  # both: the condition ends it
        (2, True, 4.0, 2),  # both: the trip count ends it
        (0, True, 4.0, 0),  # no iteration at all
        (7, False, 4.0, 0),  # condition false from the start
        (-3, None, 4.0, 0),  # a negative trip count runs nothing
    ],
)
def test_loop_modes(m, cond, limit, n_iter):
    inputs = ("int64 M, " if m is not None else "") + ("bool cond, " if cond is not None else "")
    model = _model(_COUNTING_LOOP.format(inputs=inputs, m="M" if m is not None else "", cond="cond" if cond is not None else ""))
    feeds = {"x": np.array(0.0, F32), "step": np.array(1.0, F32), "limit": np.array(limit, F32)}
    if m is not None:
        feeds["M"] = np.array(m, np.int64)
    if cond is not None:
        feeds["cond"] = np.array(cond)
    expected = [
        np.array(float(n_iter), F32),
        np.arange(n_iter, dtype=F32),
        np.arange(n_iter, dtype=np.int64),
    ]
    check(model, feeds, expected)
    check(model, feeds)  # and the same as onnxruntime


def test_loop_carried_value_grows_and_scan_outputs_stack():
    model = _model("""
    agraph (int64 M, float[1] x, float[3] v) => (float[K] y, float[N,3] vs, float[N] ss) {
      y, vs, ss = Loop (M, , x) <body = body (int64 i, bool c, float[K] xi) => (bool co, float[K] xo, float[3] vo, float so) {
        co = Identity(c)
        fi = Cast<to = 1>(i)
        one = Constant<value = int64[1] {1}>()
        fi1 = Reshape(fi, one)
        xo = Concat<axis = 0>(xi, fi1)
        vo = Mul(v, fi)
        so = ReduceSum<keepdims = 0>(xi)
      }>
    }
    """)
    v = RNG.standard_normal(3).astype(F32)
    feeds = {"M": np.array(4, np.int64), "x": np.array([9.0], F32), "v": v}
    expected = [
        np.array([9, 0, 1, 2, 3], F32),
        np.stack([v * i for i in range(4)]),
        np.array([9, 9, 10, 12], F32),
    ]
    check(model, feeds, expected)
    check(model, feeds)


@pytest.mark.parametrize("shape", ["[2,3]", "[K,3]", ""])
def test_loop_zero_iterations_scan_output_shape(shape):
    """onnxruntime shapes a never-written scan output from the body's declared output."""
    model = _model(f"""
    agraph (int64 M, float[2,3] x) => (float[2,3] y, float s) {{
      y, s = Loop (M, , x) <body = body (int64 i, bool c, float[2,3] xi) => (bool co, float[2,3] xo, float{shape} so) {{
        co = Identity(c)
        xo = Add(xi, xi)
        so = Identity(xi)
      }}>
    }}
    """)
    x = RNG.standard_normal((2, 3)).astype(F32)
    for m in (0, 2):
        out = check(model, {"M": np.array(m, np.int64), "x": x})
        assert out[1].shape[0] == m


def test_loop_carried_sequence():
    model = _model("""
    agraph (int64 M, float[2] x) => (float[N,2] y) {
      empty = SequenceEmpty<dtype = 1>()
      seq = Loop (M, , empty) <body = body (int64 i, bool c, seq(float) si) => (bool co, seq(float) so) {
        co = Identity(c)
        fi = Cast<to = 1>(i)
        xi = Mul(x, fi)
        so = SequenceInsert(si, xi)
      }>
      y = ConcatFromSequence<axis = 0, new_axis = 1>(seq)
    }
    """)
    x = RNG.standard_normal(2).astype(F32)
    check(model, {"M": np.array(3, np.int64), "x": x}, [np.stack([x * i for i in range(3)])])


def test_nested_if_in_loop_reads_outer_scopes():
    """The If inside the body reads `a` and `b` from the main graph and `xi` from the body."""
    model = _model("""
    agraph (int64 M, float[3] x, float[3] a, float[3] b) => (float[3] y, float[N,3] hist) {
      y, hist = Loop (M, , x) <body = body (int64 i, bool c, float[3] xi) => (bool co, float[3] xo, float[3] ho) {
        co = Identity(c)
        two = Constant<value = int64 {2}>()
        r = Mod(i, two)
        zero = Constant<value = int64 {0}>()
        even = Equal(r, zero)
        xo = If(even) <
          then_branch = t () => (float[3] tv) { tv = Add(xi, a) },
          else_branch = e () => (float[3] ev) { ev = Mul(xi, b) }
        >
        ho = Identity(xo)
      }>
    }
    """)
    x, a, b = (RNG.standard_normal(3).astype(F32) for _ in range(3))
    hist, cur = [], x
    for i in range(5):
        cur = cur + a if i % 2 == 0 else cur * b
        hist.append(cur)
    feeds = {"M": np.array(5, np.int64), "x": x, "a": a, "b": b}
    check(model, feeds, [cur, np.stack(hist)])
    check(model, feeds)


def test_loop_in_loop_reads_outer_scope():
    model = _model("""
    agraph (int64 M, int64 K, float x, float step) => (float y) {
      y = Loop (M, , x) <body = outer (int64 i, bool c, float xi) => (bool co, float xo) {
        co = Identity(c)
        xo = Loop (K, , xi) <body = inner (int64 j, bool d, float xj) => (bool do, float xjo) {
          do = Identity(d)
          xjo = Add(xj, step)
        }>
      }>
    }
    """)
    feeds = {"M": np.array(3, np.int64), "K": np.array(4, np.int64), "x": np.array(1.0, F32), "step": np.array(0.5, F32)}
    check(model, feeds, [np.array(1.0 + 12 * 0.5, F32)])


def test_loop_body_output_is_outer_value_and_input():
    """Body outputs may be an outer-scope value or a body input passed straight through."""
    model = _model("""
    agraph (int64 M, float[2] x, float[2] a) => (float[2] y, float[2] z, float[N,2] s) {
      y, z, s = Loop (M, , x, x) <body = body (int64 i, bool c, float[2] p, float[2] q) => (bool co, float[2] po, float[2] qo, float[2] so) {
        co = Identity(c)
        po = Identity(a)
        qo = Identity(q)
        so = Identity(a)
      }>
    }
    """)
    x, a = RNG.standard_normal(2).astype(F32), RNG.standard_normal(2).astype(F32)
    check(model, {"M": np.array(2, np.int64), "x": x, "a": a}, [a, x, np.stack([a, a])])


def test_loop_subgraphs_compiled_once(monkeypatch):
    """Bodies are compiled at session creation only, never per run or per iteration."""
    calls = []
    original = InferenceSession._compile_subgraph

    def counting(self, graph, **kwargs):
        calls.append(graph.name)
        return original(self, graph, **kwargs)

    monkeypatch.setattr(InferenceSession, "_compile_subgraph", counting)
    model = _model("""
    agraph (int64 M, float x) => (float y) {
      y = Loop (M, , x) <body = body (int64 i, bool c, float xi) => (bool co, float xo) {
        co = Identity(c)
        pos = Greater(xi, xi)
        xo = If(pos) <
          then_branch = t () => (float tv) { tv = Neg(xi) },
          else_branch = e () => (float ev) { one = Constant<value = float {1}>() ev = Add(xi, one) }
        >
      }>
    }
    """)
    sess = _ortcore(model)
    assert sorted(calls) == ["body", "e", "t"]
    for _ in range(3):
        (y,) = sess.run(None, {"M": np.array(50, np.int64), "x": np.array(0.0, F32)})
        assert y == 50.0
    assert sorted(calls) == ["body", "e", "t"]


# -- If ------------------------------------------------------------------------------------


@pytest.mark.parametrize("cond", [True, False])
def test_if_branches_read_outer_scope_and_differ_in_shape(cond):
    model = _model("""
    agraph (bool c, float[2,3] x, float[3] b) => (float y, int64 n) {
      y, n = If(c) <
        then_branch = t () => (float tv, int64 tn) { tv = Add(x, b) tn = Size(x) },
        else_branch = e () => (float ev, int64 en) { ev = Identity(b) en = Size(b) }
      >
    }
    """)
    x, b = RNG.standard_normal((2, 3)).astype(F32), RNG.standard_normal(3).astype(F32)
    expected = [x + b, np.array(6, np.int64)] if cond else [b, np.array(3, np.int64)]
    feeds = {"c": np.array(cond), "x": x, "b": b}
    check(model, feeds, expected)
    check(model, feeds)


def test_if_condition_of_shape_one():
    model = _model("""
    agraph (bool[1] c, float x) => (float y) {
      y = If(c) <
        then_branch = t () => (float tv) { tv = Neg(x) },
        else_branch = e () => (float ev) { ev = Identity(x) }
      >
    }
    """)
    for cond in (True, False):
        x = np.array(2.0, F32)
        check(model, {"c": np.array([cond]), "x": x}, [-x if cond else x])


def test_if_opset_1_and_sequence_outputs():
    model = _model("""
    agraph (bool c, float[2] x) => (float[2] y) {
      y = If(c) <
        then_branch = t () => (float[2] tv) { tv = Neg(x) },
        else_branch = e () => (float[2] ev) { ev = Abs(x) }
      >
    }
    """, opset=1)
    x = RNG.standard_normal(2).astype(F32)
    check(model, {"c": np.array(True), "x": x}, [-x])
    model = _model("""
    agraph (bool c, float[2] x) => (seq(float) y) {
      y = If(c) <
        then_branch = t () => (seq(float) tv) { tv = SequenceConstruct(x, x) },
        else_branch = e () => (seq(float) ev) { ev = SequenceEmpty<dtype = 1>() }
      >
    }
    """, opset=13)
    check(model, {"c": np.array(True), "x": x}, [[x, x]])
    check(model, {"c": np.array(False), "x": x}, [[]])


# -- Scan ----------------------------------------------------------------------------------

# state st (shape [2]) accumulates the scanned rows; outputs: the running sum and row * w.
_SCAN_9 = """
agraph (float[2] init, float[{shape}] x, float[2] w) => (float[2] final, float running, float scaled) {{
  final, running, scaled = Scan (init, x) <body = body (float[2] st, float[2] xi) => (float[2] sto, float[2] ro, float[2] so) {{
    sto = Add(st, xi)
    ro = Identity(sto)
    so = Mul(xi, w)
  }}, num_scan_inputs = 1{attrs}>
}}
"""


@pytest.mark.parametrize(
    ("shape", "attrs"),
    [
        ("5,2", ""),
        ("5,2", ", scan_input_directions = [1]"),
        ("2,5", ", scan_input_axes = [1]"),
        ("2,5", ", scan_input_axes = [-1], scan_input_directions = [1]"),
        ("5,2", ", scan_output_directions = [1, 0]"),
        ("5,2", ", scan_output_axes = [1, -1]"),
        ("2,5", ", scan_input_axes = [1], scan_output_axes = [0, 1], scan_output_directions = [0, 1]"),
    ],
)
def test_scan_9_axes_and_directions(shape, attrs):
    model = _model(_SCAN_9.format(shape=shape, attrs=attrs), opset=16)
    x = RNG.standard_normal([int(d) for d in shape.split(",")]).astype(F32)
    feeds = {"init": RNG.standard_normal(2).astype(F32), "x": x, "w": RNG.standard_normal(2).astype(F32)}
    # closed form: the scanned rows in scan order, accumulated and scaled
    rows = np.moveaxis(x, 1, 0) if "scan_input_axes" in attrs else x
    if "scan_input_directions = [1]" in attrs:
        rows = rows[::-1]
    running = feeds["init"] + np.cumsum(rows, axis=0)
    scaled = rows * feeds["w"]
    out_dirs = [0, 0]
    if "scan_output_directions" in attrs:
        out_dirs = [int(v) for v in attrs.split("scan_output_directions = [")[1].split("]")[0].split(",")]
    out_axes = [0, 0]
    if "scan_output_axes" in attrs:
        out_axes = [int(v) for v in attrs.split("scan_output_axes = [")[1].split("]")[0].split(",")]
    outs = []
    for value, direction, axis in zip((running, scaled), out_dirs, out_axes):
        value = value[::-1] if direction else value
        outs.append(np.moveaxis(value, 0, axis))
    check(model, feeds, [running[-1], *outs])
    check(model, feeds)


@pytest.mark.parametrize(("shape", "attrs", "out_shape"), [("0,2", "", (0, 2)), ("2,0", ", scan_input_axes = [1], scan_output_axes = [1, 1]", (2, 0))])
def test_scan_9_zero_length(shape, attrs, out_shape):
    """onnxruntime rejects empty scans; the result follows the spec: states unchanged, empty stacks."""
    model = _model(_SCAN_9.format(shape=shape, attrs=attrs), opset=16)
    init = RNG.standard_normal(2).astype(F32)
    feeds = {"init": init, "x": np.zeros([int(d) for d in shape.split(",")], F32), "w": np.ones(2, F32)}
    empty = np.zeros(out_shape, F32)
    check(model, feeds, [init, empty, empty])


def test_scan_9_two_inputs_zip_and_outer_scope():
    model = _model("""
    agraph (float[3] s0, float[4,3] x, float[3,4] y, float k) => (float[3] s, float[4,3] prod) {
      s, prod = Scan (s0, x, y) <body = body (float[3] st, float[3] xi, float[3] yi) => (float[3] sto, float[3] po) {
        po = Mul(xi, yi)
        scaled = Mul(po, k)
        sto = Add(st, scaled)
      }, num_scan_inputs = 2, scan_input_axes = [0, 1], scan_input_directions = [0, 1]>
    }
    """, opset=11)
    x, y = RNG.standard_normal((4, 3)).astype(F32), RNG.standard_normal((3, 4)).astype(F32)
    s0, k = RNG.standard_normal(3).astype(F32), np.array(0.5, F32)
    prod = x * y.T[::-1]
    check(model, {"s0": s0, "x": x, "y": y, "k": k}, [s0 + k * prod.sum(0), prod])


def test_scan_8_batches_sequence_lens_and_directions():
    model = _model("""
    agraph (int64[3] lens, float[3,2] init, float[3,4,2] x, float[3,4,2] z) => (float[3,2] final, float[3,4,2] fw, float[3,4,2] bw) {
      final, fw, bw = Scan (lens, init, x, z) <body = body (float[2] st, float[2] xi, float[2] zi) => (float[2] sto, float[2] fo, float[2] bo) {
        sto = Add(st, xi)
        fo = Identity(sto)
        bo = Mul(zi, st)
      }, num_scan_inputs = 2, directions = [0, 1]>
    }
    """, opset=8)
    lens = np.array([4, 2, 3], np.int64)
    init = RNG.standard_normal((3, 2)).astype(F32)
    x, z = RNG.standard_normal((3, 4, 2)).astype(F32), RNG.standard_normal((3, 4, 2)).astype(F32)
    final, fw, bw = np.zeros_like(init), np.zeros_like(x), np.zeros_like(z)
    for b in range(3):
        st = init[b]
        for t in range(lens[b]):
            bw[b, t] = z[b, lens[b] - 1 - t] * st  # reversed within the sequence's own length
            st = st + x[b, t]
            fw[b, t] = st
        final[b] = st
    feeds = {"lens": lens, "init": init, "x": x, "z": z}
    check(model, feeds, [final, fw, bw])
    check(model, feeds)
    # without sequence_lens every batch entry runs the full length
    no_lens = onnx.parser.parse_model(onnx.printer.to_text(model).replace("Scan (lens,", 'Scan ("",'))
    check(no_lens, feeds)
    # a zero length (onnxruntime rejects it) leaves the state and zero-fills the outputs
    feeds["lens"] = np.array([0, 4, 1], np.int64)
    actual = _ortcore(model).run(None, feeds)
    compare_outputs(init[0], actual[0][0])
    compare_outputs(np.zeros((4, 2), F32), actual[1][0])
    compare_outputs(np.zeros((3, 2), F32), actual[2][2, 1:])


# -- SequenceMap ---------------------------------------------------------------------------


def test_sequence_map_sequence_tensor_and_outer_scope():
    model = _model("""
    agraph (seq(float) xs, seq(float) ys, float[3] t, float k) => (seq(float) out, seq(int64) shapes) {
      out, shapes = SequenceMap (xs, ys, t) <body = body (float[N] x, float[N] y, float[3] tv) => (float[N] o, int64[1] sh) {
        xy = Add(x, y)
        s = ReduceSum<keepdims = 1>(tv)
        sk = Mul(s, k)
        o = Add(xy, sk)
        sh = Shape(x)
      }>
    }
    """)
    xs = [RNG.standard_normal(n).astype(F32) for n in (2, 4, 1)]
    ys = [RNG.standard_normal(n).astype(F32) for n in (2, 4, 1)]
    t, k = RNG.standard_normal(3).astype(F32), np.array(2.0, F32)
    feeds = {"xs": xs, "ys": ys, "t": t, "k": k}
    expected = [[x + y + t.sum() * k for x, y in zip(xs, ys)], [np.array([len(x)], np.int64) for x in xs]]
    check(model, feeds, expected)
    # onnx.reference zips only a single sequence with tensors
    model = _model("""
    agraph (seq(float) xs, float[3] t) => (seq(float) out) {
      out = SequenceMap (xs, t) <body = body (float[N] x, float[3] tv) => (float[N] o) {
        s = ReduceSum<keepdims = 1>(tv)
        o = Sub(x, s)
      }>
    }
    """)
    check(model, {"xs": xs, "t": t}, truth="reference")


def test_sequence_map_empty_sequence():
    model = _model("""
    agraph (seq(float) xs) => (seq(float) out) {
      out = SequenceMap (xs) <body = body (float[N] x) => (float[N] o) { o = Neg(x) }>
    }
    """)
    check(model, {"xs": []}, [[]])


# -- failures ------------------------------------------------------------------------------


def test_failure_in_nested_body_names_the_path():
    model = _model("""
    agraph (int64 M, float[4] x) => (float[4] y) {
      y = Loop (M, , x) <body = body (int64 i, bool c, float[4] xi) => (bool co, float[4] xo) {
        co = Identity(c)
        three = Constant<value = int64 {3}>()
        late = Equal(i, three)
        xo = If(late) <
          then_branch = t () => (float[4] tv) {
            bad = Constant<value = int64[2] {3, 3}>()
            tv = Reshape(xi, bad)
          },
          else_branch = e () => (float[4] ev) { ev = Identity(xi) }
        >
      }>
    }
    """)
    sess = _ortcore(model)
    sess.run(None, {"M": np.array(3, np.int64), "x": np.zeros(4, F32)})  # iterations 0..2 are fine
    with pytest.raises(ortcore.Fail) as info:
        sess.run(None, {"M": np.array(5, np.int64), "x": np.zeros(4, F32)})
    message = str(info.value)
    assert "(Loop)" in message and "iteration 3" in message
    assert "(If)" in message and "then_branch" in message and "(Reshape)" in message


def test_failure_in_scan_and_sequence_map_body():
    model = _model("""
    agraph (float[2] s, float[3,2] x) => (float[2] y) {
      y = Scan (s, x) <body = body (float[2] st, float[2] xi) => (float[2] sto) {
        shape = Constant<value = int64[1] {3}>()
        sto = Reshape(xi, shape)
      }, num_scan_inputs = 1>
    }
    """, opset=11)
    with pytest.raises(ortcore.Fail, match=r"\(Scan\).*step 0.*\(Reshape\)"):
        _ortcore(model).run(None, {"s": np.zeros(2, F32), "x": np.zeros((3, 2), F32)})
    model = _model("""
    agraph (seq(float) xs, seq(float) ys) => (seq(float) out) {
      out = SequenceMap (xs, ys) <body = body (float[N] x, float[N] y) => (float[N] o) { o = Add(x, y) }>
    }
    """)
    with pytest.raises(ortcore.Fail, match=r"\(SequenceMap\).*length 1"):
        _ortcore(model).run(None, {"xs": [np.zeros(2, F32)] * 2, "ys": [np.zeros(2, F32)]})
