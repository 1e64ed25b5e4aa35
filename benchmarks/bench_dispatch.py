"""Per-node dispatch overhead: a chain of 1000 Adds on 1-element tensors.

ortcore, onnxruntime and onnx.reference run the same model in this process;
the table gives microseconds per node (median run time / nodes) and ratios.

    uv run python benchmarks/bench_dispatch.py [--nodes 1000] [--runs 50]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def chain_model(n: int) -> onnx.ModelProto:
    one = numpy_helper.from_array(np.array([1.0], np.float32), "one")
    nodes = [helper.make_node("Add", ["x" if i == 0 else f"t{i}", "one"], [f"t{i + 1}" if i < n - 1 else "y"]) for i in range(n)]
    graph = helper.make_graph(
        nodes, "add_chain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
        initializer=[one],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # onnxruntime reads IR versions up to 13
    return model


def median_us(fn, runs: int) -> float:
    fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import onnx.reference
    import onnxruntime

    import ortcore

    data = chain_model(args.nodes).SerializeToString()
    feeds = {"x": np.zeros(1, np.float32)}
    so = ortcore.SessionOptions()
    so.graph_optimization_level = ortcore.GraphOptimizationLevel.ORT_DISABLE_ALL
    ours = ortcore.InferenceSession(data, so)
    oo = onnxruntime.SessionOptions()
    oo.intra_op_num_threads = args.threads
    oo.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
    theirs = onnxruntime.InferenceSession(data, oo, providers=["CPUExecutionProvider"])
    ref = onnx.reference.ReferenceEvaluator(onnx.load_model_from_string(data))
    assert ours.run(None, feeds)[0][0] == theirs.run(None, feeds)[0][0] == args.nodes

    t_ours = median_us(lambda: ours.run(None, feeds), args.runs) / args.nodes
    t_ort = median_us(lambda: theirs.run(None, feeds), args.runs) / args.nodes
    t_ref = median_us(lambda: ref.run(None, feeds), max(3, args.runs // 10)) / args.nodes
    print(f"{args.nodes} chained Adds on 1-element float32 tensors (optimizations off), median of {args.runs} runs")
    print(f"{'runtime':<16} {'us/node':>8} {'vs ortcore':>11}")
    for name, t in (("ortcore", t_ours), ("onnxruntime", t_ort), ("onnx.reference", t_ref)):
        print(f"{name:<16} {t:>8.3f} {t / t_ours:>10.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
