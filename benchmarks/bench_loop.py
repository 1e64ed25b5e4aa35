"""Per-iteration cost of Loop over small bodies: ortcore (CPU) vs onnxruntime vs onnx.reference.

A Loop of many iterations over a body of one to a few tiny nodes measures the
control-flow overhead itself (calling the compiled body, binding the carried
values, stacking scan outputs), not the arithmetic. All three runtimes run in
this one process on the same inputs; the table gives the median time per
iteration and the ratios. Run with

    uv run python benchmarks/bench_loop.py [--iterations 1000] [--runs 15]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

# name -> (description, body text); the main graph feeds M, cond, x and a (float[16]).
BODIES = {
    "add": (
        "for loop, body x + a",
        """
        co = Identity(c)
        xo = Add(xi, a)
        """,
    ),
    "add+scan": (
        "for loop, body x * 0.5 + a, x stacked as a scan output",
        """
        co = Identity(c)
        half = Constant<value = float {0.5}>()
        xh = Mul(xi, half)
        xo = Add(xh, a)
        so = Identity(xo)
        """,
    ),
    "while+if": (
        "while sum(x) < limit, body If(i even) x + a else x - a / 2",
        """
        two = Constant<value = int64 {2}>()
        zero = Constant<value = int64 {0}>()
        r = Mod(i, two)
        even = Equal(r, zero)
        xo = If(even) <
          then_branch = t () => (float[16] tv) { tv = Add(xi, a) },
          else_branch = e () => (float[16] ev) { h = Constant<value = float {0.5}>() ah = Mul(a, h) ev = Sub(xi, ah) }
        >
        s = ReduceSum<keepdims = 0>(xo)
        limit = Constant<value = float {1e30}>()
        co = Less(s, limit)
        """,
    ),
}


def build(name: str):
    import onnx
    import onnx.parser

    _, body = BODIES[name]
    scan = "add+scan" == name
    text = f"""
    <ir_version: 8, opset_import: ["" : 17]>
    agraph (int64 M, bool cond, float[16] x, float[16] a) => (float[16] y{", float[N,16] ys" if scan else ""}) {{
      y{", ys" if scan else ""} = Loop (M, cond, x) <body = body (int64 i, bool c, float[16] xi) => (bool co, float[16] xo{", float[16] so" if scan else ""}) {{
        {body}
      }}>
    }}
    """
    model = onnx.parser.parse_model(text)
    onnx.checker.check_model(model)
    return model


def _median_s(fn, runs: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--reference-runs", type=int, default=3)
    parser.add_argument("--no-reference", action="store_true")
    args = parser.parse_args()

    import onnx
    import onnx.reference
    import onnxruntime

    import ortcore
    from ortcore.testing import compare_outputs

    n = args.iterations
    print(f"iterations={n} runs={args.runs} reference_runs={args.reference_runs} "
          f"onnxruntime {onnxruntime.__version__}, onnx {onnx.__version__}, numpy {np.__version__}")
    header = (f"{'body':<10} {'ortcore us/it':>14} {'ort us/it':>10} {'ref us/it':>10} "
              f"{'ortcore/ort':>12} {'ref/ortcore':>12}")
    print(header)
    print("-" * len(header))
    rng = np.random.default_rng(0)
    feeds = {
        "M": np.array(n, np.int64),
        "cond": np.array(True),
        "x": rng.standard_normal(16).astype(np.float32),
        "a": rng.standard_normal(16).astype(np.float32) * 1e-3,
    }
    for name, (description, _) in BODIES.items():
        model = build(name)
        data = model.SerializeToString()
        ours = ortcore.InferenceSession(data, providers=["CPUExecutionProvider"])
        so = onnxruntime.SessionOptions()
        so.intra_op_num_threads = 1
        so.inter_op_num_threads = 1
        theirs = onnxruntime.InferenceSession(data, so, providers=["CPUExecutionProvider"])
        for e, a in zip(theirs.run(None, feeds), ours.run(None, feeds)):
            compare_outputs(e, a, rtol=1e-4, atol=1e-4, name=name)
        t_ours = _median_s(lambda: ours.run(None, feeds), args.runs) / n * 1e6
        t_ort = _median_s(lambda: theirs.run(None, feeds), args.runs) / n * 1e6
        t_ref = float("nan")
        if not args.no_reference:
            ref = onnx.reference.ReferenceEvaluator(model)
            t_ref = _median_s(lambda: ref.run(None, feeds), args.reference_runs, warmup=0) / n * 1e6
        print(f"{name:<10} {t_ours:>14.2f} {t_ort:>10.2f} {t_ref:>10.2f} "
              f"{t_ours / t_ort:>12.2f} {t_ref / t_ours:>12.2f}    {description}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
