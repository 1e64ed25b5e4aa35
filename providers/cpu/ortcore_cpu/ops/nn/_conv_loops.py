"""Compiled loops for Conv and FusedConv (numba-compatible; see ortcore_cpu.jit).

``depthwise`` is a whole 2-D depthwise conv with its bias, skip input and
activation (``depthwise_3x3`` the commonest case of it); ``tap_sum`` does
the same after kn2row's GEMM; ``epilogue`` adds the bias and skip input to
the output of the other conv paths and activates it, in one pass.

The activation is one of the codes below with its parameters, given in the
output's dtype so that float32 math stays float32, applied by ``_activate``
(a helper that :mod:`ortcore_cpu.jit` compiles with the loops).
``z=None`` (no skip input) compiles to a version of a loop without it.
"""

from __future__ import annotations

import math

import numpy as np

# FusedConv activations. CLIP also serves Relu (lo 0, hi inf); HARD_SIGMOID clips alpha * v + beta to [lo, hi].
NONE, CLIP, LEAKY_RELU, HARD_SIGMOID, SIGMOID, TANH = range(6)

JIT_HELPERS = ("_activate", "_skipped_columns")


def _activate(out, act, alpha, beta, lo, hi):
    """Apply activation ``act`` in place to the 1-D run ``out``."""
    if act == CLIP:
        for o in range(out.size):
            v = out[o]
            v = lo if v < lo else v
            out[o] = hi if v > hi else v
    elif act == LEAKY_RELU:
        for o in range(out.size):
            v = out[o]
            out[o] = v * alpha if v < 0 else v
    elif act == HARD_SIGMOID:
        for o in range(out.size):
            v = alpha * out[o] + beta
            v = lo if v < lo else v
            out[o] = hi if v > hi else v
    elif act == SIGMOID:
        for o in range(out.size):
            out[o] = 1 / (1 + math.exp(-out[o]))
    elif act == TANH:
        for o in range(out.size):
            out[o] = math.tanh(out[o])


def _skipped_columns(plane, saved, w, oh_lo, oh_hi, ow_lo, ow_hi, restore):
    """Copy the columns outside ``[ow_lo, ow_hi)`` of rows ``[oh_lo, oh_hi)`` of the flat ``plane``
    (rows of ``w``) into ``saved``, or back from it where ``restore``."""
    k = 0
    for oh in range(oh_lo, oh_hi):
        row = plane[oh * w : (oh + 1) * w]
        for lo, hi in ((0, ow_lo), (ow_hi, w)):
            for o in range(lo, hi):
                if restore:
                    row[o] = saved[k]
                else:
                    saved[k] = row[o]
                k += 1


def depthwise(
    x, w, bias, z, y, stride_h, stride_w, dilation_h, dilation_w, pad_top, pad_left, act, alpha, beta, lo, hi
):
    """``y = act(conv(x, w) + bias + z)`` for a depthwise conv, one output channel at a time.

    ``x[N, C, H, W]``, ``w[M, KH, KW]`` where output channel m reads input
    channel ``m // (M / C)``, ``bias[M]``, ``z`` None or like ``y[N, M, OH, OW]``;
    ``pad_top`` and ``pad_left`` are the pads before (not negative).

    Each input channel is copied into the middle of a plane whose border is
    zeros, written once per call, so that no tap needs a bounds check; the
    plane stays in cache. (Clipping each tap's columns to the input instead
    took 1.3-3x as long on 7x7 to 28x28 images: the short loops for the
    border columns cost more than the copy.) A 3x3 kernel without dilation
    along W has its nine taps written out in one loop at strides 1 and 2; any
    other kernel has a loop per tap.

    At stride 1 the outputs are computed over whole plane rows, where each tap
    is one long run of the flattened plane, then cropped: the loops run over
    the channel rather than over rows of 7 to 28 values, most of which would
    fall in the remainder that is not vectorised. Other strides go row by row,
    with stride 2 written as a literal, because numba specialises on code, not
    on values: only then does the loop vectorise.
    """
    n, m_out, out_h, out_w = y.shape
    c, h, width = x.shape[1], x.shape[2], x.shape[3]
    kernel_h, kernel_w = w.shape[1], w.shape[2]
    multiplier = m_out // c
    plane_h = (out_h - 1) * stride_h + (kernel_h - 1) * dilation_h + 1
    plane_w = (out_w - 1) * stride_w + (kernel_w - 1) * dilation_w + 1
    plane = np.zeros((plane_h, plane_w), y.dtype)
    rows = min(h, plane_h - pad_top)
    cols = min(width, plane_w - pad_left)
    unrolled = kernel_h == 3 and kernel_w == 3 and dilation_w == 1
    whole = stride_h == 1 and stride_w == 1
    flat = plane.reshape(-1)
    # output (oh, ow) at sums[oh * plane_w + ow]; the last row's columns past out_w would read past the plane
    sums = np.empty(out_h * plane_w if whole else 0, y.dtype)
    count = (out_h - 1) * plane_w + out_w
    # a 1x1 kernel at stride 1 without pads (a per-channel scale, as BatchNormalization
    # becomes) reads the input directly
    pointwise = kernel_h == 1 and kernel_w == 1 and whole and pad_top == 0 and pad_left == 0 and plane_h == h
    pointwise = pointwise and plane_w == width
    # flat per-channel views, made once: a reshape per channel costs more than a 7x7 plane's work
    x_flat = x.reshape(n, c, h * width)
    y_flat = y.reshape(n, m_out, out_h * out_w)
    for i in range(n):
        for m in range(m_out):
            if m % multiplier == 0 and not pointwise:
                image = x[i, m // multiplier]
                for r in range(rows):
                    src = image[r]
                    dst = plane[pad_top + r, pad_left:]
                    for j in range(cols):
                        dst[j] = src[j]
            k = w[m]
            b = bias[m]
            if pointwise:
                src = x_flat[i, m // multiplier]
                dst = y_flat[i, m]
                weight = k[0, 0]
                for o in range(dst.size):
                    dst[o] = weight * src[o] + b
            elif whole and unrolled:
                r0 = flat
                r1 = flat[dilation_h * plane_w :]
                r2 = flat[2 * dilation_h * plane_w :]
                w00, w01, w02 = k[0, 0], k[0, 1], k[0, 2]
                w10, w11, w12 = k[1, 0], k[1, 1], k[1, 2]
                w20, w21, w22 = k[2, 0], k[2, 1], k[2, 2]
                for o in range(count):
                    sums[o] = (
                        (w00 * r0[o] + w01 * r0[o + 1] + w02 * r0[o + 2])
                        + (w10 * r1[o] + w11 * r1[o + 1] + w12 * r1[o + 2])
                        + (w20 * r2[o] + w21 * r2[o + 1] + w22 * r2[o + 2])
                    )
            elif whole:
                sums[:] = 0
                for t in range(kernel_h):
                    for u in range(kernel_w):
                        weight = k[t, u]
                        # a view from the tap's offset: indices from 0 let numba drop
                        # its negative-index check, which stops the loop vectorising
                        src = flat[t * dilation_h * plane_w + u * dilation_w :]
                        for o in range(count):
                            sums[o] += weight * src[o]
            for oh in range(0 if pointwise else out_h):
                out = y[i, m, oh]
                if whole:
                    run = sums[oh * plane_w :]
                    for o in range(out_w):
                        out[o] = run[o] + b
                elif unrolled and stride_w == 2:
                    top = oh * stride_h
                    r0 = plane[top]
                    r1 = plane[top + dilation_h]
                    r2 = plane[top + 2 * dilation_h]
                    w00, w01, w02 = k[0, 0], k[0, 1], k[0, 2]
                    w10, w11, w12 = k[1, 0], k[1, 1], k[1, 2]
                    w20, w21, w22 = k[2, 0], k[2, 1], k[2, 2]
                    for o in range(out_w):
                        j = 2 * o
                        out[o] = (
                            b
                            + (w00 * r0[j] + w01 * r0[j + 1] + w02 * r0[j + 2])
                            + (w10 * r1[j] + w11 * r1[j + 1] + w12 * r1[j + 2])
                            + (w20 * r2[j] + w21 * r2[j + 1] + w22 * r2[j + 2])
                        )
                else:
                    out[:] = b
                    for t in range(kernel_h):
                        row = plane[oh * stride_h + t * dilation_h]
                        for u in range(kernel_w):
                            weight = k[t, u]
                            src = row[u * dilation_w :]
                            if stride_w == 1:
                                for o in range(out_w):
                                    out[o] += weight * src[o]
                            elif stride_w == 2:
                                for o in range(out_w):
                                    out[o] += weight * src[2 * o]
                            else:
                                for o in range(out_w):
                                    out[o] += weight * src[o * stride_w]
            out = y_flat[i, m]
            if z is not None:
                skip = z[i, m].reshape(-1)
                for o in range(out.size):
                    out[o] += skip[o]
            _activate(out, act, alpha, beta, lo, hi)


def depthwise_3x3(x, w, bias, z, y, pad_top, pad_left, act, alpha, beta, lo, hi):
    """:func:`depthwise` for the commonest case alone: 3x3, stride 1, no dilation, one output per channel.

    Same method (a zero-bordered plane per channel, sums over whole plane
    rows, then cropped), but with the bias in the sums and, without Z, the
    activation over the whole run of sums before the crop; with Z, each
    cropped row gets Z and then the activation. Written apart from the general
    loop, it takes 0.5-0.65x its time on ShuffleNet's 7x7 to 28x28 layers (the
    general loop's branches and four-index views cost more than the
    arithmetic on images this small).
    """
    n, c, out_h, out_w = y.shape
    h, width = x.shape[2], x.shape[3]
    plane_w = out_w + 2
    plane = np.zeros((out_h + 2) * plane_w, y.dtype)  # the last tap's run ends at its last element
    rows = min(h, out_h + 2 - pad_top)
    cols = min(width, plane_w - pad_left)
    count = (out_h - 1) * plane_w + out_w
    sums = np.empty(count, y.dtype)
    r1 = plane[plane_w:]
    r2 = plane[2 * plane_w :]
    for i in range(n):
        for m in range(c):
            image = x[i, m]
            for r in range(rows):
                src = image[r]
                dst = plane[(pad_top + r) * plane_w + pad_left :]
                for j in range(cols):
                    dst[j] = src[j]
            k = w[m]
            w00, w01, w02 = k[0, 0], k[0, 1], k[0, 2]
            w10, w11, w12 = k[1, 0], k[1, 1], k[1, 2]
            w20, w21, w22 = k[2, 0], k[2, 1], k[2, 2]
            b = bias[m]
            for o in range(count):
                sums[o] = (
                    b
                    + (w00 * plane[o] + w01 * plane[o + 1] + w02 * plane[o + 2])
                    + (w10 * r1[o] + w11 * r1[o + 1] + w12 * r1[o + 2])
                    + (w20 * r2[o] + w21 * r2[o + 1] + w22 * r2[o + 2])
                )
            if z is None:  # activate the whole run at once: long loops, not one per short row
                _activate(sums, act, alpha, beta, lo, hi)
            out_m = y[i, m]
            for oh in range(out_h):
                run = sums[oh * plane_w :]
                out = out_m[oh]
                if z is None:
                    for o in range(out_w):
                        out[o] = run[o]
                else:
                    skip = z[i, m, oh]
                    for o in range(out_w):
                        out[o] = run[o] + skip[o]
                    _activate(out, act, alpha, beta, lo, hi)


def tap_sum(products, bias, z, y, w, kernel_w, dilation_h, dilation_w, pad_top, pad_left, act, alpha, beta, lo, hi):
    """kn2row's sums with FusedConv's epilogue: ``y = act(bias + sum over taps + z)``.

    ``products[N, g, taps, Mg, H*W]`` holds every tap's weights times the
    flattened image, unpadded (one GEMM); ``w`` is the image width, ``y[N, M,
    OH, OW]`` and ``z`` None or like ``y``. Output ``(oh, ow)`` takes tap
    ``(kh, kw)``'s product at input ``(oh + kh * dilation_h - pad_top, ow +
    kw * dilation_w - pad_left)``; a tap whose input falls in the padding adds
    nothing, so the GEMM never multiplies padding.

    Where the output is as wide as the input (the usual "same" pads), a tap's
    products line up with the output plane at one flat shift: each tap is one
    long run over its valid rows, which vectorises, where row-by-row runs of 7
    to 28 values would mostly fall in the scalar remainder. The run also
    passes the columns that the tap must skip (those whose input column is
    off the image, where the shift wraps to the next row); their values are
    saved before the run and written back after it. Narrower outputs go row
    by row.
    """
    n, groups, taps, mg, hw = products.shape
    out_h, out_w = y.shape[2], y.shape[3]
    h, kernel_h = hw // w, taps // kernel_w
    same = out_w == w
    saved = np.empty(out_h * out_w, y.dtype)
    for i in range(n):
        for g in range(groups):
            for m in range(mg):
                plane = y[i, g * mg + m].reshape(out_h * out_w)
                b = bias[g * mg + m]
                for o in range(plane.size):
                    plane[o] = b
                for kh in range(kernel_h):
                    shift_h = kh * dilation_h - pad_top
                    oh_lo, oh_hi = max(0, -shift_h), min(out_h, h - shift_h)
                    for kw in range(kernel_w):
                        shift_w = kw * dilation_w - pad_left
                        ow_lo, ow_hi = max(0, -shift_w), min(out_w, w - shift_w)
                        if oh_lo >= oh_hi or ow_lo >= ow_hi:
                            continue
                        src = products[i, g, kh * kernel_w + kw, m]
                        if same:
                            start, stop = oh_lo * w + ow_lo, (oh_hi - 1) * w + ow_hi
                            _skipped_columns(plane, saved, w, oh_lo, oh_hi, ow_lo, ow_hi, False)
                            run = plane[start:stop]
                            shifted = src[start + shift_h * w + shift_w :]
                            for o in range(stop - start):
                                run[o] += shifted[o]
                            _skipped_columns(plane, saved, w, oh_lo, oh_hi, ow_lo, ow_hi, True)
                        else:
                            for oh in range(oh_lo, oh_hi):
                                row = plane[oh * out_w :]
                                line = src[(oh + shift_h) * w :]  # not shifted by shift_w: it may be < 0
                                for o in range(ow_lo, ow_hi):
                                    row[o] += line[o + shift_w]
                if z is not None:
                    skip = z[i, g * mg + m].reshape(plane.size)
                    for o in range(plane.size):
                        plane[o] += skip[o]
                _activate(plane, act, alpha, beta, lo, hi)


def epilogue(y, bias, z, act, alpha, beta, lo, hi):
    """``y = act(y + bias + z)`` in place on ``y[N, M, P]``, ``bias[M]``, ``z`` None or like ``y``."""
    n, m_out, p = y.shape
    for i in range(n):
        for m in range(m_out):
            out = y[i, m]
            b = bias[m]
            if z is None:
                for o in range(p):
                    out[o] += b
            else:
                skip = z[i, m]
                for o in range(p):
                    out[o] += b + skip[o]
            _activate(out, act, alpha, beta, lo, hi)


def winograd_scatter(tiles, z, y, row0, act, alpha, beta, lo, hi):
    """Winograd's output tiles into output rows: ``y[m, row0 + t*r + a, t*w + b] = act(tiles[a, b, m, r, w] + z)``.

    ``tiles [t, t, M, R, W]``, ``y [M, H, W_out]`` (and ``z`` None or like
    ``y``); tiles past the edges of ``y`` are cropped.
    """
    t, _, m_out, r_tiles, w_tiles = tiles.shape
    h, w = y.shape[1], y.shape[2]
    for m in range(m_out):
        for r in range(r_tiles):
            for a in range(t):
                row = row0 + t * r + a
                if row >= h:
                    break
                out = y[m, row]
                for j in range(w_tiles):
                    for b in range(min(t, w - t * j)):
                        out[t * j + b] = tiles[a, b, m, r, j]
                if z is not None:
                    skip = z[m, row]
                    for o in range(w):
                        out[o] += skip[o]
                _activate(out, act, alpha, beta, lo, hi)
