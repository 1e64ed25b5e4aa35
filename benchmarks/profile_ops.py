"""Where the time goes: per-op and per-node latency, ortcore (CPU) vs onnxruntime.

Both runtimes profile the same model on the same input, with the same thread
count; each node's time is the median over the profiled runs. The first table
sums the medians by op type; the second groups nodes by kind (a Conv and a
FusedConv are one kind) and input shapes, and lists the groups where ortcore
is furthest behind. Run with

    uv run python benchmarks/profile_ops.py resnet50 [--threads 2] [--runs 20] [--top 15]

A light model's name or a path to an .onnx file. onnxruntime's layout
changes show up as its own ops (ReorderInput, ReorderOutput).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import statistics
import sys
import tempfile


# Ops compared as one kind: onnxruntime runs a Conv with its activation as
# Conv in its blocked layout; ortcore as com.microsoft FusedConv.
_KIND = {"FusedConv": "Conv", "FusedGemm": "Gemm", "FusedMatMul": "MatMul"}


def _node_medians(events: list[dict]) -> dict[str, tuple[str, str, float]]:
    """name -> (op type, shape signature, median µs) from Chrome-trace kernel events."""
    times: dict[str, list[float]] = collections.defaultdict(list)
    info: dict[str, tuple[str, str]] = {}
    for event in events:
        args = event.get("args", {})
        if event.get("cat") != "Node" or "op_name" not in args:
            continue
        name = event["name"].removesuffix("_kernel_time")
        times[name].append(float(event["dur"]))
        op = args["op_name"]
        kind = _KIND.get(op, op)
        shapes = [next(iter(s.values())) if s else None for s in args.get("input_type_shape", [])]
        shapes = shapes[:2] if kind in ("Conv", "Gemm", "MatMul") else shapes[:1]
        info[name] = (op, f"{kind} {' '.join(str(s).replace(' ', '') for s in shapes)}")
    return {name: (*info[name], statistics.median(durs)) for name, durs in times.items()}


def _totals(nodes: dict[str, tuple[str, str, float]], key: int) -> dict[str, tuple[int, float]]:
    """Calls and summed median µs by op type (key 0) or by shape signature (key 1)."""
    totals: dict[str, list[float]] = collections.defaultdict(lambda: [0, 0.0])
    for entry in nodes.values():
        totals[entry[key]][0] += 1
        totals[entry[key]][1] += entry[2]
    return {k: (int(n), us) for k, (n, us) in totals.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="a light model's name (resnet50, ...) or an .onnx path")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()

    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, str(args.threads))

    import onnxruntime

    import ortcore
    import numpy as np

    from ortcore.testing import LIGHT_MODELS, light_model_path

    path = light_model_path(args.model) if args.model in LIGHT_MODELS else args.model
    workdir = tempfile.mkdtemp(prefix="ortcore_profile_")

    so = ortcore.SessionOptions()
    so.intra_op_num_threads = args.threads
    so.enable_profiling = True
    so.profile_file_prefix = os.path.join(workdir, "ortcore")
    oso = onnxruntime.SessionOptions()
    oso.intra_op_num_threads = args.threads
    oso.inter_op_num_threads = 1
    oso.enable_profiling = True
    oso.profile_file_prefix = os.path.join(workdir, "ort")

    rng = np.random.default_rng(0)
    ours = ortcore.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    feed = {i.name: rng.standard_normal([d if isinstance(d, int) else 1 for d in i.shape]).astype(np.float32)
            for i in ours.get_inputs()}
    # One runtime at a time (onnxruntime's idle workers spin); the warm-up run
    # is one of runs + 1 and the medians leave it out.
    profiles = []
    for make in (lambda: ours, lambda: onnxruntime.InferenceSession(path, oso, providers=["CPUExecutionProvider"])):
        session = make()
        for _ in range(args.runs + 1):
            session.run(None, feed)
        with open(session.end_profiling()) as f:
            profiles.append(_node_medians(json.load(f)))
        del session
    ours = None
    ours_nodes, theirs_nodes = profiles

    ours_ops, theirs_ops = _totals(ours_nodes, 0), _totals(theirs_nodes, 0)
    total_ours = sum(us for _, us in ours_ops.values())
    total_theirs = sum(us for _, us in theirs_ops.values())
    print(f"{args.model}: {args.threads} threads, node medians over {args.runs} runs\n")
    print(f"{'op type':<28} {'ortcore n':>9} {'ortcore ms':>10} {'ort n':>6} {'ort ms':>8}")
    for op in sorted(set(ours_ops) | set(theirs_ops), key=lambda o: -ours_ops.get(o, (0, 0.0))[1]):
        n1, us1 = ours_ops.get(op, (0, 0.0))
        n2, us2 = theirs_ops.get(op, (0, 0.0))
        print(f"{op:<28} {n1:>9} {us1 / 1e3:>10.2f} {n2:>6} {us2 / 1e3:>8.2f}")
    print(f"{'total':<28} {'':>9} {total_ours / 1e3:>10.2f} {'':>6} {total_theirs / 1e3:>8.2f}\n")

    ours_sig, theirs_sig = _totals(ours_nodes, 1), _totals(theirs_nodes, 1)
    gaps = sorted(set(ours_sig) | set(theirs_sig),
                  key=lambda k: theirs_sig.get(k, (0, 0.0))[1] - ours_sig.get(k, (0, 0.0))[1])[: args.top]
    print("nodes by kind and input shapes, furthest behind first")
    print(f"{'kind and shapes':<52} {'ortcore n':>9} {'ortcore ms':>10} {'ort n':>6} {'ort ms':>8} {'gap ms':>7}")
    for key in gaps:
        n1, us1 = ours_sig.get(key, (0, 0.0))
        n2, us2 = theirs_sig.get(key, (0, 0.0))
        print(f"{key[:52]:<52} {n1:>9} {us1 / 1e3:>10.2f} {n2:>6} {us2 / 1e3:>8.2f} {(us1 - us2) / 1e3:>7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
