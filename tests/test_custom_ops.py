"""ortcore.custom_ops: schemas onnx accepts, Python shape inference at session creation, kernels, builders."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper

import ortcore
from ortcore.custom_ops import REQUIRED, Attr, OpSpec, Param, TensorInfo, make_model, register_schemas

DOMAIN = "test.ortcore.customops"

# y = scale * sum(x, *more) + offset; more is variadic, offset optional
AXPY = OpSpec(
    DOMAIN, "ScaledSum", 1,
    inputs=[Param("x", doc="(B, C)"), Param("offset", optional=True, doc="(C,)"),
            Param("more", variadic=True, min_arity=1, doc="(B, C) each")],
    outputs=[Param("y", doc="(B, C)"), Param("count", "tensor(int64)", optional=True, doc="()")],
    type_constraints={"T": [np.float32, np.float64]},
    attributes=[Attr("scale", "float", 1.0, "factor"), Attr("tag", "string", "none"),
                Attr("weights", "floats", REQUIRED)],
    doc="A test op with optional and variadic inputs and a second, typed output.",
)


@AXPY.infer
def _infer(ctx):
    x = ctx.input("x", ("B", "C"))
    ctx.input("offset", ("C",))
    more = ctx.variadic("more", ("B", "C"))
    if len(ctx.attrs["weights"]) != len(more):
        raise ctx.fail(f"attribute 'weights' needs {len(more)} entries, got {len(ctx.attrs['weights'])}")
    return [(x.dtype, ("B", "C")), (np.int64, ())]


registry = ortcore.KernelRegistry("test")


@AXPY.kernel(registry, dtypes=(np.float32, np.float64))
def scaled_sum(x, offset, *more, scale=1.0, tag="none", weights):
    total = x + sum(w * m for w, m in zip(weights, more))
    y = (np.float32(scale) * total + (0 if offset is None else offset)).astype(x.dtype)
    return y, np.array(len(more) + 1, np.int64)


class _Plugin:
    @ortcore.hookimpl
    def ortcore_op_schemas(self):
        return [AXPY.schema]

    @ortcore.hookimpl
    def ortcore_kernels(self, provider):
        return registry if provider == "CPUExecutionProvider" else None


@pytest.fixture
def plugin():
    ortcore.register_plugin(_Plugin(), "test-custom-ops")
    yield
    ortcore.unregister_plugin("test-custom-ops")


def _model(x_shape=("B", 4), more_shapes=(("B", 4),), dtype=np.float32, weights=None, offset=True, infer=False,
           **attrs):
    more = [f"m{i}" for i in range(len(more_shapes))]
    node = AXPY.make_node(["x", "off" if offset else "", *more], ["y", "n"], name="axpy",
                          weights=weights if weights is not None else [1.0] * len(more), **attrs)
    inputs = [("x", dtype, x_shape)] + ([("off", dtype, [4])] if offset else [])
    inputs += [(m, dtype, s) for m, s in zip(more, more_shapes)]
    outputs = ["y", "n"] if infer else [("y", dtype, None), ("n", np.int64, None)]
    return make_model([node], inputs, outputs)


def test_the_schema_carries_the_declaration():
    s = AXPY.schema
    assert (s.domain, s.name, s.since_version, s.doc) == (DOMAIN, "ScaledSum", 1, AXPY.doc)
    option = onnx.defs.OpSchema.FormalParameterOption
    assert [(p.name, p.option) for p in s.inputs] == [("x", option.Single), ("offset", option.Optional),
                                                     ("more", option.Variadic)]
    assert [c.allowed_type_strs for c in s.type_constraints] == [["tensor(float)", "tensor(double)"]]
    assert s.attributes["scale"].default_value.f == 1.0 and not s.attributes["scale"].required
    assert s.attributes["weights"].required
    assert s.has_type_and_shape_inference_function


def test_onnx_checker_and_shape_inference_use_the_python_function():
    register_schemas([AXPY])
    model = _model(more_shapes=(("B", 4), ("B", 4)), weights=[0.5, 2.0], infer=True)
    onnx.checker.check_model(model, full_check=True)
    y, n = model.graph.output  # make_model typed them through onnx's shape inference
    assert [d.dim_param or d.dim_value for d in y.type.tensor_type.shape.dim] == ["B", 4]
    assert (n.type.tensor_type.elem_type, len(n.type.tensor_type.shape.dim)) == (onnx.TensorProto.INT64, 0)
    bad = _model(x_shape=(3, 4), more_shapes=((5, 4),))
    with pytest.raises(ortcore.InvalidArgument, match="input 'more' #0 dimension 0 is 5 but B is 3"):
        onnx.shape_inference.infer_shapes(bad, strict_mode=True)


def test_a_session_runs_the_kernel_with_optional_variadic_and_attributes(plugin):
    model = _model(more_shapes=(("B", 4), ("B", 4)), weights=[0.5, 2.0], scale=3.0)
    sess = ortcore.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    x, m0, m1, off = (rng.normal(size=s).astype(np.float32) for s in [(2, 4), (2, 4), (2, 4), (4,)])
    y, n = sess.run(None, {"x": x, "off": off, "m0": m0, "m1": m1})
    np.testing.assert_allclose(y, 3.0 * (x + 0.5 * m0 + 2.0 * m1) + off, rtol=1e-6)
    assert n == 3 and n.dtype == np.int64


@pytest.mark.parametrize("kwargs,message", [
    ({"x_shape": (2, 5)}, "input 'offset' dimension 0 is 4 but C is 5 from input 'x' dimension 1 "
                           "(expected shape (C,), got (4,))"),
    ({"x_shape": (2, 4, 1)}, "input 'x' must have rank 2 with shape (B, C), got rank 3 with shape (2, 4, 1)"),
    ({"more_shapes": ((3, 4),), "x_shape": (2, 4)}, "input 'more' #0 dimension 0 is 3 but B is 2 from "
     "input 'x' dimension 0 (expected shape (B, C), got (3, 4))"),
    ({"weights": [1.0, 2.0]}, "attribute 'weights' needs 1 entries, got 2"),
    ({"dtype": np.int32}, "input 'x' must be one of tensor(float), tensor(double), got tensor(int32)"),
])
def test_bad_inputs_fail_at_session_creation_naming_op_node_and_input(plugin, kwargs, message):
    model = _model(**kwargs)
    with pytest.raises(ortcore.InvalidArgument) as info:
        ortcore.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    assert str(info.value) == f"{DOMAIN}::ScaledSum node 'axpy': {message}"


def test_symbolic_shapes_pass_inference_and_concrete_ones_run(plugin):
    model = _model(x_shape=("B", "C"), more_shapes=(("B", "C"),), offset=False)
    sess = ortcore.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    y, _ = sess.run(None, {"x": np.ones((3, 2), np.float32), "m0": np.ones((3, 2), np.float32)})
    np.testing.assert_array_equal(y, np.full((3, 2), 2.0, np.float32))


def test_missing_inputs_and_a_broken_inference_function_are_reported():
    ctx_inputs = [None]
    with pytest.raises(ortcore.InvalidArgument, match=r"input 'x' is required but missing"):
        AXPY.context("n", ctx_inputs, {"weights": [1.0]}, 1)
    info = TensorInfo(np.dtype(np.float32), (2, 4))
    with pytest.raises(ortcore.InvalidArgument, match=r"input\(s\) \['more'\] are required but missing"):
        AXPY.context("n", [info], {"weights": []}, 1)
    with pytest.raises(ortcore.InvalidArgument, match=r"attribute 'weights' \(floats\) is required but not set"):
        AXPY.context("n", [info, None, info], {}, 1)
    broken = OpSpec(DOMAIN, "Broken", 1, inputs=[Param("x")], outputs=[Param("y")],
                    type_constraints={"T": [np.float32]}, infer_fn=lambda ctx: [(ctx.input("x").dtype, ctx.nope)])
    ctx = broken.context("b", [info], {}, 1)
    with pytest.raises(ortcore.InvalidGraph, match=r"type/shape inference of .*::Broken node 'b' raised AttributeError"):
        broken.infer_types(ctx)


def test_a_kernel_whose_attributes_drift_from_the_schema_is_refused():
    reg = ortcore.KernelRegistry()
    with pytest.raises(ValueError, match=r"keyword-only parameters \['scale'\] must be the attributes"):
        AXPY.kernel(reg)(lambda x, offset, *more, scale=1.0: x)
    with pytest.raises(ValueError, match=r"attribute 'scale' defaults to 2.0, the schema says 1.0"):
        AXPY.kernel(reg)(lambda x, offset, *more, scale=2.0, tag="none", weights: x)


def test_node_and_model_builders_check_and_set_the_opset_imports():
    with pytest.raises(ortcore.InvalidArgument, match=r"has no attribute 'scael'"):
        AXPY.make_node(["x", "", "m"], ["y"], weights=[1.0], scael=2.0)
    with pytest.raises(ortcore.InvalidArgument, match=r"attribute 'weights' is required"):
        AXPY.make_node(["x", "", "m"], ["y"])
    with pytest.raises(ortcore.InvalidArgument, match=r"needs inputs \['x'\]"):
        AXPY.make_node([], ["y"], weights=[])
    register_schemas([AXPY])
    model = _model()
    assert {(o.domain, o.version) for o in model.opset_import} == {("", 17), (DOMAIN, 1)}
    with pytest.raises(ortcore.InvalidArgument, match=r"the type of output 'z' cannot be inferred"):
        make_model([helper.make_node("Unknown", ["x"], ["z"], domain="nowhere")], [("x", np.float32, [1])], ["z"])
    with pytest.raises(ValueError, match="needs its own domain"):
        OpSpec("", "Relu", 1)
