"""Recurrent layers: RNN, GRU, LSTM (every schema version, ONNX spec section "RNN/GRU/LSTM").

The input projection ``X @ W^T`` (plus every bias term that can be folded into it)
is one matrix product over all time steps and both directions; only the
recurrence ``H @ R^T`` and the gate arithmetic loop over time. A factory packs
constant W, R, B and P once per node.

``sequence_lens``: a batch entry stops after its length; later ``Y`` rows are
zero and ``Y_h``/``Y_c`` hold the state of its last valid step (zero for an
empty sequence, as in onnxruntime). The reverse
direction reads each entry's valid prefix backwards, which is a per-entry
gather of the time axis. float16/bfloat16 run in float32 and are cast back.

Activation alpha/beta values are consumed in order by the activations that
take them, with onnxruntime's defaults where the list runs out (LeakyRelu
0.01, HardSigmoid 0.2/0.5, Elu 1.0, otherwise 0).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ortcore.errors import InvalidArgument
from ortcore_cpu.registry import kernel

Activation = Callable[[np.ndarray], np.ndarray]

# -- activations -----------------------------------------------------------------------------

# name -> (function(x, alpha, beta), takes alpha, takes beta, default alpha, default beta)
_ACTIVATIONS: dict[str, tuple[Callable[..., np.ndarray], bool, bool, float, float]] = {
    "relu": (lambda x, a, b: np.maximum(x, 0), False, False, 0.0, 0.0),
    "tanh": (lambda x, a, b: np.tanh(x), False, False, 0.0, 0.0),
    # tanh form of the logistic: no overflow warnings for large |x|
    "sigmoid": (lambda x, a, b: np.tanh(x * 0.5) * 0.5 + 0.5, False, False, 0.0, 0.0),
    "affine": (lambda x, a, b: x * a + b, True, True, 0.0, 0.0),
    "leakyrelu": (lambda x, a, b: np.where(x >= 0, x, x * a), True, False, 0.01, 0.0),
    "thresholdedrelu": (lambda x, a, b: np.where(x >= a, x, 0).astype(x.dtype), True, False, 0.0, 0.0),
    "scaledtanh": (lambda x, a, b: np.tanh(x * b) * a, True, True, 0.0, 0.0),
    "hardsigmoid": (lambda x, a, b: np.clip(x * a + b, 0, 1), True, True, 0.2, 0.5),
    "elu": (lambda x, a, b: np.where(x >= 0, x, np.expm1(np.minimum(x, 0)) * a), True, False, 1.0, 0.0),
    "softsign": (lambda x, a, b: x / (np.abs(x) + 1), False, False, 0.0, 0.0),
    "softplus": (lambda x, a, b: np.logaddexp(x, 0).astype(x.dtype), False, False, 0.0, 0.0),
}


def _activations(
    names: Sequence[str] | None,
    alphas: Sequence[float] | None,
    betas: Sequence[float] | None,
    defaults: Sequence[str],
    num_directions: int,
    dtype: np.dtype,
) -> list[list[Activation]]:
    """Per direction, the activation functions (f[, g[, h]]) with their alpha/beta bound."""
    per_dir = len(defaults)
    names = list(names) if names else list(defaults) * num_directions
    alphas, betas = list(alphas or ()), list(betas or ())
    parsed: list[Activation] = []
    for name in names:
        entry = _ACTIVATIONS.get(name.lower())
        if entry is None:
            raise InvalidArgument(f"unknown RNN activation {name!r}; expected one of {sorted(_ACTIVATIONS)}")
        fn, takes_alpha, takes_beta, alpha, beta = entry
        if takes_alpha and alphas:
            alpha = alphas.pop(0)
        if takes_beta and betas:
            beta = betas.pop(0)
        a, b = dtype.type(alpha), dtype.type(beta)
        parsed.append(lambda x, fn=fn, a=a, b=b: fn(x, a, b))
    if len(parsed) < per_dir * num_directions:
        if len(parsed) != per_dir:
            raise InvalidArgument(f"expected {per_dir * num_directions} activations, got {names}")
        parsed = parsed * num_directions  # one set given for both directions
    return [parsed[d * per_dir : (d + 1) * per_dir] for d in range(num_directions)]


def _num_directions(direction: str) -> int:
    if direction in ("forward", "foward", "reverse"):  # GRU-1's default is spelled "foward"
        return 1
    if direction == "bidirectional":
        return 2
    raise InvalidArgument(f"unknown RNN direction {direction!r}")


def _compute_dtype(dtype: np.dtype | None) -> np.dtype:
    """float16/bfloat16 compute in float32; float32/float64 as they are."""
    if dtype is None:
        return np.dtype(np.float32)
    dtype = np.dtype(dtype)
    return dtype if dtype.kind == "f" and dtype.itemsize >= 4 else np.dtype(np.float32)


# -- packed weights ---------------------------------------------------------------------------


@dataclass
class _Packed:
    """Weights of one node laid out for the time loop.

    ``wt`` is ``[input_size, num_directions * gates * hidden]`` (all W^T side by side),
    ``bx`` the bias added to ``X @ wt`` (``[num_directions, gates * hidden]``), ``rt``
    per direction ``R^T``; ``extra`` holds cell-specific pieces (GRU's split R and
    reset bias, LSTM's peepholes).
    """

    wt: np.ndarray
    bx: np.ndarray
    rt: list[np.ndarray]
    extra: list[dict[str, Any]]


def _pack(
    w: np.ndarray,
    r: np.ndarray,
    b: np.ndarray | None,
    p: np.ndarray | None,
    gates: int,
    cell: str,
    dtype: np.dtype,
    linear_before_reset: int = 0,
) -> _Packed:
    nd, gh, input_size = w.shape
    hidden = r.shape[-1]
    if gh != gates * hidden or r.shape != (nd, gates * hidden, hidden):
        raise InvalidArgument(f"{cell}: W {w.shape} and R {r.shape} do not fit {gates} gates of hidden size {hidden}")
    w = np.asarray(w, dtype=dtype)
    r = np.asarray(r, dtype=dtype)
    wt = np.ascontiguousarray(w.transpose(2, 0, 1).reshape(input_size, nd * gh))
    if b is None:
        wb = np.zeros((nd, gh), dtype)
        rb = np.zeros((nd, gh), dtype)
    else:
        b = np.asarray(b, dtype=dtype)
        if b.shape != (nd, 2 * gh):
            raise InvalidArgument(f"{cell}: B has shape {b.shape}, expected {(nd, 2 * gh)}")
        wb, rb = b[:, :gh], b[:, gh:]
    bx = wb + rb
    rt = [np.ascontiguousarray(r[d].T) for d in range(nd)]
    extra: list[dict[str, Any]] = [{} for _ in range(nd)]
    if cell == "GRU":
        for d in range(nd):
            if linear_before_reset:
                # h~ = g(Xw_h + Wb_h + r * (H @ R_h^T + Rb_h)): Rb_h stays inside the product with r
                extra[d]["rbh"] = np.ascontiguousarray(rb[d, 2 * hidden :])
            else:
                extra[d]["rt_zr"] = np.ascontiguousarray(rt[d][:, : 2 * hidden])
                extra[d]["rt_h"] = np.ascontiguousarray(rt[d][:, 2 * hidden :])
        if linear_before_reset:
            bx = bx.copy()
            bx[:, 2 * hidden :] = wb[:, 2 * hidden :]
    if cell == "LSTM" and p is not None:
        p = np.asarray(p, dtype=dtype)
        if p.shape != (nd, 3 * hidden):
            raise InvalidArgument(f"LSTM: P has shape {p.shape}, expected {(nd, 3 * hidden)}")
        for d in range(nd):
            extra[d]["p"] = (p[d, :hidden], p[d, hidden : 2 * hidden], p[d, 2 * hidden :])  # i, o, f
    return _Packed(wt, np.ascontiguousarray(bx), rt, extra)


# -- cells: one direction over time ------------------------------------------------------------
#
# Each cell reads xw [S, B, gates*H] (input projection plus folded bias), starts from h
# (and c), writes hidden states into ys [S, B, H] and returns the final state(s).
# ``mask`` is None (every entry runs all steps) or [S, B, 1] booleans.


def _clipper(clip: float | None) -> Callable[[np.ndarray], np.ndarray]:
    if clip is None:
        return lambda x: x
    return lambda x: np.clip(x, -clip, clip, out=x)


def _step_state(mask: np.ndarray | None, t: int, new: np.ndarray, old: np.ndarray) -> np.ndarray:
    return new if mask is None else np.where(mask[t], new, old)


def _store(ys: np.ndarray, mask: np.ndarray | None, t: int, h: np.ndarray) -> None:
    if mask is None:
        ys[t] = h
    else:
        np.multiply(h, mask[t], out=ys[t])


def _rnn_cell(xw, h, ys, mask, rt, extra, acts, clip):
    f = acts[0]
    for t in range(xw.shape[0]):
        h_new = f(clip(xw[t] + h @ rt))
        _store(ys, mask, t, h_new)
        h = _step_state(mask, t, h_new, h)
    return (h,)


def _gru_cell(xw, h, ys, mask, rt, extra, acts, clip):
    f, g = acts[0], acts[1]
    hidden = h.shape[-1]
    rbh = extra.get("rbh")
    for t in range(xw.shape[0]):
        x = xw[t]
        if rbh is not None:  # linear_before_reset
            hr = h @ rt
            zr = f(clip(x[:, : 2 * hidden] + hr[:, : 2 * hidden]))
            z, r = zr[:, :hidden], zr[:, hidden:]
            hh = g(clip(x[:, 2 * hidden :] + r * (hr[:, 2 * hidden :] + rbh)))
        else:
            zr = f(clip(x[:, : 2 * hidden] + h @ extra["rt_zr"]))
            z, r = zr[:, :hidden], zr[:, hidden:]
            hh = g(clip(x[:, 2 * hidden :] + (r * h) @ extra["rt_h"]))
        h_new = hh + z * (h - hh)  # (1 - z) * hh + z * h
        _store(ys, mask, t, h_new)
        h = _step_state(mask, t, h_new, h)
    return (h,)


def _lstm_cell(xw, h, c, ys, mask, rt, extra, acts, clip, input_forget):
    f, g, hf = acts[0], acts[1], acts[2]
    hidden = h.shape[-1]
    peep = extra.get("p")
    for t in range(xw.shape[0]):
        gates = xw[t] + h @ rt  # i, o, f, c
        if peep is None:
            iof = f(clip(gates[:, : 3 * hidden]))
            i, o, fg = iof[:, :hidden], iof[:, hidden : 2 * hidden], iof[:, 2 * hidden :]
        else:
            pi, po, pf = peep
            i = f(clip(gates[:, :hidden] + pi * c))
            fg = f(clip(gates[:, 2 * hidden : 3 * hidden] + pf * c))
        if input_forget:
            fg = 1 - i
        c_new = fg * c + i * g(clip(gates[:, 3 * hidden :]))
        if peep is not None:
            o = f(clip(gates[:, hidden : 2 * hidden] + po * c_new))
        h_new = o * hf(c_new)
        _store(ys, mask, t, h_new)
        h = _step_state(mask, t, h_new, h)
        c = _step_state(mask, t, c_new, c)
    return h, c


# -- the op -----------------------------------------------------------------------------------


_CELLS = {"RNN": (1, ("Tanh",)), "GRU": (3, ("Sigmoid", "Tanh")), "LSTM": (4, ("Sigmoid", "Tanh", "Tanh"))}


def _reverse_index(lens: np.ndarray | None, steps: int, batch: int) -> tuple[Any, ...]:
    """Index of the time axis that reverses each entry's valid prefix (an involution)."""
    if lens is None:
        return (slice(None, None, -1),)
    t = np.arange(steps)[:, None]
    idx = np.where(t < lens[None, :], lens[None, :] - 1 - t, t)
    return (idx, np.arange(batch)[None, :])


def _make(ctx: Any, cell: str, attrs: dict[str, Any]) -> Callable[..., tuple[Any, ...]]:
    gates, default_acts = _CELLS[cell]
    direction = attrs["direction"]
    nd = _num_directions(direction)
    layout = attrs.get("layout", 0)
    hidden_size = attrs.get("hidden_size")
    clip = _clipper(attrs.get("clip"))
    lbr = attrs.get("linear_before_reset", 0)
    input_forget = attrs.get("input_forget", 0)
    in_dtype = ctx.input_dtypes[0] if ctx.input_dtypes else None
    cdt = _compute_dtype(in_dtype)
    acts = _activations(
        attrs.get("activations"), attrs.get("activation_alpha"), attrs.get("activation_beta"), default_acts, nd, cdt
    )
    names = list(ctx.node.inputs) if ctx.node is not None else []

    def given(i: int) -> bool:
        return i < len(names) and bool(names[i])

    def pack(w, r, b, p, dtype):
        if hidden_size is not None and r.shape[-1] != hidden_size:
            raise InvalidArgument(f"{cell}: hidden_size={hidden_size} but R has shape {r.shape}")
        if w.shape[0] != nd:
            raise InvalidArgument(f"{cell}: direction={direction!r} needs {nd} weight sets, W has {w.shape[0]}")
        return _pack(w, r, b, p, gates, cell, dtype, lbr)

    k = ctx.constants
    static = all(i in k for i in (1, 2)) and all(i in k or not given(i) for i in (3, 7))
    packed = pack(k[1], k[2], k.get(3), k.get(7), cdt) if static else None
    run_cell = {"RNN": _rnn_cell, "GRU": _gru_cell}.get(cell)

    def run(x, w, r, b=None, sequence_lens=None, initial_h=None, initial_c=None, p=None, /):
        out_dtype = x.dtype
        dtype = _compute_dtype(out_dtype)
        pk = packed if packed is not None and packed.wt.dtype == dtype else pack(w, r, b, p, dtype)
        if layout:
            x = x.swapaxes(0, 1)
            initial_h = None if initial_h is None else initial_h.swapaxes(0, 1)
            initial_c = None if initial_c is None else initial_c.swapaxes(0, 1)
        steps, batch, input_size = x.shape
        hidden = pk.rt[0].shape[0]
        gh = gates * hidden
        xw = np.asarray(x, dtype=dtype).reshape(steps * batch, input_size) @ pk.wt
        xw = xw.reshape(steps, batch, nd, gh)
        xw += pk.bx
        lens = None
        if sequence_lens is not None:
            lens = np.asarray(sequence_lens, dtype=np.int64).reshape(-1)
            if lens.shape != (batch,) or (lens < 0).any() or (lens > steps).any():
                raise InvalidArgument(f"{cell}: sequence_lens {lens.tolist()} do not fit batch {batch}, {steps} steps")
            if (lens == steps).all():
                lens = None
        mask = None if lens is None else (np.arange(steps)[:, None] < lens[None, :])[:, :, None]
        y = np.empty((steps, nd, batch, hidden), dtype)
        y_h = np.empty((nd, batch, hidden), dtype)
        y_c = np.empty((nd, batch, hidden), dtype) if cell == "LSTM" else None
        for d in range(nd):
            reverse = d == 1 or direction == "reverse"
            xs = xw[:, :, d]
            if reverse:
                ridx = _reverse_index(lens, steps, batch)
                xs = xs[ridx]
            h0 = np.zeros((batch, hidden), dtype) if initial_h is None else np.asarray(initial_h[d], dtype=dtype)
            ys = np.empty((steps, batch, hidden), dtype)
            if cell == "LSTM":
                c0 = np.zeros((batch, hidden), dtype) if initial_c is None else np.asarray(initial_c[d], dtype=dtype)
                y_h[d], y_c[d] = _lstm_cell(xs, h0, c0, ys, mask, pk.rt[d], pk.extra[d], acts[d], clip, input_forget)
            else:
                (y_h[d],) = run_cell(xs, h0, ys, mask, pk.rt[d], pk.extra[d], acts[d], clip)
            y[:, d] = ys[ridx] if reverse else ys
        if lens is not None and not lens.all():
            # onnxruntime's convention: an empty sequence ends in a zero state, not initial_h
            y_h[:, lens == 0] = 0
            if y_c is not None:
                y_c[:, lens == 0] = 0
        outs = [y, y_h] + ([y_c] if cell == "LSTM" else [])
        if layout:
            outs = [outs[0].transpose(2, 0, 1, 3)] + [o.transpose(1, 0, 2) for o in outs[1:]]
        return tuple(o.astype(out_dtype, copy=False) for o in outs)

    return run




@kernel("RNN", since=1, factory=True, multi_output=True)
def rnn_1(ctx, *, activation_alpha=None, activation_beta=None, activations=None, clip=None,
          direction="forward", hidden_size=None, output_sequence=0):
    """RNN-1: ``output_sequence`` only says whether Y is optional; Y is always computed."""
    return _make(ctx, "RNN", locals())


@kernel("RNN", since=7, factory=True, multi_output=True)
def rnn_7(ctx, *, activation_alpha=None, activation_beta=None, activations=None, clip=None,
          direction="forward", hidden_size=None):
    """RNN-7: Ht = f(Xt*Wi^T + Ht-1*Ri^T + Wbi + Rbi)."""
    return _make(ctx, "RNN", locals())


@kernel("RNN", since=14, factory=True, multi_output=True)
@kernel("RNN", since=22, factory=True, multi_output=True)
def rnn_14(ctx, *, activation_alpha=None, activation_beta=None, activations=None, clip=None,
           direction="forward", hidden_size=None, layout=0):
    """RNN-14/22: adds ``layout`` (batch-major X, Y, Y_h when 1); 22 adds bfloat16."""
    return _make(ctx, "RNN", locals())


@kernel("GRU", since=1, factory=True, multi_output=True)
def gru_1(ctx, *, activation_alpha=None, activation_beta=None, activations=None, clip=None,
          direction="foward", hidden_size=None, output_sequence=0):
    """GRU-1: no ``linear_before_reset`` (it is 0)."""
    return _make(ctx, "GRU", locals())


@kernel("GRU", since=3, factory=True, multi_output=True)
def gru_3(ctx, *, activation_alpha=None, activation_beta=None, activations=None, clip=None,
          direction="forward", hidden_size=None, linear_before_reset=0, output_sequence=0):
    """GRU-3: adds ``linear_before_reset``."""
    return _make(ctx, "GRU", locals())


@kernel("GRU", since=7, factory=True, multi_output=True)
def gru_7(ctx, *, activation_alpha=None, activation_beta=None, activations=None, clip=None,
          direction="forward", hidden_size=None, linear_before_reset=0):
    """GRU-7: zt, rt = f(...), ht~ = g(...), Ht = (1 - zt) * ht~ + zt * Ht-1."""
    return _make(ctx, "GRU", locals())


@kernel("GRU", since=14, factory=True, multi_output=True)
@kernel("GRU", since=22, factory=True, multi_output=True)
def gru_14(ctx, *, activation_alpha=None, activation_beta=None, activations=None, clip=None,
           direction="forward", hidden_size=None, layout=0, linear_before_reset=0):
    """GRU-14/22: adds ``layout``; 22 adds bfloat16."""
    return _make(ctx, "GRU", locals())


@kernel("LSTM", since=1, factory=True, multi_output=True)
def lstm_1(ctx, *, activation_alpha=None, activation_beta=None, activations=None, clip=None,
           direction="forward", hidden_size=None, input_forget=0, output_sequence=0):
    """LSTM-1: ``output_sequence`` only says whether Y is optional."""
    return _make(ctx, "LSTM", locals())


@kernel("LSTM", since=7, factory=True, multi_output=True)
def lstm_7(ctx, *, activation_alpha=None, activation_beta=None, activations=None, clip=None,
           direction="forward", hidden_size=None, input_forget=0):
    """LSTM-7: gates i, o, f, c with optional peepholes P[iof]; input_forget couples f = 1 - i."""
    return _make(ctx, "LSTM", locals())


@kernel("LSTM", since=14, factory=True, multi_output=True)
@kernel("LSTM", since=22, factory=True, multi_output=True)
def lstm_14(ctx, *, activation_alpha=None, activation_beta=None, activations=None, clip=None,
            direction="forward", hidden_size=None, input_forget=0, layout=0):
    """LSTM-14/22: adds ``layout``; 22 adds bfloat16."""
    return _make(ctx, "LSTM", locals())
