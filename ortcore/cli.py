"""The ``ortcore`` command line: providers, partition, run, demo, conformance."""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["main"]


def _providers_arg(value: str | None) -> list[str] | None:
    return [p.strip() for p in value.split(",") if p.strip()] if value else None


def cmd_providers(args: argparse.Namespace) -> int:
    from ortcore.plugin import get_plugin_manager

    pm = get_plugin_manager()
    providers = pm.providers()
    print(f"{'plugin':<16} {'distribution':<22} {'version':<10} {'status':<9} providers")
    for info in pm.plugin_infos.values():
        names = ", ".join(info.providers) or "-"
        print(f"{info.name:<16} {info.distribution or '-':<22} {info.version or '-':<10} {info.status:<9} {names}")
        if info.error:
            print(f"{'':<16} error: {info.error}")
    print()
    print(f"{'provider':<28} {'available':<10} device / reason")
    for info in providers.values():
        if info.available:
            try:
                detail = info.cls({}, ()).describe()
            except Exception as exc:  # noqa: BLE001 - shown, not raised
                detail = f"failed to start: {type(exc).__name__}: {exc}"
        else:
            detail = info.reason
        print(f"{info.name:<28} {'yes' if info.available else 'no':<10} {detail}")
    if not providers:
        print("no execution providers installed (pip install ortcore-cpu)")
    return 0


def _session(model: Any, providers: list[str] | None, no_fallback: bool = False):
    import ortcore

    opts = ortcore.SessionOptions()
    opts.disable_fallback = no_fallback
    return ortcore.InferenceSession(model, opts, providers=providers)


def cmd_partition(args: argparse.Namespace) -> int:
    sess = _session(args.model, _providers_arg(args.providers), args.no_fallback)
    partition = sess.get_partition()
    if args.json:
        print(json.dumps(partition.as_dict(), indent=2))
    else:
        print(partition.table())
    return 0


def random_feeds(sess: Any, seed: int = 0) -> dict[str, np.ndarray]:
    """Random inputs matching the session's inputs; symbolic dimensions become 1."""
    from ortcore.session import _InputSpec  # noqa: PLC2701 - same package

    rng = np.random.default_rng(seed)
    feeds = {}
    for arg in sess.get_inputs():
        spec: _InputSpec = sess._specs[arg.name]
        shape = tuple(d if isinstance(d, int) else 1 for d in (spec.shape or ()))
        dtype = spec.dtype or np.dtype(np.float32)
        if dtype.kind == "f":
            feeds[arg.name] = rng.standard_normal(shape).astype(dtype)
        elif dtype.kind in "iu":
            feeds[arg.name] = rng.integers(0, 10, shape).astype(dtype)
        elif dtype.kind == "b":
            feeds[arg.name] = rng.integers(0, 2, shape).astype(bool)
        else:
            feeds[arg.name] = np.full(shape, "a", dtype=object)
    return feeds


def _run_and_report(sess: Any, feeds: dict[str, np.ndarray], repeat: int) -> None:
    outputs = sess.run(None, feeds)
    for out, value in zip(sess.get_outputs(), outputs):
        flat = np.asarray(value).reshape(-1)
        preview = np.array2string(flat[:8], precision=4, separator=", ")
        print(f"output {out.name!r}: {value.dtype} {value.shape} {preview}{' ...' if flat.size > 8 else ''}")
    print()
    print(sess.get_partition().table())
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        sess.run(None, feeds)
        times.append((time.perf_counter() - t0) * 1e3)
    print()
    print(
        f"latency over {repeat} runs: median {statistics.median(times):.3f} ms, "
        f"min {min(times):.3f} ms (providers: {', '.join(sess.get_providers())})"
    )


def cmd_run(args: argparse.Namespace) -> int:
    sess = _session(args.model, _providers_arg(args.providers), args.no_fallback)
    _run_and_report(sess, random_feeds(sess, args.seed), args.repeat)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from ortcore.demo import build_demo_model

    model = build_demo_model()
    sess = _session(model.SerializeToString(), _providers_arg(args.providers))
    print(f"demo model {model.graph.name!r}: {len(model.graph.node)} nodes, input image [N, 3, 32, 32]")
    rng = np.random.default_rng(args.seed)
    image = rng.standard_normal((args.batch, 3, 32, 32)).astype(np.float32)
    _run_and_report(sess, {"image": image}, args.repeat)
    probabilities = sess.run(None, {"image": image})[0]
    print(f"predicted classes: {probabilities.argmax(axis=1).tolist()}")
    return 0


LEVELS = {"disable": 0, "basic": 1, "extended": 2, "layout": 3, "all": 99}


def cmd_optimize(args: argparse.Namespace) -> int:
    import ortcore

    opts = ortcore.SessionOptions()
    opts.graph_optimization_level = ortcore.GraphOptimizationLevel(LEVELS[args.level])
    opts.optimized_model_filepath = args.output
    before = _node_count(args.model)
    sess = ortcore.InferenceSession(args.model, opts, providers=_providers_arg(args.providers))
    for line in sess.get_optimization_log() or ["no pass changed the graph"]:
        print(line)
    after = len(sess.get_partition().assignments)
    print(f"{before} nodes -> {after} nodes; wrote {args.output}")
    return 0


def _node_count(path: str) -> int:
    from ortcore.ir.onnx_io import read_model_proto

    return len(read_model_proto(path)[0].graph.node)


def cmd_conformance(args: argparse.Namespace) -> int:
    try:
        import ortcore_conformance
    except ModuleNotFoundError as exc:
        if exc.name != "ortcore_conformance":
            raise
        print("ortcore conformance needs the conformance suite: pip install ortcore-conformance", file=sys.stderr)
        return 2
    return ortcore_conformance.main(args.provider, quick=args.quick, report=args.report, keyword=args.k)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ortcore", description="Run ONNX models on pluggable execution providers.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("providers", help="list plugins and execution providers, with availability")
    p.set_defaults(func=cmd_providers)

    for name, func, help_ in (
        ("partition", cmd_partition, "show which provider runs each node of MODEL"),
        ("run", cmd_run, "run MODEL on random inputs: outputs, partition and latency"),
    ):
        p = sub.add_parser(name, help=help_)
        p.add_argument("model", help="path to an .onnx file")
        p.add_argument("--providers", help="comma-separated provider names in priority order")
        p.add_argument("--no-fallback", action="store_true", help="fail instead of falling back to CPU")
        p.set_defaults(func=func)
        if name == "partition":
            p.add_argument("--json", action="store_true", help="print the partition as JSON")
        else:
            p.add_argument("--repeat", type=int, default=20)
            p.add_argument("--seed", type=int, default=0)

    p = sub.add_parser("optimize", help="optimize MODEL and write the result to OUTPUT, printing what each pass did")
    p.add_argument("model", help="path to an .onnx file")
    p.add_argument("output", help="where to write the optimized model")
    p.add_argument("--level", choices=list(LEVELS), default="all")
    p.add_argument("--providers", help="comma-separated provider names (passes fuse only what they can run)")
    p.set_defaults(func=cmd_optimize)

    p = sub.add_parser("demo", help="build a small CNN on the fly and run it (the quick start)")
    p.add_argument("--providers", help="comma-separated provider names in priority order")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--repeat", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("conformance", help="run the conformance suite against PROVIDER (needs ortcore-conformance)")
    p.add_argument("provider", help="execution provider name, e.g. CPUExecutionProvider")
    p.add_argument("--quick", action="store_true", help="few randomized examples and light models (CI)")
    p.add_argument("--report", metavar="DIR", help="write report.json, report.md and report.html to DIR")
    p.add_argument("-k", metavar="PATTERN", help="only cases matching PATTERN (pytest -k)")
    p.set_defaults(func=cmd_conformance)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from ortcore.errors import OrtCoreError

    try:
        return args.func(args)
    except OrtCoreError as exc:
        print(f"ortcore: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # the reader stopped early (``| head``): not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
