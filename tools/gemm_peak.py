"""One-thread float32 GEMM speed on the output layer's three products, NumPy's OpenBLAS or PyTorch's MKL.

    python tools/gemm_peak.py numpy
    <a Python that imports torch> tools/gemm_peak.py torch

The output layer of a training step does three products per window of N = 1,120 rows (B = 32, T = 35):
logits = x · Wᵀ (N × H by H × V), dx = dlogits · W (N × V by V × H) and dWᵀ = xᵀ · dlogits (H × N by
N × V), 6·N·H·V flops in all; at medium and large they are most of a step on either side, so the rate
both libraries reach on these shapes bounds the speed ratio there (BENCHMARKS.md, Round 6). Also a
2048² product as the machine's reference. GFLOP/s from the median of enough calls for ~20 GFLOP, after
2 warm-up calls; one thread (OMP/OpenBLAS/MKL_NUM_THREADS=1 before the import, torch.set_num_threads(1)).
Nothing is asserted: it prints.
"""
import os
import sys
import time

os.environ["OMP_NUM_THREADS"] = os.environ["OPENBLAS_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = "1"
import numpy as np  # noqa: E402 - after the thread settings

CONFIGS = {"tiny": (2000, 64), "small": (10000, 128), "medium": (10000, 256), "large": (30000, 512)}
N = 1120


def main(side: str) -> None:
    if side == "torch":
        import torch
        torch.set_num_threads(1)
        mm, conv = torch.mm, torch.from_numpy
    else:
        mm, conv = np.matmul, (lambda x: x)
    rng = np.random.default_rng(0)
    cases = {"2048 square": [("A·B", (2048, 2048), (2048, 2048))]}
    for name, (V, H) in CONFIGS.items():
        cases[name] = [("x·Wᵀ", (N, H), (H, V)), ("dlogits·W", (N, V), (V, H)), ("xᵀ·dlogits", (H, N), (N, V))]
    for name, shapes in cases.items():
        out = []
        for label, sa, sb in shapes:
            a, b = conv(rng.standard_normal(sa, dtype=np.float32)), conv(rng.standard_normal(sb, dtype=np.float32))
            flop = 2 * sa[0] * sa[1] * sb[1]
            for _ in range(2):
                mm(a, b)
            times = []
            for _ in range(max(3, int(2e10 / flop))):
                t = time.perf_counter()
                mm(a, b)
                times.append(time.perf_counter() - t)
            out.append(f"{label} {flop / float(np.median(times)) / 1e9:.0f}")
        print(f"{side:<6} {name:<12} " + ", ".join(out) + " GFLOP/s", flush=True)


if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in ("numpy", "torch"):
        sys.exit("usage: python tools/gemm_peak.py numpy|torch")
    main(sys.argv[1])
