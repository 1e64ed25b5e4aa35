"""Conv, ConvTranspose and ConvInteger: what the ONNX node cases leave out.

Random shapes, strides, pads, dilations, groups (depthwise with and without a
channel multiplier, 1x1), auto_pad modes and 1-D/2-D/3-D inputs, with weights
both as initializers (the pre-packed path) and as graph inputs. Expected values
come from onnx.reference, onnxruntime or a direct convolution loop written here.
The compiled depthwise and epilogue loops are tested with compiled loops on and
off, against the same references.
"""

from __future__ import annotations

import itertools

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
from ortcore_cpu.ops.nn import _conv_loops
from ortcore_cpu.ops.nn import conv as conv_ops

RNG = np.random.default_rng(7)


def _model(op, inputs, attrs, opset, constant, n_out=1, domain=""):
    names = [f"x{i}" if v is not None else "" for i, v in enumerate(inputs)]
    node = helper.make_node(op, names, [f"y{i}" for i in range(n_out)], domain=domain, **attrs)
    feeds = [(n, v) for i, (n, v) in enumerate(zip(names, inputs)) if v is not None and i not in constant]
    inits = [numpy_helper.from_array(v, n) for i, (n, v) in enumerate(zip(names, inputs)) if i in constant]
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info(n, onnx_elem_type(v.dtype), v.shape) for n, v in feeds],
        [onnx.ValueInfoProto(name=f"y{i}") for i in range(n_out)],
        inits,
    )
    opsets = [helper.make_opsetid("", opset)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    return helper.make_model(graph, opset_imports=opsets), dict(feeds)


def run(op, inputs, attrs=None, *, opset=22, constant=(1, 2), n_out=1, domain=""):
    """Run one node in ortcore; inputs at positions ``constant`` are initializers."""
    model, feeds = _model(op, inputs, attrs or {}, opset, constant, n_out, domain)
    sess = ortcore.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds), model, feeds


def check(op, inputs, attrs=None, *, opset=22, constant=(1, 2), expected=None, rtol=1e-3, atol=1e-5):
    """Compare ortcore with ``expected`` or else with onnx.reference."""
    (actual,), model, feeds = run(op, inputs, attrs, opset=opset, constant=constant)
    if expected is None:
        (expected,) = ReferenceEvaluator(model).run(None, feeds)
    compare_outputs(np.asarray(expected, dtype=actual.dtype), actual, rtol=rtol, atol=atol, name=op)
    assert actual.dtype == inputs[0].dtype or op == "ConvInteger"
    return actual


def engine_runs():
    """Whether float32 convs run on the GEMM engine (compiled loops on and the engine built)."""
    from ortcore_cpu import jit

    return jit.gemm_engine() is not None


def rand(shape, dtype=np.float32):
    return RNG.standard_normal(shape).astype(dtype)


# -- an independent direct convolution ------------------------------------------------


def direct_conv(x, w, b=None, *, strides=None, pads=None, dilations=None, group=1):
    """Textbook N-D convolution with explicit pads, one output element at a time."""
    nd = x.ndim - 2
    strides = strides or [1] * nd
    dilations = dilations or [1] * nd
    pads = pads or [0] * (2 * nd)
    xp = np.pad(x.astype(np.float64), [(0, 0), (0, 0)] + [(pads[i], pads[nd + i]) for i in range(nd)])
    kernel = w.shape[2:]
    out = [(xp.shape[2 + i] - ((kernel[i] - 1) * dilations[i] + 1)) // strides[i] + 1 for i in range(nd)]
    m, cg = w.shape[:2]
    y = np.zeros((x.shape[0], m, *out))
    for n, oc in itertools.product(range(x.shape[0]), range(m)):
        g = oc // (m // group)
        for pos in itertools.product(*(range(o) for o in out)):
            index = tuple(
                slice(p * s, p * s + (k - 1) * d + 1, d) for p, s, k, d in zip(pos, strides, kernel, dilations)
            )
            patch = xp[(n, slice(g * cg, (g + 1) * cg), *index)]
            y[(n, oc, *pos)] = np.sum(patch * w[oc])
    if b is not None:
        y += b.reshape(-1, *(1,) * nd)
    return y


@pytest.mark.parametrize(
    "x_shape, w_shape, attrs",
    [
        ((1, 3, 7, 6), (4, 3, 3, 2), {"strides": [2, 1], "pads": [1, 0, 2, 1]}),
        ((2, 4, 6, 6), (6, 2, 3, 3), {"group": 2, "dilations": [2, 1], "pads": [1, 1, 1, 1]}),
        ((1, 4, 5, 5), (4, 1, 3, 3), {"group": 4, "pads": [1, 1, 1, 1]}),  # depthwise
        ((1, 3, 5, 4), (6, 1, 3, 3), {"group": 3, "strides": [2, 2], "pads": [0, 1, 1, 0]}),  # multiplier 2
        ((1, 2, 9), (3, 2, 4), {"strides": [3], "dilations": [2], "pads": [2, 1]}),
        ((1, 2, 4, 3, 5), (2, 2, 2, 1, 3), {"strides": [1, 2, 2], "pads": [1, 0, 1, 0, 1, 1]}),
        ((1, 5, 4, 4), (3, 5, 1, 1), {}),  # pointwise
    ],
)
@pytest.mark.parametrize("constant", [(1, 2), ()], ids=["packed", "runtime"])
def test_conv_vs_direct_loop(x_shape, w_shape, attrs, constant):
    x, w, b = rand(x_shape), rand(w_shape), rand(w_shape[:1])
    expected = direct_conv(x, w, b, **attrs)
    check("Conv", [x, w, b], attrs, constant=constant, expected=expected)


def _random_conv_case(rng, nd):
    group = int(rng.choice([1, 1, 2, 3]))
    cg, mg = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    kernel = [int(k) for k in rng.integers(1, 4, nd)]
    dilations = [int(d) for d in rng.integers(1, 3, nd)]
    strides = [int(s) for s in rng.integers(1, 4, nd)]
    spatial = [int(rng.integers((k - 1) * d + 1, 9)) for k, d in zip(kernel, dilations)]
    attrs = {"strides": strides, "dilations": dilations, "group": group}
    auto_pad = rng.choice(["NOTSET", "NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"])
    if auto_pad == "NOTSET":
        attrs["pads"] = [int(p) for p in rng.integers(0, 3, 2 * nd)]
    else:
        attrs["auto_pad"] = str(auto_pad)
    if rng.random() < 0.5:
        attrs["kernel_shape"] = kernel
    x_shape = (int(rng.integers(1, 3)), cg * group, *spatial)
    return x_shape, (mg * group, cg, *kernel), attrs


@pytest.mark.parametrize("seed", range(30))
def test_conv_random_vs_reference(seed):
    rng = np.random.default_rng(seed)
    nd = [1, 2, 2, 3][seed % 4]
    x_shape, w_shape, attrs = _random_conv_case(rng, nd)
    x, w, b = rand(x_shape), rand(w_shape), rand(w_shape[:1])
    inputs = [x, w, b] if seed % 3 else [x, w]
    check("Conv", inputs, attrs, constant=(1, 2) if seed % 2 else ())


@pytest.mark.parametrize("auto_pad", ["SAME_UPPER", "SAME_LOWER"])
def test_conv_same_padding_with_dilation_and_stride(auto_pad):
    """SAME pads use the dilated kernel; odd totals go to the end (UPPER) or start (LOWER)."""
    x, w = rand((1, 2, 7, 8)), rand((3, 2, 3, 2))
    attrs = {"auto_pad": auto_pad, "strides": [2, 3], "dilations": [2, 2]}
    total = [(4 - 1) * 2 + 5 - 7, (3 - 1) * 3 + 3 - 8]  # out = ceil(in / stride)
    small = [t // 2 for t in total]
    big = [t - t // 2 for t in total]
    pads = small + big if auto_pad == "SAME_UPPER" else big + small
    y = check("Conv", [x, w], attrs, expected=direct_conv(x, w, strides=[2, 3], dilations=[2, 2], pads=pads))
    assert y.shape == (1, 3, 4, 3)


@pytest.mark.parametrize("dtype", [np.float16, np.float64, ml_dtypes.bfloat16])
@pytest.mark.parametrize("op", ["Conv", "ConvTranspose"])
def test_conv_dtypes(dtype, op):
    x, w, b = rand((1, 4, 6, 6), dtype), rand((4, 2, 3, 3), dtype), rand((4,), dtype)
    x64, w64, b64 = (a.astype(np.float64) for a in (x, w, b))
    if op == "Conv":
        expected = direct_conv(x64, w64, b64, group=2, pads=[1, 1, 1, 1])
    else:
        expected = direct_conv_transpose(
            x64, w64, b64[:4], strides=[1, 1], pads=[1] * 4, dilations=[1, 1], output_padding=[0, 0], group=2
        )
    rtol = {np.float16: 1e-2, np.float64: 1e-7}.get(dtype, 3e-2)
    check(op, [x, w, b], {"group": 2, "pads": [1, 1, 1, 1]}, expected=expected, rtol=rtol, atol=rtol)


@pytest.mark.parametrize("opset", [1, 11, 22])
def test_conv_every_version(opset):
    x, w = rand((1, 3, 5, 5)), rand((2, 3, 3, 3))
    check("Conv", [x, w], {"pads": [1, 1, 1, 1]}, opset=opset, expected=direct_conv(x, w, pads=[1, 1, 1, 1]))


def test_conv_large_image_row_blocks():
    """Column buffers beyond the cache budget are built in row blocks; same result."""
    x, w, b = rand((2, 64, 96, 96)), rand((8, 64, 3, 3)) * 0.1, rand((8,))  # 21 MB of columns
    check("Conv", [x, w, b], {"pads": [1, 1, 1, 1]}, rtol=1e-3, atol=1e-4)


def test_conv_depthwise_channels_last_path():
    """Many channels over narrow rows run channels-last; includes stride 2 and a multiplier."""
    x, w = rand((2, 40, 6, 5)), rand((80, 1, 3, 3))
    attrs = {"group": 40, "strides": [2, 1], "pads": [1, 1, 1, 1]}
    check("Conv", [x, w], attrs, expected=direct_conv(x, w, **attrs))


@pytest.mark.parametrize(
    "x_shape, w_shape, attrs",
    [
        ((2, 3, 9, 17), (3, 1, 3, 3), {"group": 3, "dilations": [2, 1], "pads": [1, 2, 0, 1]}),
        ((1, 2, 18), (4, 1, 5), {"group": 2, "dilations": [3], "pads": [4, 1]}),
        ((1, 2, 3, 4, 16), (2, 1, 2, 3, 3), {"group": 2, "pads": [1, 0, 1, 0, 1, 1]}),
    ],
)
def test_conv_depthwise_flat_path(x_shape, w_shape, attrs):
    """Stride-1 depthwise over wide rows runs on the flattened image (N-D, dilated, multiplier)."""
    x, w, b = rand(x_shape), rand(w_shape), rand(w_shape[:1])
    check("Conv", [x, w, b], attrs, expected=direct_conv(x, w, b, **attrs))


@pytest.mark.parametrize(
    "x_shape, w_shape, attrs",
    [
        ((2, 8, 7, 9), (3, 8, 3, 3), {"pads": [1, 1, 1, 1]}),
        ((1, 8, 9, 8), (4, 4, 3, 2), {"group": 2, "dilations": [2, 3], "pads": [2, 0, 1, 3]}),
        ((1, 6, 11), (2, 6, 4), {"dilations": [2], "pads": [0, 3]}),
        ((1, 4, 4, 5, 6), (2, 4, 3, 2, 3), {"pads": [1, 0, 1, 1, 1, 1]}),
    ],
)
@pytest.mark.parametrize("constant", [(1, 2), ()], ids=["packed", "runtime"])
@pytest.mark.parametrize("with_bias", [True, False], ids=["bias", "no-bias"])
def test_conv_few_outputs_kn2row_path(conv_loops, x_shape, w_shape, attrs, constant, with_bias):
    """Stride 1 with at most half as many outputs as inputs: one GEMM over all taps, shifted sums.

    The sums are one compiled pass for 2-D images with compiled loops on.
    """
    x, w, b = rand(x_shape), rand(w_shape), rand(w_shape[:1])
    inputs = [x, w, b] if with_bias else [x, w]
    expected = direct_conv(x, w, b if with_bias else None, **attrs)
    check("Conv", inputs, attrs, constant=constant[: len(inputs) - 1], expected=expected)
    assert conv_loops.calls == (["gemm", "tap_sum"] if conv_loops.on and len(x_shape) == 4 else [])


def window_conv(x, w, pads):
    """2-D group-1 stride-1 convolution in float64: sliding windows times the flat kernels."""
    xp = np.pad(x.astype(np.float64), [(0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])])
    windows = np.lib.stride_tricks.sliding_window_view(xp, w.shape[2:], axis=(2, 3))  # N C OH OW kh kw
    n, _, oh, ow = windows.shape[:4]
    cols = windows.transpose(0, 2, 3, 1, 4, 5).reshape(n, oh, ow, -1)
    return (cols @ w.reshape(w.shape[0], -1).T.astype(np.float64)).transpose(0, 3, 1, 2)


def window_pads(attrs):
    """The explicit ``[top, left, bottom, right]`` pads of a 3x3 stride-1 conv's attributes."""
    if attrs.get("auto_pad") in ("SAME_UPPER", "SAME_LOWER"):
        return [1, 1, 1, 1]  # a 3x3 window at stride 1 needs 2 per axis, split evenly
    return attrs.get("pads", [0, 0, 0, 0])


@pytest.fixture
def winograd_calls(monkeypatch):
    """Records the Winograd variant (output tile size) of every Winograd conv that runs."""
    calls = []

    def spy(name):
        winograd = getattr(conv_ops, name)

        def recorded(x, wp, win, tiles, *rest):
            calls.append(tiles.m)
            return winograd(x, wp, win, tiles, *rest)

        monkeypatch.setattr(conv_ops, name, recorded)

    spy("_winograd")  # numpy's BLAS
    spy("_winograd_engine")  # the float32 GEMM engine
    return calls


def force_winograd(monkeypatch, tiles):
    """Every 3x3 stride-1 conv takes Winograd ``tiles``, whatever the rules would pick."""
    monkeypatch.setattr(conv_ops, "_winograd_tiles", lambda wp, win: tiles)
    monkeypatch.setattr(conv_ops, "_kn2row_beats_winograd", lambda wp, tiles: False)
    monkeypatch.setattr(conv_ops, "_winograd_on_engine", lambda wp, tiles: True)


@pytest.mark.parametrize("tiles", ["_F2", "_F4"])
@pytest.mark.parametrize(
    "x_shape, m, attrs",
    [
        ((1, 5, 7, 7), 6, {"pads": [1, 1, 1, 1]}),
        ((2, 3, 13, 13), 4, {"pads": [0, 2, 1, 0]}),  # batch 2, asymmetric pads
        ((1, 16, 15, 17), 3, {"pads": [2, 1, 0, 2]}),  # many channels per tile column
        ((1, 4, 9, 6), 5, {"auto_pad": "SAME_UPPER"}),
        ((1, 4, 10, 11), 2, {"auto_pad": "VALID"}),
        ((1, 2, 5, 4), 3, {}),  # no pads, partial tiles only
    ],
)
@pytest.mark.parametrize("with_bias", [False, True])
def test_conv_winograd_odd_shapes(monkeypatch, winograd_calls, tiles, x_shape, m, attrs, with_bias):
    """Winograd F(2x2) and F(4x4) forced on odd sizes, pads and batches vs the direct loop."""
    force_winograd(monkeypatch, getattr(conv_ops, tiles))
    x, w, b = rand(x_shape), rand((m, x_shape[1], 3, 3)), rand((m,))
    expected = direct_conv(x, w, b if with_bias else None, pads=window_pads(attrs))
    check("Conv", [x, w, b] if with_bias else [x, w], attrs, expected=expected, rtol=1e-3, atol=1e-4)
    assert winograd_calls == [getattr(conv_ops, tiles).m]


@pytest.mark.parametrize("tiles", ["_F2", "_F4"])
@pytest.mark.parametrize("x_shape, m", [((2, 40, 13, 11), 24), ((1, 6, 30, 17), 33)])
def test_conv_winograd_blocks_and_chunks(monkeypatch, winograd_calls, tiles, x_shape, m):
    """Tiny block and chunk budgets: many tile-row blocks, input and output chunks, both gather layouts."""
    force_winograd(monkeypatch, getattr(conv_ops, tiles))
    monkeypatch.setattr(conv_ops, "_WINO_BLOCK_BYTES", 20_000)
    monkeypatch.setattr(conv_ops, "_WINO_CHUNK_BYTES", 3_000)
    x, w, b = rand(x_shape), rand((m, x_shape[1], 3, 3)) * 0.2, rand((m,))
    pads = [1, 0, 2, 1]
    check("Conv", [x, w, b], {"pads": pads}, expected=window_conv(x, w, pads) + b.reshape(-1, 1, 1), atol=1e-4)
    assert winograd_calls == [getattr(conv_ops, tiles).m]


@pytest.mark.parametrize("tiles", ["_F2", "_F4"])
def test_conv_winograd_float64(monkeypatch, winograd_calls, tiles):
    """float64 runs the transforms and GEMMs in float64: errors near float64 rounding."""
    force_winograd(monkeypatch, getattr(conv_ops, tiles))
    x, w, b = rand((1, 12, 11, 13), np.float64), rand((7, 12, 3, 3), np.float64), rand((7,), np.float64)
    expected = direct_conv(x, w, b, pads=[1, 2, 1, 0])
    check("Conv", [x, w, b], {"pads": [1, 2, 1, 0]}, expected=expected, rtol=1e-10, atol=1e-10)
    assert winograd_calls == [getattr(conv_ops, tiles).m]


@pytest.mark.parametrize("with_z", [False, True])
def test_fused_conv_winograd(monkeypatch, winograd_calls, with_z):
    """FusedConv adds Z and applies the activation to the Winograd output."""
    force_winograd(monkeypatch, conv_ops._F4)
    x, w, b = rand((1, 6, 10, 9)), rand((5, 6, 3, 3)), rand((5,))
    z = rand((1, 5, 10, 9)) if with_z else None
    attrs = {"pads": [1, 1, 1, 1], "activation": "LeakyRelu", "activation_params": [0.1]}
    v = direct_conv(x, w, b, pads=[1, 1, 1, 1]) + (z if with_z else 0)
    (y,), _, _ = run("FusedConv", [x, w, b, z], attrs, opset=22, domain="com.microsoft")
    compare_outputs(np.where(v < 0, 0.1 * v, v).astype(np.float32), y, rtol=1e-3, atol=1e-4, name="FusedConv")
    assert winograd_calls == [4]


@pytest.mark.parametrize(
    "x_shape, m, pads, variant",
    [
        ((1, 128, 28, 28), 128, [1, 1, 1, 1], 4),  # F(4x4): ResNet-50's 28x28 stage
        ((1, 64, 55, 57), 192, [1, 1, 1, 1], 4),  # wide image: channels-outer gather (numpy's BLAS only)
        ((1, 64, 56, 56), 64, [1, 1, 1, 1], None),  # h = 32: no faster inside ResNet-50
        ((1, 256, 14, 14), 256, [1, 1, 1, 1], 2),  # F(2x2): 16 tiles of 4x4 are too few
        ((1, 32, 28, 28), 128, [1, 1, 1, 1], None),  # too few channels: GEMM
        ((1, 512, 7, 7), 512, [1, 1, 1, 1], None),  # too few tiles: GEMM
        ((1, 128, 28, 28), 128, [0, 0, 0, 0], 4),
    ],
)
@pytest.mark.parametrize("constant", [(1, 2), ()], ids=["packed", "runtime"])
def test_conv_winograd_selection(winograd_calls, x_shape, m, pads, variant, constant):
    """The rule picks F(4x4), F(2x2) or neither from channels and tiles; results stay accurate."""
    x = rand(x_shape)
    w = rand((m, x_shape[1], 3, 3)) * np.float32((2 / (9 * x_shape[1])) ** 0.5)
    b = rand((m,))
    expected = window_conv(x, w, pads) + b.reshape(-1, 1, 1)
    y = check("Conv", [x, w, b], {"pads": pads}, constant=constant, expected=expected, rtol=1e-3, atol=1e-4)
    if engine_runs() and x_shape[1] * m / (x_shape[1] + m) < 64:
        variant = None  # the engine's implicit GEMM is faster there
    assert winograd_calls == ([variant] if variant else [])
    # max error relative to the largest output: F(4x4) in float32 stays near 1e-5
    assert np.abs(y - expected).max() <= 2e-5 * np.abs(expected).max()


def test_conv_kn2row_rather_than_winograd_at_h_48(conv_loops, winograd_calls):
    """28x28 96->96 qualifies for F(4x4), but the compiled paths are faster there (the GEMM engine's implicit
    GEMM, or kn2row's compiled sums without it); the numpy path keeps F(4x4)."""
    x = rand((1, 96, 28, 28))
    w, b = rand((96, 96, 3, 3)) * np.float32((2 / (9 * 96)) ** 0.5), rand((96,))
    expected = window_conv(x, w, [1, 1, 1, 1]) + b.reshape(-1, 1, 1)
    check("Conv", [x, w, b], {"pads": [1, 1, 1, 1]}, expected=expected, rtol=1e-3, atol=1e-4)
    compiled = ["implicit_gemm"] if engine_runs() else ["gemm", "tap_sum"]
    assert (conv_loops.calls, winograd_calls) == ((compiled, []) if conv_loops.on else ([], [4]))


def test_conv_does_not_modify_inputs():
    x, w, b = rand((1, 4, 5, 5)), rand((4, 1, 3, 3)), rand((4,))
    copies = [a.copy() for a in (x, w, b)]
    run("Conv", [x, w, b], {"group": 4}, constant=())
    run("Conv", [x, w[:, :1].repeat(4, axis=1), b], {}, constant=())
    for a, c in zip((x, w, b), copies):
        np.testing.assert_array_equal(a, c)


@pytest.mark.parametrize("w_shape, attrs", [((4, 3, 3, 3), {}), ((3, 1, 3, 3), {"group": 3, "pads": [1] * 4})])
def test_conv_empty_batch(w_shape, attrs):
    x = np.zeros((0, 3, 6, 6), np.float32)
    (y,), _, _ = run("Conv", [x, rand(w_shape)], attrs)
    assert y.shape == (0, w_shape[0], *((4, 4) if not attrs else (6, 6)))
    (z,), _, _ = run("ConvTranspose", [x, rand((3, 2, 3, 3))], {})
    assert z.shape == (0, 2, 8, 8)


def test_conv_rejects_channel_mismatch():
    with pytest.raises(ortcore.OrtCoreError):
        run("Conv", [rand((1, 3, 4, 4)), rand((2, 2, 3, 3))], {}, constant=())


@pytest.mark.parametrize("op, w_shape", [("Conv", (1, 3, 3, 3)), ("MaxPool", None), ("AveragePool", None)])
def test_negative_pads_are_rejected(conv_loops, op, w_shape):
    """The spec wants pads >= 0: every path says so, naming the node's op and the pads, instead of cropping the
    input (the compiled kn2row sums would) or failing on a broadcast (the numpy paths did)."""
    inputs = [rand((1, 3, 6, 6))] + ([rand(w_shape)] if w_shape else [])
    attrs = {"pads": [-1, 1, 0, 1]} | ({} if w_shape else {"kernel_shape": [3, 3]})
    with pytest.raises(ortcore.OrtCoreError, match=r"pads \[-1, 1, 0, 1\] must be >= 0") as caught:
        run(op, inputs, attrs)
    assert f"({op})" in str(caught.value) and isinstance(caught.value.__cause__, ortcore.InvalidArgument)


# -- ConvTranspose ---------------------------------------------------------------------


def direct_conv_transpose(x, w, b=None, *, strides, pads, dilations, output_padding, group=1):
    """Scatter each input element times the kernel into the output, then crop the pads."""
    nd = x.ndim - 2
    kernel = w.shape[2:]
    cg, mg = w.shape[0] // group, w.shape[1]
    full = [
        (x.shape[2 + i] - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1 + output_padding[i] for i in range(nd)
    ]
    y = np.zeros((x.shape[0], mg * group, *full))
    for n, c in itertools.product(range(x.shape[0]), range(x.shape[1])):
        g = c // cg
        for pos in itertools.product(*(range(s) for s in x.shape[2:])):
            for tap in itertools.product(*(range(k) for k in kernel)):
                out = tuple(p * s + t * d for p, s, t, d in zip(pos, strides, tap, dilations))
                y[(n, slice(g * mg, (g + 1) * mg), *out)] += x[(n, c, *pos)] * w[(c, slice(None), *tap)]
    crop = tuple(slice(pads[i], full[i] - pads[nd + i]) for i in range(nd))
    y = y[(slice(None), slice(None), *crop)]
    if b is not None:
        y += b.reshape(-1, *(1,) * nd)
    return y


@pytest.mark.parametrize(
    "x_shape, w_shape, attrs",
    [
        ((1, 2, 3, 4), (2, 3, 3, 3), {"strides": [2, 1], "pads": [1, 0, 0, 1], "output_padding": [1, 0]}),
        ((2, 4, 3, 3), (4, 2, 2, 3), {"group": 2, "strides": [2, 2], "dilations": [2, 1], "pads": [0, 1, 1, 1]}),
        ((1, 3, 4), (3, 1, 3), {"group": 3, "strides": [3], "pads": [1, 2], "output_padding": [2]}),
        ((1, 2, 2, 3, 2), (2, 2, 2, 2, 2), {"strides": [1, 2, 2], "pads": [0, 0, 1, 1, 0, 0]}),
    ],
)
@pytest.mark.parametrize("constant", [(1, 2), ()], ids=["packed", "runtime"])
def test_conv_transpose_vs_direct_loop(x_shape, w_shape, attrs, constant):
    nd = len(x_shape) - 2
    x, w = rand(x_shape), rand(w_shape)
    b = rand((w_shape[1] * attrs.get("group", 1),))
    full = {"strides": [1] * nd, "pads": [0] * 2 * nd, "dilations": [1] * nd, "output_padding": [0] * nd} | attrs
    expected = direct_conv_transpose(x, w, b, **full)
    check("ConvTranspose", [x, w, b], attrs, constant=constant, expected=expected)


@pytest.mark.parametrize("auto_pad", ["SAME_UPPER", "SAME_LOWER"])
def test_conv_transpose_output_shape_and_auto_pad(auto_pad):
    """output_shape fixes the size; the pad total splits per auto_pad (odd extra: end for UPPER)."""
    x, w = rand((1, 1, 3, 3)), rand((1, 2, 3, 3))
    attrs = {"strides": [2, 2], "output_shape": [6, 5], "auto_pad": auto_pad}
    total = [2 * 2 + 3 - 6, 2 * 2 + 3 - 5]  # full size 7 minus the requested size
    small = [t // 2 for t in total]
    big = [t - t // 2 for t in total]
    pads = small + big if auto_pad == "SAME_UPPER" else big + small
    expected = direct_conv_transpose(x, w, strides=[2, 2], pads=pads, dilations=[1, 1], output_padding=[0, 0])
    y = check("ConvTranspose", [x, w], attrs, expected=expected)
    assert y.shape == (1, 2, 6, 5)


@pytest.mark.parametrize("opset", [1, 11, 22])
def test_conv_transpose_every_version(opset):
    x, w = rand((1, 2, 3, 3)), rand((2, 3, 2, 2))
    expected = direct_conv_transpose(x, w, strides=[2, 2], pads=[0] * 4, dilations=[1, 1], output_padding=[0, 0])
    check("ConvTranspose", [x, w], {"strides": [2, 2]}, opset=opset, expected=expected)


# -- ConvInteger -------------------------------------------------------------------------


@pytest.mark.parametrize("dtypes", [(np.uint8, np.uint8), (np.int8, np.int8), (np.uint8, np.int8)])
def test_conv_integer_per_channel_zero_point(dtypes):
    xt, wt = dtypes
    x = RNG.integers(np.iinfo(xt).min, np.iinfo(xt).max, (1, 4, 5, 5), endpoint=True).astype(xt)
    w = RNG.integers(np.iinfo(wt).min, np.iinfo(wt).max, (6, 2, 3, 3), endpoint=True).astype(wt)
    xz = np.array(3, xt)
    wz = RNG.integers(0, 5, (6,)).astype(wt)
    attrs = {"group": 2, "pads": [1, 1, 1, 1], "strides": [2, 1]}
    expected = direct_conv(
        x.astype(np.int64) - 3, w.astype(np.int64) - wz.reshape(-1, 1, 1, 1), group=2, pads=[1] * 4, strides=[2, 1]
    )
    (y,), _, _ = run("ConvInteger", [x, w, xz, wz], attrs, opset=10, constant=(1, 3))
    assert y.dtype == np.int32
    np.testing.assert_array_equal(y, expected.astype(np.int64))


def test_conv_integer_winograd_is_exact(winograd_calls):
    """ConvInteger runs in float64; through Winograd its sums of 8-bit products still round exactly."""
    x = RNG.integers(0, 256, (1, 128, 28, 28)).astype(np.uint8)
    w = RNG.integers(-128, 128, (96, 128, 3, 3)).astype(np.int8)
    xp = np.pad(x.astype(np.int64) - 7, [(0, 0), (0, 0), (1, 1), (1, 1)])
    expected = sum(
        np.einsum("nchw,mc->nmhw", xp[:, :, i : i + 28, j : j + 28], w[:, :, i, j].astype(np.int64))
        for i, j in itertools.product(range(3), range(3))
    )
    (y,), _, _ = run("ConvInteger", [x, w, np.array(7, np.uint8)], {"pads": [1, 1, 1, 1]}, opset=10, constant=(1,))
    np.testing.assert_array_equal(y, expected)
    assert winograd_calls == [4]


# -- com.microsoft FusedConv -------------------------------------------------------------------


@pytest.mark.parametrize(
    "activation, params, fn",
    [
        ("Relu", None, lambda v: np.maximum(v, 0)),
        ("LeakyRelu", [0.2], lambda v: np.where(v < 0, 0.2 * v, v)),
        ("Clip", [-0.5, 0.7], lambda v: np.clip(v, -0.5, 0.7)),
        ("Sigmoid", None, lambda v: 1 / (1 + np.exp(-v))),
        ("Tanh", None, np.tanh),
        ("HardSigmoid", [0.3, 0.4], lambda v: np.clip(0.3 * v + 0.4, 0, 1)),
    ],
)
@pytest.mark.parametrize("with_z", [False, True])
def test_fused_conv(activation, params, fn, with_z):
    """activation(Conv(X, W, B) + Z), onnxruntime's contrib FusedConv."""
    x, w, b = rand((1, 3, 6, 6)), rand((4, 3, 3, 3)), rand((4,))
    z = rand((1, 4, 6, 6)) if with_z else None
    attrs = {"pads": [1, 1, 1, 1], "activation": activation}
    if params:
        attrs["activation_params"] = params
    expected = fn(direct_conv(x, w, b, pads=[1, 1, 1, 1]) + (z if with_z else 0))
    (y,), _, _ = run("FusedConv", [x, w, b, z], attrs, opset=22, domain="com.microsoft")
    compare_outputs(expected.astype(np.float32), y, rtol=1e-3, atol=1e-5, name=activation)


# -- compiled loops: depthwise conv and the conv epilogue, on and off ------------------------


@pytest.fixture(params=[True, False], ids=["compiled", "numpy"])
def conv_loops(request, record_loops):
    """Compiled loops on or off, and the compiled conv loops that ran (see conftest.record_loops)."""
    return record_loops(request.param, _conv_loops)


def onnxruntime_run(model, feeds):
    model.ir_version = 8  # the installed onnxruntime reads older IR versions than onnx writes
    sess = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


DEPTHWISE_CASES = [
    # input shape, channel multiplier, kernel, attributes (group = channels is added)
    pytest.param((1, 8, 9, 7), 1, (3, 3), {"pads": [1, 1, 1, 1]}, id="3x3"),
    pytest.param((2, 5, 8, 11), 1, (3, 3), {"pads": [0, 2, 1, 1]}, id="3x3-batch2-asymmetric"),
    pytest.param((2, 6, 7, 9), 1, (5, 5), {"pads": [2, 1, 0, 2]}, id="5x5-batch2-asymmetric"),
    pytest.param((1, 4, 11, 10), 1, (1, 3), {"strides": [2, 2], "pads": [0, 1, 0, 1]}, id="1x3-stride2"),
    pytest.param((1, 5, 13, 12), 1, (3, 3), {"strides": [2, 2], "pads": [1, 1, 0, 0]}, id="3x3-stride2"),
    pytest.param((1, 3, 10, 11), 1, (3, 3), {"strides": [3, 3], "pads": [1, 2, 1, 0]}, id="3x3-stride3"),
    pytest.param((1, 4, 12, 12), 1, (3, 3), {"dilations": [2, 1], "pads": [2, 1, 2, 1]}, id="dilated-rows"),
    pytest.param((1, 4, 12, 13), 1, (3, 3), {"dilations": [2, 2], "pads": [2, 2, 1, 2]}, id="dilated"),
    pytest.param(
        (1, 4, 11, 12), 1, (3, 3), {"strides": [2, 2], "dilations": [1, 2], "pads": [1, 2, 1, 2]}, id="dilated-stride2"
    ),
    pytest.param((1, 3, 8, 9), 2, (3, 3), {"pads": [1, 1, 1, 1]}, id="multiplier2"),
    pytest.param((2, 3, 9, 8), 2, (3, 3), {"strides": [2, 2], "pads": [1, 1, 1, 1]}, id="multiplier2-stride2-batch2"),
    pytest.param((1, 4, 9, 10), 1, (3, 3), {"strides": [2, 1], "pads": [1, 1, 1, 1]}, id="strides-2-1"),
    pytest.param((1, 4, 9, 10), 1, (3, 3), {"strides": [1, 2], "pads": [0, 1, 1, 0]}, id="strides-1-2"),
    pytest.param((1, 4, 1, 1), 1, (3, 3), {"pads": [1, 1, 1, 1]}, id="1x1-image"),
    pytest.param((1, 4, 1, 1), 1, (1, 1), {}, id="1x1-image-1x1-kernel"),
    # a 1x1 kernel at stride 1 without pads reads the input directly (BatchNormalization's form)
    pytest.param((2, 5, 7, 6), 1, (1, 1), {}, id="1x1-kernel-batch2"),
    pytest.param((1, 3, 6, 5), 2, (1, 1), {}, id="1x1-kernel-multiplier2"),
    pytest.param((1, 3, 6, 5), 1, (1, 1), {"pads": [1, 0, 0, 1]}, id="1x1-kernel-padded"),
    pytest.param((1, 3, 7, 6), 1, (1, 1), {"strides": [2, 2]}, id="1x1-kernel-stride2"),
    pytest.param((1, 2, 4, 4), 1, (3, 3), {"pads": [3, 3, 3, 3]}, id="pads-past-kernel"),
    pytest.param((1, 3, 7, 9), 1, (3, 3), {}, id="no-pads"),
    pytest.param((1, 4, 7, 8), 1, (3, 3), {"strides": [2, 2], "auto_pad": "SAME_UPPER"}, id="same-upper"),
    pytest.param((1, 4, 7, 8), 1, (2, 3), {"strides": [2, 2], "auto_pad": "SAME_LOWER"}, id="same-lower"),
]


def depthwise_loop_name(multiplier, kernel, attrs):
    """The compiled loop a depthwise case runs: the 3x3 stride-1 one-output-per-channel case has its own."""
    plain = kernel == (3, 3) and multiplier == 1
    plain = plain and attrs.get("strides", [1, 1]) == [1, 1] and attrs.get("dilations", [1, 1]) == [1, 1]
    return "depthwise_3x3" if plain else "depthwise"


@pytest.mark.parametrize("x_shape, multiplier, kernel, attrs", DEPTHWISE_CASES)
@pytest.mark.parametrize("with_bias", [True, False], ids=["bias", "no-bias"])
def test_conv_depthwise_vs_onnxruntime(conv_loops, x_shape, multiplier, kernel, attrs, with_bias):
    """2-D depthwise Conv in float32: one compiled loop with compiled loops on, numpy's passes off."""
    c = x_shape[1]
    x, w, b = rand(x_shape), rand((c * multiplier, 1, *kernel)), rand((c * multiplier,))
    (actual,), model, feeds = run("Conv", [x, w, b] if with_bias else [x, w], {"group": c, **attrs})
    (expected,) = onnxruntime_run(model, feeds)
    compare_outputs(expected, actual, rtol=1e-4, atol=1e-5, name="Conv")
    assert conv_loops.calls == ([depthwise_loop_name(multiplier, kernel, attrs)] if conv_loops.on else [])


EXPLICIT_PADS = [case for case in DEPTHWISE_CASES if "auto_pad" not in case.values[3]]


@pytest.mark.parametrize("x_shape, multiplier, kernel, attrs", EXPLICIT_PADS)
@pytest.mark.parametrize("constant", [(1, 2), ()], ids=["packed", "runtime"])
def test_conv_depthwise_float64(conv_loops, x_shape, multiplier, kernel, attrs, constant):
    """float64 stays float64 in the loop: errors near float64 rounding against the direct loop."""
    c = x_shape[1]
    x = rand(x_shape, np.float64)
    w, b = rand((c * multiplier, 1, *kernel), np.float64), rand((c * multiplier,), np.float64)
    attrs = {"group": c, **attrs}
    expected = direct_conv(x, w, b, **attrs)
    check("Conv", [x, w, b], attrs, constant=constant, expected=expected, rtol=1e-10, atol=1e-10)
    assert conv_loops.calls == ([depthwise_loop_name(multiplier, kernel, attrs)] if conv_loops.on else [])


FUSED_ACTIVATIONS = [
    ("", None),
    ("Relu", None),
    ("LeakyRelu", [0.2]),
    ("Clip", [-0.5, 0.7]),
    ("Sigmoid", None),
    ("Tanh", None),
    ("HardSigmoid", [0.3, 0.4]),
]


@pytest.mark.parametrize("activation, params", FUSED_ACTIVATIONS)
@pytest.mark.parametrize("with_z", [False, True], ids=["no-z", "z"])
@pytest.mark.parametrize(
    "group, strides, loop",
    [(6, [1, 1], "depthwise_3x3"), (6, [2, 2], "depthwise"), (2, [1, 1], "epilogue"), (6, None, "depthwise")],
    ids=["depthwise", "depthwise-stride2", "grouped", "depthwise-1x1"],
)
def test_fused_conv_vs_onnxruntime(conv_loops, activation, params, with_z, group, strides, loop):
    """FusedConv's bias, Z and activation fused into the depthwise loop, or one epilogue pass after the GEMM."""
    kernel = (3, 3) if strides else (1, 1)
    x, w, b = rand((2, 6, 9, 7)), rand((6, 6 // group, *kernel)), rand((6,))
    out = (2, 6, 9, 7) if strides in ([1, 1], None) else (2, 6, 5, 4)
    z = rand(out) if with_z else None
    attrs = {"group": group, "strides": strides, "pads": [1, 1, 1, 1]} if strides else {"group": group}
    if activation:
        attrs["activation"] = activation
    if params:
        attrs["activation_params"] = params
    (actual,), model, feeds = run("FusedConv", [x, w, b, z], attrs, domain="com.microsoft")
    (expected,) = onnxruntime_run(model, feeds)
    compare_outputs(expected, actual, rtol=1e-4, atol=1e-5, name=activation or "FusedConv")
    if loop == "epilogue":  # the GEMM engine adds the bias, Z and a clip (Relu, Clip); others take a pass
        gemm = "implicit_gemm" if strides else "gemm"  # a 3x3 window: the implicit GEMM; 1x1: a plain GEMM
        loop = [gemm] + (["epilogue"] if activation in ("LeakyRelu", "Sigmoid", "Tanh", "HardSigmoid") else [])
    assert conv_loops.calls == ((loop if isinstance(loop, list) else [loop]) if conv_loops.on else [])


KN2ROW_CASES = [
    # input, weights, attributes: M/group <= C/group / 2 at stride 1 takes kn2row
    pytest.param((2, 8, 9, 7), (3, 8, 3, 3), {"pads": [1, 1, 1, 1]}, id="same-width"),
    pytest.param((1, 8, 9, 7), (4, 8, 3, 3), {}, id="no-pads"),
    pytest.param((1, 8, 6, 7), (2, 8, 5, 5), {"pads": [2, 3, 2, 1]}, id="same-width-asymmetric"),
    pytest.param(
        (1, 8, 9, 8), (4, 4, 3, 2), {"group": 2, "dilations": [2, 3], "pads": [2, 0, 1, 3]}, id="grouped-dilated"
    ),
    pytest.param((1, 8, 1, 1), (3, 8, 3, 3), {"pads": [1, 1, 1, 1]}, id="1x1-image"),
    pytest.param((1, 8, 2, 3), (3, 8, 5, 5), {"pads": [2, 2, 2, 2]}, id="kernel-wider-than-image"),
    # as many outputs as inputs: kn2row from 64 outputs per image with compiled loops on, else im2col
    pytest.param((1, 6, 9, 8), (6, 6, 3, 3), {"pads": [1, 1, 1, 1]}, id="as-many-outputs-as-inputs"),
]


@pytest.mark.parametrize("x_shape, w_shape, attrs", KN2ROW_CASES)
@pytest.mark.parametrize("with_z", [False, True], ids=["no-z", "z"])
def test_fused_conv_kn2row_vs_onnxruntime(conv_loops, x_shape, w_shape, attrs, with_z):
    """kn2row's sums skip the taps that fall in the padding; bias, Z and activation come in the same pass."""
    x, w, b = rand(x_shape), rand(w_shape), rand(w_shape[:1])
    z = rand(direct_conv(x, w, **attrs).shape) if with_z else None
    attrs = {**attrs, "activation": "LeakyRelu", "activation_params": [0.1]}
    (actual,), model, feeds = run("FusedConv", [x, w, b, z], attrs, domain="com.microsoft")
    (expected,) = onnxruntime_run(model, feeds)
    compare_outputs(expected, actual, rtol=1e-4, atol=1e-5, name="FusedConv")
    calls = ["gemm", "tap_sum"]
    if 2 * w_shape[0] > w_shape[1] * attrs.get("group", 1) and engine_runs():  # as many outputs as inputs
        calls = ["implicit_gemm", "epilogue"]  # the engine's implicit GEMM, with or without Z
    assert conv_loops.calls == (calls if conv_loops.on else [])


def test_fused_conv_as_many_outputs_as_inputs_on_a_small_image_skips_kn2row(conv_loops):
    """Below 64 outputs per image (here 7x7) M = C does not take kn2row: the engine's implicit GEMM, or im2col."""
    x, w, b, z = rand((1, 6, 7, 7)), rand((6, 6, 3, 3)), rand((6,)), rand((1, 6, 7, 7))
    attrs = {"pads": [1, 1, 1, 1], "activation": "Relu"}
    (actual,), model, feeds = run("FusedConv", [x, w, b, z], attrs, domain="com.microsoft")
    (expected,) = onnxruntime_run(model, feeds)
    compare_outputs(expected, actual, rtol=1e-4, atol=1e-5, name="FusedConv")
    assert conv_loops.calls == (["implicit_gemm"] if conv_loops.on else [])  # the bias, Z and Relu in the GEMM


@pytest.mark.parametrize("activation, params", FUSED_ACTIVATIONS)
def test_fused_conv_kn2row_activations(conv_loops, activation, params):
    """Every FusedConv activation after kn2row's sums, against onnxruntime."""
    x, w, b, z = rand((1, 8, 7, 9)), rand((3, 8, 3, 3)), rand((3,)), rand((1, 3, 7, 9))
    attrs = {"pads": [1, 1, 1, 1], **({"activation": activation} if activation else {})}
    if params:
        attrs["activation_params"] = params
    (actual,), model, feeds = run("FusedConv", [x, w, b, z], attrs, domain="com.microsoft")
    (expected,) = onnxruntime_run(model, feeds)
    compare_outputs(expected, actual, rtol=1e-4, atol=1e-5, name=activation or "FusedConv")
    assert conv_loops.calls == (["gemm", "tap_sum"] if conv_loops.on else [])


IMPLICIT_CASES = [
    # input, weights, attributes: a window wider than 1x1 or a stride, as many outputs as inputs or more
    pytest.param((1, 3, 13, 13), (8, 3, 3, 3), {"pads": [1, 1, 1, 1]}, id="3x3-same"),
    pytest.param((2, 4, 9, 7), (6, 4, 3, 3), {"pads": [0, 2, 1, 0]}, id="batch2-asymmetric"),
    pytest.param((1, 4, 10, 8), (8, 2, 5, 3), {"group": 2, "dilations": [2, 1], "pads": [3, 1, 2, 0]}, id="grouped-dilated"),
    pytest.param((1, 2, 6, 5), (7, 2, 3, 3), {}, id="no-pads"),
    pytest.param((1, 3, 2, 3), (5, 3, 5, 5), {"pads": [2, 2, 2, 2]}, id="kernel-wider-than-image"),
    pytest.param((1, 5, 1, 40), (13, 5, 1, 3), {"pads": [0, 1, 0, 1]}, id="one-row-many-strips"),
    pytest.param((1, 3, 30, 30), (9, 3, 7, 7), {"strides": [2, 2], "pads": [3, 3, 3, 3]}, id="7x7-stride2"),
    pytest.param((2, 4, 15, 16), (6, 4, 3, 3), {"strides": [2, 3], "pads": [1, 0, 0, 1]}, id="strides-2-3"),
    pytest.param((1, 8, 11, 11), (12, 8, 1, 1), {"strides": [2, 2]}, id="1x1-stride2-in-place"),
    pytest.param((1, 3, 23, 19), (7, 3, 5, 5), {"strides": [4, 4], "dilations": [1, 2]}, id="stride4-dilated-in-place"),
    pytest.param((1, 4, 9, 40), (6, 2, 3, 3), {"group": 2, "strides": [1, 2], "pads": [1, 1, 1, 1]}, id="grouped-stride-1-2"),
]


@pytest.mark.parametrize("x_shape, w_shape, attrs", IMPLICIT_CASES)
@pytest.mark.parametrize("activation, with_z", [("", False), ("Relu", True), ("Tanh", False)])
def test_conv_implicit_gemm_vs_onnxruntime(conv_loops, x_shape, w_shape, attrs, activation, with_z):
    """The engine's implicit GEMM packs each window's taps from the (padded) image: runs of consecutive
    floats, of every second, or gathered. Against onnxruntime, with every edge of the padding hit."""
    if conv_loops.on and not engine_runs():
        pytest.skip("the GEMM engine did not build")
    x, w, b = rand(x_shape), rand(w_shape), rand(w_shape[:1])
    z = rand(direct_conv(x, w, **attrs).shape) if with_z else None
    attrs = {**attrs, **({"activation": activation} if activation else {})}
    (actual,), model, feeds = run("FusedConv", [x, w, b, z], attrs, domain="com.microsoft")
    (expected,) = onnxruntime_run(model, feeds)
    compare_outputs(expected, actual, rtol=1e-4, atol=1e-5, name="FusedConv")
    calls = ["implicit_gemm"] + (["epilogue"] if activation == "Tanh" else [])
    assert conv_loops.calls == (calls if conv_loops.on else [])


def test_conv_kn2row_nan_and_inf(conv_loops):
    """A NaN or an infinity reaches exactly the outputs whose windows hold it.

    They sit in the first and last columns, where kn2row's long runs pass
    over the outputs that a tap must skip (the shift wraps to the next row):
    those outputs must come out as if the run had not touched them.
    """
    x = rand((1, 4, 5, 6))
    x[0, 0, 2, 5] = np.nan
    x[0, 1, 3, 0] = np.inf
    x[0, 2, 0, 0] = -np.inf
    w, b = np.abs(rand((2, 4, 3, 3))) + 0.1, rand((2,))
    (actual,), _, _ = run("Conv", [x, w, b], {"pads": [1, 1, 1, 1]})
    expected = direct_conv(x, w, b, pads=[1, 1, 1, 1])
    assert np.isnan(expected).sum() == 2 * 6 and np.isposinf(expected).sum() == 2 * 6
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-5, equal_nan=True)  # NaN and inf where expected
    assert conv_loops.calls == (["gemm", "tap_sum"] if conv_loops.on else [])


@pytest.mark.parametrize(
    "x_shape, w_shape, attrs",
    [
        ((2, 5, 4, 3), (3, 5, 1, 1), {}),  # pointwise: a bare GEMM, the bias comes after
        ((1, 4, 3, 4, 5), (4, 1, 3, 1, 3), {"group": 4, "pads": [1, 0, 1, 1, 0, 1]}),  # 3-D depthwise on numpy
    ],
    ids=["pointwise", "depthwise-3d"],
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv_epilogue_adds_bias(conv_loops, x_shape, w_shape, attrs, dtype):
    """Where the conv path leaves the bias out, the epilogue adds it: one compiled pass with compiled loops
    on, or the float32 GEMM engine's own (its tiles get the bias before they are stored)."""
    x, w, b = rand(x_shape, dtype), rand(w_shape, dtype), rand(w_shape[:1], dtype)
    expected = direct_conv(x, w, b, **attrs)
    check("Conv", [x, w, b], attrs, expected=expected, rtol=1e-5, atol=1e-6)
    engine = dtype == np.float32 and w_shape[1] > 1
    assert conv_loops.calls == ((["gemm"] if engine else ["epilogue"]) if conv_loops.on else [])


def test_fused_conv_nan_and_inf_pass_through_the_loops(conv_loops):
    """NaN stays NaN through Clip and infinities saturate, as in numpy, in the depthwise loop and the epilogue."""
    x = rand((1, 4, 5, 6))
    x[0, 0, 2, 3] = np.nan
    x[0, 1, 1, 1] = np.inf
    x[0, 2, 4, 5] = -np.inf
    attrs = {"pads": [1, 1, 1, 1], "activation": "Clip", "activation_params": [-1.0, 2.0]}
    w = np.abs(rand((4, 1, 3, 3))) + 0.1
    (depthwise,), _, _ = run("FusedConv", [x, w, rand((4,))], {"group": 4, **attrs}, domain="com.microsoft")
    (dense,), _, _ = run("FusedConv", [x, w.repeat(4, axis=1), rand((4,))], attrs, domain="com.microsoft")
    for y in (depthwise, dense):
        assert np.isnan(y[0, 0, 1:4, 2:5]).all()
        assert not np.isnan(np.delete(y[0, 0], np.s_[1:4], axis=0)).any()
    assert (depthwise[0, 1, 0:3, 0:3] == 2.0).all() and (depthwise[0, 2, 3:, 4:] == -1.0).all()
    assert sorted(conv_loops.calls) == (["depthwise_3x3", "implicit_gemm"] if conv_loops.on else [])
