"""LSTM cell, as PyTorch nn.LSTM (gate order i, f, g, o).

    i, f, o = σ(W_i· x + b_i· + W_h· h_prev + b_h·)     g = tanh(...)
    c = f*c_prev + i*g
    h = o*tanh(c)

Legend: T = BPTT steps, B = batch, E = input size, H = hidden size, N = T*B.
Arrays are time-major and C-contiguous.

The one thing to know before editing: the cache keeps the gates *after*
their nonlinearity (so the backward uses s*(1-s) and 1-g*g) and tanh(c), and
the input projection of all T steps is one BLAS product before the loop.
From H = SPLIT_MIN_H up, each step is shared between Numba's threads by
hidden unit (`_forward_units` / `_backward_units` do one part; the serial
path is the same functions over all units), so any change to the step goes
into those two functions and is tested both ways (tests/test_cells.py).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import prange

from . import pblas
from ._blas import one_blas_thread
from ._jit import njit, njit_parallel
from .layers import recurrent_affine_backward
from .vecmath import fsigmoid, ftanh


class LSTMCache(NamedTuple):
    x: np.ndarray       # (T, B, E)    the layer input (a reference, not a copy)
    xproj: np.ndarray   # (T, B, 4H)   x · W_ihᵀ (no bias), computed before the loop
    gates: np.ndarray   # (T, B, 4H)   i, f, g, o after σ / tanh
    c: np.ndarray       # (T+1, B, H)  cell states; c[0] is the initial cell state
    tanh_c: np.ndarray  # (T, B, H)    tanh(c[t+1])
    h: np.ndarray       # (T+1, B, H)  hidden states; h[0] is the initial state


def lstm_alloc(T, B, E, H, dtype) -> LSTMCache:
    """Empty cache buffers (x is filled in by lstm_forward)."""
    return LSTMCache(None, np.empty((T, B, 4 * H), dtype), np.empty((T, B, 4 * H), dtype),
                     np.empty((T + 1, B, H), dtype), np.empty((T, B, H), dtype),
                     np.empty((T + 1, B, H), dtype))


@njit
def _forward_units(gates, c, tanh_c, h, xproj, W_rows, bias, t, u0, u1):
    """Step t for hidden units u0..u1 (all four gates): see _lstm_forward.

    Every loop runs over a view from index 0: with an unknown start Numba's
    negative-index handling stays in the loop and LLVM does not vectorize it.
    """
    B, G4 = xproj.shape[1], xproj.shape[2]
    H = G4 // 4
    n = u1 - u0
    hh = np.empty((B, 4 * n), h.dtype)
    np.dot(h[t], W_rows[4 * u0:4 * u1].T, hh)
    for b in range(B):
        a, x_row = gates[t, b], xproj[t, b]
        for gate in range(4):
            lo = gate * H + u0
            a_g, x_g, b_g, hh_g = a[lo:lo + n], x_row[lo:lo + n], bias[lo:lo + n], hh[b, gate * n:(gate + 1) * n]
            for j in range(n):
                a_g[j] = x_g[j] + b_g[j] + hh_g[j]
        i, f, g, o = a[u0:u1], a[H + u0:H + u1], a[2 * H + u0:2 * H + u1], a[3 * H + u0:3 * H + u1]
        for j in range(n):
            i[j] = fsigmoid(i[j])
        for j in range(n):
            f[j] = fsigmoid(f[j])
        for j in range(n):
            g[j] = ftanh(g[j])
        for j in range(n):
            o[j] = fsigmoid(o[j])
        c_prev, c_new, tc_row, h_new = c[t, b, u0:u1], c[t + 1, b, u0:u1], tanh_c[t, b, u0:u1], h[t + 1, b, u0:u1]
        for j in range(n):
            ct = f[j] * c_prev[j] + i[j] * g[j]
            c_new[j] = ct
            tc = ftanh(ct)
            tc_row[j] = tc
            h_new[j] = o[j] * tc


@njit_parallel
def _lstm_forward(gates, c, tanh_c, h, xproj, W_rows, bias, bounds):
    """All T steps; h[0], c[0] are set; gates written after their nonlinearity.

    Each step is shared between threads by hidden unit: part p owns units
    bounds[p]..bounds[p+1] of all four gates. Its rows of W_hh are
    W_rows[4*u0:4*u1] (i, f, g, o blocks of its units, see _unit_rows), so it
    needs only h[t] to compute its slice of h[t+1]; the parts meet once per step.
    The loops are simple passes so that LLVM vectorizes them.
    """
    for t in range(xproj.shape[0]):
        for p in prange(len(bounds) - 1):
            _forward_units(gates, c, tanh_c, h, xproj, W_rows, bias, t, bounds[p], bounds[p + 1])


@njit
def _backward_units(dgates, dhs, dcs, dc_next, dh_out, gates, c, tanh_c, W_hh_T, t, u0, u1):
    """Step t of the reverse walk for hidden units u0..u1: see _lstm_backward."""
    T, B, G4 = dgates.shape
    H = G4 // 4
    n = u1 - u0
    one = c.dtype.type(1)
    dh_next = np.zeros((B, n), c.dtype)
    if t < T - 1:
        # forward: a_{t+1} = ... + h_t · W_hhᵀ
        np.dot(dgates[t + 1], W_hh_T[u0:u1].T, dh_next)
    for b in range(B):
        gt, dg = gates[t, b], dgates[t, b]
        i, f, g, o = gt[u0:u1], gt[H + u0:H + u1], gt[2 * H + u0:2 * H + u1], gt[3 * H + u0:3 * H + u1]
        di_, df_, dg_, do_ = dg[u0:u1], dg[H + u0:H + u1], dg[2 * H + u0:2 * H + u1], dg[3 * H + u0:3 * H + u1]
        d_out, tc_row, c_prev = dh_out[t, b, u0:u1], tanh_c[t, b, u0:u1], c[t, b, u0:u1]
        dh_row, dc_row, dcn = dhs[t, b, u0:u1], dcs[t, b, u0:u1], dc_next[b, u0:u1]
        for j in range(n):
            dh = d_out[j] + dh_next[b, j]
            dh_row[j] = dh
            tc = tc_row[j]
            # forward: h = o*tanh(c)
            do = dh * tc
            dc = dcn[j] + dh * o[j] * (one - tc * tc)
            dc_row[j] = dc
            # forward: c = f*c_prev + i*g
            dcn[j] = dc * f[j]
            # forward: i, f, o = σ(a), g = tanh(a)
            di_[j] = dc * g[j] * i[j] * (one - i[j])
            df_[j] = dc * c_prev[j] * f[j] * (one - f[j])
            dg_[j] = dc * i[j] * (one - g[j] * g[j])
            do_[j] = do * o[j] * (one - o[j])


@njit_parallel
def _lstm_backward(dgates, dhs, dcs, dh0, dc0, dh_out, gates, c, tanh_c, W_hh_T, bounds):
    """Reverse walk: dgates (T, B, 4H) pre-activation grads; dhs, dcs (T, B, H) state grads.

    Shared by hidden unit as the forward: part p first gets its units' share
    of dL/dh_t = dgates[t+1] · W_hh (its rows of W_hh_T), which is all that
    its units' gate gradients at step t need.
    """
    T, B, G4 = dgates.shape
    dc_next = np.zeros((B, G4 // 4), c.dtype)
    for t in range(T - 1, -1, -1):
        for p in prange(len(bounds) - 1):
            _backward_units(dgates, dhs, dcs, dc_next, dh_out, gates, c, tanh_c, W_hh_T, t, bounds[p], bounds[p + 1])
    # forward: a_1 = ... + h_0 · W_hhᵀ
    dh0 += np.dot(dgates[0], W_hh_T.T)
    dc0 += dc_next


@njit
def _lstm_forward_serial(gates, c, tanh_c, h, xproj, W_hh, bias):
    """_lstm_forward in one part, without a parallel region per step (small H)."""
    H = W_hh.shape[1]
    for t in range(xproj.shape[0]):
        _forward_units(gates, c, tanh_c, h, xproj, W_hh, bias, t, 0, H)


@njit
def _lstm_backward_serial(dgates, dhs, dcs, dh0, dc0, dh_out, gates, c, tanh_c, W_hh_T):
    """_lstm_backward in one part (small H)."""
    T, B, G4 = dgates.shape
    dc_next = np.zeros((B, G4 // 4), c.dtype)
    for t in range(T - 1, -1, -1):
        _backward_units(dgates, dhs, dcs, dc_next, dh_out, gates, c, tanh_c, W_hh_T, t, 0, G4 // 4)
    dh0 += np.dot(dgates[0], W_hh_T.T)
    dc0 += dc_next


# Below this hidden size a step is too little work to share: two threads meeting
# 70 times per window cost more than they save (measured, interleaved A/B: the
# split is 2-5% slower at H = 64, 4-15% faster at H = 128..512).
SPLIT_MIN_H = 128


def _unit_bounds(H):
    """Hidden-unit boundaries of the parts a step is shared in (one per Numba thread)."""
    parts = min(pblas.n_blocks(), H) if H >= SPLIT_MIN_H else 1
    return np.array([p * H // parts for p in range(parts + 1)], np.int64)


def _unit_rows(W_hh, bounds):
    """W_hh's rows reordered so that part p's i, f, g, o rows are the block [4*u0, 4*u1)."""
    H = W_hh.shape[1]
    order = np.concatenate([gate * H + np.arange(bounds[p], bounds[p + 1])
                            for p in range(len(bounds) - 1) for gate in range(4)])
    return W_hh[order]


@one_blas_thread()   # B = 32 products: threads cost more than they give (_blas.py)
def lstm_forward(cache: LSTMCache, x, h0, c0, W_ih, W_hh, b_ih, b_hh) -> LSTMCache:
    """Run T steps; x (T, B, E), h0, c0 (B, H), W_ih (4H, E), W_hh (4H, H), biases (4H,).

    Fills the cache buffers and returns the cache with x set.
    """
    T, B, E = x.shape
    pblas.matmul(cache.xproj.reshape(T * B, -1), x.reshape(T * B, E), W_ih.T)
    cache.h[0] = h0
    cache.c[0] = c0
    bounds = _unit_bounds(W_hh.shape[1])
    if len(bounds) == 2:
        _lstm_forward_serial(cache.gates, cache.c, cache.tanh_c, cache.h, cache.xproj, W_hh, b_ih + b_hh)
    else:
        _lstm_forward(cache.gates, cache.c, cache.tanh_c, cache.h, cache.xproj, _unit_rows(W_hh, bounds),
                      b_ih + b_hh, bounds)
    return cache._replace(x=x)


@one_blas_thread()   # B = 32 products: threads cost more than they give (_blas.py)
def lstm_backward(dx, dW_ih, dW_hh, db_ih, db_hh, dh0, dc0, dgates, dhs, dcs, dh_out,
                  cache: LSTMCache, W_ih, W_hh):
    """Backprop through the T steps of `cache`.

    Accumulates into dW_ih, dW_hh, db_ih, db_hh, dh0, dc0 (B, H). Writes dx
    (T, B, E) (skipped if None), dgates (T, B, 4H) scratch, and the per-step
    state gradients dhs, dcs (T, B, H) (dL/dh and dL/dc after step t).
    dh_out (T, B, H) is the gradient arriving from above at each output.
    """
    bounds, W_hh_T = _unit_bounds(W_hh.shape[1]), np.ascontiguousarray(W_hh.T)
    if len(bounds) == 2:
        _lstm_backward_serial(dgates, dhs, dcs, dh0, dc0, dh_out, cache.gates, cache.c, cache.tanh_c, W_hh_T)
    else:
        _lstm_backward(dgates, dhs, dcs, dh0, dc0, dh_out, cache.gates, cache.c, cache.tanh_c, W_hh_T, bounds)
    # forward: a = W_ih x + b_ih + W_hh h_prev + b_hh, batched over all steps
    recurrent_affine_backward(dgates, cache.x, cache.h[:-1], W_ih, dW_ih, dW_hh, db_ih, db_hh, dx)
