"""LSTM cell, as PyTorch nn.LSTM (gate order i, f, g, o).

    i, f, o = σ(W_i· x + b_i· + W_h· h_prev + b_h·)     g = tanh(...)
    c = f*c_prev + i*g
    h = o*tanh(c)

Source: S. Hochreiter and J. Schmidhuber, "Long short-term memory", Neural Computation 9
(1997), with the forget gate of F. A. Gers, J. Schmidhuber and F. Cummins, "Learning to
forget: continual prediction with LSTM", Neural Computation 12 (2000); no peepholes, two
biases per gate, as torch.nn.LSTM's documentation gives the equations.

Legend: T = BPTT steps, B = batch, E = input size, H = hidden size, N = T*B.
Arrays are time-major and C-contiguous.

The one thing to know before editing: the cache keeps the gates *after*
their nonlinearity (so the backward uses s*(1-s) and 1-g*g) and tanh(c), and
the input projection of all T steps is one BLAS product before the loop.
From H = paths.SPLIT_MIN_H up, each step is shared between Numba's threads by
hidden unit (`_forward_units` / `_backward_units` do one part; the serial
path is the same functions over all units), so any change to the step goes
into those two functions and is tested both ways (tests/test_cells.py).
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


class LSTMCache(NamedTuple):
    x: np.ndarray       # (T, B, E)    the layer input (a reference, not a copy)
    xproj: np.ndarray   # (T, B, 4H)   x · W_ihᵀ (no bias), computed before the loop
    gates: np.ndarray   # (T, B, 4H)   i, f, g, o after σ / tanh
    c: np.ndarray       # (T+1, B, H)  cell states; c[0] is the initial cell state
    tanh_c: np.ndarray  # (T, B, H)    tanh(c[t+1])
    h: np.ndarray       # (T+1, B, H)  hidden states; h[0] is the initial state


def lstm_alloc(T, B, E, H, dtype) -> LSTMCache:
    """Empty cache buffers (x is filled in by lstm_forward) for T steps of B sequences, E inputs and H hidden
    units in `dtype` (np.float32 or np.float64); TypeError or ValueError (argcheck.check_alloc) otherwise."""
    dtype = check_alloc("lstm_alloc", T, B, E, H, dtype)
    return LSTMCache(None, np.empty((T, B, 4 * H), dtype), np.empty((T, B, 4 * H), dtype),
                     np.empty((T + 1, B, H), dtype), np.empty((T, B, H), dtype),
                     np.empty((T + 1, B, H), dtype))


@njit
def _forward_units(t, u0, u1, gates, c, tanh_c, h, xproj, W_rows, bias):
    """Step t for hidden units u0..u1 (all four gates): see _lstm_forward.

    Every loop runs over a view from index 0: with an unknown start Numba's
    negative-index handling stays in the loop and LLVM does not vectorize it.
    """
    B, G4 = xproj.shape[1], xproj.shape[2]
    H = G4 // 4
    n = u1 - u0
    hh = np.empty((B, 4 * n), h.dtype)
    gemm(h[t], W_rows[4 * u0:4 * u1].T, hh)
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
    W_rows[4*u0:4*u1] (i, f, g, o blocks of its units, see paths.unit_rows), so it
    needs only h[t] to compute its slice of h[t+1]; the parts meet once per step
    (steps.py: inside one parallel region, each part claimed by whichever thread is free).
    The loops are simple passes so that LLVM vectorizes them.
    """
    T, P = xproj.shape[0], len(bounds) - 1
    count = steps.counters(T)
    for _ in prange(P):         # one region for all T steps: the parts are claimed (steps.py)
        steps.walk(count, bounds, False, _forward_units, (gates, c, tanh_c, h, xproj, W_rows, bias))


@njit
def _backward_units(t, u0, u1, dgates, dhs, dcs, dc_next, dh_out, gates, c, tanh_c, W_hh_T):
    """Step t of the reverse walk for hidden units u0..u1: see _lstm_backward."""
    T, B, G4 = dgates.shape
    H = G4 // 4
    n = u1 - u0
    one = c.dtype.type(1)
    dh_next = np.zeros((B, n), c.dtype)
    if t < T - 1:
        # forward: a_{t+1} = ... + h_t · W_hhᵀ
        gemm(dgates[t + 1], W_hh_T[u0:u1].T, dh_next)
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
    P = len(bounds) - 1
    dc_next = np.zeros((B, G4 // 4), c.dtype)
    count = steps.counters(T)
    for _ in prange(P):         # one region for the whole walk, as the forward
        steps.walk(count, bounds, True, _backward_units, (dgates, dhs, dcs, dc_next, dh_out, gates, c, tanh_c, W_hh_T))
    # forward: a_1 = ... + h_0 · W_hhᵀ
    dh0 += gemm(dgates[0], W_hh_T.T, np.empty_like(dh0))
    dc0 += dc_next


@njit
def _lstm_forward_serial(gates, c, tanh_c, h, xproj, W_hh, bias):
    """_lstm_forward in one part, without a parallel region per step (small H)."""
    H = W_hh.shape[1]
    for t in range(xproj.shape[0]):
        _forward_units(t, 0, H, gates, c, tanh_c, h, xproj, W_hh, bias)


@njit
def _lstm_backward_serial(dgates, dhs, dcs, dh0, dc0, dh_out, gates, c, tanh_c, W_hh_T):
    """_lstm_backward in one part (small H)."""
    T, B, G4 = dgates.shape
    dc_next = np.zeros((B, G4 // 4), c.dtype)
    for t in range(T - 1, -1, -1):
        _backward_units(t, 0, G4 // 4, dgates, dhs, dcs, dc_next, dh_out, gates, c, tanh_c, W_hh_T)
    dh0 += gemm(dgates[0], W_hh_T.T, np.empty_like(dh0))
    dc0 += dc_next


@one_blas_thread()   # B = 32 products: threads cost more than they give (_blas.py)
def lstm_forward(cache: LSTMCache, x, h0, c0, W_ih, W_hh, b_ih, b_hh, bounds=None) -> LSTMCache:
    """Run T steps; x (T, B, E), h0, c0 (B, H), W_ih (4H, E), W_hh (4H, H), biases (4H,).

    Fills the cache buffers and returns the cache with x set. bounds: the
    hidden-unit parts of a step (a Plan's unit_bounds; default paths.unit_bounds(H)).
    """
    T, B, E, H = kernel_sizes("lstm_forward", x, W_hh, 4, cache)
    check_kernel_arrays("lstm_forward", cache.h.dtype, {
        "x": (x, (T, B, E)), "h0": (h0, (B, H)), "c0": (c0, (B, H)), "W_ih": (W_ih, (4 * H, E)),
        "W_hh": (W_hh, (4 * H, H)), "b_ih": (b_ih, (4 * H,)), "b_hh": (b_hh, (4 * H,)),
        "cache.xproj": (cache.xproj, (T, B, 4 * H)), "cache.gates": (cache.gates, (T, B, 4 * H)),
        "cache.c": (cache.c, (T + 1, B, H)), "cache.tanh_c": (cache.tanh_c, (T, B, H)),
        "cache.h": (cache.h, (T + 1, B, H))})
    pblas.matmul(cache.xproj.reshape(T * B, -1), x.reshape(T * B, E), W_ih.T)
    cache.h[0] = h0
    cache.c[0] = c0
    if bounds is None:
        bounds = paths.unit_bounds(W_hh.shape[1])
    else:
        bounds = check_bounds("lstm_forward", bounds, W_hh.shape[1])
    if len(bounds) == 2:
        _lstm_forward_serial(cache.gates, cache.c, cache.tanh_c, cache.h, cache.xproj, W_hh, b_ih + b_hh)
    else:
        _lstm_forward(cache.gates, cache.c, cache.tanh_c, cache.h, cache.xproj, paths.unit_rows(W_hh, bounds, 4),
                      b_ih + b_hh, bounds)
    return cache._replace(x=x)


@one_blas_thread()   # B = 32 products: threads cost more than they give (_blas.py)
def lstm_backward(dx, dW_ih, dW_hh, db_ih, db_hh, dh0, dc0, dgates, dhs, dcs, dh_out,
                  cache: LSTMCache, W_ih, W_hh, bounds=None):
    """Backprop through the T steps of `cache`.

    Accumulates into dW_ih, dW_hh, db_ih, db_hh, dh0, dc0 (B, H). Writes dx
    (T, B, E) (skipped if None), dgates (T, B, 4H) scratch, and the per-step
    state gradients dhs, dcs (T, B, H) (dL/dh and dL/dc after step t).
    dh_out (T, B, H) is the gradient arriving from above at each output.
    bounds: as for lstm_forward.
    """
    check_backward_arrays("lstm_backward", cache, 4, dx, (dW_ih, dW_hh, db_ih, db_hh), (W_ih, W_hh), dh0, dhs,
                          dh_out, lambda T, B, H: {"dc0": (dc0, (B, H)), "dgates": (dgates, (T, B, 4 * H)),
                                                   "dcs": (dcs, (T, B, H))})
    if bounds is None:
        bounds = paths.unit_bounds(W_hh.shape[1])
    else:
        bounds = check_bounds("lstm_backward", bounds, W_hh.shape[1])
    W_hh_T = np.ascontiguousarray(W_hh.T)
    if len(bounds) == 2:
        _lstm_backward_serial(dgates, dhs, dcs, dh0, dc0, dh_out, cache.gates, cache.c, cache.tanh_c, W_hh_T)
    else:
        _lstm_backward(dgates, dhs, dcs, dh0, dc0, dh_out, cache.gates, cache.c, cache.tanh_c, W_hh_T, bounds)
    # forward: a = W_ih x + b_ih + W_hh h_prev + b_hh, batched over all steps
    recurrent_affine_backward(dgates, cache.x, cache.h[:-1], W_ih, dW_ih, dW_hh, db_ih, db_hh, dx)


# ---------------------------------------------------------------- the cell interface (cells.py)

GATES = ("i", "f", "g", "o")   # the blocks of W_ih, W_hh and the biases, in order
STATES = ("h", "c")            # the state a layer carries from step to step


def alloc(T, B, E, H, dtype) -> LSTMCache:
    """An empty LSTMCache for a window of T steps, B streams, input size E, hidden size H, in dtype
    (float32 or float64): the forward fills it, the backward reads it (the shape of each field: LSTMCache)."""
    return lstm_alloc(T, B, E, H, dtype)


def scratch_shapes(T, B, H) -> dict:
    """The backward's scratch buffers: name -> shape."""
    return {"dgates": (T, B, 4 * H), "dcs": (T, B, H)}


def forward(cache, x, state0, weights, act, plan) -> LSTMCache:
    """cells.Cell.forward: state0 (h0, c0); weights (W_ih, W_hh, b_ih, b_hh); act unused."""
    return lstm_forward(cache, x, *state0, *weights, bounds=plan.unit_bounds)


def backward(dx, dweights, dstate0, dhs, dh_out, scratch, cache, weights, act, plan):
    """cells.Cell.backward: dweights (dW_ih, dW_hh, db_ih, db_hh) and dstate0 (dh0, dc0) accumulate."""
    lstm_backward(dx, *dweights, *dstate0, scratch["dgates"], dhs, scratch["dcs"], dh_out, cache,
                  weights[0], weights[1], bounds=plan.unit_bounds)


# ---------------------------------------------------------------- step Jacobians (instruments, float64)


def _jacobian_factors(cache: LSTMCache, t, b):
    """Per-unit factors (K, H) of the step Jacobian at steps t (0-based: state t -> t+1) of row b.

    di, df, dg: dc/d(gate pre-activation) for i, f, g; do: dh/d(o pre-activation);
    dct: dh/dc; f: dc/dc_prev.
    """
    H = cache.h.shape[2]
    gates = cache.gates[t, b]
    i, f, g, o = gates[:, :H], gates[:, H:2 * H], gates[:, 2 * H:3 * H], gates[:, 3 * H:]
    ct = cache.tanh_c[t, b]
    # forward: c = f*c_prev + i*g ; h = o*tanh(c)
    di, df, dg = g * i * (1 - i), cache.c[t, b] * f * (1 - f), i * (1 - g * g)
    do, dct = ct * o * (1 - o), o * (1 - ct * ct)
    return di, df, dg, do, dct, f


@njit
def _jacobian_through(out, W, di, df, dg, do, dct):
    """out (K, 2H, n) = [dh/dy; dc/dy] per step, for an input y entering the gates as W y
    (W (4H, n): W_hh for the step Jacobian's h-columns, W_ih for the input). One pass, no
    (K, H, n) temporaries."""
    K, H = di.shape
    for k in range(K):
        for r in range(H):
            a_i, a_f, a_g, a_o, a_c = di[k, r], df[k, r], dg[k, r], do[k, r], dct[k, r]
            for col in range(W.shape[1]):
                # forward: c = f*c_prev + i*g, h = o*tanh(c), each gate = σ/tanh(W y + ...)
                dc = a_i * W[r, col] + a_f * W[H + r, col] + a_g * W[2 * H + r, col]
                out[k, H + r, col] = dc
                out[k, r, col] = a_o * W[3 * H + r, col] + a_c * dc


@njit
def _jacobian_c_columns(new, J, dct, f):
    """new[k, :, H:] = J_h diag(dct*f) + J_c diag(f): the c-columns of J A_t, in one pass."""
    K, S = J.shape[0], J.shape[1]
    H = S // 2
    for k in range(K):
        for i in range(S):
            for j in range(H):
                new[k, i, H + j] = (J[k, i, j] * dct[k, j] + J[k, i, H + j]) * f[k, j]


def step_jacobian(cache: LSTMCache, t, b, W_ih, W_hh, act=None, with_input=False):
    """A = d(h, c)_{t+1}/d(h, c)_t (K, 2H, 2H) at steps t of row b, and with_input d(h, c)/dx (K, 2H, E).
    t: the K steps, a (K,) integer array (0-based; one step is t = np.array([s]))."""
    di, df, dg, do, dct, f = _jacobian_factors(cache, t, b)
    K, H = di.shape

    def through(W):
        out = np.empty((K, 2 * H, W.shape[1]))
        _jacobian_through(out, np.ascontiguousarray(W), di, df, dg, do, dct)
        return out

    hc = through(W_hh)
    A = np.zeros((K, 2 * H, 2 * H))
    A[:, :, :H] = hc          # dh/dh_prev; dc/dh_prev
    diag = np.arange(H)
    A[:, diag, H + diag] = dct * f     # dh/dc_prev
    A[:, H + diag, H + diag] = f       # dc/dc_prev
    return A, (through(W_ih) if with_input else None)


def jacobian_advance(J, cache: LSTMCache, t, b, W_hh, act, spare: dict):
    """J · A_t (K, S, 2H) for J (K, S, 2H), without building A: one batched product for the
    h-columns and one fused pass for the c-columns. spare: a dict kept between calls (the
    previous J and the stack are reused: fresh 67 MB arrays each lag cost page faults);
    the caller must be done with J when it asks for the next product."""
    K = J.shape[0]
    H = J.shape[2] // 2
    new, stack = spare.pop("J", None), spare.pop("stack", None)
    if new is None or new.shape != J.shape:
        new, stack = np.empty_like(J), np.empty((K, 2 * H, H))
    di, df, dg, do, dct, f = _jacobian_factors(cache, t, b)
    _jacobian_through(stack, W_hh, di, df, dg, do, dct)   # [dh_k/dh_{k-1}; dc_k/dh_{k-1}]
    _jacobian_c_columns(new, J, dct, f)
    # h-columns: J_h dh_k/dh_{k-1} + J_c dc_k/dh_{k-1} = [J_h | J_c] · stack, one product
    np.matmul(J, stack, out=new[:, :, :H])
    spare["J"], spare["stack"] = J, stack
    return new
