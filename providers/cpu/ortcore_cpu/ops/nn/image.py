"""Image geometry ops: GridSample, AffineGrid, RoiAlign, NonMaxSuppression, Col2Im,
CenterCropPad, DeformConv.

Sampling ops build, per spatial axis, the taps (integer index, weight) of every
sample point, then gather all channels at once from the flattened image: an
N-linear or N-cubic sample is a sum over the product of the per-axis taps.
Coordinates follow onnx.reference and onnxruntime (PyTorch's grid_sampler):
computed in the grid's float type, rounded half to even for "nearest".
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from ortcore_cpu.registry import kernel


def _float_type(dtype: np.dtype) -> np.dtype:
    """The type float math runs in: double stays double, everything else is float32."""
    return np.dtype(np.float64) if dtype == np.float64 else np.dtype(np.float32)


def _value_type(dtype: np.dtype) -> np.dtype:
    if dtype.kind == "c":
        return np.dtype(np.complex128)
    return np.dtype(np.float64) if dtype in (np.float64, np.int64, np.uint64, np.int32, np.uint32) else np.dtype(np.float32)


def _cast(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Float results to the input type (integers truncate, as Cast does; bools test != 0)."""
    if dtype == np.bool_:
        return values != 0
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return np.clip(np.trunc(values.real), info.min, info.max).astype(dtype)
    return values.astype(dtype, copy=False)


# --- GridSample -----------------------------------------------------------------------


def _reflect(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Reflect coordinates by the nearer border until they lie in [lo, hi]."""
    span = hi - lo
    if span <= 0:
        return np.full_like(x, lo)
    below, above = x < lo, x > hi
    dist = np.where(below, lo - x, x - hi)
    flips = np.trunc(dist / span)
    rest = dist - flips * span
    even = flips % 2 == 0
    return np.where(below, np.where(even, lo + rest, hi - rest), np.where(above, np.where(even, hi - rest, lo + rest), x))


def _cubic_weights(t: np.ndarray) -> list[np.ndarray]:
    """Keys cubic convolution weights (a = -0.75) of the taps at -1, 0, 1, 2 for fraction t."""
    a = -0.75

    def near(d):  # |d| <= 1
        return ((a + 2) * d - (a + 3)) * d * d + 1

    def far(d):  # 1 < |d| < 2
        return ((a * d - 5 * a) * d + 8 * a) * d - 4 * a

    return [far(t + 1), near(t), near(1 - t), far(2 - t)]


def _axis_taps(
    u: np.ndarray, size: int, mode: str, padding_mode: str, lo: float, hi: float
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(index, weight) taps of coordinates ``u`` along one axis; weight 0 marks zero padding."""
    if mode == "nearest":
        starts, weights = np.rint(u), [np.ones_like(u)]
        offsets = [0]
    else:
        starts = np.floor(u)
        t = u - starts
        if mode == "linear":
            weights, offsets = [1 - t, t], [0, 1]
        else:
            weights, offsets = _cubic_weights(t), [-1, 0, 1, 2]
    taps = []
    for off, w in zip(offsets, weights):
        i = starts + off
        if padding_mode == "zeros":
            inside = (i >= 0) & (i <= size - 1)
            w = np.where(inside, w, 0)
        elif padding_mode == "border":
            i = np.clip(i, 0, size - 1)
        else:
            i = np.clip(np.trunc(_reflect(i, lo, hi)), 0, size - 1)
        taps.append((np.clip(i, 0, size - 1).astype(np.intp), w))
    return taps


def _grid_sample(x: np.ndarray, grid: np.ndarray, mode: str, padding_mode: str, align_corners: int) -> np.ndarray:
    n, c, *spatial = x.shape
    rank = len(spatial)
    if grid.shape[0] != n or grid.shape[-1] != rank or grid.ndim != rank + 2:
        raise ValueError(f"GridSample: grid shape {grid.shape} does not fit input shape {x.shape}")
    if mode not in ("nearest", "linear", "cubic") or padding_mode not in ("zeros", "border", "reflection"):
        raise ValueError(f"GridSample: unsupported mode {mode!r} / padding_mode {padding_mode!r}")
    out_spatial = grid.shape[1:-1]
    points = math.prod(out_spatial)
    if n * c * points == 0 or math.prod(spatial) == 0:
        return np.zeros((n, c, *out_spatial), dtype=x.dtype)
    g = grid.reshape(n, points, rank).astype(_float_type(grid.dtype), copy=False)
    per_axis = []
    for axis, size in enumerate(spatial):
        v = g[..., rank - 1 - axis]  # grid holds (x, y, ...): the last spatial axis first
        if align_corners:
            u, lo, hi = (v + 1) / 2 * (size - 1), 0.0, size - 1.0
        else:
            u, lo, hi = ((v + 1) * size - 1) / 2, -0.5, size - 0.5
        if mode == "nearest":
            u = np.rint(u)
        outside = (u < lo) | (u > hi)
        if padding_mode == "border":
            u = np.where(outside, np.clip(u, 0, size - 1), u)
        elif padding_mode == "reflection":
            u = np.where(outside, _reflect(u, lo, hi), u)
        per_axis.append(_axis_taps(u, size, mode, padding_mode, lo, hi))
    strides = [math.prod(spatial[a + 1 :]) for a in range(rank)]
    flat = x.reshape(n, c, -1)
    if x.dtype.kind in "OUSb" and mode == "nearest":  # a pure gather: no arithmetic on the values
        index = sum(taps[0][0] * s for taps, s in zip(per_axis, strides))
        inside = np.logical_and.reduce([taps[0][1] != 0 for taps in per_axis])
        out = np.take_along_axis(flat, index[:, np.newaxis, :], axis=2)
        if padding_mode == "zeros":
            zero = np.asarray("" if x.dtype.kind in "OUS" else False, dtype=x.dtype)
            out = np.where(inside[:, np.newaxis, :], out, zero)
        return out.reshape(n, c, *out_spatial)
    if x.dtype.kind in "OUS":
        raise ValueError(f"GridSample: mode {mode!r} cannot interpolate strings")
    vtype = _value_type(x.dtype)
    flat = flat.astype(vtype, copy=False)
    acc = np.zeros((n, c, points), dtype=vtype)
    for combo in itertools.product(*per_axis):
        index = combo[0][0] * strides[0]
        weight = combo[0][1]
        for (i, w), s in zip(combo[1:], strides[1:]):
            index = index + i * s
            weight = weight * w
        acc += weight[:, np.newaxis, :].astype(vtype, copy=False) * np.take_along_axis(flat, index[:, np.newaxis, :], axis=2)
    return _cast(acc, x.dtype).reshape(n, c, *out_spatial)


@kernel("GridSample", since=16)
def grid_sample_16(x, grid, /, *, align_corners=0, mode="bilinear", padding_mode="zeros"):
    """GridSample-16: 4-D input, modes bilinear / nearest / bicubic."""
    if x.ndim != 4:
        raise ValueError(f"GridSample-16 takes 4-D inputs, got rank {x.ndim}")
    names = {"bilinear": "linear", "bicubic": "cubic", "nearest": "nearest"}
    if mode not in names:
        raise ValueError(f"GridSample-16: unknown mode {mode!r}")
    return _grid_sample(x, grid, names[mode], padding_mode, align_corners)


@kernel("GridSample", since=20)
@kernel("GridSample", since=22)
def grid_sample(x, grid, /, *, align_corners=0, mode="linear", padding_mode="zeros"):
    """GridSample-20/22: N-D input, modes linear / nearest / cubic (N-linear, N-cubic)."""
    return _grid_sample(x, grid, mode, padding_mode, align_corners)


# --- AffineGrid -----------------------------------------------------------------------


@kernel("AffineGrid", since=20)
def affine_grid(theta, size, /, *, align_corners=0):
    """AffineGrid-20: theta [N, r, r+1] applied to the normalized grid of size[2:] -> [N, *size[2:], r]."""
    dims = [int(s) for s in np.asarray(size).reshape(-1)[2:].tolist()]
    rank = len(dims)
    if theta.shape[1:] != (rank, rank + 1):
        raise ValueError(f"AffineGrid: theta shape {theta.shape} does not fit size {dims}")
    ftype = _float_type(theta.dtype)
    axes = []
    for s in dims:
        if align_corners:  # one pixel: its center is both -1 and 1; PyTorch puts it at 0
            axes.append(np.linspace(-1, 1, s, dtype=np.float64) if s > 1 else np.zeros(s))
        else:
            axes.append((2 * np.arange(s, dtype=np.float64) + 1) / s - 1)
    mesh = np.meshgrid(*axes, indexing="ij")  # axis order (D,) H, W
    base = np.stack([m.reshape(-1) for m in reversed(mesh)] + [np.ones(math.prod(dims))], axis=0)  # [r+1, P]
    grid = np.matmul(theta.astype(ftype, copy=False), base.astype(ftype))  # [N, r, P]
    return np.ascontiguousarray(grid.transpose(0, 2, 1)).reshape(theta.shape[0], *dims, rank).astype(theta.dtype, copy=False)


# --- RoiAlign -------------------------------------------------------------------------


def _roi_axis(start: np.ndarray, bin_size: np.ndarray, pooled: int, grid: int, size: int):
    """Bilinear taps of the sample rows (or columns) of a group of RoIs sharing ``grid``.

    Returns low/high indices and weights, shape [R, pooled * grid], and an in-range mask.
    """
    steps = (np.arange(pooled)[:, None] + (np.arange(grid)[None, :] + 0.5) / grid).reshape(-1)
    y = start[:, None] + steps[None, :] * bin_size[:, None]
    valid = (y >= -1.0) & (y <= size)
    y = np.maximum(y, 0)
    low = np.floor(y).astype(np.intp)
    edge = low >= size - 1
    low = np.where(edge, size - 1, low)
    high = np.where(edge, size - 1, low + 1)
    frac = np.where(edge, 0.0, y - low)
    return low, high, 1.0 - frac, frac, valid


def _roi_align(x, rois, batch_indices, mode, output_height, output_width, sampling_ratio, spatial_scale, half_pixel):
    n_rois = rois.shape[0]
    _, c, h, w = x.shape
    vtype = _value_type(x.dtype)
    out = np.zeros((n_rois, c, output_height, output_width), dtype=vtype)
    if n_rois == 0:
        return out.astype(x.dtype)
    shift = 0.5 if half_pixel else 0.0
    box = rois.astype(np.float64) * spatial_scale - shift
    x0, y0, x1, y1 = box[:, 0], box[:, 1], box[:, 2], box[:, 3]
    roi_w, roi_h = x1 - x0, y1 - y0
    if not half_pixel:  # the legacy mode forces malformed RoIs to 1x1
        roi_w, roi_h = np.maximum(roi_w, 1.0), np.maximum(roi_h, 1.0)
    bin_h, bin_w = roi_h / output_height, roi_w / output_width
    if sampling_ratio > 0:
        grid_h = np.full(n_rois, sampling_ratio, dtype=np.int64)
        grid_w = grid_h
    else:
        grid_h = np.ceil(roi_h / output_height).astype(np.int64)
        grid_w = np.ceil(roi_w / output_width).astype(np.int64)
    batch = np.asarray(batch_indices).astype(np.intp).reshape(-1)
    image = np.ascontiguousarray(x.transpose(0, 2, 3, 1), dtype=vtype)  # NHWC: a sample's channels are contiguous
    # RoIs are grouped by sampling grid so that each group is one batched gather; the
    # group is split into chunks that keep the gathered samples to about a million values.
    keys = grid_h * (1 << 32) + grid_w
    for key in np.unique(keys):
        members = np.nonzero(keys == key)[0]
        gh, gw = int(grid_h[members[0]]), int(grid_w[members[0]])
        if gh <= 0 or gw <= 0:
            continue  # no samples: the bin is 0
        per_roi = c * output_height * gh * output_width * gw * 4
        chunk = max(1, 1_000_000 // max(per_roi, 1))
        for begin in range(0, len(members), chunk):
            r = members[begin : begin + chunk]
            ylo, yhi, wy_lo, wy_hi, vy = _roi_axis(y0[r], bin_h[r], output_height, gh, h)
            xlo, xhi, wx_lo, wx_hi, vx = _roi_axis(x0[r], bin_w[r], output_width, gw, w)
            valid = (vy[:, :, None] & vx[:, None, :]).astype(np.float64)  # [R, Sy, Sx]
            b = batch[r][:, None, None]
            corners = []
            for yi, wy in ((ylo, wy_lo), (yhi, wy_hi)):
                for xi, wx in ((xlo, wx_lo), (xhi, wx_hi)):
                    weight = (wy[:, :, None] * wx[:, None, :] * valid).astype(vtype)
                    values = image[b, yi[:, :, None], xi[:, None, :]]  # [R, Sy, Sx, C]
                    corners.append(values * weight[..., None])
            shape = (len(r), output_height, gh, output_width, gw, c)
            if mode == "avg":
                pooled = (corners[0] + corners[1] + corners[2] + corners[3]).reshape(shape)
                pooled = pooled.sum(axis=(2, 4)) / (gh * gw)
            else:  # the max of the weighted corners, as onnxruntime defines it
                pooled = np.maximum(np.maximum(corners[0], corners[1]), np.maximum(corners[2], corners[3]))
                pooled = pooled.reshape(shape).max(axis=(2, 4))
            out[r] = pooled.transpose(0, 3, 1, 2)
    return out.astype(x.dtype)


@kernel("RoiAlign", since=10)
def roi_align_10(x, rois, batch_indices, /, *, mode="avg", output_height=1, output_width=1, sampling_ratio=0, spatial_scale=1.0):
    """RoiAlign-10: no half-pixel shift of the RoI corners."""
    return _roi_align(x, rois, batch_indices, mode, output_height, output_width, sampling_ratio, spatial_scale, False)


@kernel("RoiAlign", since=16)
@kernel("RoiAlign", since=22)
def roi_align(
    x, rois, batch_indices, /, *, coordinate_transformation_mode="half_pixel", mode="avg",
    output_height=1, output_width=1, sampling_ratio=0, spatial_scale=1.0,
):
    """RoiAlign-16/22: half_pixel (default) or output_half_pixel coordinates."""
    if coordinate_transformation_mode not in ("half_pixel", "output_half_pixel"):
        raise ValueError(f"RoiAlign: unknown coordinate_transformation_mode {coordinate_transformation_mode!r}")
    half_pixel = coordinate_transformation_mode == "half_pixel"
    return _roi_align(x, rois, batch_indices, mode, output_height, output_width, sampling_ratio, spatial_scale, half_pixel)


# --- NonMaxSuppression ----------------------------------------------------------------


def _corners(boxes: np.ndarray, center_point_box: int) -> tuple[np.ndarray, ...]:
    """(x_min, x_max, y_min, y_max) of boxes [..., 4]."""
    if center_point_box:
        half_w, half_h = boxes[..., 2] / 2, boxes[..., 3] / 2
        return boxes[..., 0] - half_w, boxes[..., 0] + half_w, boxes[..., 1] - half_h, boxes[..., 1] + half_h
    return (
        np.minimum(boxes[..., 1], boxes[..., 3]), np.maximum(boxes[..., 1], boxes[..., 3]),
        np.minimum(boxes[..., 0], boxes[..., 2]), np.maximum(boxes[..., 0], boxes[..., 2]),
    )


def _suppresses(a: tuple[np.ndarray, ...], b: tuple[np.ndarray, ...], threshold) -> np.ndarray:
    """Whether boxes ``a`` suppress boxes ``b`` (broadcast): IoU strictly above the threshold.

    Boxes that do not overlap, or have no area, never suppress (as onnxruntime decides).
    """
    ix = np.minimum(a[1], b[1]) - np.maximum(a[0], b[0])
    iy = np.minimum(a[3], b[3]) - np.maximum(a[2], b[2])
    inter = ix * iy
    area_a = (a[1] - a[0]) * (a[3] - a[2])
    area_b = (b[1] - b[0]) * (b[3] - b[2])
    union = area_a + area_b - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = inter / union
    return (ix > 0) & (iy > 0) & (inter > 0) & (area_a > 0) & (area_b > 0) & (union > 0) & (iou > threshold)


_NMS_MATRIX_LIMIT = 4096  # boxes per batch up to which the pairwise suppression matrix is built


def _nms_batch(boxes: np.ndarray, scores: np.ndarray, limit: int, iou, score_threshold, center_point_box: int):
    """Greedy NMS of every class of one batch in lockstep: each round keeps the best live
    box of every unfinished class and kills what it suppresses. Returns (class, box) rows."""
    n_classes, n_boxes = scores.shape
    corners = _corners(boxes, center_point_box)
    # rank[c, box]: position in the class's order, best score first (ties: lower index first)
    order = np.argsort(-scores, axis=1, kind="stable")
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(n_boxes)[None, :], axis=1)
    alive = np.ones(scores.shape, dtype=bool) if score_threshold is None else scores > score_threshold
    matrix = None
    if n_boxes <= _NMS_MATRIX_LIMIT:
        matrix = _suppresses(tuple(c[:, None] for c in corners), tuple(c[None, :] for c in corners), iou)
    kept: list[tuple[np.ndarray, np.ndarray]] = []
    counts = np.zeros(n_classes, dtype=np.int64)
    active = np.flatnonzero(alive.any(axis=1))
    while len(active):
        rows = alive[active]
        picked = np.where(rows, rank[active], n_boxes).argmin(axis=1)
        kept.append((active, picked))
        counts[active] += 1
        if matrix is not None:
            killed = matrix[picked]
        else:
            killed = _suppresses(tuple(c[picked][:, None] for c in corners), tuple(c[None, :] for c in corners), iou)
        rows &= ~killed
        rows[np.arange(len(active)), picked] = False
        alive[active] = rows
        active = active[rows.any(axis=1) & (counts[active] < limit)]
    if not kept:
        return np.zeros((0, 2), dtype=np.int64)
    classes = np.concatenate([k[0] for k in kept])
    picks = np.concatenate([k[1] for k in kept])
    by_class = np.argsort(classes, kind="stable")  # rounds are already in order within a class
    return np.stack([classes[by_class], picks[by_class]], axis=1)


@kernel("NonMaxSuppression", since=10)
@kernel("NonMaxSuppression", since=11)
def non_max_suppression(boxes, scores, max_output_boxes_per_class=None, iou_threshold=None, score_threshold=None, /, *, center_point_box=0):
    """NonMaxSuppression-10/11: greedy per (batch, class); IoU strictly above the threshold suppresses."""

    def scalar(t):
        return None if t is None or not np.size(t) else np.asarray(t).reshape(-1)[0]

    limit = int(scalar(max_output_boxes_per_class) or 0)
    iou = scalar(iou_threshold)
    iou = boxes.dtype.type(0) if iou is None else iou
    threshold = scalar(score_threshold)
    selected = [np.zeros((0, 3), dtype=np.int64)]
    if limit > 0:
        for b in range(boxes.shape[0]):
            rows = _nms_batch(boxes[b], scores[b], limit, iou, threshold, center_point_box)
            selected.append(np.concatenate([np.full((len(rows), 1), b, dtype=np.int64), rows], axis=1))
    return np.concatenate(selected).astype(np.int64)


# --- Col2Im ---------------------------------------------------------------------------


@kernel("Col2Im", since=18)
def col2im(x, image_shape, block_shape, /, *, dilations=None, pads=None, strides=None):
    """Col2Im-18: sum column blocks [N, C*prod(block), L] back into [N, C, *image_shape]."""
    image = [int(v) for v in np.asarray(image_shape).reshape(-1).tolist()]
    block = [int(v) for v in np.asarray(block_shape).reshape(-1).tolist()]
    rank = len(image)
    dilations = list(dilations or [1] * rank)
    strides = list(strides or [1] * rank)
    pads = list(pads or [0] * (2 * rank))
    begin, end = pads[:rank], pads[rank:]
    cols = [
        (image[i] + begin[i] + end[i] - (dilations[i] * (block[i] - 1) + 1)) // strides[i] + 1 for i in range(rank)
    ]
    n, ck, length = x.shape
    k = math.prod(block)
    if ck % k or length != math.prod(cols):
        raise ValueError(f"Col2Im: input shape {x.shape} does not fit image {image}, block {block}")
    c = ck // k
    data = x.reshape(n, c, *block, *cols)
    padded_shape = [max(image[i] + begin[i] + end[i], (cols[i] - 1) * strides[i] + (block[i] - 1) * dilations[i] + 1) for i in range(rank)]
    out = np.zeros((n, c, *padded_shape), dtype=x.dtype)
    for offset in itertools.product(*(range(b) for b in block)):
        target = tuple(
            slice(o * d, o * d + (m - 1) * s + 1, s) for o, d, m, s in zip(offset, dilations, cols, strides)
        )
        out[(slice(None), slice(None)) + target] += data[(slice(None), slice(None)) + offset]
    crop = tuple(slice(b, b + size) for b, size in zip(begin, image))
    return np.ascontiguousarray(out[(slice(None), slice(None)) + crop])


# --- CenterCropPad --------------------------------------------------------------------


@kernel("CenterCropPad", since=18)
def center_crop_pad(x, shape, /, *, axes=None):
    """CenterCropPad-18: centered crop (start rounded down) or zero pad (extra pixel on the right)."""
    target = [int(v) for v in np.asarray(shape).reshape(-1).tolist()]
    axes = list(range(x.ndim)) if axes is None else [a + x.ndim if a < 0 else a for a in axes]
    if len(axes) != len(target):
        raise ValueError(f"CenterCropPad: {len(target)} sizes for {len(axes)} axes")
    out_shape = list(x.shape)
    src = [slice(None)] * x.ndim
    dst = [slice(None)] * x.ndim
    for axis, size in zip(axes, target):
        dim = x.shape[axis]
        out_shape[axis] = size
        if size < dim:
            start = (dim - size) // 2
            src[axis] = slice(start, start + size)
        elif size > dim:
            start = (size - dim) // 2
            dst[axis] = slice(start, start + dim)
    if out_shape == list(x.shape):
        return x.copy()
    out = np.zeros(out_shape, dtype=x.dtype)
    if x.dtype.kind == "O":
        out[...] = ""
    out[tuple(dst)] = x[tuple(src)]
    return out


# --- DeformConv -----------------------------------------------------------------------


@kernel("DeformConv", since=19)
@kernel("DeformConv", since=22)
def deform_conv(
    x, w, offset, b=None, mask=None, /, *, dilations=None, group=1, kernel_shape=None, offset_group=1, pads=None, strides=None,
):
    """DeformConv-19/22: N-D convolution sampling the input bilinearly at offset kernel taps."""
    n, c, *spatial = x.shape
    rank = len(spatial)
    kernel_shape = list(kernel_shape or w.shape[2:])
    dilations = list(dilations or [1] * rank)
    strides = list(strides or [1] * rank)
    pads = list(pads or [0] * (2 * rank))
    out_spatial = list(offset.shape[2:])
    k = math.prod(kernel_shape)
    p = math.prod(out_spatial)
    oc = w.shape[0]
    if c != w.shape[1] * group or oc % group or c % offset_group or offset.shape[1] != offset_group * k * rank:
        raise ValueError(
            f"DeformConv: inconsistent shapes X {x.shape}, W {w.shape}, offset {offset.shape} "
            f"(group={group}, offset_group={offset_group})"
        )
    ftype = _float_type(x.dtype)
    image = x.astype(ftype, copy=False).reshape(n, offset_group, c // offset_group, -1)
    off = offset.astype(ftype, copy=False).reshape(n, offset_group, k, rank, p)
    # Position of tap (kernel index, output point) along each axis, before the offsets.
    kernel_pos = np.stack(np.meshgrid(*(np.arange(s) * d for s, d in zip(kernel_shape, dilations)), indexing="ij"), 0).reshape(rank, k)
    out_pos = np.stack(np.meshgrid(*(np.arange(o) * s - pb for o, s, pb in zip(out_spatial, strides, pads[:rank])), indexing="ij"), 0).reshape(rank, p)
    taps_per_axis = []
    for axis in range(rank):
        u = kernel_pos[axis][:, None] + out_pos[axis][None, :] + off[:, :, :, axis, :]  # [n, og, k, p]
        low = np.floor(u)
        frac = u - low
        size = spatial[axis]
        taps = []
        for i, wgt in ((low, 1 - frac), (low + 1, frac)):
            inside = (i >= 0) & (i <= size - 1)
            taps.append((np.clip(i, 0, size - 1).astype(np.intp), np.where(inside, wgt, 0)))
        taps_per_axis.append(taps)
    axis_strides = [math.prod(spatial[a + 1 :]) for a in range(rank)]
    cols = np.zeros((n, offset_group, c // offset_group, k * p), dtype=ftype)
    for combo in itertools.product(*taps_per_axis):
        index = sum(i * s for (i, _), s in zip(combo, axis_strides))
        weight = combo[0][1]
        for _, wgt in combo[1:]:
            weight = weight * wgt
        gathered = np.take_along_axis(image, index.reshape(n, offset_group, 1, k * p), axis=3)
        cols += weight.reshape(n, offset_group, 1, k * p) * gathered
    if mask is not None:
        cols *= mask.astype(ftype, copy=False).reshape(n, offset_group, 1, k * p)
    cols = cols.reshape(n, group, (c // group) * k, p)
    weights = w.astype(ftype, copy=False).reshape(group, oc // group, (c // group) * k)
    y = np.matmul(weights[np.newaxis], cols).reshape(n, oc, *out_spatial)
    if b is not None:
        y += b.astype(ftype, copy=False).reshape((1, oc) + (1,) * rank)
    return y.astype(x.dtype, copy=False)
