"""Which fast path a training step takes: every threshold, and the one decision.

Legend: H = hidden size, V = vocabulary, T = BPTT steps, B = batch.

The kernels have a few variants that compute the same thing in a different
order or on a different share of the threads; which one is faster depends on
H and the thread count. The thresholds that choose live here, each with the
measurement that set it, and `plan(cell, H)` applies them once: the model
calls it when it allocates a workspace for a (T, B) shape and then follows the
returned `Plan` on every call that uses that workspace, without deciding again.

The one thing to know before editing: a path changes only the order of
operations, never the result beyond rounding, and each one is tested against
the plain path (tests/test_cells.py, test_overlap.py, test_layers.py,
test_gradcheck.py force them with monkeypatch on this module's names).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from . import pblas

# LSTM step shared between threads by hidden unit (lstm._lstm_forward /
# _lstm_backward) from this H up. Below it a step is too little work to share:
# two threads meeting 70 times per window cost more than they save. Measured
# (interleaved A/B against the serial step): the split is 2-5% slower at H = 64,
# 4-5% faster at small (H = 128... 256), 9-15% at medium, 6-11% at large (512).
SPLIT_MIN_H = 128

# The GRU step shared the same way (gru.py), from this H up. Measured 30 Nov 2026,
# 2 threads, the T steps in one parallel region (steps.py), split against serial
# (forward / backward of T = 35, B = 32, medians of 40 interleaved): H = 64 0.91 /
# 0.94 of the serial time, H = 128 0.70 / 0.85, H = 256 0.67 / 0.76. (With one
# parallel region per step it had measured 0.88-0.96x at H = 128, hence 256 then.)
GRU_SPLIT_MIN_H = 128

# The vanilla RNN step shared the same way (rnn.py), from this H up. Measured as the
# GRU's: H = 64 0.95 / 0.99, H = 128 0.83 / 0.89, H = 256 0.80 / 0.84, H = 512
# 0.71 / 0.74 of the serial time (one region per step had given nothing under load).
RNN_SPLIT_MIN_H = 128

# Output layer's dW as dWᵀ = xᵀ · dlogits per thread block (layers._output_loss_and_grads)
# up to this H. OpenBLAS runs that form 35% (H = 64), 33% (128), 19% (256) and 11%
# (512) faster here than dlogitsᵀ · x, but the parts must then be added up
# transposed (pblas.sum_parts_transposed). Paired A/B of training steps: tiny LSTM
# +2.5%, small LSTM and GRU +6%, medium +3-5%; at large (H = 512, V = 30,000) the
# transposing sum of 15 M entries eats the gain (-3 to -5%), so large keeps the old form.
DW_TRANSPOSED_MAX_H = 256

# The serial LSTM recurrence of the top layer overlapped with the output layer
# (overlap.py) wherever the step is serial, i.e. below SPLIT_MIN_H, with more than
# one thread, and with the transposed dW (its backward writes dWᵀ parts).
# Measured at tiny (H = 64), 40 alternating pairs of 10-window runs: eval 5.7% and
# 9.6% faster, training -2..+2% (the training gain is somewhere in 0-7% on this
# noisy machine; interleaved A/B earlier that day: training 4-7%, eval 3-18%).
OVERLAP_MIN_THREADS = 2

# The output layer's three products (logits, dx, dW) as one OpenBLAS call each on all
# the threads (layers._output_blas), from this thread count up; 0 = never. Below it
# they run as one row block per Numba thread, each block on single-threaded BLAS
# (pblas.py), and dW is summed from per-thread parts. The row blocks are what this
# project measured on 2 cores; the predicted trouble is at 8-16 threads, where each
# of n threads packs all of W for its N/n rows and keeps its own dW part (memory
# traffic growing with n), while OpenBLAS shares its packed panels between its
# threads and splits dW without parts. Measured on the 2-core machine (30 Nov 2026,
# medium, 1,120 rows, training pass, medians of 12, three alternations): 2 threads
# row blocks 88-107 ms, one threaded call 96-115 ms; 1 thread the same path. Not
# measured above 2 threads, hence off until a many-core run (tools/output_ab.py,
# run by tools/scaling_run.sh) says from where it pays.
OUTPUT_BLAS_MIN_THREADS = 0


class Plan(NamedTuple):
    """The paths a workspace's steps take (see the module docstring)."""
    unit_bounds: np.ndarray   # (parts+1,) int64: the recurrent step shared by hidden unit; 2 entries = serial
    overlapped: bool          # LSTM top layer's recurrence overlapped with the output layer
    dW_transposed: bool       # output layer's dW computed as dWᵀ parts
    output_blas: bool = False  # output layer's products as single OpenBLAS calls on all threads (not
                               # on the overlapped path, which keeps its row blocks)


def unit_bounds(H, cell="lstm") -> np.ndarray:
    """Hidden-unit boundaries of the parts a recurrent step is shared in (one per Numba
    thread; [0, H], one part, below the cell's threshold)."""
    threshold = {"gru": GRU_SPLIT_MIN_H, "rnn": RNN_SPLIT_MIN_H}.get(cell, SPLIT_MIN_H)
    parts = min(pblas.n_blocks(), H) if H >= threshold else 1
    return np.array([p * H // parts for p in range(parts + 1)], np.int64)


def unit_rows(W_hh, bounds, gates):
    """W_hh (gates*H, H) with its rows reordered so that part p's rows (every gate's rows of
    its units bounds[p]..bounds[p+1], gate by gate) are the block [gates*u0, gates*u1)."""
    H = W_hh.shape[1]
    order = np.concatenate([gate * H + np.arange(bounds[p], bounds[p + 1])
                            for p in range(len(bounds) - 1) for gate in range(gates)])
    return W_hh[order]


def dW_transposed(H) -> bool:
    """Whether the output layer's dW is computed as dWᵀ = xᵀ · dlogits (H, V) per block."""
    return H <= DW_TRANSPOSED_MAX_H


def output_blas() -> bool:
    """Whether the output layer's products run as single OpenBLAS calls on all the threads
    (OUTPUT_BLAS_MIN_THREADS) rather than as row blocks."""
    return 0 < OUTPUT_BLAS_MIN_THREADS <= pblas.n_blocks()


def overlapped(cell, H) -> bool:
    """Whether a step (training or loss) takes overlap.py's path: an LSTM whose top
    layer's steps run serially, and more than one thread."""
    return cell == "lstm" and H < SPLIT_MIN_H and pblas.n_blocks() >= OVERLAP_MIN_THREADS and dW_transposed(H)


def plan(cell, H) -> Plan:
    """The decision for a model of this cell and H at the current thread count."""
    ov = overlapped(cell, H)
    return Plan(unit_bounds(H, cell), ov, dW_transposed(H), output_blas() and not ov)
