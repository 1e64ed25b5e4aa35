"""Peak memory of a session: ortcore (CPU) vs onnxruntime vs onnx.reference, per light model.

Each (runtime, model) pair runs in a fresh child process, so one runtime's
allocations cannot hide in another's freed pages. The child imports its
runtime and runs a tiny model once (ortcore's demo CNN), which loads the
libraries a runtime brings in on first use (for ortcore with numba, the
compiler behind the CPU provider's compiled loops). It then records its
resident set size (RSS), creates the session, runs it ``--runs`` times, and
reports the RSS high-water mark above that baseline: the memory the model
costs (weights, plans, arenas, intermediate values), not the interpreter and
libraries. The libraries' cost, the RSS growth from import to baseline, is
shown beside it. Run with

    uv run python benchmarks/bench_memory.py [--models resnet50,densenet121] [--threads 2]

For ortcore the child also reports tracemalloc's peak of Python/numpy
allocations, which is exact where RSS is page-granular.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys


def _rss_kib() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


def _warm_up(make_session) -> None:
    """Create and run a session of the demo CNN once: the libraries a runtime loads on first use."""
    import numpy as np

    from ortcore.demo import build_demo_model

    model = build_demo_model()
    model.ir_version = 8  # onnxruntime reads older IR versions than onnx writes
    sess = make_session(model.SerializeToString())
    names = sess.input_names if hasattr(sess, "input_names") else [i.name for i in sess.get_inputs()]
    sess.run(None, {names[0]: np.zeros((1, 3, 32, 32), np.float32)})


def child(runtime: str, model_name: str, runs: int, threads: int) -> dict:
    import numpy as np

    from ortcore.testing import light_model_path

    path = str(light_model_path(model_name))
    if runtime == "ortcore":
        import tracemalloc

        import ortcore

        options = ortcore.SessionOptions()
        options.intra_op_num_threads = threads
        imported = _rss_kib()
        _warm_up(lambda m: ortcore.InferenceSession(m, options))
        base = _rss_kib()
        tracemalloc.start()
        sess = ortcore.InferenceSession(path, options)
    elif runtime == "onnxruntime":
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        imported = _rss_kib()
        _warm_up(lambda m: onnxruntime.InferenceSession(m, options, providers=["CPUExecutionProvider"]))
        base = _rss_kib()
        sess = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    else:
        import onnx.reference

        imported = _rss_kib()
        _warm_up(onnx.reference.ReferenceEvaluator)
        base = _rss_kib()
        sess = onnx.reference.ReferenceEvaluator(path)
    name = sess.get_inputs()[0].name if runtime != "reference" else sess.input_names[0]
    x = np.random.default_rng(0).random((1, 3, 224, 224), np.float32)
    for _ in range(runs):
        sess.run(None, {name: x})
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    result = {"rss_mib": (peak - base) / 1024, "libraries_mib": (base - imported) / 1024}
    if runtime == "ortcore":
        result["traced_mib"] = tracemalloc.get_traced_memory()[1] / 2**20
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="resnet50,densenet121", help="comma-separated light models, or 'all'")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--reference", action="store_true", help="also measure onnx.reference (slow)")
    parser.add_argument("--child", nargs=2, metavar=("RUNTIME", "MODEL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, str(args.threads))
    if args.child:
        print(json.dumps(child(args.child[0], args.child[1], args.runs, args.threads)))
        return 0

    from ortcore.testing import LIGHT_MODELS

    names = list(LIGHT_MODELS) if args.models == "all" else args.models.split(",")
    runtimes = ["ortcore", "onnxruntime"] + (["reference"] if args.reference else [])

    def measure(runtime: str, model: str) -> dict:
        out = subprocess.run(
            [sys.executable, __file__, "--child", runtime, model, "--runs", str(args.runs),
             "--threads", str(args.threads)],
            capture_output=True, text=True, check=True,
        )
        return json.loads(out.stdout.strip().splitlines()[-1])

    print(f"peak RSS above the warmed-up baseline, MiB (threads={args.threads}, runs={args.runs})")
    header = f"{'model':<14} {'ortcore':>9} {'(traced)':>9} {'ort':>9}" + (f" {'ref':>9}" if args.reference else "") + f" {'ortcore/ort':>12}"
    header += f" {'libs ortcore':>13} {'libs ort':>9}"
    print(header)
    print("-" * len(header))
    for model in names:
        m = {rt: measure(rt, model) for rt in runtimes}
        row = f"{model:<14} {m['ortcore']['rss_mib']:>9.1f} {m['ortcore']['traced_mib']:>9.1f} {m['onnxruntime']['rss_mib']:>9.1f}"
        if args.reference:
            row += f" {m['reference']['rss_mib']:>9.1f}"
        row += f" {m['ortcore']['rss_mib'] / m['onnxruntime']['rss_mib']:>12.2f}"
        row += f" {m['ortcore']['libraries_mib']:>13.1f} {m['onnxruntime']['libraries_mib']:>9.1f}"
        print(row, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
