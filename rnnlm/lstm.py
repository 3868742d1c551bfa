"""LSTM cell, as PyTorch nn.LSTM (gate order i, f, g, o).

    i, f, o = σ(W_i· x + b_i· + W_h· h_prev + b_h·)     g = tanh(...)
    c = f*c_prev + i*g
    h = o*tanh(c)

Legend: T = BPTT steps, B = batch, E = input size, H = hidden size, N = T*B.
Arrays are time-major and C-contiguous.

The one thing to know before editing: the cache keeps the gates *after*
their nonlinearity (so the backward uses s*(1-s) and 1-g*g) and tanh(c), and
the input projection of all T steps is one BLAS product before the loop.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from . import pblas
from ._blas import one_blas_thread
from ._jit import njit
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
def _lstm_forward(gates, c, tanh_c, h, xproj, W_hh, bias):
    """All T steps; h[0], c[0] are set; gates written after their nonlinearity.

    Each row is done in simple passes over one or two arrays (sum, gate
    nonlinearities in place, cell update) rather than one fused loop: LLVM
    vectorizes these without runtime aliasing checks.
    """
    T, B, G4 = xproj.shape
    H = G4 // 4
    hh = np.empty((B, G4), h.dtype)
    W_hh_T = W_hh.T
    for t in range(T):
        np.dot(h[t], W_hh_T, hh)
        for b in range(B):
            a, x_row, hh_row = gates[t, b], xproj[t, b], hh[b]
            for k in range(G4):
                a[k] = x_row[k] + bias[k] + hh_row[k]
            for k in range(2 * H):           # i, f
                a[k] = fsigmoid(a[k])
            for k in range(2 * H, 3 * H):    # g
                a[k] = ftanh(a[k])
            for k in range(3 * H, G4):       # o
                a[k] = fsigmoid(a[k])
            c_prev, c_new, tc_row, h_new = c[t, b], c[t + 1, b], tanh_c[t, b], h[t + 1, b]
            for j in range(H):
                ct = a[H + j] * c_prev[j] + a[j] * a[2 * H + j]
                c_new[j] = ct
                tc = ftanh(ct)
                tc_row[j] = tc
                h_new[j] = a[3 * H + j] * tc


@njit
def _lstm_backward(dgates, dhs, dcs, dh0, dc0, dh_out, gates, c, tanh_c, W_hh):
    """Reverse walk: dgates (T, B, 4H) pre-activation grads; dhs, dcs (T, B, H) state grads."""
    T, B, G4 = dgates.shape
    H = G4 // 4
    one = c.dtype.type(1)
    dh_next = np.zeros((B, H), c.dtype)
    dc_next = np.zeros((B, H), c.dtype)
    for t in range(T - 1, -1, -1):
        gt, dg = gates[t], dgates[t]
        for b in range(B):
            for j in range(H):
                i, f, g, o = gt[b, j], gt[b, H + j], gt[b, 2 * H + j], gt[b, 3 * H + j]
                dh = dh_out[t, b, j] + dh_next[b, j]
                dhs[t, b, j] = dh
                tc = tanh_c[t, b, j]
                # forward: h = o*tanh(c)
                do = dh * tc
                dc = dc_next[b, j] + dh * o * (one - tc * tc)
                dcs[t, b, j] = dc
                # forward: c = f*c_prev + i*g
                di = dc * g
                dgg = dc * i
                df = dc * c[t, b, j]
                dc_next[b, j] = dc * f
                # forward: i, f, o = σ(a), g = tanh(a)
                dg[b, j] = di * i * (one - i)
                dg[b, H + j] = df * f * (one - f)
                dg[b, 2 * H + j] = dgg * (one - g * g)
                dg[b, 3 * H + j] = do * o * (one - o)
        # forward: a = ... + h_prev · W_hhᵀ
        np.dot(dg, W_hh, dh_next)
    dh0 += dh_next
    dc0 += dc_next


@one_blas_thread()   # B = 32 products: threads cost more than they give (_blas.py)
def lstm_forward(cache: LSTMCache, x, h0, c0, W_ih, W_hh, b_ih, b_hh) -> LSTMCache:
    """Run T steps; x (T, B, E), h0, c0 (B, H), W_ih (4H, E), W_hh (4H, H), biases (4H,).

    Fills the cache buffers and returns the cache with x set.
    """
    T, B, E = x.shape
    pblas.matmul(cache.xproj.reshape(T * B, -1), x.reshape(T * B, E), W_ih.T)
    cache.h[0] = h0
    cache.c[0] = c0
    _lstm_forward(cache.gates, cache.c, cache.tanh_c, cache.h, cache.xproj, W_hh, b_ih + b_hh)
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
    _lstm_backward(dgates, dhs, dcs, dh0, dc0, dh_out, cache.gates, cache.c, cache.tanh_c, W_hh)
    # forward: a = W_ih x + b_ih + W_hh h_prev + b_hh, batched over all steps
    recurrent_affine_backward(dgates, cache.x, cache.h[:-1], W_ih, dW_ih, dW_hh, db_ih, db_hh, dx)
