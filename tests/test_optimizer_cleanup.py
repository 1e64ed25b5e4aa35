"""Basic-level clean-up passes: the graph before and after, and the outputs against the
unoptimized model and onnxruntime running the original model, on seeded random inputs."""

from __future__ import annotations

import numpy as np
import onnxruntime
import pytest
from onnx import TensorProto, helper, numpy_helper

import ortcore
from ortcore.testing import compare_outputs, make_model

BASIC = ortcore.GraphOptimizationLevel.ORT_ENABLE_BASIC
DISABLED = ortcore.GraphOptimizationLevel.ORT_DISABLE_ALL
FLOAT = TensorProto.FLOAT


def _vi(name, shape, elem=FLOAT):
    return helper.make_tensor_value_info(name, elem, shape)


def _const(name, value, dtype=np.int64):
    return numpy_helper.from_array(np.asarray(value, dtype), name)


def _session(model, level):
    opts = ortcore.SessionOptions()
    opts.graph_optimization_level = level
    return ortcore.InferenceSession(model.SerializeToString(), opts)


def _ops(sess):
    return [a.node.op_type for a in sess.get_partition().assignments]


def _check(model, feeds):
    """The basic-level optimized and the plain model both match onnxruntime on the original;
    returns the optimized session."""
    optimized, plain = _session(model, BASIC), _session(model, DISABLED)
    reference = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    expected = reference.run(None, feeds)
    for got in (optimized.run(None, feeds), plain.run(None, feeds)):
        for e, a in zip(expected, got):
            compare_outputs(e, a, rtol=1e-3, atol=1e-5)
    return optimized


def _x(*shape, seed=0, dtype=np.float32):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


# -- common subexpressions ----------------------------------------------------------------


def test_cse_merges_equal_nodes_and_chains_of_them():
    # two Relu(x), two Unsqueeze of them with equal axes constants under different names,
    # and two Softmax with the same axis: each pair becomes one node
    model = make_model(
        [
            helper.make_node("Relu", ["x"], ["r1"]),
            helper.make_node("Relu", ["x"], ["r2"]),
            helper.make_node("Unsqueeze", ["r1", "axes_a"], ["u1"]),
            helper.make_node("Unsqueeze", ["r2", "axes_b"], ["u2"]),
            helper.make_node("Softmax", ["u1"], ["s1"], axis=1),
            helper.make_node("Softmax", ["u2"], ["s2"], axis=1),
            helper.make_node("Softmax", ["u2"], ["s3"], axis=0),
            helper.make_node("Add", ["s1", "s2"], ["a"]),
            helper.make_node("Add", ["a", "s3"], ["y"]),
        ],
        [_vi("x", [3, 4])],
        [_vi("y", [1, 3, 4])],
        [_const("axes_a", [0]), _const("axes_b", [0])],
    )
    assert _ops(_session(model, DISABLED)).count("Relu") == 2
    sess = _check(model, {"x": _x(3, 4)})
    assert _ops(sess) == ["Relu", "Unsqueeze", "Softmax", "Softmax", "Add", "Add"]


def test_cse_leaves_random_ops_subgraphs_and_graph_outputs_alone():
    then_branch = helper.make_graph([helper.make_node("Neg", ["x"], ["t"])], "then", [], [_vi("t", [2])])
    else_branch = helper.make_graph([helper.make_node("Abs", ["x"], ["e"])], "else", [], [_vi("e", [2])])
    model = make_model(
        [
            helper.make_node("RandomNormalLike", ["x"], ["n1"], seed=1.0),
            helper.make_node("RandomNormalLike", ["x"], ["n2"], seed=1.0),
            helper.make_node("Sub", ["n1", "n2"], ["zero"]),
            helper.make_node("If", ["c"], ["i1"], then_branch=then_branch, else_branch=else_branch),
            helper.make_node("If", ["c"], ["i2"], then_branch=then_branch, else_branch=else_branch),
            helper.make_node("Add", ["i1", "i2"], ["i"]),
            helper.make_node("Relu", ["x"], ["y1"]),
            helper.make_node("Relu", ["x"], ["y2"]),
        ],
        [_vi("x", [2]), _vi("c", [], TensorProto.BOOL)],
        [_vi("zero", [2]), _vi("i", [2]), _vi("y1", [2]), _vi("y2", [2])],
    )
    ops = _ops(_session(model, BASIC))
    assert ops.count("RandomNormalLike") == 2 and ops.count("If") == 2 and ops.count("Relu") == 2
    feeds = {"x": _x(2), "c": np.array(True)}
    _, i, y1, y2 = _session(model, BASIC).run(None, feeds)
    np.testing.assert_array_equal(i, -2 * feeds["x"])
    np.testing.assert_array_equal(y1, y2)


# -- shape arithmetic ---------------------------------------------------------------------


def _flatten_tail_model(x_shape, opset=17, shape_attrs=None):
    """Reshape(x, [-1, d1 * d2]) with d1, d2 read from Shape(x), as exporters write flatten."""
    shape_attrs = shape_attrs or {}
    return make_model(
        [
            helper.make_node("Shape", ["x"], ["s"], **shape_attrs),
            helper.make_node("Gather", ["s", "i1"], ["d1"], axis=0),
            helper.make_node("Gather", ["s", "i2"], ["d2"], axis=0),
            helper.make_node("Mul", ["d1", "d2"], ["d12"]),
            helper.make_node("Unsqueeze", ["d12", "zero"], ["u"]),
            helper.make_node("Concat", ["minus_one", "u"], ["shape"], axis=0),
            helper.make_node("Reshape", ["x", "shape"], ["y"]),
        ],
        [_vi("x", x_shape)],
        [_vi("y", None)],
        [_const("i1", 1), _const("i2", 2), _const("zero", [0]), _const("minus_one", [-1])],
        opset=opset,
    )


@pytest.mark.parametrize("x_shape", [[2, 3, 4], ["batch", 3, 4]])
def test_shape_gathers_of_static_dims_fold_to_a_constant_reshape_shape(x_shape):
    model = _flatten_tail_model(x_shape)
    assert _ops(_session(model, DISABLED)) == ["Shape", "Gather", "Gather", "Mul", "Unsqueeze", "Concat", "Reshape"]
    sess = _check(model, {"x": _x(2, 3, 4)})
    assert _ops(sess) == ["Reshape"]
    reshape = sess._model.graph.nodes[0]
    assert sess._model.graph.initializers[reshape.inputs[1]].tolist() == [-1, 12]


def test_shape_start_and_end_are_respected():
    # Shape(x, start=1) has the dims [3, 4]: index 1 is 4 and there is no index 2
    model = _flatten_tail_model([2, 3, 4, 5], shape_attrs={"start": 1, "end": -1})
    model.graph.initializer[0].CopyFrom(_const("i1", 0))
    model.graph.initializer[1].CopyFrom(_const("i2", 1))
    sess = _check(model, {"x": _x(2, 3, 4, 5)})
    assert _ops(sess) == ["Reshape"]
    assert sess._model.graph.initializers[sess._model.graph.nodes[0].inputs[1]].tolist() == [-1, 12]


def test_dynamic_dims_are_not_folded():
    model = _flatten_tail_model([2, "rows", 4])
    assert _ops(_check(model, {"x": _x(2, 3, 4)}))[:2] == ["Shape", "Gather"]


def test_reshape_to_its_own_leading_dims_gets_a_constant_shape():
    # HF-style split into heads: Reshape(t, Concat(t.shape[0], t.shape[1], [4], [2])) with
    # symbolic batch and sequence -> Reshape(t, [0, 0, 4, 2]); a Slice of the shape too
    def dim(i):
        return [helper.make_node("Shape", ["t"], [f"s{i}"]),
                helper.make_node("Gather", [f"s{i}", f"i{i}"], [f"g{i}"], axis=0),
                helper.make_node("Unsqueeze", [f"g{i}", "zero"], [f"u{i}"])]

    model = make_model(
        [helper.make_node("Relu", ["x"], ["t"]), *dim(0), *dim(1),
         helper.make_node("Concat", ["u0", "u1", "four", "two"], ["shape"], axis=0),
         helper.make_node("Reshape", ["t", "shape"], ["heads"]),
         helper.make_node("Shape", ["t"], ["st"]),
         helper.make_node("Slice", ["st", "zero", "two"], ["lead"]),
         helper.make_node("Concat", ["lead", "minus_one"], ["shape2"], axis=0),
         helper.make_node("Reshape", ["heads", "shape2"], ["y"])],
        [_vi("x", ["batch", "seq", 8])],
        [_vi("y", ["batch", "seq", 8])],
        [_const("i0", 0), _const("i1", 1), _const("zero", [0]), _const("four", [4]), _const("two", [2]),
         _const("minus_one", [-1])],
    )
    sess = _check(model, {"x": _x(3, 5, 8)})
    # the second Reshape reads the leading dims of t, not of its own input: it keeps its
    # dynamic shape, and then cannot merge with the first
    # (the two Shape(t) are one node after CSE)
    assert _ops(sess) == ["Relu", "Shape", "Reshape", "Slice", "Concat", "Reshape"]
    graph = sess._model.graph
    assert graph.initializers[graph.nodes[2].inputs[1]].tolist() == [0, 0, 4, 2]


# -- Transpose, Reshape and Cast pairs ----------------------------------------------------


def test_inverse_transposes_cancel_and_others_compose():
    model = make_model(
        [
            helper.make_node("Transpose", ["x"], ["t1"], perm=[0, 2, 3, 1]),
            helper.make_node("Transpose", ["t1"], ["t2"], perm=[0, 3, 1, 2]),
            helper.make_node("Relu", ["t2"], ["r"]),
            helper.make_node("Transpose", ["r"], ["t3"], perm=[0, 2, 1, 3]),
            helper.make_node("Transpose", ["t3"], ["y"], perm=[0, 1, 3, 2]),
            # a transpose read twice stays for its other reader
            helper.make_node("Transpose", ["x"], ["t4"], perm=[3, 2, 1, 0]),
            helper.make_node("Transpose", ["t4"], ["t5"]),
            helper.make_node("Add", ["t5", "x"], ["z0"]),
            helper.make_node("Neg", ["t4"], ["z"]),
        ],
        [_vi("x", [2, 3, 4, 5])],
        [_vi("y", [2, 4, 5, 3]), _vi("z0", [2, 3, 4, 5]), _vi("z", [5, 4, 3, 2])],
    )
    sess = _check(model, {"x": _x(2, 3, 4, 5)})
    assert _ops(sess) == ["Relu", "Transpose", "Transpose", "Add", "Neg"]
    perms = [n.attrs.get("perm") for n in sess._model.graph.nodes if n.op_type == "Transpose"]
    assert perms == [[0, 2, 3, 1], [3, 2, 1, 0]]


def test_transposes_cancelling_into_a_graph_output_leave_an_identity():
    model = make_model(
        [helper.make_node("Transpose", ["x"], ["t"], perm=[1, 0]),
         helper.make_node("Transpose", ["t"], ["y"], perm=[1, 0])],
        [_vi("x", [2, 3])],
        [_vi("y", [2, 3])],
    )
    assert _ops(_check(model, {"x": _x(2, 3)})) == ["Identity"]


def test_reshape_of_reshape_merges_unless_the_second_copies_dims():
    def model(second):
        return make_model(
            [helper.make_node("Reshape", ["x", "s1"], ["r"]), helper.make_node("Reshape", ["r", "s2"], ["y"])],
            [_vi("x", [2, 3, 4])],
            [_vi("y", None)],
            [_const("s1", [6, 4]), _const("s2", second)],
        )

    assert _ops(_check(model([4, -1]), {"x": _x(2, 3, 4)})) == ["Reshape"]
    assert _ops(_check(model([0, 2, 2]), {"x": _x(2, 3, 4)})) == ["Reshape", "Reshape"]


@pytest.mark.parametrize(
    ("chain", "elem", "expected"),
    [
        ([TensorProto.DOUBLE, TensorProto.FLOAT], TensorProto.FLOAT, []),  # lossless round trip
        ([TensorProto.FLOAT16, TensorProto.FLOAT], TensorProto.FLOAT, ["Cast", "Cast"]),  # rounds
        ([TensorProto.INT64, TensorProto.FLOAT], TensorProto.INT32, ["Cast"]),  # int32 -> float directly
        ([TensorProto.FLOAT], TensorProto.FLOAT, []),  # to its own type
        ([TensorProto.INT32, TensorProto.INT64], TensorProto.FLOAT, ["Cast", "Cast"]),  # truncates
    ],
)
def test_cast_chains(chain, elem, expected):
    nodes, prev = [], "x"
    for i, to in enumerate(chain):
        nodes.append(helper.make_node("Cast", [prev], [f"c{i}"], to=to))
        prev = f"c{i}"
    nodes.append(helper.make_node("Neg", [prev], ["y"]))
    model = make_model(nodes, [_vi("x", [3, 4], elem)], [_vi("y", [3, 4], chain[-1])])
    dtype = helper.tensor_dtype_to_np_dtype(elem)
    x = (_x(3, 4) * 1000).astype(dtype) + (np.float32(1 / 3) if dtype.kind == "f" else 0)
    assert _ops(_check(model, {"x": x})) == expected + ["Neg"]
