"""Matrix products on Numba's threads: row blocks, each on single-threaded BLAS.

Why not let OpenBLAS thread the products itself: the cross-entropy and the
other parallel kernels run on Numba's (OpenMP) threads, and after a product
OpenBLAS's workers keep spinning for a while, so the two thread pools fight
for the same 2 cores (measured: a tiny-config eval window took 20-24 ms with
2-thread OpenBLAS next to Numba's threads, 8 ms with one pool). So there is
one pool, Numba's: a product is cut into as many row blocks as Numba has
threads, and each block is one `gemm` (gemm.py: single-threaded BLAS) in a `prange`.
At the sizes here that runs as fast as 2-thread OpenBLAS (1120x256 @ 256x10000:
44 ms against 40 ms; 1 thread: 72 ms).

Results are bitwise reproducible for a given thread count (blocks and the
order of partial sums are fixed by it).
"""
from __future__ import annotations

import numba
import numpy as np
from numba import prange

from ._blas import one_blas_thread
from .gemm import gemm
from ._jit import njit_parallel


def n_blocks() -> int:
    """Row blocks per product: one per Numba thread."""
    return max(1, numba.get_num_threads())


@njit_parallel
def _matmul(out, a, b, blocks):
    N = a.shape[0]
    for k in prange(blocks):
        r0, r1 = k * N // blocks, (k + 1) * N // blocks
        if r1 > r0:
            gemm(a[r0:r1], b, out[r0:r1])


@njit_parallel
def add_parts(out, parts):
    """out += parts[0] + parts[1] + ... (in that order), rows in parallel; out 2-D, parts 3-D."""
    for v in prange(out.shape[0]):
        for k in range(parts.shape[0]):
            out[v] += parts[k, v]


@njit_parallel
def sum_parts_transposed(out, parts_T):
    """out (M, K) = parts_T[0]ᵀ + parts_T[1]ᵀ + ... (in that order); parts_T (P, K, M).

    For weight gradients computed as bᵀ · a (K, M) instead of aᵀ · b (M, K): with
    M the long side (the vocabulary) OpenBLAS runs that form faster here. Each
    row of out gathers its column of every part: strided loads, contiguous
    stores (2x faster than the other way round); 16 rows share the cache lines.
    """
    M, K = out.shape
    P = parts_T.shape[0]
    for tile in prange((M + 15) // 16):
        for m in range(tile * 16, min(M, tile * 16 + 16)):
            row = out[m]
            for k in range(K):
                row[k] = parts_T[0, k, m]
            for p in range(1, P):
                for k in range(K):
                    row[k] += parts_T[p, k, m]


def matmul(out, a, b):
    """out (N, M) = a (N, K) @ b (K, M), rows of a in blocks. b may be a transposed view."""
    with one_blas_thread():
        _matmul(out, a, b, n_blocks())
