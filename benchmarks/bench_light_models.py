"""Latency of the onnx light model zoo: ortcore (CPU) vs onnxruntime vs onnx.reference.

All three run in this one process on the same inputs, with the same thread
count; the table gives medians and the ratios. Run with

    uv run python benchmarks/bench_light_models.py [--models resnet50,vgg19] [--threads 2]

onnx.reference is slow (seconds per run), so it is timed over fewer runs
(``--reference-runs``); ``--no-reference`` skips it.

On a shared machine a slow phase can last seconds and land on one runtime's
block of runs. ``--repeat N`` times each runtime's block N times per model,
in turn (ortcore, onnxruntime, ortcore, ...), then onnx.reference's N
times, and reports the lowest of each runtime's medians: the same rule for
all three.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np


def _median_ms(fn, runs: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", help="comma-separated subset of the light models")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--reference-runs", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=1, help="blocks of runs per runtime; the lowest median counts")
    parser.add_argument("--no-reference", action="store_true")
    args = parser.parse_args()

    # BLAS threads must be fixed before numpy loads its BLAS.
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, str(args.threads))

    import onnx
    import onnx.reference
    import onnxruntime
    from threadpoolctl import threadpool_limits

    import ortcore
    from ortcore.testing import LIGHT_MODELS, light_model_path

    names = args.models.split(",") if args.models else list(LIGHT_MODELS)
    print(f"threads={args.threads} runs={args.runs} repeat={args.repeat} reference_runs={args.reference_runs} "
          f"onnxruntime {onnxruntime.__version__}, onnx {onnx.__version__}, numpy {np.__version__}")
    header = f"{'model':<14} {'ortcore ms':>11} {'ort ms':>9} {'ref ms':>10} {'ortcore/ort':>12} {'ref/ortcore':>12}"
    print(header)
    print("-" * len(header))
    ratios = []
    for name in names:
        path = str(light_model_path(name))
        # One runtime at a time: onnxruntime's idle worker threads keep spinning and
        # would slow whatever runs next to them, so each session is gone before the other starts.
        rng = np.random.default_rng(0)
        feeds = None
        t_ours = t_ort = float("inf")
        for _ in range(args.repeat):
            so = ortcore.SessionOptions()
            so.intra_op_num_threads = args.threads
            ours = ortcore.InferenceSession(path, so, providers=["CPUExecutionProvider"])
            if feeds is None:
                feeds = {
                    i.name: rng.standard_normal([d if isinstance(d, int) else 1 for d in i.shape]).astype(np.float32)
                    for i in ours.get_inputs()
                }
            t_ours = min(t_ours, _median_ms(lambda: ours.run(None, feeds), args.runs))
            del ours
            oo = onnxruntime.SessionOptions()
            oo.intra_op_num_threads = args.threads
            oo.inter_op_num_threads = 1
            theirs = onnxruntime.InferenceSession(path, oo, providers=["CPUExecutionProvider"])
            t_ort = min(t_ort, _median_ms(lambda: theirs.run(None, feeds), args.runs))
            del theirs
        t_ref = float("nan")
        if not args.no_reference:
            ref = onnx.reference.ReferenceEvaluator(onnx.load(path))
            # ortcore's CPU provider runs numpy's BLAS on one thread while its own conv
            # threads take the cores; onnx.reference gets the same thread count as the others
            with threadpool_limits(limits=args.threads, user_api="blas"):
                t_ref = min(_median_ms(lambda: ref.run(None, feeds), args.reference_runs, warmup=0)
                            for _ in range(args.repeat))
        ratios.append(t_ours / t_ort)
        print(f"{name:<14} {t_ours:>11.2f} {t_ort:>9.2f} {t_ref:>10.1f} {t_ours / t_ort:>11.2f}x {t_ref / t_ours:>11.1f}x")
        sys.stdout.flush()
    geo = float(np.exp(np.mean(np.log(ratios))))
    print("-" * len(header))
    print(f"geometric mean ortcore/onnxruntime: {geo:.2f}x over {len(ratios)} models")
    return 0


if __name__ == "__main__":
    sys.exit(main())
