"""GRU cell, as PyTorch nn.GRU (gate order r, z, n).

    r = σ(W_ir x + b_ir + W_hr h_prev + b_hr)
    z = σ(W_iz x + b_iz + W_hz h_prev + b_hz)
    n = tanh(W_in x + b_in + r ⊙ (W_hn h_prev + b_hn))
    h = (1 − z) ⊙ n + z ⊙ h_prev

Legend: T = BPTT steps, B = batch, E = input size, H = hidden size, N = T*B.
Arrays are time-major and C-contiguous.

The one thing to know before editing: b_hn sits *inside* r ⊙ (...), so the
input side and the hidden side get different pre-activation gradients (dxa
and dha below) and b_hh cannot be folded into the input projection.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from . import pblas
from ._blas import one_blas_thread
from .gemm import gemm
from ._jit import njit
from .layers import recurrent_affine_backward
from .vecmath import fsigmoid, ftanh


class GRUCache(NamedTuple):
    x: np.ndarray       # (T, B, E)    the layer input (a reference, not a copy)
    xproj: np.ndarray   # (T, B, 3H)   x · W_ihᵀ (no bias), computed before the loop
    gates: np.ndarray   # (T, B, 3H)   r, z, n after σ / tanh
    hn: np.ndarray      # (T, B, H)    W_hn h_prev + b_hn (what r multiplies)
    h: np.ndarray       # (T+1, B, H)  hidden states; h[0] is the initial state


def gru_alloc(T, B, E, H, dtype) -> GRUCache:
    """Empty cache buffers (x is filled in by gru_forward)."""
    return GRUCache(None, np.empty((T, B, 3 * H), dtype), np.empty((T, B, 3 * H), dtype),
                    np.empty((T, B, H), dtype), np.empty((T + 1, B, H), dtype))


@njit
def _gru_forward(gates, hn, h, xproj, W_hh, b_ih, b_hh):
    """All T steps; h[0] is set. Simple passes per row so that each vectorizes (see lstm.py)."""
    T, B, G3 = xproj.shape
    H = G3 // 3
    one = h.dtype.type(1)
    hh = np.empty((B, G3), h.dtype)
    W_hh_T = W_hh.T
    for t in range(T):
        gemm(h[t], W_hh_T, hh)
        for b in range(B):
            g, x_row, hh_row, hn_row = gates[t, b], xproj[t, b], hh[b], hn[t, b]
            for k in range(2 * H):          # r, z
                g[k] = fsigmoid(x_row[k] + b_ih[k] + hh_row[k] + b_hh[k])
            for j in range(H):
                hn_row[j] = hh_row[2 * H + j] + b_hh[2 * H + j]
            for j in range(H):              # n
                g[2 * H + j] = ftanh(x_row[2 * H + j] + b_ih[2 * H + j] + g[j] * hn_row[j])
            h_prev, h_new = h[t, b], h[t + 1, b]
            for j in range(H):
                z = g[H + j]
                h_new[j] = (one - z) * g[2 * H + j] + z * h_prev[j]


@njit
def _gru_backward(dxa, dha, dhs, dh0, dh_out, gates, hn, h, W_hh):
    """Reverse walk: dxa / dha (T, B, 3H) input-side / hidden-side pre-activation grads; dhs (T, B, H)."""
    T, B, G3 = dxa.shape
    H = G3 // 3
    one = h.dtype.type(1)
    dh_next = np.zeros((B, H), h.dtype)
    direct = np.zeros((B, H), h.dtype)
    for t in range(T - 1, -1, -1):
        gt, dx_t, dh_t = gates[t], dxa[t], dha[t]
        for b in range(B):
            for j in range(H):
                r, z, n = gt[b, j], gt[b, H + j], gt[b, 2 * H + j]
                dh = dh_out[t, b, j] + dh_next[b, j]
                dhs[t, b, j] = dh
                # forward: h = (1 - z)*n + z*h_prev
                dn = dh * (one - z)
                dz = dh * (h[t, b, j] - n)
                direct[b, j] = dh * z
                # forward: n = tanh(a_n), a_n = x_n + b_in + r*hn
                dan = dn * (one - n * n)
                # forward: r = σ(a_r), z = σ(a_z)
                dar = dan * hn[t, b, j] * r * (one - r)
                daz = dz * z * (one - z)
                dx_t[b, j], dx_t[b, H + j], dx_t[b, 2 * H + j] = dar, daz, dan
                # forward: hn = W_hn h_prev + b_hn enters as r*hn
                dh_t[b, j], dh_t[b, H + j], dh_t[b, 2 * H + j] = dar, daz, dan * r
        # forward: hh = h_prev · W_hhᵀ + b_hh
        gemm(dh_t, W_hh, dh_next)
        dh_next += direct
    dh0 += dh_next


@one_blas_thread()   # B = 32 products: threads cost more than they give (_blas.py)
def gru_forward(cache: GRUCache, x, h0, W_ih, W_hh, b_ih, b_hh) -> GRUCache:
    """Run T steps; x (T, B, E), h0 (B, H), W_ih (3H, E), W_hh (3H, H), biases (3H,)."""
    T, B, E = x.shape
    pblas.matmul(cache.xproj.reshape(T * B, -1), x.reshape(T * B, E), W_ih.T)
    cache.h[0] = h0
    _gru_forward(cache.gates, cache.hn, cache.h, cache.xproj, W_hh, b_ih, b_hh)
    return cache._replace(x=x)


@one_blas_thread()   # B = 32 products: threads cost more than they give (_blas.py)
def gru_backward(dx, dW_ih, dW_hh, db_ih, db_hh, dh0, dxa, dha, dhs, dh_out, cache: GRUCache, W_ih, W_hh):
    """Backprop through the T steps of `cache`.

    Accumulates into dW_ih, dW_hh, db_ih, db_hh, dh0 (B, H). Writes dx (T, B, E)
    (skipped if None), the scratch dxa, dha (T, B, 3H), and dhs (T, B, H), the
    per-step state gradients. dh_out (T, B, H) arrives from above.
    """
    _gru_backward(dxa, dha, dhs, dh0, dh_out, cache.gates, cache.hn, cache.h, W_hh)
    # forward: xproj = x · W_ihᵀ + b_ih ; hh = h_prev · W_hhᵀ + b_hh (dha: the hidden side's gradient)
    recurrent_affine_backward(dxa, cache.x, cache.h[:-1], W_ih, dW_ih, dW_hh, db_ih, db_hh, dx, dpre_hh=dha)


# ---------------------------------------------------------------- the cell interface (cells.py)

GATES = ("r", "z", "n")   # the blocks of W_ih, W_hh and the biases, in order
STATES = ("h",)           # the state a layer carries from step to step


def alloc(T, B, E, H, dtype) -> GRUCache:
    return gru_alloc(T, B, E, H, dtype)


def scratch_shapes(T, B, H) -> dict:
    """The backward's scratch buffers: name -> shape."""
    return {"dxa": (T, B, 3 * H), "dha": (T, B, 3 * H)}


def forward(cache, x, state0, weights, act, plan) -> GRUCache:
    """cells.Cell.forward: state0 (h0,); weights (W_ih, W_hh, b_ih, b_hh); act unused."""
    return gru_forward(cache, x, state0[0], *weights)


def backward(dx, dweights, dstate0, dhs, dh_out, scratch, cache, weights, act, plan):
    """cells.Cell.backward: dweights (dW_ih, dW_hh, db_ih, db_hh) and dstate0 (dh0,) accumulate."""
    gru_backward(dx, *dweights, dstate0[0], scratch["dxa"], scratch["dha"], dhs, dh_out, cache,
                 weights[0], weights[1])


# ---------------------------------------------------------------- step Jacobians (instruments, float64)


def _jacobian(cache: GRUCache, t, b, W, hidden_side: bool):
    """dh_{t+1}/dh_t (hidden_side, W = W_hh) or dh_{t+1}/dx (W = W_ih) at steps t of row b: (K, H, n)."""
    H = cache.h.shape[2]
    gates = cache.gates[t, b]
    r, z, n = gates[:, :H], gates[:, H:2 * H], gates[:, 2 * H:]
    hp, hn = cache.h[t, b], cache.hn[t, b]
    # forward: n = tanh(W_in x + b_in + r*(W_hn h + b_hn)) ; h = (1-z)*n + z*h_prev
    dn = (1 - z) * (1 - n * n)
    Wr, Wz, Wn = W[:H], W[H:2 * H], W[2 * H:]
    J = (dn * hn * r * (1 - r))[:, :, None] * Wr + ((hp - n) * z * (1 - z))[:, :, None] * Wz
    J += (dn * r if hidden_side else dn)[:, :, None] * Wn
    if hidden_side:
        J[:, np.arange(H), np.arange(H)] += z
    return J


def step_jacobian(cache: GRUCache, t, b, W_ih, W_hh, act=None, with_input=False):
    """A = dh_{t+1}/dh_t (K, H, H) at steps t (0-based) of row b, and with_input dh_{t+1}/dx (K, H, E)."""
    return _jacobian(cache, t, b, W_hh, True), (_jacobian(cache, t, b, W_ih, False) if with_input else None)


def jacobian_advance(J, cache: GRUCache, t, b, W_hh, act, spare: dict):
    """J · A_t (K, S, H), A built dense."""
    return np.matmul(J, _jacobian(cache, t, b, W_hh, True))
