"""The output layer's two ways of using n threads, side by side: row blocks against OpenBLAS's threads.

    python tools/output_ab.py --counts 1,2,4,8,16 --config medium,large --cell gru [--seconds 120]

Row blocks (the default path): each of n Numba threads takes N/n of the rows and runs its
three products on single-threaded BLAS, and dW is summed from n per-thread parts. OpenBLAS's
threads (paths.OUTPUT_BLAS_MIN_THREADS > 0): each product one OpenBLAS call on all n threads,
the cross-entropy on Numba's. For each thread count and config it times, alternating the two
paths: the output layer's training pass (layers.output_loss_and_grads) and eval pass
(layers.output_loss) on bench.py's shapes (N = 35 x 32 rows), then whole training steps
(bench.py's, train.py's step) of the given cell. Milliseconds: the median over the
alternations of each one's median of --calls calls. One JSON line per (config, threads) on
stdout, a table on stderr. The thread counts must fit in NUMBA_NUM_THREADS (the cores by
default). Nothing is asserted; it prints what paths.OUTPUT_BLAS_MIN_THREADS should be set from.
"""
import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # this checkout's rnnlm
from eval_parts import _median_ms   # noqa: E402  (tools/, the script's own folder)


def measure(config, threads, cell, calls, alternations):
    import numba
    from rnnlm import bench, layers, paths

    numba.set_num_threads(threads)
    V, H = bench.CONFIGS[config]
    N = bench.BATCH * bench.BPTT
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, H)).astype(np.float32)
    W = (rng.standard_normal((V, H)) * 0.05).astype(np.float32)
    bias = np.zeros(V, np.float32)
    tgt = rng.integers(0, V, N).astype(np.int64)
    dx, dW = np.empty_like(x), np.empty_like(W)
    windows = bench._tokens(V, 2)
    res = {}
    for path, blas in (("rows", False), ("openblas", True)):
        shapes = layers.output_scratch_shapes(N, V, H, blas=blas)
        scratch = {k: np.empty(s, np.float32) for k, s in shapes.items()}
        paths.OUTPUT_BLAS_MIN_THREADS = 1 if blas else 0
        model = bench._OurModel(cell, V, H)       # its workspace's plan follows the setting above
        res[path] = {
            "train": lambda s=scratch, b=blas: layers.output_loss_and_grads(s, dx, dW, x, W, bias, tgt, blas=b),
            "eval": lambda s=scratch, b=blas: layers.output_loss(s["logits"], x, W, bias, tgt, blas=b),
            "step": lambda m=model: m.train_steps(windows),
        }
    paths.OUTPUT_BLAS_MIN_THREADS = 0
    times = {(p, k): [] for p in res for k in res[p]}
    for _ in range(alternations):
        for p in res:
            for k, f in res[p].items():
                time.sleep(0.1)
                times[p, k].append(_median_ms(f, calls if k != "step" else max(1, calls // 4), warmup=1))
    out = {"config": config, "threads": threads, "cell": cell, "V": V, "H": H, "N": N}
    for (p, k), v in times.items():
        out[f"{p}_{k}_ms"] = round(float(np.median(v)), 2)
        out[f"{p}_{k}_all_ms"] = [round(t, 2) for t in v]
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--counts", default="1,2")
    ap.add_argument("--config", default="medium,large")
    ap.add_argument("--cell", default="gru")
    ap.add_argument("--calls", type=int, default=8)
    ap.add_argument("--alternations", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=0, help="stop starting new measurements after this (0 = no limit)")
    a = ap.parse_args()
    start = time.time()
    print("config  threads  path      train ms  eval ms  step ms", file=sys.stderr)
    for config in a.config.split(","):
        for n in (int(c) for c in a.counts.split(",")):
            if a.seconds and time.time() - start > a.seconds:
                print(f"stopped: --seconds {a.seconds:g} spent", file=sys.stderr)
                return
            r = measure(config, n, a.cell, a.calls, a.alternations)
            print(json.dumps(r), flush=True)
            for p in ("rows", "openblas"):
                print(f"{config:7} {n:7}  {p:8} {r[p + '_train_ms']:9.1f} {r[p + '_eval_ms']:8.1f} "
                      f"{r[p + '_step_ms']:8.1f}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
