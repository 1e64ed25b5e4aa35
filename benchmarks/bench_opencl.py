"""Latency of the onnx light models: ortcore OpenCL vs ortcore CPU vs onnxruntime.

All three run in this one process on the same inputs with the same thread
count, one runtime at a time (the other's session is deleted before timing, as
in ``bench_light_models.py``). The OpenCL session lists the CPU provider as
fallback; the table says how many nodes fell back to it. Run with

    uv run python benchmarks/bench_opencl.py [--models resnet50,vgg19] [--repeat 15]

On PoCL the OpenCL device is this machine's CPU cores, so the ratios compare
OpenCL C kernels with numpy/BLAS kernels on the same hardware.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_light_models import _median_ms  # noqa: E402

OPENCL = "OpenCLExecutionProvider"
CPU = "CPUExecutionProvider"


def _time(sess, feeds, repeat: int) -> float:
    return _median_ms(lambda: sess.run(None, feeds), repeat)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", help="comma-separated subset of the light models")
    parser.add_argument("--repeat", type=int, default=15, help="timed runs per runtime (median reported)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    # BLAS threads must be fixed before numpy loads its BLAS.
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, str(args.threads))

    import onnxruntime

    import ortcore
    from ortcore.testing import LIGHT_MODELS, light_model_path

    if OPENCL not in ortcore.get_available_providers():
        print(f"{OPENCL} is not available here")
        return 1
    names = args.models.split(",") if args.models else list(LIGHT_MODELS)
    header = (f"{'model':<14} {'opencl ms':>10} {'cpu ms':>9} {'ort ms':>9} {'opencl/cpu':>11} "
              f"{'opencl/ort':>11} {'fallback':>9} {'setup s':>8}")
    print(f"threads={args.threads} repeat={args.repeat} onnxruntime {onnxruntime.__version__}")
    print(header)
    print("-" * len(header))
    vs_cpu, vs_ort = [], []
    for name in names:
        path = str(light_model_path(name))
        so = ortcore.SessionOptions()
        so.intra_op_num_threads = args.threads
        t0 = time.perf_counter()
        ocl = ortcore.InferenceSession(path, so, providers=[OPENCL, CPU])
        rng = np.random.default_rng(0)
        feeds = {
            i.name: rng.standard_normal([d if isinstance(d, int) else 1 for d in i.shape]).astype(np.float32)
            for i in ocl.get_inputs()
        }
        ocl.run(None, feeds)  # the first run builds the kernels' work-group variants
        setup = time.perf_counter() - t0
        fallback = sum(a.provider.name != OPENCL for a in ocl.get_partition().assignments)
        t_ocl = _time(ocl, feeds, args.repeat)
        del ocl
        cpu = ortcore.InferenceSession(path, so, providers=[CPU])
        t_cpu = _time(cpu, feeds, args.repeat)
        del cpu
        oo = onnxruntime.SessionOptions()
        oo.intra_op_num_threads = args.threads
        oo.inter_op_num_threads = 1
        ort = onnxruntime.InferenceSession(path, oo, providers=[CPU])
        t_ort = _time(ort, feeds, args.repeat)
        del ort
        vs_cpu.append(t_ocl / t_cpu)
        vs_ort.append(t_ocl / t_ort)
        print(f"{name:<14} {t_ocl:>10.2f} {t_cpu:>9.2f} {t_ort:>9.2f} {t_ocl / t_cpu:>10.2f}x "
              f"{t_ocl / t_ort:>10.2f}x {fallback:>9d} {setup:>8.1f}")
        sys.stdout.flush()
    print("-" * len(header))
    geo_cpu = float(np.exp(np.mean(np.log(vs_cpu))))
    geo_ort = float(np.exp(np.mean(np.log(vs_ort))))
    print(f"geometric mean opencl/cpu: {geo_cpu:.2f}x, opencl/onnxruntime: {geo_ort:.2f}x over {len(vs_cpu)} models")
    return 0


if __name__ == "__main__":
    sys.exit(main())
