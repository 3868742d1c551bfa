"""A training step's serial LSTM recurrence overlapped with the output layer.

Below paths.SPLIT_MIN_H a step of the recurrence runs on one thread, and in
the plain order of a training step (recurrence, then output layer, then
recurrence in reverse) the other cores wait through it: at the tiny config
2.6 ms of a 13 ms window. Here the top layer's recurrence runs on thread 0
while the other threads do output-layer work that does not depend on it:

- forward: thread 0 alone runs steps 0..t1; then it runs steps t1..T while
  the others compute the logits, cross-entropy and dlogits, dx of the rows of
  steps 0..t1 (their h is known); then all threads share the remaining rows.
- backward: thread 0 walks the steps in reverse while the others compute
  their share of the output layer's dW (which the reverse walk does not
  need); thread 0 then takes a smaller share.
- dropout on the top layer's output: each output row is masked by the thread
  that computes it, just before its logits.

t1 and the shares come from a cost model of the shapes and the thread count,
not from timing, so results stay bitwise reproducible for a given thread
count. The arithmetic is the same kernels' as the plain path (lstm.py,
layers.py); only the order of the partial sums of dbias and dW differs.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import prange

from . import layers, lstm, paths, pblas
from ._blas import one_blas_thread
from .gemm import gemm
from ._jit import njit, njit_parallel


def applies(cell, H) -> bool:
    """Whether a step (training or loss) can take this path: paths.overlapped (the model
    reads it once per workspace, from its paths.Plan)."""
    return paths.overlapped(cell, H)


# Cost model, in flop-like units per row of the output layer or per step of the
# recurrence. The recurrence's B-row products run at about half the speed of
# the output layer's large ones, hence 16 H² for its 8 H² flops (measured at
# V = 2000, H = 64: 38 us per step against 9.1 us per output row, one thread).
def _step_cost(B, H):
    return B * (16 * H * H + 80 * H)


def _split_forward(T, B, H, V, threads, grads=True):
    """t1: thread 0 runs steps t1..T while threads 1.. do the output rows of steps 0..t1."""
    row = 4 * H * V + 15 * V if grads else 2 * H * V + 10 * V
    step, rows_of_step = _step_cost(B, H), B * row / (threads - 1)
    return min(max(round(T * step / (step + rows_of_step)), 0), T)


def _split_backward(T, B, H, V, threads):
    """Rows of dW for thread 0 after its reverse walk, so that all threads end together."""
    N, row = T * B, 2 * H * V
    share = (T * _step_cost(B, H) + N * row) / threads
    return min(max(round((share - T * _step_cost(B, H)) / row), 0), N)


class _Recurrence(NamedTuple):
    """The LSTM cache's arrays the kernels here walk (lstm.LSTMCache without x)."""
    gates: np.ndarray    # (T, B, 4H)   i, f, g, o after σ / tanh
    c: np.ndarray        # (T+1, B, H)  cell states
    tanh_c: np.ndarray   # (T, B, H)    tanh(c[t+1])
    h: np.ndarray        # (T+1, B, H)  hidden states
    xproj: np.ndarray    # (T, B, 4H)   x · W_ihᵀ


class _OutputRows(NamedTuple):
    """The output layer's arrays, by row (N = T*B rows, step-major like h[1:])."""
    row_loss: np.ndarray  # (N,) float64  -log p(target) of each row
    logits: np.ndarray    # (N, V)        logits, then (with grads) dlogits
    dx: np.ndarray        # (N, H)        dL/d(the output layer's input)
    x: np.ndarray         # (N, H)        the output layer's input: h_rows, or the buffer for h_rows * mask
    h_rows: np.ndarray    # (N, H)        a view of h[1:]
    mask: np.ndarray      # (N, H)        the top layer's dropout mask; (1, 1) and unused without one
    targets: np.ndarray   # (N,) int64


class _Decoder(NamedTuple):
    W: np.ndarray         # (V, H)
    W_T: np.ndarray       # (H, V) a transposed view of W
    bias: np.ndarray      # (V,)


class _StateGrads(NamedTuple):
    """What lstm._lstm_backward_serial writes: scratch, per-step and initial-state gradients."""
    dgates: np.ndarray    # (T, B, 4H)
    dhs: np.ndarray       # (T, B, H)
    dcs: np.ndarray       # (T, B, H)
    dh0: np.ndarray       # (B, H)  accumulated into
    dc0: np.ndarray       # (B, H)  accumulated into


@njit
def _output_rows(rows, dbias, dec, scale, masked, r0, r1, grads):
    """Rows r0..r1 of the output layer: logits and cross-entropy; with grads also
    dlogits (in rows.logits) and rows.dx, and dbias += their dlogits. masked: the rows
    of rows.x are first set to h_rows * mask (dropout)."""
    if masked and r1 > r0:
        # forward: top = h * mask (inverted dropout on the top layer's output)
        rows.x[r0:r1] = rows.h_rows[r0:r1] * rows.mask[r0:r1]
    layers.output_rows(rows.row_loss, rows.logits, rows.dx, dbias, rows.x, dec.W, dec.W_T, dec.bias, rows.targets,
                       scale, r0, r1, grads)


@njit_parallel
def _forward(rec, W_hh, bias_g, t1, rows, dbias_parts, dec, scale, masked, grads):
    """The recurrence (lstm._lstm_forward_serial on views from step t1) and the output
    layer's loss, and with grads its dlogits and dx. rows.h_rows (N, H) is a view of h[1:];
    rows.x is h_rows too, or if masked the buffer that receives h_rows * mask (N, H)."""
    gates, c, tanh_c, h, xproj = rec
    T, B = xproj.shape[0], xproj.shape[1]
    N, P = T * B, dbias_parts.shape[0]
    dbias_parts[:] = 0
    lstm._lstm_forward_serial(gates[:t1], c[:t1 + 1], tanh_c[:t1], h[:t1 + 1], xproj[:t1], W_hh, bias_g)
    known = t1 * B    # rows whose h is computed
    for k in prange(P):
        if k == 0:
            lstm._lstm_forward_serial(gates[t1:], c[t1:], tanh_c[t1:], h[t1:], xproj[t1:], W_hh, bias_g)
        else:
            _output_rows(rows, dbias_parts[k], dec, scale, masked, (k - 1) * known // (P - 1), k * known // (P - 1),
                         grads)
    rest = N - known
    for k in prange(P):
        _output_rows(rows, dbias_parts[k], dec, scale, masked, known + k * rest // P, known + (k + 1) * rest // P,
                     grads)


@njit_parallel
def _backward(dstate, dh_out, rec, W_hh_T, n0, dlogits, x, dW_parts_T):
    """The reverse walk (lstm._lstm_backward_serial, writing dstate) on thread 0, then dWᵀ of
    rows 0..n0 into dW_parts_T[0]; threads k > 0 put dWᵀ of their share of rows n0..N in dW_parts_T[k]."""
    N, P = x.shape[0], dW_parts_T.shape[0]
    for k in prange(P):
        if k == 0:
            lstm._lstm_backward_serial(dstate.dgates, dstate.dhs, dstate.dcs, dstate.dh0, dstate.dc0, dh_out,
                                       rec.gates, rec.c, rec.tanh_c, W_hh_T)
            r0, r1 = 0, n0
        else:
            r0, r1 = n0 + (k - 1) * (N - n0) // (P - 1), n0 + k * (N - n0) // (P - 1)
        if r1 > r0:
            # forward: logits = x · Wᵀ, so dWᵀ = xᵀ · dlogits
            gemm(x[r0:r1].T, dlogits[r0:r1], dW_parts_T[k])
        else:
            dW_parts_T[k] = 0


def _recurrence(cache) -> _Recurrence:
    return _Recurrence(cache.gates, cache.c, cache.tanh_c, cache.h, cache.xproj)


def lstm_forward_and_output(cache, x_in, state0, weights, buffers, dtop, W, bias, targets,
                            grads=True, mask=None, x_out=None):
    """lstm.lstm_forward, then layers.output_loss_and_grads without dW, overlapped.

    state0 (h0, c0) and weights (W_ih, W_hh, b_ih, b_hh) as lstm.forward's.
    Fills cache (as lstm_forward), buffers["logits"] (then dlogits) and dtop (N, H),
    the gradient with respect to the output layer's input; returns (cache, mean
    loss, dbias). buffers: as for output_loss_and_grads. grads=False: the loss
    only (as layers.output_loss); dtop is not written and dbias is None.
    mask (T, B, H): dropout on the top layer's output; the output layer's input
    h * mask is written to x_out (T, B, H), which lstm_backward_and_output_dW needs.
    """
    (h0, c0), (W_ih, W_hh, b_ih, b_hh) = state0, weights
    T, B, E = x_in.shape
    H, V = W_hh.shape[1], W.shape[0]
    N = T * B
    dbias_parts = buffers["dbias_parts"]
    t1 = _split_forward(T, B, H, V, dbias_parts.shape[0], grads)
    row_loss = np.empty(N, np.float64)
    h_rows = cache.h[1:].reshape(N, H)
    if mask is None:
        x_rows, mask_rows = h_rows, np.ones((1, 1), h_rows.dtype)   # unused
    else:
        x_rows, mask_rows = x_out.reshape(N, H), mask.reshape(N, H)
    with one_blas_thread():
        pblas.matmul(cache.xproj.reshape(N, -1), x_in.reshape(N, E), W_ih.T)
        cache.h[0] = h0
        cache.c[0] = c0
        rows = _OutputRows(row_loss, buffers["logits"], dtop, x_rows, h_rows, mask_rows, targets.reshape(N))
        _forward(_recurrence(cache), W_hh, b_ih + b_hh, t1, rows, dbias_parts, _Decoder(W, W.T, bias),
                 x_in.dtype.type(1.0 / N), mask is not None, grads)
    return cache._replace(x=x_in), float(row_loss.sum() / N), dbias_parts.sum(axis=0) if grads else None


def lstm_backward_and_output_dW(buffers, dW, x_out, dx, dweights, dstate0, dhs, dh_out, scratch, cache, weights,
                                act=None, plan=None):
    """lstm.backward, overlapped with the output layer's dW = dlogitsᵀ · x (written to dW).

    buffers and x_out (None without a dropout mask: x is then h) as given to
    lstm_forward_and_output; the rest are lstm.backward's arguments (cells.Cell.backward).
    """
    (dW_ih, dW_hh, db_ih, db_hh), (dh0, dc0), (W_ih, W_hh) = dweights, dstate0, weights[:2]
    dgates, dcs = scratch["dgates"], scratch["dcs"]
    T, B, H = dh_out.shape
    V, N = dW.shape[0], T * B
    parts_T = buffers["dW_parts"]     # (threads, H, V): paths.dW_transposed(H) holds below SPLIT_MIN_H
    n0 = _split_backward(T, B, H, V, parts_T.shape[0])
    with one_blas_thread():
        _backward(_StateGrads(dgates, dhs, dcs, dh0, dc0), dh_out, _recurrence(cache), np.ascontiguousarray(W_hh.T),
                  n0, buffers["logits"], (cache.h[1:] if x_out is None else x_out).reshape(N, H), parts_T)
    pblas.sum_parts_transposed(dW, parts_T)
    # forward: a = W_ih x + b_ih + W_hh h_prev + b_hh, batched over all steps
    layers.recurrent_affine_backward(dgates, cache.x, cache.h[:-1], W_ih, dW_ih, dW_hh, db_ih, db_hh, dx)
