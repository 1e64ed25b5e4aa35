"""Compiled loops for normalizations (numba-compatible; see ortcore_cpu.jit)."""

from __future__ import annotations


def channel_affine(x, a, c, y):
    """``y[n, ch, :] = x[n, ch, :] * a[ch] + c[ch]`` on ``[N, C, P]`` arrays, in one pass."""
    n, ch, p = x.shape
    for i in range(n):
        for k in range(ch):
            ak = a[k]
            ck = c[k]
            xr = x[i, k]
            yr = y[i, k]
            for j in range(p):
                yr[j] = xr[j] * ak + ck
