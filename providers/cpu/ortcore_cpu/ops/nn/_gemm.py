"""The conv GEMM engine: packed weights, a register-blocked micro-kernel, its own threads.

``y[b] = clip(w[b % G] @ x[b] + bias[b % G] (+ z[b]), lo, hi)`` for float32,
where ``w`` is packed once per node (:func:`pack`) and ``x``, ``y``, ``z`` are
``[B, K, N]`` / ``[B, M, N]`` views whose rows are contiguous. The bias, the
skip input and a clip (which is also Relu) are applied to each tile of the
product while it is still in registers, so the conv paths need no second
pass over their output.

The micro-kernel computes an ``MR x NR`` tile of the product over a chunk
of K with ``MR * NV`` vector accumulators; it is written in LLVM IR through
a numba intrinsic (numba's own loops do not vectorise that way) and compiled
for the host's vector width. The weights are packed in panels of ``MR``
rows, k-major. The activations are packed per call, a block at a time:
strips of ``NR`` columns, ``KC`` rows deep at most, copied contiguous into
a buffer that stays in L2, so the micro-kernel streams them in order
(reading the strided rows in place cost up to a third of the speed on
large K or N: one page and two cache lines per row). A K deeper than
``KC`` goes in chunks that add up in ``y``; the bias, skip input and clip
come with the last.

Each thread takes a contiguous range of column strips, or of weight panels
where there are too few strips (whichever leaves the busiest thread the
fewest tiles), in one numba ``prange`` with the OpenMP or TBB threading
layer: about 3 µs to start, against about 30 µs for a hand-off between
Python threads. numpy's BLAS must then run on one thread (the CPU provider
sees to it), or its spinning workers and these threads take each other's
cores: a GEMM here took 5 ms instead of 0.6 ms right after a two-thread
OpenBLAS call.

This module imports numba; :mod:`ortcore_cpu.jit` loads it only where
compiled loops are on.
"""

from __future__ import annotations

import logging
import os
import threading

import llvmlite.binding as llvm_binding
import numba
import numpy as np
from llvmlite import ir
from numba import prange, types
from numba.core import cgutils
from numba.extending import intrinsic

log = logging.getLogger("ortcore.cpu")

_FEATURES = llvm_binding.get_host_cpu_features()
# lanes per vector register: 16 with AVX-512, else 8 (AVX2, or split into 4-lane halves)
W = 16 if _FEATURES.get("avx512f", False) else 8
MR, NV = 6, 2  # rows and vectors per row of a tile: 12 accumulators
NR = W * NV
KC = 512  # the deepest K chunk: a panel's chunk (12 KiB) stays in L1 next to the strip streaming past it
BLOCK = 1 << 18  # bytes of packed strips per block: a quarter of a 1 MiB L2

_OPTIONS = dict(cache=True, nogil=True, boundscheck=False, error_model="numpy", fastmath={"contract"})


@intrinsic
def _micro(typingctx, a, a_off, b, b_off, ldb, c, c_off, ldc, z, z_off, ldz, bias, bias_off, lo, hi, k):
    """``c[MR, NR] = clip(a_panel @ b[k, NR] + bias[MR] (+ z), lo, hi)``, row strides ldb/ldc/ldz.

    ``a`` holds a packed panel at ``a_off`` (``k`` rows of ``MR``); the other
    operands are addressed from their arrays' first element. ``ldb`` is a
    row stride, or an int64 array of each row's own offset (the shifted
    rows of an implicit-GEMM conv). ``z`` None compiles without the skip
    input.
    """
    sig = types.void(a, a_off, b, b_off, ldb, c, c_off, ldc, z, z_off, ldz, bias, bias_off, lo, hi, k)
    has_z = not isinstance(z, types.NoneType)

    def codegen(context, builder, signature, args):
        f32, i32, i64 = ir.FloatType(), ir.IntType(32), ir.IntType(64)
        vec = ir.VectorType(f32, W)
        vptr = vec.as_pointer()
        kinds = signature.args

        def data(i):
            return context.make_array(kinds[i])(context, builder, args[i]).data

        def int64(i):
            return context.cast(builder, args[i], kinds[i], types.int64)

        def const(v):
            return ir.Constant(i64, v)

        undef = ir.Constant(vec, ir.Undefined)

        def splat(scalar):
            one = builder.insert_element(undef, scalar, ir.Constant(i32, 0))
            return builder.shuffle_vector(one, undef, ir.Constant(ir.VectorType(i32, W), None))

        def vector_at(base, offset):
            return builder.bitcast(builder.gep(base, [offset]), vptr)

        pa = builder.gep(data(0), [int64(1)])
        pb = builder.gep(data(2), [int64(3)])
        shifted = isinstance(kinds[4], types.Array)  # ldb: a row stride, or each row's offset
        if shifted:
            row_offsets = data(4)
        else:
            ldb_ = int64(4)
        pc, ldc_ = builder.gep(data(5), [int64(6)]), int64(7)
        pbias = builder.gep(data(11), [int64(12)])
        lo_ = splat(context.cast(builder, args[13], kinds[13], types.float32))
        hi_ = splat(context.cast(builder, args[14], kinds[14], types.float32))
        kn = int64(15)
        fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vec, [vec] * 3), f"llvm.fma.v{W}f32")
        zero = ir.Constant(vec, None)

        entry = builder.block
        loop = builder.function.append_basic_block("tile_k")
        done = builder.function.append_basic_block("tile_done")
        builder.cbranch(builder.icmp_signed(">", kn, const(0)), loop, done)
        builder.position_at_end(loop)
        k_ = builder.phi(i64)
        k_.add_incoming(const(0), entry)
        acc = []
        for _ in range(MR * NV):
            phi = builder.phi(vec)
            phi.add_incoming(zero, entry)
            acc.append(phi)
        b_row = builder.load(builder.gep(row_offsets, [k_])) if shifted else builder.mul(k_, ldb_)
        bv = [builder.load(vector_at(pb, builder.add(b_row, const(W * v))), align=4) for v in range(NV)]
        a_row = builder.mul(k_, const(MR))
        summed = []
        for i in range(MR):
            av = splat(builder.load(builder.gep(pa, [builder.add(a_row, const(i))])))
            summed += [builder.call(fma, [av, bv[v], acc[i * NV + v]]) for v in range(NV)]
        k_next = builder.add(k_, const(1))
        k_.add_incoming(k_next, loop)
        for phi, value in zip(acc, summed):
            phi.add_incoming(value, loop)
        builder.cbranch(builder.icmp_signed("<", k_next, kn), loop, done)

        builder.position_at_end(done)
        products = []
        for value in summed:
            phi = builder.phi(vec)
            phi.add_incoming(zero, entry)
            phi.add_incoming(value, loop)
            products.append(phi)
        if has_z:
            pz, ldz_ = builder.gep(data(8), [int64(9)]), int64(10)
        for i in range(MR):
            bias_i = splat(builder.load(builder.gep(pbias, [const(i)])))
            for v in range(NV):
                r = builder.fadd(products[i * NV + v], bias_i)
                col = const(W * v)
                if has_z:
                    r = builder.fadd(r, builder.load(vector_at(pz, builder.add(builder.mul(const(i), ldz_), col)), align=4))
                # ordered compares: NaN passes through, as numpy's clip lets it
                r = builder.select(builder.fcmp_ordered("<", r, lo_), lo_, r)
                r = builder.select(builder.fcmp_ordered(">", r, hi_), hi_, r)
                builder.store(r, vector_at(pc, builder.add(builder.mul(const(i), ldc_), col)), align=4)
        return context.get_dummy_value()

    return sig, codegen


def _strided(step: int | None):
    """An intrinsic ``(dst, dst_off, src, src_off, n, step)`` that writes ``NR`` floats to ``dst`` from
    ``dst_off``: ``src[src_off + j * step]`` for ``j < n``, zeros after (offsets are flat, from each
    array's first element). Only those ``n`` source elements are read (masked loads), so a run may end
    at the end of its buffer; ``dst`` needs ``NR`` floats from ``dst_off``.

    ``step`` 1 is a masked vector load, 2 a masked load of twice the span and a shuffle; None (any
    step, given at run time) a masked gather.
    """

    @intrinsic
    def copy(typingctx, dst, dst_off, src, src_off, n, stride):
        sig = types.void(dst, dst_off, src, src_off, n, stride)

        def codegen(context, builder, signature, args):
            kinds = signature.args
            f32, i1, i32, i64 = ir.FloatType(), ir.IntType(1), ir.IntType(32), ir.IntType(64)

            def element(i, j):
                base = context.make_array(kinds[i])(context, builder, args[i]).data
                return builder.gep(base, [context.cast(builder, args[j], kinds[j], types.int64)])

            def splat(value, lanes):
                kind = ir.VectorType(value.type, lanes)
                one = builder.insert_element(ir.Constant(kind, ir.Undefined), value, ir.Constant(i32, 0))
                return builder.shuffle_vector(one, ir.Constant(kind, ir.Undefined), ir.Constant(ir.VectorType(i32, lanes), None))

            def below(first, lanes, bound):  # lane i is on where first + i < bound
                return builder.icmp_signed("<", ir.Constant(ir.VectorType(i64, lanes), [first + i for i in range(lanes)]), splat(bound, lanes))

            def masked_load(pointer, lanes, mask):
                kind = ir.VectorType(f32, lanes)
                fn = cgutils.get_or_insert_function(
                    builder.module, ir.FunctionType(kind, [pointer.type, i32, mask.type, kind]), f"llvm.masked.load.v{lanes}f32.p0"
                )
                return builder.call(fn, [pointer, ir.Constant(i32, 4), mask, ir.Constant(kind, None)])

            target, source = element(0, 1), element(2, 3)
            n_ = context.cast(builder, args[4], kinds[4], types.int64)
            vec = ir.VectorType(f32, W)
            for v in range(NV):
                if step == 1:
                    value = masked_load(builder.gep(source, [ir.Constant(i64, v * W)]), W, below(v * W, W, n_))
                elif step is not None:  # the span of this vector's lanes, then every step-th float of it
                    span = W * step
                    reach = builder.add(builder.mul(builder.sub(n_, ir.Constant(i64, 1)), ir.Constant(i64, step)), ir.Constant(i64, 1))
                    wide = masked_load(builder.gep(source, [ir.Constant(i64, v * span)]), span, below(v * span, span, reach))
                    picks = ir.Constant(ir.VectorType(i32, W), [i * step for i in range(W)])
                    value = builder.shuffle_vector(wide, ir.Constant(wide.type, ir.Undefined), picks)
                else:
                    lanes = ir.Constant(ir.VectorType(i64, W), [v * W + i for i in range(W)])
                    stride_ = builder.mul(context.cast(builder, args[5], kinds[5], types.int64), ir.Constant(i64, 4))
                    addresses = builder.add(splat(builder.ptrtoint(source, i64), W), builder.mul(lanes, splat(stride_, W)))
                    pointers = builder.inttoptr(addresses, ir.VectorType(source.type, W))
                    mask = below(v * W, W, n_)
                    fn = cgutils.get_or_insert_function(
                        builder.module, ir.FunctionType(vec, [pointers.type, i32, mask.type, vec]), f"llvm.masked.gather.v{W}f32.v{W}p0"
                    )
                    value = builder.call(fn, [pointers, ir.Constant(i32, 4), mask, ir.Constant(vec, None)])
                builder.store(value, builder.bitcast(builder.gep(target, [ir.Constant(i64, v * W)]), vec.as_pointer()), align=4)
            return context.get_dummy_value()

        return sig, codegen

    return copy


_copy, _copy_2, _gather = _strided(1), _strided(2), _strided(None)


@numba.njit(**_OPTIONS)
def _geometry(k):
    """``(kc, strips per block)``: the depth of a K chunk (the whole K up to ``KC``, else even chunks of at
    most ``KC``) and how many packed strips of it fill a block of ``BLOCK`` bytes."""
    chunks = (k + KC - 1) // KC
    kc = (k + chunks - 1) // chunks
    return kc, max(1, BLOCK // (kc * NR * 4))


@numba.njit(**_OPTIONS)
def _split(units, panels, threads):
    """``(column shares, panel shares)``, their product ``threads``: the split that gives the busiest thread
    the least work, counting the packing of a strip as one more tile (threads that share columns pack
    the same strips)."""
    best, least = threads, -1
    for column_shares in range(threads, 0, -1):
        if threads % column_shares == 0:
            strips = -(-units // column_shares)
            work = strips * (-(-panels // (threads // column_shares)) + 1)
            if least < 0 or work < least:
                best, least = column_shares, work
    return best, threads // best


@numba.njit(**_OPTIONS)
def _runs(cols, j0, width, runs):
    """How many runs columns ``[j0, j0 + width)`` make, each written to ``runs`` as (first column
    in the strip, source offset, length, step): ``cols`` None is one run of consecutive floats,
    else a run is a stretch of ``cols`` with a constant step."""
    if cols is None:
        runs[0, 0], runs[0, 1], runs[0, 2], runs[0, 3] = 0, j0, width, 1
        return 1
    count, j = 0, 0
    while j < width:
        first = j
        step = cols[j0 + j + 1] - cols[j0 + j] if j + 1 < width else 1
        j += 1
        while j < width and cols[j0 + j] - cols[j0 + j - 1] == step:
            j += 1
        runs[count, 0], runs[count, 1], runs[count, 2], runs[count, 3] = first, cols[j0 + first], j - first, step
        count += 1
    return count


@numba.njit(**_OPTIONS)
def _pack(x, rows, cols, mat, k0, kc, j0, width, buf, runs):
    """Rows ``[k0, k0 + kc)`` of columns ``[j0, j0 + width)`` of matrix ``mat`` into ``buf``: strip after
    strip of ``NR`` columns, each ``kc`` rows of ``NR`` floats, zeros past ``width``.

    Element ``(kk, j)`` is ``x[mat, kk, j]`` (``rows`` None), else ``x[mat, rows[kk] + j]``, or with
    ``cols`` ``x[mat, rows[kk] + cols[j]]``. Each run of a strip is written as a whole ``NR`` floats
    (zeros past its end), in order, so the next run or row overwrites what one writes past its own
    end; ``buf`` has ``NR`` floats of slack for the last.
    """
    sx0 = x.strides[0] // 4
    sx1 = x.strides[1] // 4 if rows is None else 0
    for s in range((width + NR - 1) // NR):
        count = _runs(cols, j0 + s * NR, min(NR, width - s * NR), runs)
        base = s * kc * NR
        for kk in range(kc):
            start = mat * sx0 + ((k0 + kk) * sx1 if rows is None else rows[k0 + kk])
            row = base + kk * NR
            for r in range(count):
                at, source, n, step = row + runs[r, 0], start + runs[r, 1], runs[r, 2], runs[r, 3]
                if step == 1 or n == 1:
                    _copy(buf, at, x, source, n, 1)
                elif step == 2:
                    _copy_2(buf, at, x, source, n, 2)
                else:
                    _gather(buf, at, x, source, n, step)


@numba.njit(**_OPTIONS)
def _pad(src, mat, i0, j0, height, width, tile):
    """``tile[:height, :width]`` (rows of ``NR``) = ``src[mat, i0:][:height, j0:][:, :width]``."""
    for i in range(height):
        for j in range(width):
            tile[i * NR + j] = src[mat, i0 + i, j0 + j]


@numba.njit(**_OPTIONS)
def _thread(panels, bias, zeros, x, rows, cols, y, z, lo, hi, share, shares, buf, runs, tile, z_pad):
    """Thread ``share`` (of ``shares = (column shares, panel shares)``) of ``y = clip(w @ x + bias (+ z))``.

    The thread's columns go by blocks of strips; each block by K chunks, packed (:func:`_pack`) once,
    then every weight panel of the thread's share meets every strip of the block. A chunk before the
    last stores its partial sums in ``y`` and the next adds them back as its skip input (the first adds
    ``z``); only the last adds the bias and clips.
    """
    groups, mp = panels.shape[0], panels.shape[1]
    b, m, n = y.shape
    k = panels.shape[2] // MR
    kc_max, per_block = _geometry(k)
    strips = (n + NR - 1) // NR
    units = b * strips
    column_share, panel_share = share // shares[1], share % shares[1]
    u, u1 = column_share * units // shares[0], (column_share + 1) * units // shares[0]
    p0, p1 = panel_share * mp // shares[1], (panel_share + 1) * mp // shares[1]
    sy0, sy1 = y.strides[0] // 4, y.strides[1] // 4
    sz0, sz1 = (0, 0) if z is None else (z.strides[0] // 4, z.strides[1] // 4)
    none, everything = np.float32(-np.inf), np.float32(np.inf)
    while u < u1:
        mat, s0 = u // strips, u % strips
        s1 = min(strips, s0 + per_block, s0 + u1 - u)
        g = mat % groups
        a = panels[g].reshape(-1)
        for k0 in range(0, k, kc_max):
            kc = min(kc_max, k - k0)
            first, last = k0 == 0, k0 + kc == k
            _pack(x, rows, cols, mat, k0, kc, s0 * NR, min(n, s1 * NR) - s0 * NR, buf, runs)
            add = bias[g] if last else zeros
            floor, ceiling = (lo, hi) if last else (none, everything)
            for p in range(p0, p1):
                height = min(MR, m - p * MR)
                a_off = (p * k + k0) * MR
                for s in range(s0, s1):
                    j0 = s * NR
                    width = min(NR, n - j0)
                    b_off = (s - s0) * kc * NR
                    y_off = mat * sy0 + p * MR * sy1 + j0
                    if width == NR and height == MR:
                        if not first:
                            _micro(a, a_off, buf, b_off, NR, y, y_off, sy1, y, y_off, sy1, add, p * MR, floor, ceiling, kc)
                        elif z is None:
                            _micro(a, a_off, buf, b_off, NR, y, y_off, sy1, None, 0, 0, add, p * MR, floor, ceiling, kc)
                        else:
                            z_off = mat * sz0 + p * MR * sz1 + j0
                            _micro(a, a_off, buf, b_off, NR, y, y_off, sy1, z, z_off, sz1, add, p * MR, floor, ceiling, kc)
                        continue
                    # a partial tile: through ``tile``, its skip input padded into ``z_pad``
                    if not first:
                        _pad(y, mat, p * MR, j0, height, width, z_pad)
                        _micro(a, a_off, buf, b_off, NR, tile, 0, NR, z_pad, 0, NR, add, p * MR, floor, ceiling, kc)
                    elif z is None:
                        _micro(a, a_off, buf, b_off, NR, tile, 0, NR, None, 0, 0, add, p * MR, floor, ceiling, kc)
                    else:
                        _pad(z, mat, p * MR, j0, height, width, z_pad)
                        _micro(a, a_off, buf, b_off, NR, tile, 0, NR, z_pad, 0, NR, add, p * MR, floor, ceiling, kc)
                    for i in range(height):
                        for j in range(width):
                            y[mat, p * MR + i, j0 + j] = tile[i * NR + j]
        u += s1 - s0


@numba.njit(**_OPTIONS)
def _one(panels, bias, x, rows, cols, y, z, lo, hi, share, shares):
    """One thread's share, with its own buffers."""
    kc, per_block = _geometry(panels.shape[2] // MR)
    buf = np.empty((kc * per_block + 1) * NR, np.float32)
    runs = np.empty((NR, 4), np.int64)
    tile, z_pad = np.empty(MR * NR, np.float32), np.zeros(MR * NR, np.float32)
    zeros = np.zeros(bias.shape[1], np.float32)
    _thread(panels, bias, zeros, x, rows, cols, y, z, lo, hi, share, shares, buf, runs, tile, z_pad)


@numba.njit(**_OPTIONS)
def _serial(panels, bias, x, rows, cols, y, z, lo, hi):
    _one(panels, bias, x, rows, cols, y, z, lo, hi, 0, (1, 1))


@numba.njit(parallel=True, **_OPTIONS)
def _parallel(panels, bias, x, rows, cols, y, z, lo, hi, threads):
    shares = _split(y.shape[0] * ((y.shape[2] + NR - 1) // NR), panels.shape[1], threads)
    for t in prange(threads):
        _one(panels, bias, x, rows, cols, y, z, lo, hi, t, shares)


@numba.njit(cache=True, nogil=True, boundscheck=False, error_model="numpy", fastmath=True)
def _gemv_rows(a, w, y, n0, n1):
    """``y[:, n] = w[n] . a[r]`` for ``n`` in ``[n0, n1)``: dot products, each row of ``w`` read once
    (the sums are reassociated into vector lanes)."""
    rows, k = a.shape
    for n in range(n0, n1):
        wn = w[n]
        for r in range(rows):
            ar = a[r]
            acc = np.float32(0)
            for kk in range(k):
                acc += wn[kk] * ar[kk]
            y[r, n] = acc


@numba.njit(parallel=True, **_OPTIONS)
def _gemv_parallel(a, w, y, threads):
    n = w.shape[0]
    for t in prange(threads):
        _gemv_rows(a, w, y, t * n // threads, (t + 1) * n // threads)


def pack(w: np.ndarray, bias: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """``(panels [G, ceil(M/MR), K*MR], bias [G, ceil(M/MR)*MR])`` from ``w [G, M, K]`` and ``bias [G*M]``.

    Rows past M are zeros, so every tile computes MR rows and stores those that exist.
    """
    g, m, k = w.shape
    mp = -(-m // MR)
    padded = np.zeros((g, mp * MR, k), np.float32)
    padded[:, :m] = w
    panels = np.ascontiguousarray(padded.reshape(g, mp, MR, k).transpose(0, 1, 3, 2)).reshape(g, mp, k * MR)
    b = np.zeros((g, mp * MR), np.float32)
    if bias is not None:
        b[:, :m] = np.asarray(bias, np.float32).reshape(g, m)
    return panels, b


class Engine:
    """Runs packed GEMMs on ``threads`` threads (one: no parallel region at all)."""

    def __init__(self, parallel: bool) -> None:
        self.parallel = parallel
        self.threads = min(os.cpu_count() or 1, numba.config.NUMBA_NUM_THREADS) if parallel else 1

    def set_threads(self, threads: int) -> None:
        self.threads = max(1, min(threads, numba.config.NUMBA_NUM_THREADS)) if self.parallel else 1

    def __call__(self, panels, bias, x, y, z=None, lo=-np.inf, hi=np.inf) -> None:
        """``y = clip(w @ x + bias (+ z), lo, hi)``; ``x [B, K, N]``, ``y``/``z`` ``[B, M, N]``, rows contiguous."""
        self._run(panels, bias, x, None, None, y, z, lo, hi)

    def gathered(self, panels, bias, x, rows, cols, y, z=None, lo=-np.inf, hi=np.inf) -> None:
        """:meth:`__call__` where ``x [B, L]`` holds each matrix flat: element ``(k, j)`` of matrix ``b``
        is ``x[b, rows[k] + cols[j]]`` (int64 offsets; ``cols`` None: ``j``), read in place, up to the
        end of the buffer ``x`` views. An implicit-GEMM conv: ``rows`` are the taps' offsets in the
        padded image, ``cols`` the outputs' windows."""
        self._run(panels, bias, x, rows, cols, y, z, lo, hi)

    def _run(self, panels, bias, x, rows, cols, y, z, lo, hi) -> None:
        lo, hi = np.float32(lo), np.float32(hi)
        if self.threads > 1:
            _parallel(panels, bias, x, rows, cols, y, z, lo, hi, self.threads)
        else:
            _serial(panels, bias, x, rows, cols, y, z, lo, hi)

    def gemv(self, a: np.ndarray, w: np.ndarray) -> np.ndarray:
        """``a @ w.T`` for a few rows ``a [R, K]`` and ``w [N, K]`` (float32, C-contiguous): a memory-bound
        product, split over the rows of ``w`` so that every thread streams its own share of it."""
        y = np.empty((a.shape[0], w.shape[0]), np.float32)
        if self.threads > 1:
            _gemv_parallel(a, w, y, self.threads)
        else:
            _gemv_rows(a, w, y, 0, w.shape[0])
        return y

    def after_fork(self) -> None:
        """GNU OpenMP cannot start threads in a forked child: run serially there."""
        self.parallel, self.threads = False, 1


_ENGINE: Engine | None = None
_LOCK = threading.Lock()


def _threads_start() -> bool:
    """Whether numba's thread pool starts with a layer that is safe to enter from several threads."""
    if os.environ.get("NUMBA_THREADING_LAYER") is None and numba.config.THREADING_LAYER == "default":
        numba.config.THREADING_LAYER = "threadsafe"  # OpenMP or TBB, never workqueue
    try:
        probe = np.zeros((1, 1, 1), np.float32)
        _parallel(np.zeros((1, 1, MR), np.float32), np.zeros((1, MR), np.float32), probe, None, None, probe, None, np.float32(0), np.float32(0), 2)
        layer = numba.threading_layer()
    except Exception as exc:  # no OpenMP/TBB runtime: one thread, and say why
        log.info("conv GEMM engine runs on one thread: numba's thread pool did not start: %s", exc)
        return False
    if layer == "workqueue":
        log.info("conv GEMM engine runs on one thread: numba's threading layer is workqueue")
        return False
    return True


def engine() -> Engine:
    """The process's engine, its thread pool started (or found unusable) on the first call."""
    global _ENGINE
    with _LOCK:
        if _ENGINE is None:
            _ENGINE = Engine(parallel=_threads_start())
            os.register_at_fork(after_in_child=_ENGINE.after_fork)
        return _ENGINE
