"""Control flow: If, Loop, Scan (8 and 9+), SequenceMap.

Each kernel compiles its graph attributes once, at session creation, with
``ctx.compile_subgraph``; a run only calls the compiled bodies. The per-run
callable receives the node's declared inputs (omitted ones as None) followed
by the outer-scope values its bodies read (``ctx.implicit_inputs``), which are
passed on to every body call unchanged. A failure inside a body is re-raised
naming the body's failing node, so nested bodies give a path to the culprit.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

from ortcore.dtypes import np_dtype
from ortcore.graph_utils import outer_scope_names
from ortcore_cpu.registry import kernel


class BodyError(RuntimeError):
    """A subgraph of a control-flow node failed; the message names the failing body node."""


def _fail(plan: Any, what: str, exc: Exception) -> BodyError:
    step = plan.failing_step(exc.__traceback__)
    where = f"{step.describe()} failed" if step is not None else "failed"
    return BodyError(f"{what}: {where}: {type(exc).__name__}: {exc}")


def _empty_stack(xp: Any, value_type: Any) -> Any:
    """The stacked scan output of zero iterations, shaped as onnxruntime does.

    The element shape comes from the body's declared output: unknown or
    symbolic dimensions become 0, an unknown rank gives shape ``(0,)``.
    """
    dtype = np.float32
    shape: tuple[int, ...] = ()
    if value_type is not None:
        if value_type.elem_type:
            dtype = np_dtype(value_type.elem_type)
        if value_type.shape is not None:
            shape = tuple(d if isinstance(d, int) else 0 for d in value_type.shape)
    return xp.empty((0, *shape), dtype=dtype)


def _output_types(graph: Any) -> list[Any]:
    return [v.type for v in graph.outputs]


def _reads(graph: Any, name: str) -> bool:
    """Whether ``graph`` (its nodes, nested bodies or outputs) reads the value ``name``."""
    if any(v.name == name for v in graph.outputs):
        return True
    for node in graph.nodes:
        if name in node.inputs or any(name in outer_scope_names(sub) for sub in node.subgraphs()):
            return True
    return False


# -- If ----------------------------------------------------------------------------------


@kernel("If", since=1, factory=True, multi_output=True)
@kernel("If", since=11, factory=True, multi_output=True)
@kernel("If", since=13, factory=True, multi_output=True)
@kernel("If", since=16, factory=True, multi_output=True)
@kernel("If", since=19, factory=True, multi_output=True)
@kernel("If", since=21, factory=True, multi_output=True)
@kernel("If", since=23, factory=True, multi_output=True)
@kernel("If", since=24, factory=True, multi_output=True)
@kernel("If", since=25, factory=True, multi_output=True)
def if_(ctx, /, *, then_branch, else_branch):
    """If: run one branch on the outer-scope values; the branch's outputs are the node's."""
    then_plan = ctx.compile_subgraph(then_branch)
    else_plan = ctx.compile_subgraph(else_branch)

    def run(cond, /, *implicit):
        plan, what = (then_plan, "then_branch") if cond else (else_plan, "else_branch")
        try:
            return plan.run(*implicit)
        except Exception as exc:
            raise _fail(plan, what, exc) from exc

    return run


# -- Loop --------------------------------------------------------------------------------


def _trips(trip_count: Any) -> int:
    """The maximum trip count M; unbounded when omitted."""
    return sys.maxsize if trip_count is None else int(trip_count.item())


@kernel("Loop", since=1, factory=True, multi_output=True)
@kernel("Loop", since=11, factory=True, multi_output=True)
@kernel("Loop", since=13, factory=True, multi_output=True)
@kernel("Loop", since=16, factory=True, multi_output=True)
@kernel("Loop", since=19, factory=True, multi_output=True)
@kernel("Loop", since=21, factory=True, multi_output=True)
@kernel("Loop", since=23, factory=True, multi_output=True)
@kernel("Loop", since=24, factory=True, multi_output=True)
@kernel("Loop", since=25, factory=True, multi_output=True)
def loop(ctx, /, *, body):
    """Loop: ``for i in range(M) while cond``; body(i, cond, *carried) -> (cond, *carried, *scan)."""
    n_carried = len(ctx.node.inputs) - 2
    if len(body.inputs) != n_carried + 2:
        raise ValueError(
            f"the body has {len(body.inputs)} inputs; expected {n_carried + 2} "
            f"(iteration number, condition and {n_carried} loop-carried values)"
        )
    n_scan = len(body.outputs) - 1 - n_carried
    if n_scan < 0:
        raise ValueError(
            f"the body has {len(body.outputs)} outputs; expected at least {n_carried + 1} "
            f"(condition and {n_carried} loop-carried values)"
        )
    scan_types = _output_types(body)[1 + n_carried :]
    plan = ctx.compile_subgraph(body)
    body_run = plan.run
    carried_end = 1 + n_carried
    xp = ctx.xp
    stack, array, int64 = xp.stack, xp.asarray, xp.int64
    true = xp.asarray(True)
    # the iteration number costs an array per iteration: make it only for a body that reads it
    counts = _reads(body, body.inputs[0].name)

    def run(trip_count, cond, /, *args):
        carried, implicit = args[:n_carried], args[n_carried:]
        trips = _trips(trip_count)
        keep = true if cond is None else cond
        scans: list[list[Any]] = [[] for _ in range(n_scan)]
        i = 0
        try:
            while keep and i < trips:
                out = body_run(array(i, int64) if counts else None, keep, *carried, *implicit)
                keep = out[0]
                carried = out[1:carried_end]
                for k in range(n_scan):
                    scans[k].append(out[carried_end + k])
                i += 1
        except Exception as exc:
            raise _fail(plan, f"body (iteration {i})", exc) from exc
        stacked = tuple(
            stack(s) if s else _empty_stack(xp, t) for s, t in zip(scans, scan_types)
        )
        return (*carried, *stacked)

    if n_scan == 0:  # the common while/for loop: no per-iteration bookkeeping of scan outputs
        def run_no_scan(trip_count, cond, /, *args):
            carried, implicit = args[:n_carried], args[n_carried:]
            trips = _trips(trip_count)
            keep = true if cond is None else cond
            i = 0
            try:
                while keep and i < trips:
                    out = body_run(array(i, int64) if counts else None, keep, *carried, *implicit)
                    keep = out[0]
                    carried = out[1:]
                    i += 1
            except Exception as exc:
                raise _fail(plan, f"body (iteration {i})", exc) from exc
            return carried

        return run_no_scan
    return run


# -- Scan --------------------------------------------------------------------------------


def _per_input(values: Sequence[int] | None, n: int, what: str) -> list[int]:
    if not values:
        return [0] * n
    if len(values) != n:
        raise ValueError(f"{what} has {len(values)} entries; expected {n}")
    return [int(v) for v in values]


def _check_scan_body(body: Any, n_state: int, num_scan_inputs: int) -> int:
    if len(body.inputs) != n_state + num_scan_inputs:
        raise ValueError(
            f"the body has {len(body.inputs)} inputs; expected {n_state + num_scan_inputs} "
            f"({n_state} state variables and {num_scan_inputs} scan inputs)"
        )
    n_scan_out = len(body.outputs) - n_state
    if n_scan_out < 0:
        raise ValueError(f"the body has {len(body.outputs)} outputs; expected at least {n_state}")
    return n_scan_out


@kernel("Scan", since=8, factory=True, multi_output=True)
def scan_8(ctx, /, *, body, num_scan_inputs, directions=None):
    """Scan-8: batch axis 0, sequence axis 1, optional per-batch sequence_lens.

    Scan outputs past a batch entry's sequence length are zero, as in onnxruntime.
    """
    n_decl = len(ctx.node.inputs)
    n_state = n_decl - 1 - num_scan_inputs
    n_scan_out = _check_scan_body(body, n_state, num_scan_inputs)
    reverse = [bool(d) for d in _per_input(directions, num_scan_inputs, "directions")]
    scan_types = _output_types(body)[n_state:]
    plan = ctx.compile_subgraph(body)
    body_run = plan.run
    xp = ctx.xp

    def run(sequence_lens, /, *args):
        states, scans, implicit = args[:n_state], args[n_state : n_decl - 1], args[n_decl - 1 :]
        batch, max_len = scans[0].shape[:2]
        for x in scans[1:]:
            if x.shape[:2] != (batch, max_len):
                raise ValueError(
                    f"scan inputs disagree on (batch, sequence length): {scans[0].shape[:2]} vs {x.shape[:2]}"
                )
        lens = [max_len] * batch if sequence_lens is None else [int(n) for n in sequence_lens.reshape(-1)]
        if len(lens) != batch or any(n < 0 or n > max_len for n in lens):
            raise ValueError(f"sequence_lens {lens} does not fit batch {batch} of length {max_len}")
        final: list[list[Any]] = [[] for _ in range(n_state)]
        outs: list[list[Any]] = [[] for _ in range(n_scan_out)]
        for b in range(batch):
            st = tuple(s[b] for s in states)
            n = lens[b]
            seqs = [x[b, n - 1 :: -1] if r and n else x[b, :n] for x, r in zip(scans, reverse)]
            per: list[list[Any]] = [[] for _ in range(n_scan_out)]
            t = 0
            try:
                for t in range(n):
                    res = body_run(*st, *(s[t] for s in seqs), *implicit)
                    st = res[:n_state]
                    for k in range(n_scan_out):
                        per[k].append(res[n_state + k])
            except Exception as exc:
                raise _fail(plan, f"body (batch {b}, step {t})", exc) from exc
            for j in range(n_state):
                final[j].append(st[j])
            for k in range(n_scan_out):
                if per[k]:
                    out = xp.stack(per[k])
                    if n < max_len:
                        pad = xp.zeros((max_len - n, *out.shape[1:]), dtype=out.dtype)
                        out = xp.concatenate([out, pad])
                else:
                    out = None
                outs[k].append(out)
        result = [xp.stack(f) if f else s[:0] for f, s in zip(final, states)]
        for k in range(n_scan_out):
            result.append(_stack_batches(xp, outs[k], max_len, scan_types[k]))
        return tuple(result)

    return run


def _stack_batches(xp: Any, per_batch: list[Any], max_len: int, value_type: Any) -> Any:
    """Stack per-batch scan outputs; entries with no iterations become zeros."""
    like = next((o for o in per_batch if o is not None), None)
    if like is None:
        empty = _empty_stack(xp, value_type)
        return xp.zeros((len(per_batch), max_len, *empty.shape[1:]), dtype=empty.dtype)
    zeros = xp.zeros_like(like)
    return xp.stack([o if o is not None else zeros for o in per_batch])


@kernel("Scan", since=9, factory=True, multi_output=True)
@kernel("Scan", since=11, factory=True, multi_output=True)
@kernel("Scan", since=16, factory=True, multi_output=True)
@kernel("Scan", since=19, factory=True, multi_output=True)
@kernel("Scan", since=21, factory=True, multi_output=True)
@kernel("Scan", since=23, factory=True, multi_output=True)
@kernel("Scan", since=24, factory=True, multi_output=True)
@kernel("Scan", since=25, factory=True, multi_output=True)
def scan(
    ctx,
    /,
    *,
    body,
    num_scan_inputs,
    scan_input_axes=None,
    scan_input_directions=None,
    scan_output_axes=None,
    scan_output_directions=None,
):
    """Scan-9+: per-input scan axes and directions, per-output stacking axes and directions."""
    n_decl = len(ctx.node.inputs)
    n_state = n_decl - num_scan_inputs
    n_scan_out = _check_scan_body(body, n_state, num_scan_inputs)
    in_axes = _per_input(scan_input_axes, num_scan_inputs, "scan_input_axes")
    in_reverse = [bool(d) for d in _per_input(scan_input_directions, num_scan_inputs, "scan_input_directions")]
    out_axes = _per_input(scan_output_axes, n_scan_out, "scan_output_axes")
    out_reverse = [bool(d) for d in _per_input(scan_output_directions, n_scan_out, "scan_output_directions")]
    scan_types = _output_types(body)[n_state:]
    plan = ctx.compile_subgraph(body)
    body_run = plan.run
    xp = ctx.xp

    def run(*args):
        states, implicit = args[:n_state], args[n_decl:]
        seqs = []
        for x, axis, rev in zip(args[n_state:n_decl], in_axes, in_reverse):
            if axis:
                x = xp.moveaxis(x, axis, 0)  # a view: slicing it indexes the scan axis
            seqs.append(x[::-1] if rev else x)
        length = seqs[0].shape[0]
        if any(s.shape[0] != length for s in seqs[1:]):
            raise ValueError(f"scan inputs have different sequence lengths {[s.shape[0] for s in seqs]}")
        outs: list[list[Any]] = [[] for _ in range(n_scan_out)]
        t = 0
        try:
            for t in range(length):
                res = body_run(*states, *(s[t] for s in seqs), *implicit)
                states = res[:n_state]
                for k in range(n_scan_out):
                    outs[k].append(res[n_state + k])
        except Exception as exc:
            raise _fail(plan, f"body (step {t})", exc) from exc
        result = list(states)
        for k in range(n_scan_out):
            if not outs[k]:
                empty = _empty_stack(xp, scan_types[k])
                result.append(xp.moveaxis(empty, 0, out_axes[k]) if out_axes[k] else empty)
                continue
            if out_reverse[k]:
                outs[k].reverse()
            result.append(xp.stack(outs[k], axis=out_axes[k]))
        return tuple(result)

    return run


# -- SequenceMap -------------------------------------------------------------------------


@kernel("SequenceMap", since=17, factory=True, multi_output=True)
def sequence_map(ctx, /, *, body):
    """SequenceMap: body per element of the first sequence; sequence inputs are zipped."""
    n_decl = len(ctx.node.inputs)
    if len(body.inputs) != n_decl:
        raise ValueError(f"the body has {len(body.inputs)} inputs; expected {n_decl}")
    n_out = len(body.outputs)
    plan = ctx.compile_subgraph(body)
    body_run = plan.run

    def run(input_sequence, /, *args):
        extra, implicit = args[: n_decl - 1], args[n_decl - 1 :]
        n = len(input_sequence)
        for j, e in enumerate(extra):
            if isinstance(e, list) and len(e) != n:
                raise ValueError(
                    f"input {j + 1} is a sequence of length {len(e)}; the first input has {n}"
                )
        results: list[list[Any]] = [[] for _ in range(n_out)]
        i = 0
        try:
            for i in range(n):
                item = [e[i] if isinstance(e, list) else e for e in extra]
                res = body_run(input_sequence[i], *item, *implicit)
                for k in range(n_out):
                    results[k].append(res[k])
        except Exception as exc:
            raise _fail(plan, f"body (element {i})", exc) from exc
        return tuple(results)

    return run
