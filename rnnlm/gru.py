"""GRU cell, as PyTorch nn.GRU (gate order r, z, n).

    r = σ(W_ir x + b_ir + W_hr h_prev + b_hr)
    z = σ(W_iz x + b_iz + W_hz h_prev + b_hz)
    n = tanh(W_in x + b_in + r ⊙ (W_hn h_prev + b_hn))
    h = (1 − z) ⊙ n + z ⊙ h_prev

Source: K. Cho et al., "Learning phrase representations using RNN encoder-decoder for
statistical machine translation", EMNLP 2014, in the form of torch.nn.GRU's documentation
(r applied after W_hn h_prev, with b_hn inside; the paper applies it before W_hn).

Legend: T = BPTT steps, B = batch, E = input size, H = hidden size, N = T*B.
Arrays are time-major and C-contiguous.

The one thing to know before editing: b_hn sits *inside* r ⊙ (...), so the
input side and the hidden side get different pre-activation gradients (dxa
and dha below) and b_hh cannot be folded into the input projection.
From H = paths.GRU_SPLIT_MIN_H up, each step is shared between Numba's threads by
hidden unit, as the LSTM's (`_forward_units` / `_backward_units` do one part;
the serial path is the same functions over all units), so any change to the
step goes into those two functions and is tested both ways.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from numba import prange

from . import paths, pblas, steps
from ._blas import one_blas_thread
from .gemm import gemm
from ._jit import njit, njit_parallel
from .argcheck import check_alloc, check_backward_arrays, check_bounds, check_kernel_arrays, kernel_sizes
from .layers import recurrent_affine_backward
from .vecmath import fsigmoid, ftanh


class GRUCache(NamedTuple):
    x: np.ndarray       # (T, B, E)    the layer input (a reference, not a copy)
    xproj: np.ndarray   # (T, B, 3H)   x · W_ihᵀ (no bias), computed before the loop
    gates: np.ndarray   # (T, B, 3H)   r, z, n after σ / tanh
    hn: np.ndarray      # (T, B, H)    W_hn h_prev + b_hn (what r multiplies)
    h: np.ndarray       # (T+1, B, H)  hidden states; h[0] is the initial state


def gru_alloc(T, B, E, H, dtype) -> GRUCache:
    """Empty cache buffers (x is filled in by gru_forward) for T steps of B sequences, E inputs and H hidden
    units in `dtype` (np.float32 or np.float64); TypeError or ValueError (argcheck.check_alloc) otherwise."""
    dtype = check_alloc("gru_alloc", T, B, E, H, dtype)
    return GRUCache(None, np.empty((T, B, 3 * H), dtype), np.empty((T, B, 3 * H), dtype),
                    np.empty((T, B, H), dtype), np.empty((T + 1, B, H), dtype))


@njit
def _forward_units(t, u0, u1, gates, hn, h, xproj, W_rows, b_ih, b_hh):
    """Step t for hidden units u0..u1 (their r, z and n): see _gru_forward.

    W_rows[3*u0:3*u1] are the r, z, n rows of W_hh for these units (paths.unit_rows; all
    of W_hh in the serial path). Every loop runs over a view from index 0, so that
    LLVM vectorizes it (lstm.py).
    """
    B, G3 = xproj.shape[1], xproj.shape[2]
    H = G3 // 3
    n = u1 - u0
    one = h.dtype.type(1)
    hh = np.empty((B, 3 * n), h.dtype)
    # forward: hh = h_prev · W_hhᵀ (the units' r, z, n columns)
    gemm(h[t], W_rows[3 * u0:3 * u1].T, hh)
    for b in range(B):
        g, x_row, hh_row = gates[t, b], xproj[t, b], hh[b]
        for gate in range(2):              # r, z
            lo = gate * H + u0
            a_g, x_g, bi_g, bh_g = g[lo:lo + n], x_row[lo:lo + n], b_ih[lo:lo + n], b_hh[lo:lo + n]
            hh_g = hh_row[gate * n:(gate + 1) * n]
            for j in range(n):
                a_g[j] = fsigmoid(x_g[j] + bi_g[j] + hh_g[j] + bh_g[j])
        hn_u, hh_n, bh_n = hn[t, b, u0:u1], hh_row[2 * n:3 * n], b_hh[2 * H + u0:2 * H + u1]
        for j in range(n):
            hn_u[j] = hh_n[j] + bh_n[j]
        r_u, n_u = g[u0:u1], g[2 * H + u0:2 * H + u1]
        x_n, bi_n = x_row[2 * H + u0:2 * H + u1], b_ih[2 * H + u0:2 * H + u1]
        for j in range(n):                 # n
            n_u[j] = ftanh(x_n[j] + bi_n[j] + r_u[j] * hn_u[j])
        z_u, h_prev, h_new = g[H + u0:H + u1], h[t, b, u0:u1], h[t + 1, b, u0:u1]
        for j in range(n):
            z = z_u[j]
            h_new[j] = (one - z) * n_u[j] + z * h_prev[j]


@njit_parallel
def _gru_forward(gates, hn, h, xproj, W_rows, b_ih, b_hh, bounds):
    """All T steps; h[0] is set. Each step is shared between threads by hidden unit:
    part p owns units bounds[p]..bounds[p+1] of r, z and n, and needs only h[t] to
    compute its slice of h[t+1]; the parts meet once per step (as lstm._lstm_forward,
    inside one parallel region: steps.py)."""
    T, P = xproj.shape[0], len(bounds) - 1
    count = steps.counters(T)
    for _ in prange(P):         # one region for all T steps: the parts are claimed (steps.py)
        steps.walk(count, bounds, False, _forward_units, (gates, hn, h, xproj, W_rows, b_ih, b_hh))


@njit
def _gru_forward_serial(gates, hn, h, xproj, W_hh, b_ih, b_hh):
    """_gru_forward in one part, without a parallel region per step (small H)."""
    H = W_hh.shape[1]
    for t in range(xproj.shape[0]):
        _forward_units(t, 0, H, gates, hn, h, xproj, W_hh, b_ih, b_hh)


@njit
def _backward_units(t, u0, u1, dxa, dha, dhs, direct, dh_out, gates, hn, h, W_hh_T):
    """Step t of the reverse walk for hidden units u0..u1: see _gru_backward.

    direct[:, u0:u1] holds dh*z of step t+1 (the path h_prev -> h that skips W_hh)
    and gets this step's.
    """
    T, B, G3 = dxa.shape
    H = G3 // 3
    n = u1 - u0
    one = h.dtype.type(1)
    dh_next = np.zeros((B, n), h.dtype)
    if t < T - 1:
        # forward: hh_{t+1} = h_t · W_hhᵀ + b_hh   (dha: the hidden side's gradient)
        gemm(dha[t + 1], W_hh_T[u0:u1].T, dh_next)
        # forward: h_{t+1} = ... + z ⊙ h_t
        for b in range(B):
            dn_row, d_row = dh_next[b], direct[b, u0:u1]
            for j in range(n):
                dn_row[j] += d_row[j]
    for b in range(B):
        gt, dx_t, dh_t = gates[t, b], dxa[t, b], dha[t, b]
        d_out, hn_row, h_row = dh_out[t, b, u0:u1], hn[t, b, u0:u1], h[t, b, u0:u1]
        dhs_row, d_row, dn_row = dhs[t, b, u0:u1], direct[b, u0:u1], dh_next[b]
        r_u, z_u, n_u = gt[u0:u1], gt[H + u0:H + u1], gt[2 * H + u0:2 * H + u1]
        dr_x, dz_x, dn_x = dx_t[u0:u1], dx_t[H + u0:H + u1], dx_t[2 * H + u0:2 * H + u1]
        dr_h, dz_h, dn_h = dh_t[u0:u1], dh_t[H + u0:H + u1], dh_t[2 * H + u0:2 * H + u1]
        for j in range(n):
            r, z, nn = r_u[j], z_u[j], n_u[j]
            dh = d_out[j] + dn_row[j]
            dhs_row[j] = dh
            # forward: h = (1 - z)*n + z*h_prev
            dn = dh * (one - z)
            dz = dh * (h_row[j] - nn)
            d_row[j] = dh * z
            # forward: n = tanh(a_n), a_n = x_n + b_in + r*hn
            dan = dn * (one - nn * nn)
            # forward: r = σ(a_r), z = σ(a_z)
            dar = dan * hn_row[j] * r * (one - r)
            daz = dz * z * (one - z)
            dr_x[j], dz_x[j], dn_x[j] = dar, daz, dan
            # forward: hn = W_hn h_prev + b_hn enters as r*hn
            dr_h[j], dz_h[j], dn_h[j] = dar, daz, dan * r


@njit
def _backward_finish(dh0, dha, direct, W_hh_T):
    """dh0 (B, H) += dL/dh_0, from step 0's hidden-side gradient dha[0] and its direct path."""
    # forward: hh_1 = h_0 · W_hhᵀ + b_hh ; h_1 = ... + z ⊙ h_0
    dh_first = gemm(dha[0], W_hh_T.T, np.empty_like(dh0))
    dh_first += direct
    dh0 += dh_first


@njit_parallel
def _gru_backward(dxa, dha, dhs, dh0, dh_out, gates, hn, h, W_hh_T, bounds):
    """Reverse walk: dxa / dha (T, B, 3H) input-side / hidden-side pre-activation grads;
    dhs (T, B, H). Shared by hidden unit as the forward: part p first gets its units'
    share of dL/dh_t = dha[t+1] · W_hh (its rows of W_hh_T), all its units need."""
    T, B, G3 = dxa.shape
    P = len(bounds) - 1
    direct = np.zeros((B, G3 // 3), h.dtype)
    count = steps.counters(T)
    for _ in prange(P):         # one region for the whole walk, as the forward
        steps.walk(count, bounds, True, _backward_units, (dxa, dha, dhs, direct, dh_out, gates, hn, h, W_hh_T))
    _backward_finish(dh0, dha, direct, W_hh_T)


@njit
def _gru_backward_serial(dxa, dha, dhs, dh0, dh_out, gates, hn, h, W_hh_T):
    """_gru_backward in one part (small H)."""
    T, B, G3 = dxa.shape
    direct = np.zeros((B, G3 // 3), h.dtype)
    for t in range(T - 1, -1, -1):
        _backward_units(t, 0, G3 // 3, dxa, dha, dhs, direct, dh_out, gates, hn, h, W_hh_T)
    _backward_finish(dh0, dha, direct, W_hh_T)


@one_blas_thread()   # B = 32 products: threads cost more than they give (_blas.py)
def gru_forward(cache: GRUCache, x, h0, W_ih, W_hh, b_ih, b_hh, bounds=None) -> GRUCache:
    """Run T steps; x (T, B, E), h0 (B, H), W_ih (3H, E), W_hh (3H, H), biases (3H,).

    bounds: the hidden-unit parts of a step (a Plan's unit_bounds; default
    paths.unit_bounds(H, "gru")); two entries: one serial part.
    """
    T, B, E, H = kernel_sizes("gru_forward", x, W_hh, 3, cache)
    check_kernel_arrays("gru_forward", cache.h.dtype, {
        "x": (x, (T, B, E)), "h0": (h0, (B, H)), "W_ih": (W_ih, (3 * H, E)), "W_hh": (W_hh, (3 * H, H)),
        "b_ih": (b_ih, (3 * H,)), "b_hh": (b_hh, (3 * H,)), "cache.xproj": (cache.xproj, (T, B, 3 * H)),
        "cache.gates": (cache.gates, (T, B, 3 * H)), "cache.hn": (cache.hn, (T, B, H)),
        "cache.h": (cache.h, (T + 1, B, H))})
    pblas.matmul(cache.xproj.reshape(T * B, -1), x.reshape(T * B, E), W_ih.T)
    cache.h[0] = h0
    if bounds is None:
        bounds = paths.unit_bounds(W_hh.shape[1], "gru")
    else:
        bounds = check_bounds("gru_forward", bounds, W_hh.shape[1])
    if len(bounds) == 2:
        _gru_forward_serial(cache.gates, cache.hn, cache.h, cache.xproj, W_hh, b_ih, b_hh)
    else:
        _gru_forward(cache.gates, cache.hn, cache.h, cache.xproj, paths.unit_rows(W_hh, bounds, 3), b_ih, b_hh,
                     bounds)
    return cache._replace(x=x)


@one_blas_thread()   # B = 32 products: threads cost more than they give (_blas.py)
def gru_backward(dx, dW_ih, dW_hh, db_ih, db_hh, dh0, dxa, dha, dhs, dh_out, cache: GRUCache, W_ih, W_hh,
                 bounds=None):
    """Backprop through the T steps of `cache`.

    Accumulates into dW_ih, dW_hh, db_ih, db_hh, dh0 (B, H). Writes dx (T, B, E)
    (skipped if None), the scratch dxa, dha (T, B, 3H), and dhs (T, B, H), the
    per-step state gradients. dh_out (T, B, H) arrives from above. bounds: as
    for gru_forward.
    """
    check_backward_arrays("gru_backward", cache, 3, dx, (dW_ih, dW_hh, db_ih, db_hh), (W_ih, W_hh), dh0, dhs,
                          dh_out, lambda T, B, H: {"dxa": (dxa, (T, B, 3 * H)), "dha": (dha, (T, B, 3 * H))})
    if bounds is None:
        bounds = paths.unit_bounds(W_hh.shape[1], "gru")
    else:
        bounds = check_bounds("gru_backward", bounds, W_hh.shape[1])
    W_hh_T = np.ascontiguousarray(W_hh.T)   # (H, 3H): a part's rows are its units' columns of W_hh
    if len(bounds) == 2:
        _gru_backward_serial(dxa, dha, dhs, dh0, dh_out, cache.gates, cache.hn, cache.h, W_hh_T)
    else:
        _gru_backward(dxa, dha, dhs, dh0, dh_out, cache.gates, cache.hn, cache.h, W_hh_T, bounds)
    # forward: xproj = x · W_ihᵀ + b_ih ; hh = h_prev · W_hhᵀ + b_hh (dha: the hidden side's gradient)
    recurrent_affine_backward(dxa, cache.x, cache.h[:-1], W_ih, dW_ih, dW_hh, db_ih, db_hh, dx, dpre_hh=dha)


# ---------------------------------------------------------------- the cell interface (cells.py)

GATES = ("r", "z", "n")   # the blocks of W_ih, W_hh and the biases, in order
STATES = ("h",)           # the state a layer carries from step to step


def alloc(T, B, E, H, dtype) -> GRUCache:
    """An empty GRUCache for a window of T steps, B streams, input size E, hidden size H, in dtype
    (float32 or float64): the forward fills it, the backward reads it (the shape of each field: GRUCache)."""
    return gru_alloc(T, B, E, H, dtype)


def scratch_shapes(T, B, H) -> dict:
    """The backward's scratch buffers: name -> shape."""
    return {"dxa": (T, B, 3 * H), "dha": (T, B, 3 * H)}


def forward(cache, x, state0, weights, act, plan) -> GRUCache:
    """cells.Cell.forward: state0 (h0,); weights (W_ih, W_hh, b_ih, b_hh); act unused."""
    return gru_forward(cache, x, state0[0], *weights, bounds=plan.unit_bounds)


def backward(dx, dweights, dstate0, dhs, dh_out, scratch, cache, weights, act, plan):
    """cells.Cell.backward: dweights (dW_ih, dW_hh, db_ih, db_hh) and dstate0 (dh0,) accumulate."""
    gru_backward(dx, *dweights, dstate0[0], scratch["dxa"], scratch["dha"], dhs, dh_out, cache,
                 weights[0], weights[1], bounds=plan.unit_bounds)


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
    """A = dh_{t+1}/dh_t (K, H, H) at steps t of row b, and with_input dh_{t+1}/dx (K, H, E).
    t: the K steps, a (K,) integer array (0-based; one step is t = np.array([s]))."""
    return _jacobian(cache, t, b, W_hh, True), (_jacobian(cache, t, b, W_ih, False) if with_input else None)


def jacobian_advance(J, cache: GRUCache, t, b, W_hh, act, spare: dict):
    """J · A_t (K, S, H), A built dense."""
    return np.matmul(J, _jacobian(cache, t, b, W_hh, True))
