"""The conv GEMM engine: packed weights, a register-blocked micro-kernel, its own threads.

``y[b] = clip(w[b % G] @ x[b] + bias[b % G] (+ z[b]), lo, hi)`` for float32,
where ``w`` is packed once per node (:func:`pack`) and ``x``, ``y``, ``z`` are
``[B, K, N]`` / ``[B, M, N]`` views whose rows are contiguous. The bias, the
skip input and a clip (which is also Relu) are applied to each tile of the
product while it is still in registers, so the conv paths need no second
pass over their output.

The micro-kernel computes an ``MR x NR`` tile of the product over the whole
K with ``MR * NV`` vector accumulators; it is written in LLVM IR through a
numba intrinsic (numba's own loops do not vectorise that way) and compiled
for the host's vector width. The weights are packed in panels of ``MR``
rows, k-major; the activations are read in place, ``NR`` columns of
``K`` rows at a time.

The work is split over columns (or over weight panels when there are few
columns) into one contiguous range per thread, in one numba ``prange`` with
the OpenMP or TBB threading layer: about 3 µs to start, against about 30 µs
for a hand-off between Python threads. numpy's BLAS must then run on one
thread (the CPU provider sees to it), or its spinning workers and these
threads take each other's cores: a GEMM here took 5 ms instead of 0.6 ms
right after a two-thread OpenBLAS call.

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


@numba.njit(**_OPTIONS)
def _block_strips(k):
    """Column strips per block: a block of ``x`` (``k`` rows) stays in half of a 1 MiB L2."""
    return max(1, (1 << 19) // (k * NR * 4))


@numba.njit(**_OPTIONS)
def _strips(k, n):
    """``(strips, strips per block, blocks)`` of ``n`` columns, ``k`` rows deep."""
    strips = (n + NR - 1) // NR
    per_block = _block_strips(k)
    return strips, per_block, (strips + per_block - 1) // per_block


@numba.njit(**_OPTIONS)
def _item(item, msplit, blocks, groups):
    """``(share of the panels, block of strips, matrix, its group)`` of work item ``item``."""
    mat = item // msplit // blocks
    return item % msplit, item // msplit % blocks, mat, mat % groups


@numba.njit(**_OPTIONS)
def _tiles(panels, bias, x, y, z, lo, hi, item0, item1, msplit, b_pad, z_pad, tile):
    """Tiles of work items ``[item0, item1)``: an item is (matrix, block of column strips, share of the panels).

    Within an item each weight panel (in L1) meets every strip of the block (in L2) in turn.
    """
    groups, mp = panels.shape[0], panels.shape[1]
    k, n = x.shape[1], x.shape[2]
    m = y.shape[1]
    strips, per_block, blocks = _strips(k, n)
    sx0, sx1 = x.strides[0] // 4, x.strides[1] // 4
    sy0, sy1 = y.strides[0] // 4, y.strides[1] // 4
    sz0, sz1 = (0, 0) if z is None else (z.strides[0] // 4, z.strides[1] // 4)
    for item in range(item0, item1):
        share, block, mat, g = _item(item, msplit, blocks, groups)
        a = panels[g].reshape(-1)
        s0, s1 = block * per_block, min(strips, (block + 1) * per_block)
        last = n - (strips - 1) * NR  # columns in the last strip
        if s1 == strips and last < NR:  # the last strip, zero-padded to NR columns
            j0 = (strips - 1) * NR
            for kk in range(k):
                for j in range(last):
                    b_pad[kk * NR + j] = x[mat, kk, j0 + j]
                for j in range(last, NR):
                    b_pad[kk * NR + j] = 0
        for p in range(share * mp // msplit, (share + 1) * mp // msplit):
            rows = min(MR, m - p * MR)
            a_off = p * k * MR
            for s in range(s0, s1):
                j0 = s * NR
                cols = min(NR, n - j0)
                y_off = mat * sy0 + p * MR * sy1 + j0
                z_off = mat * sz0 + p * MR * sz1 + j0
                if cols == NR and rows == MR:
                    _micro(a, a_off, x, mat * sx0 + j0, sx1, y, y_off, sy1, z, z_off, sz1, bias[g], p * MR, lo, hi, k)
                    continue
                if z is not None:  # the skip input's partial tile, padded like the output's
                    for i in range(rows):
                        for j in range(cols):
                            z_pad[i * NR + j] = z[mat, p * MR + i, j0 + j]
                if cols == NR and z is None:
                    _micro(a, a_off, x, mat * sx0 + j0, sx1, tile, 0, NR, None, 0, 0, bias[g], p * MR, lo, hi, k)
                elif cols == NR:
                    _micro(a, a_off, x, mat * sx0 + j0, sx1, tile, 0, NR, z_pad, 0, NR, bias[g], p * MR, lo, hi, k)
                elif z is None:
                    _micro(a, a_off, b_pad, 0, NR, tile, 0, NR, None, 0, 0, bias[g], p * MR, lo, hi, k)
                else:
                    _micro(a, a_off, b_pad, 0, NR, tile, 0, NR, z_pad, 0, NR, bias[g], p * MR, lo, hi, k)
                for i in range(rows):
                    for j in range(cols):
                        y[mat, p * MR + i, j0 + j] = tile[i * NR + j]


@numba.njit(**_OPTIONS)
def _shifted_tiles(panels, bias, x, offsets, y, lo, hi, item0, item1, msplit, tile):
    """:func:`_tiles` where row ``kk`` of matrix ``b`` is ``x[b, offsets[kk]:][:n]``: an implicit-GEMM conv.

    The last strip of columns reads up to ``NR`` floats past the end of the
    last row; the caller leaves that much slack after ``x``. Its product is
    computed whole and only the columns that exist are stored.
    """
    groups, mp = panels.shape[0], panels.shape[1]
    k = offsets.size
    m, n = y.shape[1], y.shape[2]
    strips, per_block, blocks = _strips(k, n)
    sx0 = x.strides[0] // 4
    sy0, sy1 = y.strides[0] // 4, y.strides[1] // 4
    for item in range(item0, item1):
        share, block, mat, g = _item(item, msplit, blocks, groups)
        a = panels[g].reshape(-1)
        for p in range(share * mp // msplit, (share + 1) * mp // msplit):
            rows = min(MR, m - p * MR)
            a_off = p * k * MR
            for s in range(block * per_block, min(strips, (block + 1) * per_block)):
                j0 = s * NR
                cols = min(NR, n - j0)
                y_off = mat * sy0 + p * MR * sy1 + j0
                if cols == NR and rows == MR:
                    _micro(a, a_off, x, mat * sx0 + j0, offsets, y, y_off, sy1, None, 0, 0, bias[g], p * MR, lo, hi, k)
                    continue
                _micro(a, a_off, x, mat * sx0 + j0, offsets, tile, 0, NR, None, 0, 0, bias[g], p * MR, lo, hi, k)
                for i in range(rows):
                    for j in range(cols):
                        y[mat, p * MR + i, j0 + j] = tile[i * NR + j]


@numba.njit(**_OPTIONS)
def _shifted_serial(panels, bias, x, offsets, y, lo, hi):
    items, msplit = _work(panels, offsets.size, y.shape[2], y.shape[0], 1)
    _shifted_tiles(panels, bias, x, offsets, y, lo, hi, 0, items, msplit, np.empty(MR * NR, np.float32))


@numba.njit(parallel=True, **_OPTIONS)
def _shifted_parallel(panels, bias, x, offsets, y, lo, hi, threads):
    items, msplit = _work(panels, offsets.size, y.shape[2], y.shape[0], threads)
    for t in prange(threads):
        tile = np.empty(MR * NR, np.float32)
        _shifted_tiles(panels, bias, x, offsets, y, lo, hi, t * items // threads, (t + 1) * items // threads, msplit, tile)


@numba.njit(**_OPTIONS)
def _work(panels, k, n, matrices, threads):
    """``(items, msplit)``: whole blocks of strips per item where there are enough, else panel shares too."""
    blocks = matrices * _strips(k, n)[2]
    msplit = 1 if blocks >= 4 * threads or threads == 1 else min(threads, panels.shape[1])
    return blocks * msplit, msplit


@numba.njit(**_OPTIONS)
def _buffers(k, with_z):
    return np.empty(k * NR, np.float32), np.zeros(MR * NR if with_z else 1, np.float32), np.empty(MR * NR, np.float32)


@numba.njit(**_OPTIONS)
def _serial(panels, bias, x, y, z, lo, hi):
    items, msplit = _work(panels, x.shape[1], x.shape[2], x.shape[0], 1)
    b_pad, z_pad, tile = _buffers(x.shape[1], z is not None)
    _tiles(panels, bias, x, y, z, lo, hi, 0, items, msplit, b_pad, z_pad, tile)


@numba.njit(parallel=True, **_OPTIONS)
def _parallel(panels, bias, x, y, z, lo, hi, threads):
    items, msplit = _work(panels, x.shape[1], x.shape[2], x.shape[0], threads)
    for t in prange(threads):
        b_pad, z_pad, tile = _buffers(x.shape[1], z is not None)
        _tiles(panels, bias, x, y, z, lo, hi, t * items // threads, (t + 1) * items // threads, msplit, b_pad, z_pad, tile)


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

    columns = NR  # the widest strip of columns a tile reads: the slack :meth:`shifted` needs

    def __init__(self, parallel: bool) -> None:
        self.parallel = parallel
        self.threads = min(os.cpu_count() or 1, numba.config.NUMBA_NUM_THREADS) if parallel else 1

    def set_threads(self, threads: int) -> None:
        self.threads = max(1, min(threads, numba.config.NUMBA_NUM_THREADS)) if self.parallel else 1

    def __call__(self, panels, bias, x, y, z=None, lo=-np.inf, hi=np.inf) -> None:
        """``y = clip(w @ x + bias (+ z), lo, hi)``; ``x [B, K, N]``, ``y``/``z`` ``[B, M, N]``, rows contiguous."""
        lo, hi = np.float32(lo), np.float32(hi)
        if self.threads > 1:
            _parallel(panels, bias, x, y, z, lo, hi, self.threads)
        else:
            _serial(panels, bias, x, y, z, lo, hi)

    def shifted(self, panels, bias, x, offsets, y, lo=-np.inf, hi=np.inf) -> None:
        """``y[b, :, j] = clip(w @ [x[b, o + j] for o in offsets] + bias, lo, hi)``: a GEMM whose
        ``k``-th row is ``x[b]`` shifted by ``offsets[k]``; ``x`` has ``NR`` floats of slack at its end."""
        lo, hi = np.float32(lo), np.float32(hi)
        if self.threads > 1:
            _shifted_parallel(panels, bias, x, offsets, y, lo, hi, self.threads)
        else:
            _shifted_serial(panels, bias, x, offsets, y, lo, hi)

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
        _parallel(np.zeros((1, 1, MR), np.float32), np.zeros((1, MR), np.float32), probe, probe, None, 0.0, 0.0, 2)
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
