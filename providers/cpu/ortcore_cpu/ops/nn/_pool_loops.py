"""Compiled loops for 2-D MaxPool and AveragePool (numba-compatible; see ortcore_cpu.jit).

Each takes a C-contiguous ``x[N, C, H, W]``, writes ``y[N, C, OH, OW]`` and
reads the window geometry as plain ints (kernel, strides, dilations, the pads
before each axis). The input is never padded: a window's rows are clipped to
the input, and its columns are read from ``line``, a buffer whose border holds
the reduction's identity (-inf for max, 0 for sum) where windows overhang.

Max and sum are separable: the window's rows reduce into ``line`` first
(whole rows, contiguous, so the loop vectorises), then each output reduces a
run of ``line``. A 3-tap axis (the usual 3x3 pool) is reduced in one pass
with its taps written out; other kernels take a pass per tap.

``*_rows`` go one output row at a time and take any geometry; ``first`` and
``stop`` bound, per output row, the kernel rows that fall inside the input. Their column
passes branch on stride 1 and 2 with the stride written as a literal: numba
specialises on code, not on values, and only then does the loop over output
columns vectorise. On small images (7x7, 14x14) the loops are too short to
vectorise, so ``*_planes`` take stride 1 with the output as wide as the
input (the padded 3x3 of inception blocks) one whole image at a time, as
one flat array: a row tap is the image shifted by whole rows, a column tap
the image shifted by a few elements with ``inside[tap, flat output]``
masking the taps that leave their row.
"""

from __future__ import annotations

import numpy as np


def max_pool_2d_rows(x, y, first, stop, kernel_w, stride_h, stride_w, dilation_h, dilation_w, pad_top, pad_left):
    """``y`` = MaxPool of ``x``; a NaN in a window gives NaN, as numpy's maximum does."""
    n, c, h, w = x.shape
    out_h, out_w = y.shape[2], y.shape[3]
    span = (out_w - 1) * stride_w + (kernel_w - 1) * dilation_w + 1
    line = np.full(max(span, pad_left + w), -np.inf, x.dtype)
    cols = line[pad_left : pad_left + w]
    three = kernel_w == 3 and dilation_w == 1
    for i in range(n):
        for k in range(c):
            for oh in range(out_h):
                top = oh * stride_h - pad_top
                if stop[oh] - first[oh] == 3:
                    r0 = x[i, k, top + first[oh] * dilation_h]
                    r1 = x[i, k, top + (first[oh] + 1) * dilation_h]
                    r2 = x[i, k, top + (first[oh] + 2) * dilation_h]
                    for j in range(w):
                        cols[j] = np.maximum(np.maximum(r0[j], r1[j]), r2[j])
                else:
                    for j in range(w):
                        cols[j] = -np.inf
                    for t in range(first[oh], stop[oh]):
                        row = x[i, k, top + t * dilation_h]
                        for j in range(w):
                            cols[j] = np.maximum(cols[j], row[j])
                out = y[i, k, oh]
                if three and stride_w == 1:
                    for o in range(out_w):
                        out[o] = np.maximum(np.maximum(line[o], line[o + 1]), line[o + 2])
                elif three and stride_w == 2:
                    for o in range(out_w):
                        out[o] = np.maximum(np.maximum(line[2 * o], line[2 * o + 1]), line[2 * o + 2])
                else:
                    for o in range(out_w):
                        out[o] = -np.inf
                    for t in range(kernel_w):
                        tap = line[t * dilation_w :]
                        if stride_w == 1:
                            for o in range(out_w):
                                out[o] = np.maximum(out[o], tap[o])
                        elif stride_w == 2:
                            for o in range(out_w):
                                out[o] = np.maximum(out[o], tap[2 * o])
                        else:
                            for o in range(out_w):
                                out[o] = np.maximum(out[o], tap[o * stride_w])


def average_pool_2d_rows(
    x, y, first, stop, kernel_w, stride_h, stride_w, dilation_h, dilation_w, pad_top, pad_left, inverse
):
    """``y`` = window sums of ``x`` times ``inverse[OH, OW]`` (one over each window's tap count)."""
    n, c, h, w = x.shape
    out_h, out_w = y.shape[2], y.shape[3]
    span = (out_w - 1) * stride_w + (kernel_w - 1) * dilation_w + 1
    line = np.zeros(max(span, pad_left + w), x.dtype)
    cols = line[pad_left : pad_left + w]
    three = kernel_w == 3 and dilation_w == 1
    for i in range(n):
        for k in range(c):
            for oh in range(out_h):
                top = oh * stride_h - pad_top
                if stop[oh] - first[oh] == 3:
                    r0 = x[i, k, top + first[oh] * dilation_h]
                    r1 = x[i, k, top + (first[oh] + 1) * dilation_h]
                    r2 = x[i, k, top + (first[oh] + 2) * dilation_h]
                    for j in range(w):
                        cols[j] = r0[j] + r1[j] + r2[j]
                else:
                    for j in range(w):
                        cols[j] = 0.0
                    for t in range(first[oh], stop[oh]):
                        row = x[i, k, top + t * dilation_h]
                        for j in range(w):
                            cols[j] += row[j]
                out = y[i, k, oh]
                scale = inverse[oh]
                if three and stride_w == 1:
                    for o in range(out_w):
                        out[o] = (line[o] + line[o + 1] + line[o + 2]) * scale[o]
                elif three and stride_w == 2:
                    for o in range(out_w):
                        out[o] = (line[2 * o] + line[2 * o + 1] + line[2 * o + 2]) * scale[o]
                else:
                    for o in range(out_w):
                        out[o] = 0.0
                    for t in range(kernel_w):
                        tap = line[t * dilation_w :]
                        if stride_w == 1:
                            for o in range(out_w):
                                out[o] += tap[o]
                        elif stride_w == 2:
                            for o in range(out_w):
                                out[o] += tap[2 * o]
                        else:
                            for o in range(out_w):
                                out[o] += tap[o * stride_w]
                    for o in range(out_w):
                        out[o] *= scale[o]


def max_pool_2d_planes(x, y, kernel_h, kernel_w, dilation_h, dilation_w, pad_top, pad_left, inside):
    """:func:`max_pool_2d_rows` for stride 1 and ``OW == W``, a whole image per pass."""
    n, c, h, w = x.shape
    size = y.shape[2] * w
    images = x.reshape(n * c, h * w)
    outs = y.reshape(n * c, size)
    line = np.full(size + (kernel_w - 1) * dilation_w, -np.inf, x.dtype)
    cols = line[pad_left : pad_left + size]
    three = kernel_w == 3 and dilation_w == 1
    lowest = x.dtype.type(-np.inf)  # a float literal would make the selects below float64
    for p in range(n * c):
        image = images[p]
        out = outs[p]
        for m in range(size):
            cols[m] = lowest
        for t in range(kernel_h):
            shift = (t * dilation_h - pad_top) * w
            first = max(0, -shift)
            stop = min(size, h * w - shift)
            part = cols[first:stop]
            rows = image[first + shift :]
            for m in range(stop - first):
                part[m] = np.maximum(part[m], rows[m])
        if three:
            left, mid, right = inside[0], inside[1], inside[2]
            for m in range(size):
                a = line[m] if left[m] else lowest
                b = line[m + 1] if mid[m] else lowest
                d = line[m + 2] if right[m] else lowest
                out[m] = np.maximum(np.maximum(a, b), d)
        else:
            for m in range(size):
                out[m] = lowest
            for t in range(kernel_w):
                tap = line[t * dilation_w :]
                ok = inside[t]
                for m in range(size):
                    out[m] = np.maximum(out[m], tap[m] if ok[m] else lowest)


def average_pool_2d_planes(x, y, kernel_h, kernel_w, dilation_h, dilation_w, pad_top, pad_left, inside, inverse):
    """:func:`average_pool_2d_rows` for stride 1 and ``OW == W``, a whole image per pass."""
    n, c, h, w = x.shape
    size = y.shape[2] * w
    images = x.reshape(n * c, h * w)
    outs = y.reshape(n * c, size)
    scale = inverse.reshape(size)
    line = np.zeros(size + (kernel_w - 1) * dilation_w, x.dtype)
    cols = line[pad_left : pad_left + size]
    three = kernel_w == 3 and dilation_w == 1
    zero = x.dtype.type(0)  # a float literal would make the selects below float64
    for p in range(n * c):
        image = images[p]
        out = outs[p]
        for m in range(size):
            cols[m] = 0.0
        for t in range(kernel_h):
            shift = (t * dilation_h - pad_top) * w
            first = max(0, -shift)
            stop = min(size, h * w - shift)
            part = cols[first:stop]
            rows = image[first + shift :]
            for m in range(stop - first):
                part[m] += rows[m]
        if three:
            left, mid, right = inside[0], inside[1], inside[2]
            for m in range(size):
                a = line[m] if left[m] else zero
                b = line[m + 1] if mid[m] else zero
                d = line[m + 2] if right[m] else zero
                out[m] = (a + b + d) * scale[m]
        else:
            for m in range(size):
                out[m] = 0.0
            for t in range(kernel_w):
                tap = line[t * dilation_w :]
                ok = inside[t]
                for m in range(size):
                    if ok[m]:
                        out[m] += tap[m]
            for m in range(size):
                out[m] *= scale[m]
