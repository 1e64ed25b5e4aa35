"""The CPU provider's GEMM engine against float64 numpy, at the edges of its tiling.

The engine packs ``NR``-column strips of the activations a block at a time,
takes a K deeper than ``KC`` in chunks that add up in the output, and splits
the tiles over threads by column strips or by weight panels. Each case below
lands on one of those edges: partial tiles in rows and columns, a K one past
a chunk, several blocks of strips, groups, the skip input and the clip, one
thread and two, and the implicit-GEMM form that packs its elements from one
buffer at row plus column offsets (runs of step 1 and 2, and gathers).
"""

from __future__ import annotations

import numpy as np
import pytest

from ortcore_cpu import jit

ENGINE = jit.gemm_engine()
pytestmark = pytest.mark.skipif(ENGINE is None, reason="compiled loops are off or numba is not installed")

if ENGINE is not None:
    from ortcore_cpu.ops.nn import _gemm

    MR, NR, KC = _gemm.MR, _gemm.NR, _gemm.KC
else:  # the cases below need the sizes even when they skip
    MR, NR, KC = 6, 32, 512

RNG = np.random.default_rng(11)


def _engine(threads: int):
    engine = _gemm.Engine(parallel=ENGINE.parallel)
    engine.set_threads(threads)
    return engine


def _expected(w, bias, x, z, lo, hi):
    """``clip(w[b % G] @ x[b] + bias + z, lo, hi)`` in float64."""
    g, m = w.shape[:2]
    y = np.stack([w[b % g].astype(np.float64) @ x[b].astype(np.float64) for b in range(x.shape[0])])
    y += bias.reshape(g, m)[np.arange(x.shape[0]) % g][:, :, None]
    if z is not None:
        y += z
    return np.clip(y, lo, hi)


def _check(actual, expected, k):
    # float32 products over k terms: the error grows with sqrt(k)
    scale = np.abs(expected).max() + 1
    np.testing.assert_allclose(actual, expected, rtol=0, atol=2e-6 * np.sqrt(k) * scale)


CASES = [
    # batch, groups, M, K, N
    pytest.param(1, 1, 1, 1, 1, id="one-element"),
    pytest.param(1, 1, MR, 7, NR, id="one-whole-tile"),
    pytest.param(1, 1, MR + 1, 5, NR + 1, id="partial-rows-and-columns"),
    pytest.param(1, 1, 37, KC + 1, 45, id="k-one-past-a-chunk"),
    pytest.param(2, 1, 13, 2 * KC + 76, 40 * NR + 7, id="chunks-and-blocks"),
    pytest.param(3, 1, 50, 64, 3, id="few-columns-panels-split"),
    pytest.param(4, 2, 11, 30, 70, id="groups"),
]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("with_z", [False, True], ids=["", "z"])
@pytest.mark.parametrize("batch, groups, m, k, n", CASES)
def test_engine_gemm(batch, groups, m, k, n, with_z, threads):
    w = RNG.standard_normal((groups, m, k)).astype(np.float32)
    bias = RNG.standard_normal(groups * m).astype(np.float32)
    x = RNG.standard_normal((batch, k, n)).astype(np.float32)
    z = RNG.standard_normal((batch, m, n)).astype(np.float32) if with_z else None
    y = np.full((batch, m, n), np.nan, np.float32)
    lo, hi = (-0.5, 1.5) if with_z else (-np.inf, np.inf)
    _engine(threads)(*_gemm.pack(w, bias), x, y, z, lo, hi)
    _check(y, _expected(w, bias, x, z, lo, hi), k)


def test_engine_gemm_strided_views():
    """``x``, ``y`` and ``z`` as views whose rows are contiguous but whose matrices and rows are not packed."""
    m, k, n = 20, 600, 50
    w = RNG.standard_normal((1, m, k)).astype(np.float32)
    bias = RNG.standard_normal(m).astype(np.float32)
    x = RNG.standard_normal((2, k + 3, n + 9)).astype(np.float32)[:, 1 : k + 1, 4 : n + 4]
    z = RNG.standard_normal((2, m + 2, n + 5)).astype(np.float32)[:, 2:, :n]
    out = np.zeros((2, m + 1, n + 6), np.float32)
    y = out[:, 1:, 3 : n + 3]
    _engine(2)(*_gemm.pack(w, bias), x, y, z, 0.0, np.inf)
    _check(y, _expected(w, bias, x, z, 0.0, np.inf), k)
    assert not out[:, 0].any() and not out[:, :, :3].any() and not out[:, :, n + 3 :].any()


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("m, rows, n", [(7, 9, 33), (40, KC + 40, 300)], ids=["small", "chunked"])
def test_engine_gathered_runs(m, rows, n, threads):
    """Without column offsets, row ``r`` of the right-hand side is the buffer from ``rows[r]`` on:
    runs that overlap, read up to the buffer's end."""
    batch, length = 2, 4 * n
    x = RNG.standard_normal((batch, length)).astype(np.float32)
    offsets = np.sort(RNG.integers(0, length - n, rows)).astype(np.int64)
    offsets[-1] = length - n  # the last run ends at the end of the last matrix
    w = RNG.standard_normal((1, m, rows)).astype(np.float32)
    bias = RNG.standard_normal(m).astype(np.float32)
    y = np.empty((batch, m, n), np.float32)
    _engine(threads).gathered(*_gemm.pack(w, bias), x, offsets, None, y, None, -1.0, 2.0)
    dense = np.stack([np.stack([x[b, o : o + n] for o in offsets]) for b in range(batch)])
    _check(y, _expected(w, bias, dense, None, -1.0, 2.0), rows)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("step", [1, 2, 3, 5])
@pytest.mark.parametrize("width", [1, 7, NR + 3])
def test_engine_gathered_windows(step, width, threads):
    """Column offsets in rows of ``width`` outputs ``step`` apart (a strided conv's windows): runs of
    each step that break at every row, the last element read being the buffer's last."""
    batch, out_rows, row = 2, 5, (width - 1) * step + 4
    taps = np.array([0, 1, 2, row, row + 3], np.int64)
    cols = (np.arange(out_rows)[:, None] * row + np.arange(width) * step).reshape(-1).astype(np.int64)
    length = taps[-1] + cols[-1] + 1
    x = RNG.standard_normal((batch, length)).astype(np.float32)
    m = 9
    w = RNG.standard_normal((1, m, taps.size)).astype(np.float32)
    bias = RNG.standard_normal(m).astype(np.float32)
    z = RNG.standard_normal((batch, m, cols.size)).astype(np.float32)
    y = np.empty((batch, m, cols.size), np.float32)
    _engine(threads).gathered(*_gemm.pack(w, bias), x, taps, cols, y, z)
    dense = x[:, taps[:, None] + cols]
    _check(y, _expected(w, bias, dense, z, -np.inf, np.inf), taps.size)
