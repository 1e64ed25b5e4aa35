"""Conv, com.microsoft FusedConv and ConvTranspose (1-D, 2-D and 3-D) on the OpenCL GEMM.

Conv is a GEMM per (image, group): the weights ``[M/G, C/G * taps]`` (packed
once when constant) times the patch matrix ``[C/G * taps, out positions]``,
which ``im2col`` writes straight into the GEMM's packed layout. 1x1 stride-1
unpadded convolutions skip im2col: the image already is the patch matrix and is
only repacked. Bias, FusedConv's Z addend and its activation run in the GEMM's
epilogue. Depthwise and few-output-channel groups, where a six-row GEMM tile
would be mostly padding, use a direct kernel instead.

ConvTranspose is the GEMM ``W^T x`` into columns ``[M/G * taps, in positions]``
followed by a gather (``col2im``) that sums, for each output element, the
columns that reach it; a gather needs no atomics.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from ortcore.errors import InvalidArgument
from ortcore.window_geometry import transpose_window, window
from ortcore_opencl.blas import MR, NR, ConvGeometry, Operand, activation_code, blas_for, pack_a_host, to_3d
from ortcore_opencl.registry import kernel

_F32 = (np.float32,)
_MS = "com.microsoft"
# output channels per group below which the direct kernel beats a 6-row GEMM tile
_DIRECT_MAX_MG = 3
_FUSED_CONV_ACTIVATIONS = ("", "Identity", "Relu", "LeakyRelu", "Sigmoid", "Tanh", "Clip", "HardSigmoid")


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else (value or "")


def _spatial_supports(op: str) -> Callable[[Any, list[Any]], str | None]:
    def supports(node: Any, input_types: list[Any]) -> str | None:
        for i, t in enumerate(input_types[:2]):
            if t is not None and t.rank is not None and not 3 <= t.rank <= 5:
                return f"{op} input {i} has rank {t.rank}; the OpenCL kernels handle 1-D to 3-D (rank 3 to 5)"
        auto_pad = _text(node.attrs.get("auto_pad", "NOTSET"))
        if auto_pad not in ("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"):
            return f"{op}: unknown auto_pad {auto_pad!r}"
        if op == "FusedConv" and _text(node.attrs.get("activation", "")) not in _FUSED_CONV_ACTIVATIONS:
            return f"FusedConv activation {_text(node.attrs.get('activation'))!r} is not supported on OpenCL"
        return None

    return supports


class _ConvNode:
    """Per-node state of Conv and FusedConv: attributes, packed weights, geometry per input shape."""

    def __init__(self, ctx: Any, op: str, attrs: dict[str, Any], act: tuple[int, float, float, float]) -> None:
        self.op = op
        self.rt = ctx.provider.runtime
        self.blas = blas_for(self.rt)
        self.group = int(attrs["group"])
        self.attrs = attrs
        self.act = act
        if self.group <= 0:
            raise InvalidArgument(f"{op}: group must be positive, got {self.group}")
        w, b = ctx.constants.get(1), ctx.constants.get(2)
        self.w_shape = tuple(w.shape) if w is not None else None
        self.w_dev = self.w_packed = self.bias_dev = None
        if w is not None:
            self._check_weights(w.shape)
            w = np.asarray(w, np.float32)
            self.w_dev = self.rt.to_device(w)
            mg = w.shape[0] // self.group
            if mg > _DIRECT_MAX_MG:
                self.w_packed = self.rt.to_device(pack_a_host(w.reshape(self.group, mg, -1)).reshape(-1))
        self.b_shape = tuple(b.shape) if b is not None else None
        if b is not None:
            self.bias_dev = self.rt.to_device(np.asarray(b, np.float32))
        self.geometry: dict[tuple[int, ...], tuple[ConvGeometry, tuple[int, ...]]] = {}

    def _check_weights(self, shape: tuple[int, ...]) -> None:
        if len(shape) < 3 or shape[0] % self.group:
            raise InvalidArgument(
                f"{self.op}: weights of shape {shape} do not fit group {self.group} "
                f"(expected [M, C/group, *kernel] with M divisible by group)"
            )

    def _geometry(self, x_shape: tuple[int, ...], w_shape: tuple[int, ...]) -> tuple[ConvGeometry, tuple[int, ...]]:
        key = x_shape + w_shape
        found = self.geometry.get(key)
        if found is not None:
            return found
        op, nd = self.op, len(x_shape) - 2
        if len(w_shape) != len(x_shape) or not 1 <= nd <= 3:
            raise InvalidArgument(f"{op}: input of shape {x_shape} and weights of shape {w_shape} do not match "
                                  "(expected ranks 3 to 5, equal)")
        self._check_weights(w_shape)
        if x_shape[1] != w_shape[1] * self.group:
            raise InvalidArgument(f"{op}: input has {x_shape[1]} channels, weights {w_shape} with group "
                                  f"{self.group} expect {w_shape[1] * self.group}")
        kernel_ = tuple(w_shape[2:])
        ks = self.attrs["kernel_shape"]
        if ks and tuple(int(k) for k in ks) != kernel_:
            raise InvalidArgument(f"{op}: kernel_shape {list(ks)} differs from the weights' {list(kernel_)}")
        win = window(x_shape[2:], kernel_, strides=self.attrs["strides"], dilations=self.attrs["dilations"],
                     pads=self.attrs["pads"], auto_pad=_text(self.attrs["auto_pad"]) or "NOTSET", op=op)
        geo = ConvGeometry(x_shape[1], to_3d(x_shape[2:], 1), to_3d(win.out, 1), to_3d(kernel_, 1),
                           to_3d(win.strides, 1), to_3d(win.dilations, 1), to_3d(win.begin, 0))
        found = self.geometry[key] = (geo, (x_shape[0], w_shape[0], *win.out))
        return found

    def __call__(self, x: Any, w: Any, b: Any = None, z: Any = None) -> Any:
        geo, y_shape = self._geometry(tuple(x.shape), tuple(w.shape))
        rt, blas, g = self.rt, self.blas, self.group
        if b is not None and tuple(b.shape) != (w.shape[0],):
            raise InvalidArgument(f"{self.op}: bias has shape {tuple(b.shape)}, expected ({w.shape[0]},)")
        if z is not None and tuple(z.shape) != y_shape:
            raise InvalidArgument(f"{self.op}: Z has shape {tuple(z.shape)}, expected the output shape {y_shape}")
        y = rt.empty(y_shape, np.float32)
        if y.size == 0:
            return y
        bias = self.bias_dev if b is not None and self.bias_dev is not None and b.shape == self.b_shape else b
        nb, m = y_shape[:2]
        mg, cg = m // g, x.shape[1] // g
        if mg <= _DIRECT_MAX_MG:
            blas.conv_direct(x, w, bias, z, y, geo, g, self.act)
            return y
        kk = cg * math.prod(geo.kernel)
        p = geo.out_size
        if self.w_packed is not None and tuple(w.shape) == self.w_shape:
            pa = self.w_packed
        else:
            pa = blas.pack_a(Operand(w, mg, kk, kk, 1, dims=(g,), strides=(mg * kk,)), g)
        pointwise = all(k == 1 for k in geo.kernel) and all(s == 1 for s in geo.strides) and not any(geo.pads) \
            and geo.in_shape == geo.out_shape
        if pointwise:
            pin = math.prod(geo.in_shape)
            pb = blas.pack_b(Operand(x, cg, pin, pin, 1, dims=(nb, g), strides=(x.shape[1] * pin, cg * pin)), nb * g)
        else:
            pb = blas.im2col(x, geo, g)
        blas.gemm(
            pa, pb, y, mg, p, kk, z=nb * g, zmod=g, a_zs=-(-mg // MR) * kk * MR, b_zs=-(-p // NR) * kk * NR,
            y_zs=mg * p, ldy=p, bias=bias, bias_zs=mg, e=z, e_zs=mg * p, ers=p, ecs=1, act=self.act,
        )
        return y


@kernel("Conv", since=1, dtypes=_F32, factory=True, supports=_spatial_supports("Conv"))
@kernel("Conv", since=11, dtypes=_F32, factory=True, supports=_spatial_supports("Conv"))
@kernel("Conv", since=22, dtypes=_F32, factory=True, supports=_spatial_supports("Conv"))
def conv(
    ctx: Any,
    /,
    *,
    auto_pad: str = "NOTSET",
    dilations: list[int] | None = None,
    group: int = 1,
    kernel_shape: list[int] | None = None,
    pads: list[int] | None = None,
    strides: list[int] | None = None,
) -> Callable[..., Any]:
    """Conv-1/11/22: N-D (1-D to 3-D) convolution with groups, dilations, pads and auto_pad."""
    attrs = {"auto_pad": auto_pad, "dilations": dilations, "group": group, "kernel_shape": kernel_shape,
             "pads": pads, "strides": strides}
    node = _ConvNode(ctx, "Conv", attrs, (0, 0.0, 0.0, 0.0))

    def run(x: Any, w: Any, b: Any = None) -> Any:
        return node(x, w, b)

    return run


@kernel("FusedConv", since=1, domain=_MS, dtypes=_F32, factory=True, supports=_spatial_supports("FusedConv"))
def fused_conv(
    ctx: Any,
    /,
    *,
    activation: str = "",
    activation_params: list[float] | None = None,
    auto_pad: str = "NOTSET",
    dilations: list[int] | None = None,
    group: int = 1,
    kernel_shape: list[int] | None = None,
    pads: list[int] | None = None,
    strides: list[int] | None = None,
) -> Callable[..., Any]:
    """com.microsoft FusedConv: activation(Conv(X, W, B) + Z), all in the GEMM's epilogue."""
    attrs = {"auto_pad": auto_pad, "dilations": dilations, "group": group, "kernel_shape": kernel_shape,
             "pads": pads, "strides": strides}
    node = _ConvNode(ctx, "FusedConv", attrs, activation_code(activation, activation_params or [], "FusedConv"))

    def run(x: Any, w: Any, b: Any = None, z: Any = None) -> Any:
        return node(x, w, b, z)

    return run


# -- ConvTranspose --------------------------------------------------------------------


@kernel("ConvTranspose", since=1, dtypes=_F32, factory=True, supports=_spatial_supports("ConvTranspose"))
@kernel("ConvTranspose", since=11, dtypes=_F32, factory=True, supports=_spatial_supports("ConvTranspose"))
@kernel("ConvTranspose", since=22, dtypes=_F32, factory=True, supports=_spatial_supports("ConvTranspose"))
def conv_transpose(
    ctx: Any,
    /,
    *,
    auto_pad: str = "NOTSET",
    dilations: list[int] | None = None,
    group: int = 1,
    kernel_shape: list[int] | None = None,
    output_padding: list[int] | None = None,
    output_shape: list[int] | None = None,
    pads: list[int] | None = None,
    strides: list[int] | None = None,
) -> Callable[..., Any]:
    """ConvTranspose-1/11/22: GEMM of the transposed weights with the image, then a col2im gather."""
    rt = ctx.provider.runtime
    blas = blas_for(rt)
    if group <= 0:
        raise InvalidArgument(f"ConvTranspose: group must be positive, got {group}")
    auto_pad = _text(auto_pad) or "NOTSET"
    w_const = ctx.constants.get(1)
    packed, packed_shape = None, None
    if w_const is not None and w_const.ndim >= 3 and w_const.shape[0] % group == 0:
        wg = np.asarray(w_const, np.float32).reshape(group, w_const.shape[0] // group, -1)  # [G, C/G, M/G * taps]
        packed = rt.to_device(pack_a_host(wg.transpose(0, 2, 1)).reshape(-1))
        packed_shape = tuple(w_const.shape)
    cache: dict[tuple[int, ...], tuple[ConvGeometry, tuple[int, ...]]] = {}

    def geometry(x_shape: tuple[int, ...], w_shape: tuple[int, ...]) -> tuple[ConvGeometry, tuple[int, ...]]:
        key = x_shape + w_shape
        if key in cache:
            return cache[key]
        nd = len(x_shape) - 2
        if len(w_shape) != len(x_shape) or not 1 <= nd <= 3:
            raise InvalidArgument(f"ConvTranspose: input of shape {x_shape} and weights of shape {w_shape} "
                                  "do not match (expected ranks 3 to 5, equal)")
        if x_shape[1] != w_shape[0] or w_shape[0] % group:
            raise InvalidArgument(f"ConvTranspose: input has {x_shape[1]} channels, weights {w_shape} expect "
                                  f"{w_shape[0]} (divisible by group {group})")
        kernel_ = tuple(w_shape[2:])
        if kernel_shape and tuple(int(k) for k in kernel_shape) != kernel_:
            raise InvalidArgument(f"ConvTranspose: kernel_shape {list(kernel_shape)} differs from the "
                                  f"weights' {list(kernel_)}")
        s, d, begin, out = transpose_window(
            x_shape[2:], kernel_, auto_pad=auto_pad, dilations=dilations, output_padding=output_padding,
            output_shape=output_shape, pads=pads, strides=strides,
        )
        geo = ConvGeometry(w_shape[1] * group, to_3d(x_shape[2:], 1), to_3d(out, 1), to_3d(kernel_, 1),
                           to_3d(s, 1), to_3d(d, 1), to_3d(begin, 0))
        cache[key] = (geo, (x_shape[0], w_shape[1] * group, *out))
        return cache[key]

    def run(x: Any, w: Any, b: Any = None) -> Any:
        geo, y_shape = geometry(tuple(x.shape), tuple(w.shape))
        nb, m = y_shape[:2]
        if b is not None and tuple(b.shape) != (m,):
            raise InvalidArgument(f"ConvTranspose: bias has shape {tuple(b.shape)}, expected ({m},)")
        y = rt.empty(y_shape, np.float32)
        if y.size == 0:
            return y
        c = x.shape[1]
        cg, mg, taps = c // group, m // group, math.prod(geo.kernel)
        pin = math.prod(geo.in_shape)
        rows = mg * taps
        if packed is not None and tuple(w.shape) == packed_shape:
            pa = packed
        else:
            pa = blas.pack_a(Operand(w, rows, cg, 1, rows, dims=(group,), strides=(cg * rows,)), group)
        pb = blas.pack_b(Operand(x, cg, pin, pin, 1, dims=(nb, group), strides=(c * pin, cg * pin)), nb * group)
        cols = rt.empty((max(nb * group * rows * pin, 1),), np.float32)
        blas.gemm(pa, pb, cols, rows, pin, cg, z=nb * group, zmod=group, a_zs=-(-rows // MR) * cg * MR,
                  b_zs=-(-pin // NR) * cg * NR, y_zs=rows * pin, ldy=pin)
        blas.col2im(cols, b, y, geo, group)
        return y

    return run
