"""Shared OpenCL C for MatMul, Gemm, Conv and ConvTranspose: a packed, register-blocked GEMM.

Layout. ``C[M, N] = A[M, K] @ B[K, N]`` runs on packed operands: A as
``[ceil(M/6)][K][6]`` (six rows interleaved per k) and B as
``[ceil(N/16)][K][16]`` (sixteen columns per k), both zero-padded. One
work-item computes a 6x16 tile with twelve ``float8`` accumulators: per k it
loads two ``float8`` of B and broadcasts six scalars of A. Each work-item reads
its two panels as two contiguous streams, which is what CPU prefetchers and
GPU coalescing both like, and every load in the hot loop is an aligned vector
load (``vload8`` is an out-of-line call on PoCL and forces the accumulators
onto the stack, so it is only used in the epilogue).

Why not the textbook local-memory tiling: on a CPU OpenCL implementation (PoCL)
local memory is ordinary cache-resident memory and every barrier splits the
work-item loops, so the explicit vector form above runs at 80–190 GFLOP/s on
two cores where a 16x16 local-memory tile reached a small fraction of that.
Work-groups are single work-items on CPU devices (the vector types already
fill the SIMD lanes); other devices let the driver choose.

The epilogue is shared by every caller: ``alpha * acc + bias[m] + beta * E[m, n]``
(E a strided, possibly broadcast addend: Gemm's C or FusedConv's Z) followed by
one of the fused activations, chosen by a run-time switch so that one compiled
program serves every node. Everything size-dependent is a scalar argument: the
whole file is compiled once per device.

Packing kernels turn any strided (transposed, batched, broadcast) matrix into
the panel layouts; ``im2col`` writes convolution patches straight into the B
layout; ``conv_direct`` computes depthwise and few-channel grouped convolutions
without a GEMM, and ``col2im`` gathers ConvTranspose columns into the output.
"""

from __future__ import annotations

import math
import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyopencl as cl

from ortcore.errors import InvalidArgument

__all__ = [
    "ACTIVATIONS", "MR", "NR", "Blas", "ConvGeometry", "Operand", "activation_code", "blas_for", "buffer_of",
    "pack_a_host", "pack_b_host", "to_3d",
]

MR = 6  # rows of A per micro-tile
NR = 16  # columns of B per micro-tile (two float8)

# name -> (code in the kernel's switch, default p0, p1, p2); onnxruntime's FusedConv/FusedGemm names
ACTIVATIONS: dict[str, tuple[int, float, float, float]] = {
    "": (0, 0.0, 0.0, 0.0),
    "Identity": (0, 0.0, 0.0, 0.0),
    "Relu": (1, 0.0, 0.0, 0.0),
    "LeakyRelu": (2, 0.01, 0.0, 0.0),
    "Sigmoid": (3, 0.0, 0.0, 0.0),
    "Tanh": (4, 0.0, 0.0, 0.0),
    "Clip": (5, -float(np.finfo(np.float32).max), float(np.finfo(np.float32).max), 0.0),
    "HardSigmoid": (6, 0.2, 0.5, 0.0),
    "Elu": (7, 1.0, 0.0, 0.0),
    "Softsign": (8, 0.0, 0.0, 0.0),
    "Softplus": (9, 0.0, 0.0, 0.0),
    "ThresholdedRelu": (10, 1.0, 0.0, 0.0),
    "Selu": (11, 1.67326319217681884765625, 0.0, 1.05070102214813232421875),
    "ScaledTanh": (12, 1.0, 1.0, 0.0),
    "ParametricSoftplus": (13, 1.0, 1.0, 0.0),
    "Celu": (14, 1.0, 0.0, 0.0),
}


def activation_code(name: Any, params: Sequence[float], op: str) -> tuple[int, float, float, float]:
    """``(code, p0, p1, p2)`` of a fused activation; ``params`` override the defaults in order."""
    name = name.decode() if isinstance(name, bytes) else (name or "")
    entry = ACTIVATIONS.get(name)
    if entry is None:
        raise InvalidArgument(f"{op}: unsupported activation {name!r}; expected one of {sorted(ACTIVATIONS)}")
    code, *defaults = entry
    values = [float(p) if p is not None else d for p, d in zip([*params, None, None, None][:3], defaults)]
    return code, values[0], values[1], values[2]


_SOURCE = r"""
#define MR 6
#define NR 16

/* One activation body for scalars and float8: the ternary operator is component-wise on vectors. */
#define DEFINE_ACTIVATE(T, NAME)                                                      \
inline T NAME(T v, int act, float p0, float p1, float p2) {                           \
    switch (act) {                                                                    \
    case 1: return fmax(v, (T)0.0f);                                                  \
    case 2: return v >= (T)0.0f ? v : v * p0;                                         \
    case 3: return (T)1.0f / ((T)1.0f + exp(-v));                                     \
    case 4: return tanh(v);                                                           \
    case 5: return fmin(fmax(v, (T)p0), (T)p1);                                       \
    case 6: return fmin(fmax(v * p0 + p1, (T)0.0f), (T)1.0f);                         \
    case 7: return v >= (T)0.0f ? v : p0 * expm1(fmin(v, (T)0.0f));                   \
    case 8: return v / ((T)1.0f + fabs(v));                                           \
    case 9: return fmax(v, (T)0.0f) + log1p(exp(-fabs(v)));                           \
    case 10: return v > (T)p0 ? v : (T)0.0f;                                          \
    case 11: return p2 * (v > (T)0.0f ? v : p0 * expm1(fmin(v, (T)0.0f)));            \
    case 12: return p0 * tanh(p1 * v);                                                \
    case 13: { T u = p1 * v; return p0 * (fmax(u, (T)0.0f) + log1p(exp(-fabs(u)))); } \
    case 14: return fmax(v, (T)0.0f) + p0 * expm1(fmin(v, (T)0.0f) / p0);             \
    default: return v;                                                                \
    }                                                                                 \
}
DEFINE_ACTIVATE(float, activate1)
DEFINE_ACTIVATE(float8, activate8)

/* y[n0:n0+16] = act(alpha * (v0, v1) + bias + beta * e[n * ecs]) for one output row. */
inline void store_row(__global float* yrow, int n0, int N, float8 v0, float8 v1, float alpha, float bv,
                      const __global float* erow, int ecs, float beta, int act, float p0, float p1, float p2)
{
    v0 = v0 * alpha + bv;
    v1 = v1 * alpha + bv;
    if (n0 + NR <= N && (!erow || ecs <= 1)) {
        if (erow) {
            if (ecs == 1) {
                v0 += beta * vload8(0, erow + n0);
                v1 += beta * vload8(1, erow + n0);
            } else {
                float e = beta * erow[0];
                v0 += e;
                v1 += e;
            }
        }
        vstore8(activate8(v0, act, p0, p1, p2), 0, yrow + n0);
        vstore8(activate8(v1, act, p0, p1, p2), 1, yrow + n0);
        return;
    }
    float t[NR];
    vstore8(v0, 0, t);
    vstore8(v1, 1, t);
    for (int l = 0; l < NR; ++l) {
        int n = n0 + l;
        if (n < N) {
            float x = t[l];
            if (erow) x += beta * erow[(long)n * ecs];
            yrow[n] = activate1(x, act, p0, p1, p2);
        }
    }
}

/* Global size (ceil(N/16), ceil(M/6), Z). Batch z reads A at (z % zmod) * a_zs (weights shared
   by images, one block per group) and bias at (z % zmod) * bias_zs; B, Y and E at z * *_zs. */
__kernel void gemm(__global const float* restrict A, __global const float* restrict B, __global float* restrict Y,
                   int M, int N, int K, int zmod, long a_zs, long b_zs, long y_zs, int ldy, float alpha,
                   __global const float* restrict bias, long bias_zs,
                   __global const float* restrict E, long e_zs, int ers, int ecs, float beta,
                   int act, float p0, float p1, float p2)
{
    const int nt = get_global_id(0), mt = get_global_id(1), z = get_global_id(2);
    const int zg = z % zmod;
    const __global float* ap = A + zg * a_zs + (long)mt * K * MR;
    const __global float8* bp = (const __global float8*)(B + z * b_zs + (long)nt * K * NR);
    float8 c00 = 0.0f, c01 = 0.0f, c10 = 0.0f, c11 = 0.0f, c20 = 0.0f, c21 = 0.0f;
    float8 c30 = 0.0f, c31 = 0.0f, c40 = 0.0f, c41 = 0.0f, c50 = 0.0f, c51 = 0.0f;
    for (int k = 0; k < K; ++k) {
        const float8 b0 = bp[0], b1 = bp[1];
        float8 a;
        a = (float8)(ap[0]); c00 += a * b0; c01 += a * b1;
        a = (float8)(ap[1]); c10 += a * b0; c11 += a * b1;
        a = (float8)(ap[2]); c20 += a * b0; c21 += a * b1;
        a = (float8)(ap[3]); c30 += a * b0; c31 += a * b1;
        a = (float8)(ap[4]); c40 += a * b0; c41 += a * b1;
        a = (float8)(ap[5]); c50 += a * b0; c51 += a * b1;
        ap += MR;
        bp += 2;
    }
    const int m0 = mt * MR, n0 = nt * NR;
    const __global float* bz = bias ? bias + zg * bias_zs : 0;
    __global float* yz = Y + z * y_zs;
    const __global float* ez = E ? E + z * e_zs : 0;
#define ROW(i, v0, v1)                                                                          \
    if (m0 + i < M)                                                                             \
        store_row(yz + (long)(m0 + i) * ldy, n0, N, v0, v1, alpha, bz ? bz[m0 + i] : 0.0f,      \
                  ez ? ez + (long)(m0 + i) * ers : 0, ecs, beta, act, p0, p1, p2);
    ROW(0, c00, c01) ROW(1, c10, c11) ROW(2, c20, c21) ROW(3, c30, c31) ROW(4, c40, c41) ROW(5, c50, c51)
#undef ROW
}

/* Offset of batch z of a strided operand: z is split over four batch dims d0..d3 (d0 implied). */
inline long batch_offset(int z, int d1, int d2, int d3, long s0, long s1, long s2, long s3)
{
    int i3 = z % d3; z /= d3;
    int i2 = z % d2; z /= d2;
    int i1 = z % d1; z /= d1;
    return z * s0 + i1 * s1 + i2 * s2 + i3 * s3;
}

/* A[z] (rows M, cols K, element (m, k) at off + m * rs + k * cs) -> [Z][ceil(M/6)][K][6].
   Global size (K, ceil(M/6), Z). */
__kernel void pack_a(__global const float* restrict src, __global float* restrict dst, long off, int M, int K,
                     long rs, long cs, int d1, int d2, int d3, long s0, long s1, long s2, long s3)
{
    const int k = get_global_id(0), mt = get_global_id(1), z = get_global_id(2);
    const __global float* s = src + off + batch_offset(z, d1, d2, d3, s0, s1, s2, s3) + k * cs;
    __global float* d = dst + ((long)z * get_global_size(1) + mt) * K * MR + (long)k * MR;
    for (int i = 0; i < MR; ++i) {
        int m = mt * MR + i;
        d[i] = m < M ? s[m * rs] : 0.0f;
    }
}

/* B[z] (rows K, cols N, element (k, n) at off + k * rs + n * cs) -> [Z][ceil(N/16)][K][16].
   One work-item copies row k into 16 consecutive panels: global size (ceil(N/256), K, Z). */
__kernel void pack_b(__global const float* restrict src, __global float* restrict dst, long off, int K, int N,
                     long rs, long cs, int d1, int d2, int d3, long s0, long s1, long s2, long s3)
{
    const int pc = get_global_id(0), k = get_global_id(1), z = get_global_id(2);
    const int Nt = (N + NR - 1) / NR;
    const __global float* s = src + off + batch_offset(z, d1, d2, d3, s0, s1, s2, s3) + k * rs;
    __global float* d = dst + (long)z * Nt * K * NR + (long)k * NR;
    const int p1 = min(Nt, (pc + 1) * 16);
    for (int p = pc * 16; p < p1; ++p) {
        const int n0 = p * NR;
        __global float* dp = d + (long)p * K * NR;
        if (n0 + NR <= N && cs == 1) {
            for (int l = 0; l < NR; ++l) dp[l] = s[n0 + l];
        } else {
            for (int l = 0; l < NR; ++l) dp[l] = n0 + l < N ? s[(n0 + l) * cs] : 0.0f;
        }
    }
}

/* Convolution patches of image b, group g (z = b * G + g) in the packed B layout: row
   k = ((c * KD + kd) * KH + kh) * KW + kw, column n = output position (od, oh, ow).
   x is [Nb, C, ID, IH, IW]; 1-D and 2-D convolutions have unit leading dims.
   One work-item fills the KH * KW rows of one (c, kd) in one 16-column panel: its writes are
   one contiguous run (scattered partial cache lines were the bottleneck), and the 16 lanes'
   positions are resolved once, so each element is a bounds test and a load.
   Global size (ceil(P/16), Cg * KD, Nb * G). */
__kernel void im2col(__global const float* restrict x, __global float* restrict dst,
                     int C, int G, int ID, int IH, int IW, int OD, int OH, int OW, int KD, int KH, int KW,
                     int sd, int sh, int sw, int dd, int dh, int dw, int pd, int ph, int pw)
{
    const int nt = get_global_id(0), ck = get_global_id(1), z = get_global_id(2);
    const int Nt = get_global_size(0), K = get_global_size(1) * KH * KW;
    const int kd = ck % KD, c = ck / KD;
    const int b = z / G, g = z % G, Cg = C / G;
    const int P = OD * OH * OW;
    int ih0[NR], iw0[NR], base[NR];
    int n = nt * NR;
    int ow = n % OW, oh = (n / OW) % OH, od = n / (OW * OH);
    for (int l = 0; l < NR; ++l, ++n) {
        const int id = od * sd - pd + kd * dd;
        const int inside = n < P && id >= 0 && id < ID;
        ih0[l] = inside ? oh * sh - ph : INT_MIN / 2;  /* an outside depth fails every row test */
        iw0[l] = ow * sw - pw;
        base[l] = inside ? id * IH * IW : 0;
        if (++ow == OW) {
            ow = 0;
            if (++oh == OH) { oh = 0; ++od; }
        }
    }
    const __global float* xc = x + ((long)b * C + g * Cg + c) * ID * IH * IW;
    __global float* d = dst + (((long)z * Nt + nt) * K + (long)ck * KH * KW) * NR;
    for (int kh = 0; kh < KH; ++kh) {
        for (int kw = 0; kw < KW; ++kw) {
            for (int l = 0; l < NR; ++l) {
                const int ih = ih0[l] + kh * dh, iw = iw0[l] + kw * dw;
                const int ok = (uint)ih < (uint)IH && (uint)iw < (uint)IW;
                const float v = xc[ok ? base[l] + ih * IW + iw : 0];
                d[l] = ok ? v : 0.0f;
            }
            d += NR;
        }
    }
}

/* Direct convolution, one output element per work-item: depthwise and few-channel groups, where
   a 6-row GEMM tile would be mostly padding. w is [M, C/G, KD, KH, KW]; E (if any) has y's shape.
   Global size (P rounded up, M, Nb). */
__kernel void conv_direct(__global const float* restrict x, __global const float* restrict w,
                          __global const float* restrict bias, __global const float* restrict E,
                          __global float* restrict y,
                          int C, int G, int M, int ID, int IH, int IW, int OD, int OH, int OW, int KD, int KH, int KW,
                          int sd, int sh, int sw, int dd, int dh, int dw, int pd, int ph, int pw,
                          int act, float p0, float p1, float p2)
{
    const int p = get_global_id(0), m = get_global_id(1), b = get_global_id(2);
    const int P = OD * OH * OW;
    if (p >= P) return;
    const int ow = p % OW, oh = (p / OW) % OH, od = p / (OW * OH);
    const int Cg = C / G, g = m / (M / G);
    const __global float* wm = w + (long)m * Cg * KD * KH * KW;
    float acc = bias ? bias[m] : 0.0f;
    for (int c = 0; c < Cg; ++c) {
        const __global float* xc = x + ((long)b * C + g * Cg + c) * ID * IH * IW;
        for (int kd = 0; kd < KD; ++kd) {
            int id = od * sd - pd + kd * dd;
            if (id < 0 || id >= ID) { wm += KH * KW; continue; }
            for (int kh = 0; kh < KH; ++kh) {
                int ih = oh * sh - ph + kh * dh;
                if (ih < 0 || ih >= IH) { wm += KW; continue; }
                const __global float* row = xc + ((long)id * IH + ih) * IW;
                for (int kw = 0; kw < KW; ++kw) {
                    int iw = ow * sw - pw + kw * dw;
                    if (iw >= 0 && iw < IW) acc += wm[kw] * row[iw];
                }
                wm += KW;
            }
        }
    }
    const long o = ((long)b * M + m) * P + p;
    if (E) acc += E[o];
    y[o] = activate1(acc, act, p0, p1, p2);
}

/* ConvTranspose: gather the GEMM columns cols[b * G + g][(mg * T + t)][i] (T taps, i an input
   position) into y[b, m, o]; tap t reaches output o from input i = (o + pad - t * dil) / stride
   when that divides exactly and lies inside the input. Global size (P rounded up, M, Nb). */
__kernel void col2im(__global const float* restrict cols, __global const float* restrict bias,
                     __global float* restrict y, int M, int G,
                     int ID, int IH, int IW, int OD, int OH, int OW, int KD, int KH, int KW,
                     int sd, int sh, int sw, int dd, int dh, int dw, int pd, int ph, int pw)
{
    const int p = get_global_id(0), m = get_global_id(1), b = get_global_id(2);
    const int P = OD * OH * OW;
    if (p >= P) return;
    const int ow = p % OW, oh = (p / OW) % OH, od = p / (OW * OH);
    const int Mg = M / G, g = m / Mg, mg = m % Mg, T = KD * KH * KW, Pin = ID * IH * IW;
    const __global float* cz = cols + ((long)(b * G + g) * Mg + mg) * T * Pin;
    float acc = bias ? bias[m] : 0.0f;
    for (int kd = 0; kd < KD; ++kd) {
        int td = od + pd - kd * dd;
        if (td < 0 || td % sd) continue;
        int id = td / sd;
        if (id >= ID) continue;
        for (int kh = 0; kh < KH; ++kh) {
            int th = oh + ph - kh * dh;
            if (th < 0 || th % sh) continue;
            int ih = th / sh;
            if (ih >= IH) continue;
            for (int kw = 0; kw < KW; ++kw) {
                int tw = ow + pw - kw * dw;
                if (tw < 0 || tw % sw) continue;
                int iw = tw / sw;
                if (iw >= IW) continue;
                acc += cz[(long)((kd * KH + kh) * KW + kw) * Pin + ((long)id * IH + ih) * IW + iw];
            }
        }
    }
    y[((long)b * M + m) * P + p] = acc;
}
"""

_OPTIONS = ("-cl-mad-enable",)
# Work-items per group of the one-element-per-item kernels (PoCL vectorizes across them).
_ROW_GROUP = 16


def _i32(v: int) -> np.int32:
    if not -(2**31) <= v < 2**31:
        raise InvalidArgument(f"size {v} does not fit the OpenCL kernels' 32-bit indices")
    return np.int32(v)


def buffer_of(a: Any) -> Any:
    """The buffer of a device array whose data starts at the buffer's start.

    Views with an offset (rare: a slice produced by another kernel) are copied once, since
    OpenCL sub-buffers need device-specific alignment.
    """
    return a.data if a.offset == 0 else a.copy().data


def pack_a_host(a: np.ndarray) -> np.ndarray:
    """``[..., M, K]`` -> ``[..., ceil(M/6), K, 6]`` (zero-padded) for constant left operands."""
    *lead, m, k = a.shape
    mt = -(-m // MR)
    padded = np.zeros((*lead, mt * MR, k), np.float32)
    padded[..., :m, :] = a
    return np.ascontiguousarray(padded.reshape(*lead, mt, MR, k).swapaxes(-1, -2))


def pack_b_host(b: np.ndarray) -> np.ndarray:
    """``[..., K, N]`` -> ``[..., ceil(N/16), K, 16]`` (zero-padded) for constant right operands."""
    *lead, k, n = b.shape
    nt = -(-n // NR)
    padded = np.zeros((*lead, k, nt * NR), np.float32)
    padded[..., :n] = b
    return np.ascontiguousarray(padded.reshape(*lead, k, nt, NR).swapaxes(-2, -3))


@dataclass
class Operand:
    """A strided matrix operand: element (r, c) of batch z at ``off + batch(z) + r * rs + c * cs``.

    ``dims``/``strides`` describe up to four batch dims (sizes of the iteration batch, strides of
    this operand: 0 where it is broadcast).
    """

    array: Any
    rows: int
    cols: int
    rs: int
    cs: int
    off: int = 0
    dims: tuple[int, ...] = ()
    strides: tuple[int, ...] = ()


class Blas:
    """The compiled program of one runtime and launchers for its kernels."""

    def __init__(self, rt: Any) -> None:
        self.rt = rt
        self._gemm = rt.kernel(_SOURCE, "gemm", _OPTIONS)
        self._pack_a = rt.kernel(_SOURCE, "pack_a", _OPTIONS)
        self._pack_b = rt.kernel(_SOURCE, "pack_b", _OPTIONS)
        self._im2col = rt.kernel(_SOURCE, "im2col", _OPTIONS)
        self._conv_direct = rt.kernel(_SOURCE, "conv_direct", _OPTIONS)
        self._col2im = rt.kernel(_SOURCE, "col2im", _OPTIONS)
        cpu = bool(rt.device.type & cl.device_type.CPU)
        # one work-item per group on CPUs: the float8 code already fills the SIMD lanes
        self.tile_local: tuple[int, int, int] | None = (1, 1, 1) if cpu else None
        self.row_local = (_ROW_GROUP, 1, 1)

    # -- packing ----------------------------------------------------------------------
    def _batch_args(self, op: Operand) -> list[Any]:
        dims = (1,) * (4 - len(op.dims)) + tuple(op.dims)
        strides = (0,) * (4 - len(op.strides)) + tuple(op.strides)
        if len(dims) > 4:
            raise InvalidArgument(f"at most 4 batch dimensions are supported, got {len(op.dims)}")
        return [_i32(dims[1]), _i32(dims[2]), _i32(dims[3]), *(np.int64(s) for s in strides)]

    def pack_a(self, op: Operand, z: int) -> Any:
        """Pack ``z`` batches of a left operand (rows M, cols K) into the A layout."""
        mt = -(-op.rows // MR)
        out = self.rt.empty((max(z * mt * op.cols * MR, 1),), np.float32)
        if z and mt and op.cols:
            self.rt.launch(
                self._pack_a, (op.cols, mt, z), self.tile_local, op.array.base_data, out.data,
                np.int64(op.off + op.array.offset // 4), _i32(op.rows), _i32(op.cols),
                np.int64(op.rs), np.int64(op.cs), *self._batch_args(op),
            )
        return out

    def pack_b(self, op: Operand, z: int) -> Any:
        """Pack ``z`` batches of a right operand (rows K, cols N) into the B layout."""
        nt = -(-op.cols // NR)
        out = self.rt.empty((max(z * nt * op.rows * NR, 1),), np.float32)
        if z and nt and op.rows:
            self.rt.launch(
                self._pack_b, (-(-nt // 16), op.rows, z), self.tile_local, op.array.base_data, out.data,
                np.int64(op.off + op.array.offset // 4), _i32(op.rows), _i32(op.cols),
                np.int64(op.rs), np.int64(op.cs), *self._batch_args(op),
            )
        return out

    # -- GEMM -------------------------------------------------------------------------
    def gemm(
        self,
        a: Any,
        b: Any,
        y: Any,
        m: int,
        n: int,
        k: int,
        *,
        z: int = 1,
        zmod: int | None = None,
        a_zs: int = 0,
        b_zs: int = 0,
        y_zs: int = 0,
        ldy: int | None = None,
        alpha: float = 1.0,
        bias: Any = None,
        bias_zs: int = 0,
        e: Any = None,
        e_zs: int = 0,
        ers: int = 0,
        ecs: int = 0,
        beta: float = 1.0,
        act: tuple[int, float, float, float] = (0, 0.0, 0.0, 0.0),
    ) -> None:
        """``y[z][m, n] = act(alpha * A[z % zmod] @ B[z] + bias + beta * E)`` on packed A and B."""
        if not (m and n and z):
            return
        self.rt.launch(
            self._gemm, (-(-n // NR), -(-m // MR), z), self.tile_local,
            a.data, b.data, y.data, _i32(m), _i32(n), _i32(k), _i32(zmod or z),
            np.int64(a_zs), np.int64(b_zs), np.int64(y_zs), _i32(n if ldy is None else ldy), np.float32(alpha),
            None if bias is None else buffer_of(bias), np.int64(bias_zs),
            None if e is None else buffer_of(e), np.int64(e_zs), _i32(ers), _i32(ecs), np.float32(beta),
            np.int32(act[0]), np.float32(act[1]), np.float32(act[2]), np.float32(act[3]),
        )

    # -- convolution helpers ----------------------------------------------------------
    def im2col(self, x: Any, geo: ConvGeometry, group: int) -> Any:
        """Patches of every image and group of ``x`` in the packed B layout ``[Nb*G][Nt][K][16]``."""
        nb = x.shape[0]
        kk = geo.channels // group * math.prod(geo.kernel)
        nt = -(-geo.out_size // NR)
        out = self.rt.empty((max(nb * group * nt * kk * NR, 1),), np.float32)
        if nb and nt and kk:
            self.rt.launch(
                self._im2col, (nt, geo.channels // group * geo.kernel[0], nb * group), self.tile_local, buffer_of(x), out.data,
                _i32(geo.channels), _i32(group), *geo.args(),
            )
        return out

    def conv_direct(self, x: Any, w: Any, bias: Any, e: Any, y: Any, geo: ConvGeometry, group: int,
                    act: tuple[int, float, float, float]) -> None:
        nb, m = y.shape[:2]
        p = geo.out_size
        if not (nb and m and p):
            return
        gx = -(-p // _ROW_GROUP) * _ROW_GROUP
        self.rt.launch(
            self._conv_direct, (gx, m, nb), self.row_local, buffer_of(x), buffer_of(w),
            None if bias is None else buffer_of(bias), None if e is None else buffer_of(e), y.data,
            _i32(geo.channels), _i32(group), _i32(m), *geo.args(),
            np.int32(act[0]), np.float32(act[1]), np.float32(act[2]), np.float32(act[3]),
        )

    def col2im(self, cols: Any, bias: Any, y: Any, geo: ConvGeometry, group: int) -> None:
        nb, m = y.shape[:2]
        p = geo.out_size
        if not (nb and m and p):
            return
        gx = -(-p // _ROW_GROUP) * _ROW_GROUP
        self.rt.launch(
            self._col2im, (gx, m, nb), self.row_local, cols.data, None if bias is None else buffer_of(bias),
            y.data, _i32(m), _i32(group), *geo.args(),
        )


@dataclass(frozen=True)
class ConvGeometry:
    """Spatial geometry padded to 3-D (unit leading dims for 1-D and 2-D convolutions).

    For Conv, ``in_shape`` is the input and ``out_shape`` the output; for ConvTranspose the
    kernels see it the other way round (``in_shape`` is the ConvTranspose input, read through
    the GEMM columns, and ``out_shape`` its output), with the same pads/strides/dilations.
    """

    channels: int
    in_shape: tuple[int, int, int]
    out_shape: tuple[int, int, int]
    kernel: tuple[int, int, int]
    strides: tuple[int, int, int]
    dilations: tuple[int, int, int]
    pads: tuple[int, int, int]

    @property
    def out_size(self) -> int:
        return math.prod(self.out_shape)

    def args(self) -> list[np.int32]:
        return [_i32(v) for v in (*self.in_shape, *self.out_shape, *self.kernel, *self.strides,
                                  *self.dilations, *self.pads)]


def to_3d(values: Sequence[int], fill: int) -> tuple[int, int, int]:
    values = tuple(int(v) for v in values)
    return (fill,) * (3 - len(values)) + values  # type: ignore[return-value]


_blas: weakref.WeakKeyDictionary[Any, Blas] = weakref.WeakKeyDictionary()
_blas_lock = threading.Lock()


def blas_for(rt: Any) -> Blas:
    """The :class:`Blas` of a runtime (its program compiled on first use)."""
    with _blas_lock:
        blas = _blas.get(rt)
        if blas is None:
            blas = _blas[rt] = Blas(rt)
        return blas
