"""Conv, ConvTranspose, ConvInteger (and com.microsoft FusedConv) on numpy + BLAS.

Each factory packs constant weights (and bias) once and resolves the geometry
once per input shape. The Conv paths, chosen per call from the shapes:

* pointwise (1x1, stride 1, no pads): one GEMM on the input itself;
* depthwise (one input channel per group): with compiled loops on
  (:mod:`ortcore_cpu.jit`) and a 2-D float32/float64 input, one loop over
  the output with the bias, FusedConv's Z and activation fused in
  (:func:`._conv_loops.depthwise`, or ``depthwise_3x3`` for 3x3 stride 1
  with one output per channel); otherwise a sum over kernel taps of
  shifted views times per-channel weights, laid out so numpy's inner loops
  are long;
* 3x3 stride 1 with enough channels and tiles: Winograd F(4x4, 3x3) (4x fewer
  multiplies than direct), or F(2x2, 3x3) (2.25x fewer) on small images;
* few outputs (stride 1, M/group <= C/group / 2, or <= C/group on images of 8x8
  and more with compiled loops on): "kn2row", one GEMM of every
  tap's weights with the flattened image, then shifted sums: on 2-D images
  with compiled loops on, over the unpadded image with the bias, Z and
  activation in the same pass (:func:`._conv_loops.tap_sum`), otherwise over
  the padded image;
* general: im2col through a strided view (one copy, with a row of ones that
  makes the GEMM add the bias), then one GEMM batched over ``[N, group]``;
  large images are built in blocks of output rows so the columns stay cached.

After the GEMM paths, the bias (where the GEMM did not add it), Z and the
activation are one compiled pass over the output (:func:`._conv_loops.epilogue`)
with compiled loops on, else up to three numpy passes. Whether a kernel uses
the compiled loops is fixed when it is created.

With compiled loops on, 2-D float32 convs that are not depthwise run on the
GEMM engine (:mod:`._gemm`) instead of numpy's BLAS, which adds the bias, Z
and a clip to each tile of its products (:func:`_engine_conv`): Winograd
with every transform an engine GEMM, kn2row, an implicit GEMM for the other
other convs with a real window (:func:`_implicit_gemm`: no im2col matrix,
the engine packs its strips straight from the image), a plain GEMM for
1x1 convs, and im2col only where a pad is negative.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import ml_dtypes
import numpy as np
from numpy.lib.stride_tricks import as_strided

from ortcore.errors import InvalidArgument
from ortcore.window_geometry import transpose_window
from ortcore_cpu import jit
from ortcore_cpu.ops.nn import _conv_loops
from ortcore_cpu.ops.nn._spatial import Window, pad_input, patches, taps, window
from ortcore_cpu.registry import kernel

_FLOAT = (np.float16, np.float32, np.float64, ml_dtypes.bfloat16)
# im2col column buffers above this many bytes are built block by block.
_COLS_BLOCK_BYTES = 4 << 20


class _Tiles:
    """One Winograd F(m x m, 3x3) variant: ``m x m`` outputs from ``n x n`` inputs, n = m + 2.

    ``bt`` (input), ``g`` (kernel) and ``at`` (output) are the 1-D transforms
    (Lavin & Gray, 2015); ``bt (x) bt`` transforms a flattened input tile in
    one GEMM. Column 1 of ``at`` is all ones, so adding the bias to transformed
    element ``(1, 1)`` adds it to every output of the tile.
    """

    def __init__(self, bt: list[list[float]], g: list[list[float]], at: list[list[float]]) -> None:
        self.bt, self.g, self.at = (np.array(a, dtype=np.float64) for a in (bt, g, at))
        self.m, self.n = self.at.shape
        if not np.all(self.at[:, 1] == 1):
            raise AssertionError("the bias trick needs a column of ones in A^T")
        self._cast: dict[np.dtype, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def transforms(self, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(bt (x) bt, at, at^T)`` in ``dtype``."""
        cast = self._cast.get(dtype)
        if cast is None:
            at = self.at.astype(dtype)
            cast = self._cast[dtype] = (np.kron(self.bt, self.bt).astype(dtype), at, np.ascontiguousarray(at.T))
        return cast

    @functools.cached_property
    def panels(self) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
        """The GEMM engine's packing of ``bt (x) bt`` and ``at (x) at``: the whole input and output transforms."""
        from ortcore_cpu.ops.nn import _gemm

        return tuple(_gemm.pack(np.kron(a, a)[None].astype(np.float32), None) for a in (self.bt, self.at))


_F2 = _Tiles(
    [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]],
    [[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]],
    [[1, 1, 1, 0], [0, 1, -1, -1]],
)
# points 0, 1, -1, 1/2, -2 and infinity: a 2.5x smaller max error (1/1.5 RMS)
# than the usual 0, 1, -1, 2, -2 in float32 (measured on 28x28 512->256)
_F4 = _Tiles(
    [
        [1, -3 / 2, -2, 3 / 2, 1, 0],
        [0, -1, 1 / 2, 5 / 2, 1, 0],
        [0, 1, -5 / 2, 1 / 2, 1, 0],
        [0, -2, -1, 2, 1, 0],
        [0, 1 / 2, -1, -1 / 2, 1, 0],
        [0, 1, -3 / 2, -2, 3 / 2, 1],
    ],
    [
        [1, 0, 0],
        [1 / 3, 1 / 3, 1 / 3],
        [-1 / 3, 1 / 3, -1 / 3],
        [-16 / 15, -8 / 15, -4 / 15],
        [1 / 15, -2 / 15, 4 / 15],
        [0, 0, 1],
    ],
    [[1, 1, 1, 1, 1, 0], [0, 1, -1, 1 / 2, -2, 0], [0, 1, 1, 1 / 4, 4, 0], [0, 1, -1, 1 / 8, -8, 1]],
)
# Winograd works in blocks of tile rows whose transformed input fits in this many
# bytes, and runs its memory-bound transforms in chunks of about _WINO_CHUNK_BYTES
_WINO_BLOCK_BYTES = 16 << 20
_WINO_CHUNK_BYTES = 2 << 20


def compute_dtype(dtype: np.dtype) -> np.dtype:
    """float16/bfloat16 run through float32 BLAS; float32/float64 stay as they are."""
    dtype = np.dtype(dtype)
    return np.dtype(np.float32) if dtype.kind != "f" or dtype.itemsize < 4 else dtype


class _Weights:
    """Conv weights ``[M, C/group, *k]`` (and bias) packed for the GEMM and depthwise paths.

    ``mat`` is ``[group, M/group, C/group * prod(k)]``; ``mat_bias`` appends the
    bias as one more column, so that an im2col GEMM adds it through a row of
    ones in the column buffer instead of a separate pass over the output.
    """

    def __init__(self, w: np.ndarray, group: int, dtype: np.dtype, bias: np.ndarray | None = None) -> None:
        m = w.shape[0]
        if m % group:
            raise InvalidArgument(f"Conv: {m} output channels are not divisible by group {group}")
        self.shape = w.shape
        self.group = group
        nd = w.ndim - 2
        w = np.asarray(w, dtype=dtype)
        self.mat = np.ascontiguousarray(w.reshape(group, m // group, -1))
        self.bias = None if bias is None else np.asarray(bias, dtype=dtype).reshape(-1, *(1,) * nd)
        # the compiled loops take the bias as [M], zeros where there is none
        self.bias_vector = np.zeros(m, dtype) if bias is None else np.ascontiguousarray(self.bias.reshape(-1))
        self.mat_bias = None
        if bias is not None and nd and any(k > 1 for k in w.shape[2:]):
            column = np.asarray(bias, dtype=dtype).reshape(group, m // group, 1)
            self.mat_bias = np.ascontiguousarray(np.concatenate([self.mat, column], axis=2))
        self._w = w
        self._tap_major: np.ndarray | None = None
        self._winograd: dict[int, np.ndarray] = {}
        self._panels: dict[tuple[str, int | None], tuple[np.ndarray, np.ndarray]] = {}
        self._shifts: dict[tuple[int, int, tuple[int, ...]], np.ndarray] = {}
        self.depthwise = w.shape[1] == 1 and group > 1
        if self.depthwise:
            self.taps_last = np.ascontiguousarray(w.reshape(m, -1).T)  # [taps, M]
            self.taps = self.taps_last.reshape(-1, m, *(1,) * nd)  # broadcasts over NCHW
            self.planes = np.ascontiguousarray(w.reshape(m, *w.shape[2:]))  # [M, *k]

    def winograd(self, tiles: _Tiles) -> np.ndarray:
        """``[n*n, M, C]``: the 3x3 kernels in the Winograd domain of ``tiles``, G g G^T.

        Computed once per node in float64, then rounded to the compute dtype.
        """
        u = self._winograd.get(tiles.m)
        if u is None:
            u = np.einsum("ik,mckl,jl->ijmc", tiles.g, self._w.astype(np.float64), tiles.g)
            u = self._winograd[tiles.m] = np.ascontiguousarray(u.reshape(-1, *self.shape[:2]).astype(self._w.dtype))
        return u

    def panels(self, what: str = "mat", tiles: _Tiles | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The GEMM engine's packing (:func:`._gemm.pack`) of ``mat`` with the bias, of ``tap_major``
        without it, or of the Winograd weights of ``tiles`` with the bias on element (1, 1); packed once."""
        key = (what, None if tiles is None else tiles.m)
        packed = self._panels.get(key)
        if packed is None:
            from ortcore_cpu.ops.nn import _gemm

            if what == "mat":
                packed = _gemm.pack(self.mat, self.bias_vector)
            elif what == "tap_major":
                packed = _gemm.pack(self.tap_major, None)
            else:  # the bias goes to transformed element (1, 1), which adds it to every output of a tile
                u = self.winograd(tiles)
                bias = np.zeros(u.shape[:2], np.float32)
                bias[tiles.n + 1] = self.bias_vector
                packed = _gemm.pack(u, bias.reshape(-1))
            self._panels[key] = packed
        return packed

    def shifts(self, plane: int, row: int, win: Window) -> np.ndarray:
        """int64 ``[C/group * kh * kw]``: where each row of the implicit GEMM starts in a padded
        image of ``plane`` floats per channel and ``row`` per row (:func:`_implicit_gemm`)."""
        key = (plane, row, win.dilations)
        offsets = self._shifts.get(key)
        if offsets is None:
            (kh, kw), (dh, dw) = self.shape[2:], win.dilations
            taps = (np.arange(kh)[:, None] * dh * row + np.arange(kw) * dw).reshape(-1)
            offsets = self._shifts[key] = (np.arange(self.shape[1])[:, None] * plane + taps).reshape(-1).astype(np.int64)
        return offsets

    @property
    def tap_major(self) -> np.ndarray:
        """``[group, taps * M/group, C/group]``: every tap's weights stacked for one GEMM."""
        if self._tap_major is None:
            m, cg = self.shape[:2]
            w = self._w.reshape(self.group, m // self.group, cg, -1)
            self._tap_major = np.ascontiguousarray(w.transpose(0, 3, 1, 2)).reshape(self.group, -1, cg)
        return self._tap_major


def _conv_window(x_shape: tuple[int, ...], kernel: tuple[int, ...], attrs: dict[str, Any]) -> Window:
    return window(
        x_shape[2:],
        kernel,
        strides=attrs["strides"],
        dilations=attrs["dilations"],
        pads=attrs["pads"],
        auto_pad=attrs["auto_pad"],
    )


def _pointwise(win: Window) -> bool:
    return all(k == 1 and s == 1 for k, s in zip(win.kernel, win.strides)) and not any(win.begin + win.end)


def _tap_sum(xp: np.ndarray, tap_weights: np.ndarray, win: Window, out_shape: tuple[int, ...], axis: int) -> np.ndarray:
    """Sum over kernel taps of the tap's view of ``xp`` times its broadcast weights."""
    y = np.empty(out_shape, dtype=xp.dtype)
    tmp = np.empty_like(y)
    for i, (_, view) in enumerate(taps(xp, win, axis)):
        if i == 0:
            np.multiply(view, tap_weights[0], out=y)
        else:
            np.multiply(view, tap_weights[i], out=tmp)
            y += tmp
    return y


def _flat_offsets(padded: tuple[int, ...], win: Window) -> list[int]:
    """Offset of each kernel tap in the flattened padded image (row-major taps)."""
    return [
        sum(t * d * math.prod(padded[a + 1 :]) for a, (t, d) in enumerate(zip(tap, win.dilations)))
        for tap in itertools.product(*(range(k) for k in win.kernel))
    ]


def _flat_padded(x: np.ndarray, win: Window) -> tuple[np.ndarray, tuple[int, ...], list[int], int]:
    """``(flat [N, C, L], padded spatial shape, tap offsets, output run length)``.

    Outputs are computed over whole padded rows (``length`` flat positions);
    ``flat`` is long enough for the last tap's run.
    """
    n, c = x.shape[:2]
    xp = pad_input(x, win)
    padded = xp.shape[2:]
    length = win.out[0] * math.prod(padded[1:])
    offsets = _flat_offsets(padded, win)
    need, total = max(offsets) + length, math.prod(padded)
    if need <= total:
        return xp.reshape(n, c, -1)[:, :, :need], padded, offsets, length
    flat = np.empty((n, c, need), dtype=xp.dtype)
    flat[:, :, :total] = xp.reshape(n, c, -1)
    flat[:, :, total:] = 0
    return flat, padded, offsets, length


def _crop_rows(y: np.ndarray, padded: tuple[int, ...], win: Window) -> np.ndarray:
    """``[N, M, out0 * prod(padded[1:])]`` computed over padded rows -> ``[N, M, *out]``."""
    y = y.reshape(*y.shape[:2], win.out[0], *padded[1:])
    return np.ascontiguousarray(y[(Ellipsis, *(slice(0, o) for o in win.out[1:]))])


def _kn2row(x: np.ndarray, wp: _Weights, win: Window) -> np.ndarray:
    """Stride-1 conv as one GEMM of all taps' weights with the flat image, then shifted sums.

    No im2col: the GEMM writes ``taps * M`` rows that are summed at each tap's
    flat offset, which beats copying ``taps * C`` rows when M is well below C.
    This is the numpy path (a pass per tap over the padded image); 2-D images
    with compiled loops on take :func:`_kn2row_loop`.
    """
    n, c = x.shape[:2]
    g, cg = wp.group, c // wp.group
    mg = wp.shape[0] // g
    flat, padded, offsets, length = _flat_padded(x, win)
    z = np.matmul(wp.tap_major, flat.reshape(n, g, cg, -1))  # [N, g, taps*Mg, need]
    z = z.reshape(n, g, len(offsets), mg, -1)
    y = np.empty((n, g, mg, length), dtype=z.dtype)
    off = offsets[0]
    if wp.bias is not None:
        np.add(z[:, :, 0, :, off : off + length], wp.bias.reshape(g, mg, 1), out=y)
    else:
        y[...] = z[:, :, 0, :, off : off + length]
    for t, off in enumerate(offsets[1:], 1):
        y += z[:, :, t, :, off : off + length]
    return _crop_rows(y.reshape(n, g * mg, length), padded, win)


def _kn2row_loop(
    x: np.ndarray, wp: _Weights, win: Window, z: np.ndarray | None, act: _Activation | None, loops: _Loops
) -> np.ndarray:
    """2-D kn2row on the unpadded image, with the bias, Z and activation in one compiled pass.

    The GEMM multiplies no padding (on a 7x7 image, 49 columns instead of the
    83 the padded flat image needs) and there is no padded copy; the sums
    (:func:`._conv_loops.tap_sum`) skip the taps that fall in the padding.
    """
    n, c, h, w = x.shape
    g = wp.group
    if loops.gemm is not None and x.dtype == np.float32:
        products = np.empty((n, g, wp.tap_major.shape[1], h * w), x.dtype)
        loops.gemm(*wp.panels("tap_major"), x.reshape(n * g, c // g, h * w), products.reshape(n * g, -1, h * w))
    else:
        products = np.matmul(wp.tap_major, x.reshape(n, g, c // g, h * w))  # [N, g, taps*Mg, H*W]
    products = products.reshape(n, g, math.prod(win.kernel), wp.shape[0] // g, h * w)
    y = np.empty((n, wp.shape[0], *win.out), dtype=x.dtype)
    activation = (act or _IDENTITY).arguments(y.dtype)
    geometry = (win.kernel[1], *win.dilations, *win.begin)
    loops.tap_sum(products, wp.bias_vector, _skip_input(z, y), y, w, *geometry, *activation)
    return y


def _winograd_tiles(wp: _Weights, win: Window) -> _Tiles | None:
    """The Winograd variant that beats the GEMM paths for this conv, or None.

    Only 3x3 stride-1 undilated 2-D convs with one group. Per tile, Winograd
    saves GEMM work in proportion to ``C*M`` but pays transforms in proportion
    to ``C + M``, so the rule is on ``h = C*M / (C + M)`` and on the number of
    tiles per image (the GEMMs get slow below about 49 tiles). Measured
    (batch 1, 2 BLAS threads, 3x3 pad 1) against the im2col/kn2row GEMM, per
    layer alone and inside the light models:

    * F(4x4, 3x3) won from h = 48 with 49 tiles (28x28 128->128 0.74, 27x27
      96->128 0.81, 55x55 64->192 0.90 alone, 0.72 inside Inception) and from
      h = 40 with 196+ tiles (112x112 64->128 0.85), by 1.6-2x on the wide VGG
      layers (56x56 256->256 0.52, 28x28 512->512 0.48); it lost below that
      (28x28 64->128 1.03, 27x27 32->128 1.03, 56x56 128->32 1.27 against
      kn2row) and on every image with 16 tiles or fewer (13x13, 7x7). At
      h = 32 (56x56 64->64, 224x224 64->64) it won 5-15% alone but broke even
      or lost inside ResNet-50 and VGG-19, so those stay on the GEMM.
    * F(2x2, 3x3) won only on 13x13 to 24x24 images with h >= 128 (14x14
      256->256 0.88, 512->512 0.82), not at h = 107 (13x13 160->320 1.05)
      nor on 7x7 (512->512 1.23).
    """
    if wp.group != 1 or win.kernel != (3, 3) or win.strides != (1, 1) or win.dilations != (1, 1):
        return None
    m, c = wp.shape[:2]
    h = c * m / (c + m)
    tiles4 = math.prod(-(-o // 4) for o in win.out)
    if tiles4 >= 49:
        return _F4 if h >= 48 or (h >= 40 and tiles4 >= 196) else None
    return _F2 if h >= 128 and math.prod(-(-o // 2) for o in win.out) >= 49 else None


def _into_frame(xp: np.ndarray, x: np.ndarray, begin: tuple[int, int]) -> None:
    """Copy the image ``x`` into the zero-padded frame ``xp`` at ``begin`` (rows, columns), cropping what
    does not fit, and zero the frame's borders."""
    (bh, bw), (h, w) = begin, x.shape[-2:]
    h, w = min(h, xp.shape[-2] - bh), min(w, xp.shape[-1] - bw)
    xp[..., :bh, :] = xp[..., bh + h :, :] = xp[..., :bw] = xp[..., bw + w :] = 0
    xp[..., bh : bh + h, bw : bw + w] = x[..., :h, :w]


class _WinoGrid(NamedTuple):
    """One Winograd conv's tiling: sizes, tile rows per block, and the padded frame of one image."""

    images: int
    channels: int
    outputs: int
    m: int  # outputs per tile side
    n: int  # inputs per tile side
    nn: int
    out: tuple[int, int]
    tiles: tuple[int, int]  # tile rows and columns
    rows: int  # tile rows per block
    cap: int  # tiles per block
    frame: np.ndarray  # [C, m * tile rows + 2, m * tile columns + 2]: exactly the tiles


def _wino_grid(x: np.ndarray, wp: _Weights, win: Window, tiles: _Tiles) -> _WinoGrid:
    nb, c = x.shape[:2]
    t, n = tiles.m, tiles.n
    oh, ow = win.out
    th, tw = -(-oh // t), -(-ow // t)
    rows = max(1, min(th, _WINO_BLOCK_BYTES // (n * n * c * tw * x.itemsize)))
    frame = np.empty((c, t * th + 2, t * tw + 2), dtype=x.dtype)
    return _WinoGrid(nb, c, wp.shape[0], t, n, n * n, (oh, ow), (th, tw), rows, rows * tw, frame)


def _winograd(x: np.ndarray, wp: _Weights, win: Window, tiles: _Tiles) -> np.ndarray:
    """Conv 3x3 (stride 1) by Winograd F(m x m, 3x3), with the bias, in blocks of tile rows.

    Per block of tile rows: gather the overlapping ``n x n`` input tiles of a
    zero-padded copy into ``D`` (``n*n`` rows) and transform them with one GEMM,
    ``V = (B^T (x) B^T) D``; do the ``n*n`` GEMMs ``Z_k = U_k V_k``; then
    ``Y = A^T Z A`` as two GEMMs, the second writing each output row
    contiguously so that the scatter into ``[N, M, H, W]`` is row copies.

    The GEMMs want many tiles per block, but the gathers and transforms are
    memory-bound, so they run in chunks of ``_WINO_CHUNK_BYTES`` (of channels
    or tile rows on the way in, of output channels on the way out) whose
    intermediates stay in cache. numpy copies pay per innermost run, so the
    gather runs along tile columns, ``V [n*n, C, tiles]``, on wide images, and
    along channels, ``V [n*n, tiles, C]`` (entering its GEMM transposed), when
    there are 8 or more channels per tile column: measured 2x faster on 14x14
    and 28x28 images with 128-512 channels, while the whole conv got slower
    that way at 56x56 64->64.
    """
    nb, c, m, t, n, nn, (oh, ow), (th, tw), rows, cap, xp = _wino_grid(x, wp, win, tiles)
    dt, size = x.dtype, x.itemsize
    kb, at, att = tiles.transforms(dt)
    u = wp.winograd(tiles)
    bias = None if wp.bias is None else wp.bias.reshape(m, 1)
    channels_inner = c >= 8 * tw
    # chunks: of tile rows or channels for the input transform, output channels for the output one
    chunk_in = max(1, _WINO_CHUNK_BYTES // (nn * size * (tw * c if channels_inner else cap)))
    chunk_out = max(1, min(m, _WINO_CHUNK_BYTES // (t * n * cap * size)))
    dbuf = np.empty(nn * (min(rows, chunk_in) * tw * c if channels_inner else min(c, chunk_in) * cap), dtype=dt)
    vbuf = np.empty(nn * c * cap, dtype=dt)
    zbuf = np.empty(nn * m * cap, dtype=dt)
    sbuf = np.empty(t * n * chunk_out * cap, dtype=dt)
    ybuf = np.empty(t * t * chunk_out * cap, dtype=dt)
    y = np.empty((nb, m, oh, ow), dtype=dt)
    s0, s1, s2 = xp.strides
    for i in range(nb):
        _into_frame(xp, x[i], win.begin)
        for r0 in range(0, th, rows):
            r = min(rows, th - r0)
            k = r * tw
            v = vbuf[: nn * c * k].reshape(nn, -1)
            if channels_inner:
                for q0 in range(0, r, chunk_in):
                    q = min(chunk_in, r - q0)
                    d = dbuf[: nn * q * tw * c].reshape(n, n, q, tw, c)
                    np.copyto(d, as_strided(xp[:, t * (r0 + q0) :], d.shape, (s1, s2, t * s1, t * s2, s0)))
                    np.matmul(kb, d.reshape(nn, -1), out=v[:, q0 * tw * c : (q0 + q) * tw * c])
                v = v.reshape(nn, k, c).transpose(0, 2, 1)
            else:
                for c0 in range(0, c, chunk_in):
                    cc = min(chunk_in, c - c0)
                    d = dbuf[: nn * cc * k].reshape(n, n, cc, r, tw)
                    np.copyto(d, as_strided(xp[c0:, t * r0 :], d.shape, (s1, s2, s0, t * s1, t * s2)))
                    np.matmul(kb, d.reshape(nn, -1), out=v[:, c0 * k : (c0 + cc) * k])
                v = v.reshape(nn, c, k)
            z = np.matmul(u, v, out=zbuf[: nn * m * k].reshape(nn, m, k))
            if bias is not None:
                z[n + 1] += bias
            zs = z.strides
            for m0 in range(0, m, chunk_out):
                mc = min(chunk_out, m - m0)
                # rows of A^T per column b of the tile, [b, a, (M, k)] -> [b, t, (M, k)] ...
                zb = as_strided(z[0, m0:], (n, n, mc * k), (zs[0], n * zs[0], zs[2]))
                sb = np.matmul(at, zb, out=sbuf[: n * t * mc * k].reshape(n, t, -1))
                # ... then columns: [t, (M, k), b] -> [t, (M, k), t] = [t, M, r, t * tw]
                yt = np.matmul(sb.transpose(1, 2, 0), att, out=ybuf[: t * t * mc * k].reshape(t, -1, t))
                yt = yt.reshape(t, mc, r, t * tw)
                for a in range(t):
                    dst = y[i, m0 : m0 + mc, t * r0 + a : t * (r0 + r) : t]
                    np.copyto(dst, yt[a, :, : dst.shape[1], :ow])
    return y


def _winograd_engine(
    x: np.ndarray, wp: _Weights, win: Window, tiles: _Tiles, z: np.ndarray | None, act: _Activation | None, loops: _Loops
) -> np.ndarray:
    """float32 Winograd F(m x m, 3x3) on the GEMM engine, with the bias, Z and activation.

    All three steps are engine GEMMs with weights packed once: the input
    transform ``V = (B^T (x) B^T) D`` of the gathered tiles, the ``n*n``
    products ``Z_k = U_k V_k`` (which add the bias to transformed element
    (1, 1)), and the output transform ``(A^T (x) A^T) Z``, which gives each
    tile's ``m*m`` outputs at once. One compiled pass
    (:func:`._conv_loops.winograd_scatter`) then writes them into the
    output rows, adding Z and activating. As on the numpy path, the
    transforms run in chunks (of channels, then of output channels) whose
    intermediates stay in cache.
    """
    nb, c, m, t, n, nn, (oh, ow), (th, tw), rows, cap, xp = _wino_grid(x, wp, win, tiles)
    size = x.itemsize
    to_tiles, from_tiles = tiles.panels
    u = wp.panels("winograd", tiles)
    chunk_in = max(1, _WINO_CHUNK_BYTES // (nn * size * cap))
    chunk_out = max(1, min(m, _WINO_CHUNK_BYTES // (nn * cap * size)))
    dbuf = np.empty(nn * min(c, chunk_in) * cap, dtype=x.dtype)
    vbuf = np.empty(nn * c * cap, dtype=x.dtype)
    zbuf = np.empty(nn * m * cap, dtype=x.dtype)
    ybuf = np.empty(t * t * chunk_out * cap, dtype=x.dtype)
    y = np.empty((nb, m, oh, ow), dtype=x.dtype)
    skip = _skip_input(z, y)
    activation = (act or _IDENTITY).arguments(y.dtype)
    s0, s1, s2 = xp.strides
    for i in range(nb):
        _into_frame(xp, x[i], win.begin)
        for r0 in range(0, th, rows):
            r = min(rows, th - r0)
            k = r * tw
            v = vbuf[: nn * c * k].reshape(nn, c * k)
            for c0 in range(0, c, chunk_in):
                cc = min(chunk_in, c - c0)
                d = dbuf[: nn * cc * k].reshape(n, n, cc, r, tw)
                np.copyto(d, as_strided(xp[c0:, t * r0 :], d.shape, (s1, s2, s0, t * s1, t * s2)))
                loops.gemm(*to_tiles, d.reshape(1, nn, cc * k), v[None, :, c0 * k : (c0 + cc) * k])
            products = zbuf[: nn * m * k].reshape(nn, m, k)
            loops.gemm(*u, v.reshape(nn, c, k), products)
            for m0 in range(0, m, chunk_out):
                mc = min(chunk_out, m - m0)
                yt = ybuf[: t * t * mc * k].reshape(1, t * t, mc * k)
                loops.gemm(*from_tiles, products[:, m0 : m0 + mc].reshape(1, nn, mc * k), yt)
                part = None if skip is None else skip[i, m0 : m0 + mc]
                loops.winograd_scatter(yt.reshape(t, t, mc, r, tw), part, y[i, m0 : m0 + mc], t * r0, *activation)
    return y


def _engine_clip(act: _Activation | None) -> tuple[bool, tuple[float, float]]:
    """``(clips, (lo, hi))``: whether the GEMM engine applies all of ``act`` (none, Relu or Clip), and the
    clip it applies to each tile; other activations take a pass after it."""
    clips = act is None or act.code == _conv_loops.CLIP
    return clips, ((-math.inf, math.inf) if act is None or not clips else (act.lo, act.hi))


@functools.lru_cache(maxsize=256)
def _windows(out: tuple[int, int], strides: tuple[int, int], row: int) -> np.ndarray:
    """int64 ``[OH * OW]``: where each output's window starts in an image of ``row`` floats per row."""
    starts = (np.arange(out[0])[:, None] * strides[0] * row + np.arange(out[1]) * strides[1]).reshape(-1)
    starts = starts.astype(np.int64)
    starts.flags.writeable = False
    return starts


def _implicit_gemm(
    x: np.ndarray, wp: _Weights, win: Window, z: np.ndarray | None, act: _Activation | None, loops: _Loops
) -> np.ndarray:
    """2-D float32 conv as one implicit GEMM on the engine: no im2col matrix, no sums after it.

    In the image zero-padded to exactly the windows' reach and flattened
    per channel, element ``(c, kh, kw)`` of output ``(oh, ow)``'s window is
    at ``c*plane + kh*dh*Wp + kw*dw`` (the row's offset, by tap) plus
    ``oh*sh*Wp + ow*sw`` (the column's, by output). The engine packs its
    strips of the im2col matrix straight from there
    (:meth:`._gemm.Engine.gathered`): runs of consecutive or stride-2 floats
    are vector loads, other strides gathers. An unpadded contiguous input is
    read where it is. The bias, Z and a clip (also Relu) are applied in the GEMM.
    """
    n, c = x.shape[:2]
    g = wp.group
    (kh, kw), (dh, dw), (sh, sw), (oh, ow) = win.kernel, win.dilations, win.strides, win.out
    if any(win.begin) or any(win.end) or not x.flags.c_contiguous:
        frame = np.empty((n, c, (oh - 1) * sh + (kh - 1) * dh + 1, (ow - 1) * sw + (kw - 1) * dw + 1), np.float32)
        _into_frame(frame, x, win.begin)
    else:
        frame = x
    hp, wpad = frame.shape[2:]
    mg = wp.shape[0] // g
    y = np.empty((n, wp.shape[0], oh, ow), np.float32)
    skip = _skip_input(z, y)
    clips, clip = _engine_clip(act)
    loops.gemm.gathered(
        *wp.panels(),
        frame.reshape(n * g, -1),
        wp.shifts(hp * wpad, wpad, win),
        _windows(win.out, win.strides, wpad),
        y.reshape(n * g, mg, oh * ow),
        None if skip is None else skip.reshape(n * g, mg, oh * ow),
        *clip,
    )
    if not clips:
        _epilogue(y, None, None, act, loops.epilogue)
    return y


def _flat_tap_sum(x: np.ndarray, tap_weights: np.ndarray, win: Window) -> np.ndarray:
    """Stride-1 per-channel tap sum on the flattened padded image.

    Each tap is then one contiguous run per channel (the image shifted by the
    tap's flat offset); outputs are computed over whole padded rows and the
    extra columns are cropped at the end.
    """
    flat, padded, offsets, length = _flat_padded(x, win)
    y = np.empty((*x.shape[:2], length), dtype=flat.dtype)
    tmp = np.empty_like(y)
    for i, off in enumerate(offsets):
        view = flat[:, :, off : off + length]
        if i == 0:
            np.multiply(view, tap_weights[i], out=y)
        else:
            np.multiply(view, tap_weights[i], out=tmp)
            y += tmp
    return _crop_rows(y, padded, win)


def _depthwise(x: np.ndarray, wp: _Weights, win: Window) -> np.ndarray:
    """Depthwise conv: sum over taps of a shifted view times a per-channel weight.

    numpy pays per innermost row, so the layout is chosen for long rows: stride 1
    on the flattened image (rows span whole images) unless rows are narrow,
    otherwise channels-last (rows span channels) unless channels are few.
    """
    n, c = x.shape[:2]
    m = wp.shape[0]
    mult = m // c
    if mult > 1:
        x = np.repeat(x, mult, axis=1)
    narrow = win.out[-1] <= 14
    if all(s == 1 for s in win.strides) and not narrow:
        return _flat_tap_sum(x, wp.taps_last[:, :, None], win)
    if m < 2 * win.out[-1]:
        return _tap_sum(pad_input(x, win), wp.taps, win, (n, m, *win.out), 2)
    xl = np.moveaxis(x, 1, -1)
    xp = pad_input(xl, win, axis=1)
    if xp is xl:
        xp = np.ascontiguousarray(xl)
    y = _tap_sum(xp, wp.taps_last, win, (n, *win.out, m), 1)
    return np.ascontiguousarray(np.moveaxis(y, -1, 1))


def _view(a: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``a.reshape(shape)`` that must not copy (it is written through)."""
    v = a.reshape(shape)
    if v.size and not np.may_share_memory(v, a):
        raise AssertionError(f"reshape of {a.shape} to {shape} copied")
    return v


class _Fused(NamedTuple):
    """What the GEMM engine adds to a product: FusedConv's Z and the clip part of its activation."""

    engine: Any
    z: np.ndarray | None
    clip: tuple[float, float]


def _im2col_gemm(
    x: np.ndarray, wp: _Weights, win: Window, fused: _Fused | None = None
) -> tuple[np.ndarray, bool]:
    """General conv through im2col and GEMM; returns ``(y [N, g, M/g, P], bias_added)``.

    With numpy's BLAS the column buffer is ``[g, K (+1 row of ones for the
    bias), P]``; with the GEMM engine (``fused``) it is ``[g, K, P]`` and the
    engine adds the bias, Z and clip. Images whose buffer would exceed
    ``_COLS_BLOCK_BYTES`` are done in blocks of output rows.
    """
    n, c = x.shape[:2]
    g, mg, k = wp.mat.shape
    p = math.prod(win.out)
    y = np.empty((n, g, mg, p), dtype=x.dtype)
    if fused is None:
        mat = wp.mat if _pointwise(win) or wp.mat_bias is None else wp.mat_bias
    else:
        mat = wp.mat
        skip = None if fused.z is None else _skip_input(fused.z, y.reshape(n, g * mg, *win.out)).reshape(y.shape)

    def gemm(cols: np.ndarray, i: int | None, c0: int, c1: int) -> None:
        """Columns ``[c0, c1)`` of image ``i`` (None: of all) from ``cols [.., g, kk, c1 - c0]``."""
        images = slice(None) if i is None else slice(i, i + 1)
        out = y[images, :, :, c0:c1]
        if fused is None:
            np.matmul(mat, cols, out=out.reshape(out.shape[-4 if i is None else -3 :]))
            return
        z = None if skip is None else skip[images, :, :, c0:c1].reshape(-1, mg, c1 - c0)
        fused.engine(*wp.panels(), cols.reshape(-1, k, c1 - c0), out.reshape(-1, mg, c1 - c0), z, *fused.clip)

    if _pointwise(win):
        gemm(x.reshape(n, g, k, p), None, 0, p)
        return y, fused is not None
    cols = patches(pad_input(x, win), win)  # [N, C, *k, *out], a view
    kk = mat.shape[2]
    rows = win.out[0]
    inner = p // rows
    block = max(1, min(rows, _COLS_BLOCK_BYTES // (g * kk * inner * x.itemsize)))
    buf = np.empty(g * kk * block * inner * (n if block >= rows else 1), dtype=x.dtype)
    split = (g, c // g, *win.kernel)
    if block >= rows:  # one buffer for the whole batch, one batched GEMM
        part = buf.reshape(n, g, kk, p)
        _view(part[:, :, :k], (n, *split, *win.out))[...] = cols.reshape(n, *split, *win.out)
        if kk > k:
            part[:, :, k] = 1
        gemm(part, None, 0, p)
        return y, kk > k or fused is not None
    lead = (slice(None),) * (1 + len(win.kernel))
    for i in range(n):
        for r0 in range(0, rows, block):
            r1 = min(rows, r0 + block)
            part = buf[: g * kk * (r1 - r0) * inner].reshape(g, kk, -1)
            dest = _view(part[:, :k], (*split, r1 - r0, *win.out[1:]))
            dest[...] = cols[(i, *lead, slice(r0, r1))].reshape(dest.shape)
            if kk > k:
                part[:, k] = 1
            gemm(part, i, r0 * inner, r1 * inner)
    return y, kk > k or fused is not None


def _kn2row_beats_winograd(wp: _Weights, tiles: _Tiles) -> bool:
    """Whether kn2row's compiled path (where it applies) is faster than Winograd ``tiles``.

    Inside the light models, per layer: at h = 48 (28x28 96->96, Inception-v2)
    kn2row took 0.63x the time of F(4x4); at h = 64 (28x28 128->128, ResNet-50)
    1.54x, and 1.13-1.69x against F(4x4) and F(2x2) on VGG-19's layers with
    128-512 channels, 1.17x against F(2x2) on 14x14 256->256.
    """
    m, c = wp.shape[:2]
    return tiles is _F4 and c * m / (c + m) < 64


def _use_kn2row(wp: _Weights, win: Window, compiled: bool) -> bool:
    """Stride 1, a real kernel, and per group at most half as many outputs as inputs.

    Where the sums are ``compiled`` (:func:`_kn2row_loop`), also as many
    outputs as inputs on images of 64 outputs or more.

    kn2row writes and reads back ``taps * M`` rows where im2col copies ``taps *
    C``. At M = C the traffic is equal and the GEMM shapes decide: timed
    per layer inside the light models (compiled loops on, 2 BLAS threads),
    kn2row took 0.74x the time of im2col on VGG-19's 224x224 64->64, 0.73-0.91x
    on AlexNet's grouped 12x12 layers, 0.90-0.97x on 12x12 to 28x28 layers
    with 64-512 channels and 1.00x on 56x56 64->64, but 0.99-1.13x on 7x7
    (224->224, 512->512). The numpy path pads the image and keeps the half rule.
    """
    m, cg = wp.shape[:2]
    if not all(s == 1 for s in win.strides) or math.prod(win.kernel) == 1:
        return False
    mg = m // wp.group
    return 2 * mg <= cg or (compiled and mg <= cg and math.prod(win.out) >= 64)


def _conv(
    x: np.ndarray,
    wp: _Weights,
    win: Window,
    z: np.ndarray | None = None,
    act: _Activation | None = None,
    loops: _Loops | None = None,
) -> np.ndarray:
    """Conv of ``x`` (already in the compute dtype) with packed weights and bias, then ``act(y + z)``."""
    if x.shape[1] != wp.shape[1] * wp.group:
        raise InvalidArgument(
            f"Conv: input has {x.shape[1]} channels, weights {wp.shape} with group {wp.group} "
            f"expect {wp.shape[1] * wp.group}"
        )
    if x.size == 0:
        y = np.zeros((x.shape[0], wp.shape[0], *win.out), dtype=x.dtype)
        _epilogue(y, wp.bias, z, act)
        return y
    if wp.depthwise and loops is not None and x.ndim == 4 and min(win.begin) >= 0:
        return _depthwise_loop(x, wp, win, z, act, loops)
    if not wp.depthwise and loops is not None and loops.gemm is not None and x.dtype == np.float32 and x.ndim == 4:
        return _engine_conv(x, wp, win, z, act, loops)
    kn2row_loop = loops is not None and x.ndim == 4 and _use_kn2row(wp, win, compiled=True)
    if wp.depthwise:
        y, bias_added = _depthwise(x, wp, win), False
    elif (tiles := _winograd_tiles(wp, win)) and not (kn2row_loop and _kn2row_beats_winograd(wp, tiles)):
        y, bias_added = _winograd(x, wp, win, tiles), True
    elif kn2row_loop:
        return _kn2row_loop(x, wp, win, z, act, loops)
    elif _use_kn2row(wp, win, compiled=False):
        y, bias_added = _kn2row(x, wp, win), True
    else:
        y, bias_added = _im2col_gemm(x, wp, win)
        y = y.reshape(x.shape[0], wp.shape[0], *win.out)
    _epilogue(y, None if bias_added else wp.bias, z, act, None if loops is None else loops.epilogue)
    return y


def _winograd_on_engine(wp: _Weights, tiles: _Tiles) -> bool:
    """Whether Winograd ``tiles`` beats the engine's implicit GEMM (see :func:`_engine_conv`)."""
    m, c = wp.shape[:2]
    return tiles is _F2 or c * m / (c + m) >= 64


def _engine_conv(
    x: np.ndarray, wp: _Weights, win: Window, z: np.ndarray | None, act: _Activation | None, loops: _Loops
) -> np.ndarray:
    """2-D float32 conv on the GEMM engine, by the path that was fastest for its shape.

    Timed per layer (batch 1, the engine on 2 threads): Winograd F(4x4)
    where its rule holds and ``h = C*M/(C+M) >= 64`` (28x28 128->128 0.78x
    the implicit GEMM's time, VGG-19's 56x56 256->256 0.67x), F(2x2) where
    its rule holds (14x14 512->512 0.77x); kn2row where there are at most
    half as many outputs as inputs (DenseNet's 128->32: 0.6-0.8x of the
    implicit GEMM, which packs K x N floats for only 32 rows); the implicit
    GEMM for the other convs with a window or a stride (0.5-0.75x of kn2row
    or im2col on SqueezeNet's and Inception's 3x3 layers; a 7x7 stride-2
    stem 0.75x, a 3x3 stride-2 0.74x of im2col); a plain GEMM for 1x1.
    """
    tiles = _winograd_tiles(wp, win)
    if tiles is not None and _winograd_on_engine(wp, tiles):
        return _winograd_engine(x, wp, win, tiles, z, act, loops)
    if _use_kn2row(wp, win, compiled=False):
        return _kn2row_loop(x, wp, win, z, act, loops)
    if not _pointwise(win) and min(win.begin) >= 0:
        return _implicit_gemm(x, wp, win, z, act, loops)
    clips, clip = _engine_clip(act)
    y = _im2col_gemm(x, wp, win, _Fused(loops.gemm, z, clip))[0].reshape(x.shape[0], wp.shape[0], *win.out)
    if not clips:
        _epilogue(y, None, None, act, loops.epilogue)
    return y


def _skip_input(z: np.ndarray | None, y: np.ndarray) -> np.ndarray | None:
    """FusedConv's Z as the compiled loops read it: shaped like ``y``, C-contiguous, in its dtype."""
    return None if z is None else np.ascontiguousarray(np.broadcast_to(np.asarray(z, dtype=y.dtype), y.shape))


def _depthwise_loop(
    x: np.ndarray, wp: _Weights, win: Window, z: np.ndarray | None, act: _Activation | None, loops: _Loops
) -> np.ndarray:
    """2-D depthwise conv with the bias, Z and activation, in one compiled loop over the output."""
    y = np.empty((x.shape[0], wp.shape[0], *win.out), dtype=x.dtype)
    activation = (act or _IDENTITY).arguments(y.dtype)
    x, skip = np.ascontiguousarray(x), _skip_input(z, y)
    if _plain_3x3(wp, win):
        loops.depthwise_3x3(x, wp.planes, wp.bias_vector, skip, y, *win.begin, *activation)
        return y
    geometry = (*win.strides, *win.dilations, *win.begin)
    loops.depthwise(x, wp.planes, wp.bias_vector, skip, y, *geometry, *activation)
    return y


def _plain_3x3(wp: _Weights, win: Window) -> bool:
    """3x3, stride 1, no dilation, one output channel per input channel: :func:`._conv_loops.depthwise_3x3`."""
    return win.kernel == (3, 3) and win.strides == (1, 1) and win.dilations == (1, 1) and wp.shape[0] == wp.group


def _epilogue(
    y: np.ndarray,
    bias: np.ndarray | None,
    z: np.ndarray | None,
    act: _Activation | None,
    loop: Callable[..., None] | None = None,
) -> None:
    """``y = act(y + bias + z)`` in place (FusedConv's Z and activation): one compiled pass, or numpy's."""
    if bias is None and z is None and act is None:
        return
    if loop is not None:
        n, m = y.shape[:2]
        vector = np.zeros(m, y.dtype) if bias is None else bias.reshape(m)
        skip = _skip_input(z, y)
        skip = None if skip is None else skip.reshape(n, m, -1)
        loop(_view(y, (n, m, -1)), vector, skip, *(act or _IDENTITY).arguments(y.dtype))
        return
    if bias is not None:
        y += bias
    if z is not None:
        y += z
    if act is not None:
        act(y)


class _Loops(NamedTuple):
    """The compiled loops of one conv kernel (:mod:`ortcore_cpu.jit`), picked when it is created."""

    depthwise: Callable[..., None]
    epilogue: Callable[..., None]
    tap_sum: Callable[..., None]
    depthwise_3x3: Callable[..., None]
    winograd_scatter: Callable[..., None]
    gemm: Callable[..., None] | None  # the float32 GEMM engine (:mod:`._gemm`), None where it did not load


def _compiled_loops() -> _Loops | None:
    """The conv loops compiled, or None where compiled loops are off."""
    fns = (
        _conv_loops.depthwise,
        _conv_loops.epilogue,
        _conv_loops.tap_sum,
        _conv_loops.depthwise_3x3,
        _conv_loops.winograd_scatter,
    )
    loops = [jit.loop(fn) for fn in fns]
    return None if None in loops else _Loops(*loops, jit.gemm_engine())


class _ConvNode:
    """Per-node state shared by Conv and FusedConv: attributes, packed weights, geometry cache."""

    def __init__(self, ctx: Any, group: int, kernel_shape, attrs: dict[str, Any]) -> None:
        self.group = group
        self.kernel_shape = tuple(kernel_shape) if kernel_shape else None
        self.attrs = attrs
        w, b = ctx.constants.get(1), ctx.constants.get(2)
        dtype = compute_dtype(ctx.input_dtypes[0] if ctx.input_dtypes and ctx.input_dtypes[0] else np.float32)
        # pack only when the bias is constant too (or absent), as the packing includes it
        inputs = ctx.node.inputs if ctx.node is not None else []
        b_given = bool(inputs[2]) if len(inputs) > 2 else b is not None
        self.packed = _Weights(w, group, dtype, b) if w is not None and (b is not None or not b_given) else None
        self.windows: dict[tuple[int, ...], Window] = {}
        self.loops = _compiled_loops()

    def __call__(
        self,
        x: np.ndarray,
        w: np.ndarray,
        b: np.ndarray | None = None,
        z: np.ndarray | None = None,
        act: _Activation | None = None,
    ) -> np.ndarray:
        cdt = compute_dtype(x.dtype)
        wp = (
            self.packed if self.packed is not None and self.packed.mat.dtype == cdt else _Weights(w, self.group, cdt, b)
        )
        win = self.windows.get(x.shape)
        if win is None:
            kernel_ = self.kernel_shape or tuple(w.shape[2:])
            win = self.windows[x.shape] = _conv_window(x.shape, kernel_, self.attrs)
        return _conv(np.asarray(x, dtype=cdt), wp, win, z, act, self.loops)


@kernel("Conv", since=1, dtypes=_FLOAT, factory=True)
@kernel("Conv", since=11, dtypes=_FLOAT, factory=True)
@kernel("Conv", since=22, dtypes=_FLOAT, factory=True)
def make_conv(
    ctx: Any,
    *,
    auto_pad: str = "NOTSET",
    dilations: list[int] | None = None,
    group: int = 1,
    kernel_shape: list[int] | None = None,
    pads: list[int] | None = None,
    strides: list[int] | None = None,
) -> Callable[..., np.ndarray]:
    """Conv (ONNX Conv-1/11/22): N-D convolution with groups, dilations and auto_pad."""
    attrs = {"auto_pad": auto_pad, "dilations": dilations, "pads": pads, "strides": strides}
    conv = _ConvNode(ctx, group, kernel_shape, attrs)

    def run(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
        return conv(x, w, b).astype(x.dtype, copy=False)

    return run


class _Activation(NamedTuple):
    """A FusedConv activation: its code in :mod:`._conv_loops` and parameters; called, it applies in place."""

    code: int
    alpha: float = 1.0
    beta: float = 0.0
    lo: float = -math.inf
    hi: float = math.inf

    def arguments(self, dtype: np.dtype) -> tuple[Any, ...]:
        """``(code, alpha, beta, lo, hi)`` for the compiled loops, the numbers in ``dtype``."""
        number = np.dtype(dtype).type
        return self.code, number(self.alpha), number(self.beta), number(self.lo), number(self.hi)

    def __call__(self, y: np.ndarray) -> None:
        number = y.dtype.type
        if self.code == _conv_loops.CLIP:
            np.clip(y, number(self.lo), number(self.hi), out=y)
        elif self.code == _conv_loops.LEAKY_RELU:
            np.multiply(y, np.where(y < 0, number(self.alpha), number(1)), out=y)
        elif self.code == _conv_loops.HARD_SIGMOID:
            np.clip(y * number(self.alpha) + number(self.beta), number(self.lo), number(self.hi), out=y)
        elif self.code == _conv_loops.SIGMOID:
            np.divide(1, 1 + np.exp(-y), out=y)
        elif self.code == _conv_loops.TANH:
            np.tanh(y, out=y)


_IDENTITY = _Activation(_conv_loops.NONE)


def _activation(name: str, params: list[float] | None) -> _Activation | None:
    """com.microsoft FusedConv's activation (onnxruntime's contrib op) by name, with its defaults."""
    name = name.decode() if isinstance(name, bytes) else name
    p = [float(v) for v in params or []]
    if name in ("", "Identity"):
        return None
    if name == "Relu":
        return _Activation(_conv_loops.CLIP, lo=0.0)
    if name == "LeakyRelu":
        return _Activation(_conv_loops.LEAKY_RELU, alpha=p[0] if p else 0.01)
    if name == "Clip":
        lo, hi = (p + [-math.inf, math.inf][len(p) :])[:2]
        return _Activation(_conv_loops.CLIP, lo=lo, hi=hi)
    if name == "Sigmoid":
        return _Activation(_conv_loops.SIGMOID)
    if name == "Tanh":
        return _Activation(_conv_loops.TANH)
    if name == "HardSigmoid":
        alpha, beta = (p + [0.2, 0.5][len(p) :])[:2]
        return _Activation(_conv_loops.HARD_SIGMOID, alpha, beta, 0.0, 1.0)
    raise InvalidArgument(f"FusedConv: unsupported activation {name!r}")


@kernel("FusedConv", since=1, domain="com.microsoft", dtypes=_FLOAT, factory=True)
def make_fused_conv(
    ctx: Any,
    *,
    activation: str = "",
    activation_params: list[float] | None = None,
    auto_pad: str = "NOTSET",
    dilations: list[int] | None = None,
    group: int = 1,
    kernel_shape: list[int] | None = None,
    pads: list[int] | None = None,
    strides: list[int] | None = None,
) -> Callable[..., np.ndarray]:
    """com.microsoft FusedConv: activation(Conv(X, W, B) + Z), applied in place on the output."""
    attrs = {"auto_pad": auto_pad, "dilations": dilations, "pads": pads, "strides": strides}
    conv = _ConvNode(ctx, group, kernel_shape, attrs)
    act = _activation(activation, activation_params)

    def run(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None, z: np.ndarray | None = None) -> np.ndarray:
        return conv(x, w, b, z, act).astype(x.dtype, copy=False)

    return run


# -- ConvTranspose ------------------------------------------------------------------


def _col2im(
    cols: np.ndarray,
    in_shape: tuple[int, ...],
    kernel: tuple[int, ...],
    s: tuple[int, ...],
    d: tuple[int, ...],
    begin: tuple[int, ...],
    out: tuple[int, ...],
) -> np.ndarray:
    """Scatter-add ``cols [N, M, *k, *in]`` into the output, then crop by the pads."""
    full = [st * (i - 1) + (k - 1) * dl + 1 for st, i, k, dl in zip(s, in_shape, kernel, d)]
    lo = [min(0, b) for b in begin]
    hi = [max(f, b + o) for f, b, o in zip(full, begin, out)]
    buf = np.zeros((*cols.shape[:2], *(h - lo_ for h, lo_ in zip(hi, lo))), dtype=cols.dtype)
    for tap in np.ndindex(*kernel):
        index = tuple(
            slice(t * dl - l, t * dl - l + (i - 1) * st + 1, st) for t, dl, l, i, st in zip(tap, d, lo, in_shape, s)
        )
        buf[(Ellipsis, *index)] += cols[(slice(None), slice(None), *tap)]
    crop = tuple(slice(b - l, b - l + o) for b, l, o in zip(begin, lo, out))
    return buf[(Ellipsis, *crop)]


@kernel("ConvTranspose", since=1, dtypes=_FLOAT, factory=True)
@kernel("ConvTranspose", since=11, dtypes=_FLOAT, factory=True)
@kernel("ConvTranspose", since=22, dtypes=_FLOAT, factory=True)
def make_conv_transpose(
    ctx: Any,
    *,
    auto_pad: str = "NOTSET",
    dilations: list[int] | None = None,
    group: int = 1,
    kernel_shape: list[int] | None = None,
    output_padding: list[int] | None = None,
    output_shape: list[int] | None = None,
    pads: list[int] | None = None,
    strides: list[int] | None = None,
) -> Callable[..., np.ndarray]:
    """ConvTranspose (ONNX ConvTranspose-1/11/22): GEMM to columns, then col2im."""
    geometry = {
        "auto_pad": auto_pad,
        "dilations": dilations,
        "output_padding": output_padding,
        "output_shape": output_shape,
        "pads": pads,
        "strides": strides,
    }
    dtype = compute_dtype(ctx.input_dtypes[0] if ctx.input_dtypes and ctx.input_dtypes[0] else np.float32)
    w_const = ctx.constants.get(1)
    packed = _pack_transpose(w_const, group, dtype) if w_const is not None else None

    def run(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
        cdt = compute_dtype(x.dtype)
        wt = packed if packed is not None and packed.dtype == cdt else _pack_transpose(w, group, cdt)
        n, c, *in_shape = x.shape
        kernel_ = tuple(kernel_shape) if kernel_shape else tuple(w.shape[2:])
        m = w.shape[1] * group
        s, d, begin, out = transpose_window(tuple(in_shape), kernel_, **geometry)
        xg = np.asarray(x, dtype=cdt).reshape(n, group, c // group, math.prod(in_shape))
        cols = np.matmul(wt, xg).reshape(n, m, *kernel_, *in_shape)
        y = _col2im(cols, tuple(in_shape), kernel_, s, d, begin, out)
        if b is not None:
            y += np.asarray(b, dtype=cdt).reshape(-1, *(1,) * len(in_shape))
        return y.astype(x.dtype, copy=False)

    return run


def _pack_transpose(w: np.ndarray, group: int, dtype: np.dtype) -> np.ndarray:
    """``[C, M/group, *k]`` -> ``[group, M/group * prod(k), C/group]`` for ``W^T @ x``."""
    c = w.shape[0]
    wg = np.asarray(w, dtype=dtype).reshape(group, c // group, -1)
    return np.ascontiguousarray(wg.transpose(0, 2, 1))


# -- ConvInteger --------------------------------------------------------------------


def _zero_point_shift(x: np.ndarray, zero_point: np.ndarray | None, axis_shape: tuple[int, ...]) -> np.ndarray:
    """``x - zero_point`` in float64 (exact for 8-bit products summed below 2**53)."""
    xf = x.astype(np.float64)
    if zero_point is not None:
        zp = np.asarray(zero_point, dtype=np.float64)
        xf -= zp.reshape(axis_shape) if zp.size > 1 else zp.reshape(())
    return xf


@kernel("ConvInteger", since=10, dtypes={0: (np.int8, np.uint8), 1: (np.int8, np.uint8)})
def conv_integer(
    x: np.ndarray,
    w: np.ndarray,
    x_zero_point: np.ndarray | None = None,
    w_zero_point: np.ndarray | None = None,
    /,
    *,
    auto_pad: str = "NOTSET",
    dilations: list[int] | None = None,
    group: int = 1,
    kernel_shape: list[int] | None = None,
    pads: list[int] | None = None,
    strides: list[int] | None = None,
) -> np.ndarray:
    """ConvInteger-10: int32 convolution of zero-point-shifted 8-bit tensors."""
    nd = x.ndim - 2
    xf = _zero_point_shift(x, x_zero_point, (1, -1, *(1,) * nd))
    wf = _zero_point_shift(w, w_zero_point, (-1, 1, *(1,) * nd))
    kernel_ = tuple(kernel_shape) if kernel_shape else w.shape[2:]
    attrs = {"auto_pad": auto_pad, "dilations": dilations, "pads": pads, "strides": strides}
    y = _conv(xf, _Weights(wf, group, np.dtype(np.float64)), _conv_window(x.shape, kernel_, attrs))
    return np.rint(y).astype(np.int32)
