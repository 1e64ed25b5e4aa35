"""Elementwise fusion: connected elementwise nodes run as one generated kernel with unfused results."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

from ortcore.testing import compare_outputs, make_model

rng = np.random.default_rng(7)
X = rng.standard_normal((2, 3, 4)).astype(np.float32)
A = rng.standard_normal((3, 1)).astype(np.float32)
B = rng.standard_normal((4,)).astype(np.float32)
C = np.array(0.25, np.float32)


def _vi(name, shape=None, elem=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, elem, shape)


def _chain_model(extra_outputs=()):
    """x * a + b -> Relu -> Sigmoid -> Sub c: five elementwise nodes."""
    nodes = [
        helper.make_node("Mul", ["x", "a"], ["m"]),
        helper.make_node("Add", ["m", "b"], ["s"]),
        helper.make_node("Relu", ["s"], ["r"]),
        helper.make_node("Sigmoid", ["r"], ["g"]),
        helper.make_node("Sub", ["g", "c"], ["y"]),
    ]
    inits = [helper.make_tensor("c", TensorProto.FLOAT, (), [float(C)])]
    outputs = [_vi("y")] + [_vi(o) for o in extra_outputs]
    return make_model(nodes, [_vi("x", X.shape), _vi("a", A.shape), _vi("b", B.shape)], outputs, inits)


FEEDS = {"x": X, "a": A, "b": B}


def _run_all_ways(ocl, model, feeds):
    fused = ocl.session(model, optimize=False)
    unfused = ocl.session(model, {"fuse_elementwise": False}, optimize=False)
    out_f = fused.run(None, feeds)
    out_u = unfused.run(None, feeds)
    out_c = ocl.cpu(model, feeds)
    for f, u, c in zip(out_f, out_u, out_c):
        compare_outputs(u, f, rtol=1e-6, atol=1e-7, name="fused vs unfused")
        compare_outputs(c, f, rtol=1e-4, atol=1e-5, name="fused vs CPU")
    return fused, out_f


def test_chain_of_five_runs_as_one_launch(ocl, runtime):
    model = _chain_model()
    sess, _ = _run_all_ways(ocl, model, FEEDS)
    part = sess.get_partition()
    groups = {a.group for a in part.assignments}
    assert len(groups) == 1 and None not in groups, part.table()
    assert all(a.provider.name == "OpenCLExecutionProvider" for a in part.assignments)
    assert "fused groups" in part.table()
    sess.run(None, FEEDS)  # warm: uploads of constants are done
    before = runtime.launches
    sess.run(None, FEEDS)
    assert runtime.launches - before == 1


def test_unfused_option_launches_per_node(ocl, runtime):
    sess = ocl.session(_chain_model(), {"fuse_elementwise": False}, optimize=False)
    assert all(a.group is None for a in sess.get_partition().assignments)
    sess.run(None, FEEDS)
    before = runtime.launches
    sess.run(None, FEEDS)
    assert runtime.launches - before == 5


def test_intermediate_graph_output_is_kept(ocl, runtime):
    model = _chain_model(extra_outputs=("s",))
    sess, out = _run_all_ways(ocl, model, FEEDS)
    assert out[1].shape == (2, 3, 4)
    np.testing.assert_allclose(out[1], X * A + B, rtol=1e-6)
    before = runtime.launches
    sess.run(None, FEEDS)
    assert runtime.launches - before == 1  # both outputs written by the same kernel


def test_intermediate_read_by_a_non_fused_node_before_the_chain_ends(ocl):
    # r feeds a Transpose (not elementwise) that runs between Relu and Sigmoid, and the
    # Transpose's output comes back into the chain: Relu cannot join the later group.
    nodes = [
        helper.make_node("Relu", ["x"], ["r"]),
        helper.make_node("Transpose", ["r"], ["t"], perm=[0, 1, 2]),
        helper.make_node("Sigmoid", ["r"], ["g"]),
        helper.make_node("Add", ["g", "t"], ["y"]),
        helper.make_node("TopK", ["g", "k"], ["v", "i"], axis=-1),
    ]
    inits = [helper.make_tensor("k", TensorProto.INT64, (1,), [2])]
    model = make_model(nodes, [_vi("x", X.shape)], [_vi("y"), _vi("v"), _vi("i", None, TensorProto.INT64)], inits)
    sess, _ = _run_all_ways(ocl, model, {"x": X})
    by_op = {a.node.op_type: a for a in sess.get_partition().assignments}
    assert by_op["Relu"].group is None
    assert by_op["Sigmoid"].group is not None and by_op["Sigmoid"].group == by_op["Add"].group
    assert by_op["TopK"].provider.name == "CPUExecutionProvider"


def test_output_smaller_than_the_group_shape_falls_back(ocl):
    # e = Exp(a) has shape (3, 1) and is a graph output; the group's full shape is (2, 3, 4)
    nodes = [
        helper.make_node("Exp", ["a"], ["e"]),
        helper.make_node("Add", ["e", "x"], ["y"]),
        helper.make_node("Cast", ["y"], ["z"], to=TensorProto.INT32),
    ]
    model = make_model(nodes, [_vi("x", X.shape), _vi("a", A.shape)], [_vi("e"), _vi("z", None, TensorProto.INT32)])
    sess, out = _run_all_ways(ocl, model, {"x": X * 4, "a": A})
    assert out[0].shape == (3, 1) and out[1].dtype == np.int32
    assert len({a.group for a in sess.get_partition().assignments}) == 1


def test_mixed_dtypes_in_a_group(ocl):
    nodes = [
        helper.make_node("Less", ["x", "a"], ["lt"]),
        helper.make_node("Neg", ["x"], ["n"]),
        helper.make_node("Where", ["lt", "n", "x"], ["w"]),
        helper.make_node("Clip", ["w", "lo", "hi"], ["y"]),  # two instructions, after others
    ]
    inits = [helper.make_tensor("lo", TensorProto.FLOAT, (), [-0.5]), helper.make_tensor("hi", TensorProto.FLOAT, (), [0.8])]
    model = make_model(nodes, [_vi("x", X.shape), _vi("a", A.shape)], [_vi("y")], inits, opset=13)
    sess, _ = _run_all_ways(ocl, model, {"x": X, "a": A})
    assert len({a.group for a in sess.get_partition().assignments}) == 1


@pytest.mark.parametrize("shape", [(5,), (0, 4)])
def test_group_with_other_shapes_reuses_the_program(ocl, runtime, shape):
    model = _chain_model()
    sess = ocl.session(model, optimize=False)
    sess.run(None, FEEDS)
    before = runtime.compiles
    x = rng.standard_normal(shape).astype(np.float32)
    feeds = {"x": x, "a": np.ones((1,), np.float32), "b": np.zeros((1,), np.float32)}
    dyn = make_model(
        list(model.graph.node), [_vi("x", None), _vi("a", None), _vi("b", None)], [_vi("y")], list(model.graph.initializer)
    )
    _run_all_ways(ocl, dyn, feeds)
    assert runtime.compiles == before
