"""Vanilla (Elman) RNN cell, as PyTorch nn.RNN: h = f(W_ih x + b_ih + W_hh h_prev + b_hh).

Source: J. L. Elman, "Finding structure in time", Cognitive Science 14 (1990); the two
biases and the weight layout are PyTorch's (torch.nn.RNN documentation). Its BPTT is
P. J. Werbos, "Backpropagation through time: what it does and how to do it", Proc. IEEE 78 (1990).

Legend: T = BPTT steps, B = batch, E = input size (embedding or the layer
below), H = hidden size, N = T*B. Arrays are time-major and C-contiguous.

The one thing to know before editing: the input projection W_ih·x of all T
steps is one BLAS product *before* the time loop (and the weight gradients
one product each *after* it); only h_prev·W_hhᵀ and the elementwise math
run inside the per-step loop, which is a single Numba kernel: serial, or from
paths.RNN_SPLIT_MIN_H up each step shared between the threads by hidden unit
(as gru.py and lstm.py), the parts meeting once per step (steps.py).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from numba import prange

from . import paths, pblas, steps
from ._blas import one_blas_thread
from .gemm import gemm
from ._jit import njit, njit_parallel
from .activations import _act_inplace, _dact, fprime, parse_activation
from .argcheck import check_alloc, check_backward_arrays, check_bounds, check_kernel_arrays, kernel_sizes
from .layers import recurrent_affine_backward


class RNNCache(NamedTuple):
    x: np.ndarray       # (T, B, E)   the layer input (a reference, not a copy)
    xproj: np.ndarray   # (T, B, H)   x · W_ihᵀ (no bias), computed before the loop
    h: np.ndarray       # (T+1, B, H) hidden states; h[0] is the initial state


def rnn_alloc(T, B, E, H, dtype) -> RNNCache:
    """Empty cache buffers (x is filled in by rnn_forward) for T steps of B sequences, E inputs and H hidden
    units in `dtype` (np.float32 or np.float64); TypeError or ValueError (argcheck.check_alloc) otherwise."""
    dtype = check_alloc("rnn_alloc", T, B, E, H, dtype)
    return RNNCache(None, np.empty((T, B, H), dtype), np.empty((T + 1, B, H), dtype))


@njit
def _forward_units(t, u0, u1, h, xproj, W_hh, bias, kind, a, b):
    """Step t for hidden units u0..u1: h[t+1][:, u0:u1] = f(xproj[t] + bias + h[t] · W_hhᵀ) in those units.

    W_hh[u0:u1] are these units' rows (all of W_hh in the serial path). Every loop
    runs over a view from index 0, so that LLVM vectorizes it (lstm.py).
    """
    B = xproj.shape[1]
    n = u1 - u0
    hh = np.empty((B, n), h.dtype)
    # forward: hh = h_prev · W_hhᵀ (these units' columns; gemm.py's OpenBLAS, as gru.py)
    gemm(h[t], W_hh[u0:u1].T, hh)
    bias_u = bias[u0:u1]
    for i in range(B):
        z, x_row, hh_row = h[t + 1, i, u0:u1], xproj[t, i, u0:u1], hh[i]
        for j in range(n):
            z[j] = x_row[j] + bias_u[j] + hh_row[j]
        _act_inplace(z, kind, a, b)


@njit_parallel
def _rnn_forward(h, xproj, W_hh, bias, kind, a, b, bounds):
    """h[t+1] = f(xproj[t] + bias + h[t] · W_hhᵀ), all T steps; h[0] is set. Each step is
    shared between threads by hidden unit: part p owns units bounds[p]..bounds[p+1] and
    needs only h[t] to compute its slice of h[t+1]; the parts meet once per step
    (inside one parallel region: steps.py)."""
    T, P = xproj.shape[0], len(bounds) - 1
    count = steps.counters(T)
    for _ in prange(P):         # one region for all T steps: the parts are claimed (steps.py)
        steps.walk(count, bounds, False, _forward_units, (h, xproj, W_hh, bias, kind, a, b))


@njit
def _rnn_forward_serial(h, xproj, W_hh, bias, kind, a, b):
    """_rnn_forward in one part, without a parallel region per step (small H)."""
    for t in range(xproj.shape[0]):
        _forward_units(t, 0, W_hh.shape[0], h, xproj, W_hh, bias, kind, a, b)


@njit
def _backward_units(t, u0, u1, dz, dhs, dh_out, h, W_hh_T, kind, a, b):
    """Step t of the reverse walk for hidden units u0..u1: their dL/dh_t (dhs) and dz[t].

    dL/dh_t of these units = dh_out[t] + dz[t+1] · W_hh[:, u0:u1] (W_hh_T[u0:u1], its rows,
    are those columns), so a part needs all of dz[t+1] and nothing else of step t.
    """
    T, B, H = dz.shape
    n = u1 - u0
    one = h.dtype.type(1)
    dh_next = np.zeros((B, n), h.dtype)
    if t < T - 1:
        # forward: z_{t+1} = ... + h_t · W_hhᵀ
        gemm(dz[t + 1], W_hh_T[u0:u1].T, dh_next)
    for i in range(B):
        dht, dzt, ht, d_out, dn = dhs[t, i, u0:u1], dz[t, i, u0:u1], h[t + 1, i, u0:u1], dh_out[t, i, u0:u1], dh_next[i]
        for j in range(n):
            # dL/dh_t = the layer above's gradient + what flows back from step t+1
            g = d_out[j] + dn[j]
            dht[j] = g
            # forward: h = f(z)
            dzt[j] = g * _dact(ht[j], kind, a, b, one)


@njit
def _backward_finish(dh0, dz, W_hh_T):
    """dh0 (B, H) += dL/dh_0 = dz[0] · W_hh."""
    # forward: z_1 = ... + h_0 · W_hhᵀ
    dh0 += gemm(dz[0], W_hh_T.T, np.empty_like(dh0))


@njit_parallel
def _rnn_backward(dz, dhs, dh0, dh_out, h, W_hh_T, kind, a, b, bounds):
    """Reverse walk: dz (T, B, H) pre-activation grads, dhs (T, B, H) state grads.
    Shared by hidden unit as the forward (_backward_units)."""
    T, P = dz.shape[0], len(bounds) - 1
    count = steps.counters(T)
    for _ in prange(P):         # one region for the whole walk, as the forward
        steps.walk(count, bounds, True, _backward_units, (dz, dhs, dh_out, h, W_hh_T, kind, a, b))
    _backward_finish(dh0, dz, W_hh_T)


@njit
def _rnn_backward_serial(dz, dhs, dh0, dh_out, h, W_hh_T, kind, a, b):
    """_rnn_backward in one part (small H)."""
    for t in range(dz.shape[0] - 1, -1, -1):
        _backward_units(t, 0, dz.shape[2], dz, dhs, dh_out, h, W_hh_T, kind, a, b)
    _backward_finish(dh0, dz, W_hh_T)


@one_blas_thread()   # B = 32 products: threads cost more than they give (_blas.py)
def rnn_forward(cache: RNNCache, x, h0, W_ih, W_hh, b_ih, b_hh, act, bounds=None) -> RNNCache:
    """Run T steps; fills cache.xproj and cache.h, returns the cache with x set.

    x (T, B, E), h0 (B, H), W_ih (H, E), W_hh (H, H), b_ih, b_hh (H,).
    act: an Activation or activation string. bounds: the hidden-unit parts of a
    step (a Plan's unit_bounds; default paths.unit_bounds(H, "rnn")); two
    entries: one serial part.
    """
    act = parse_activation(act)
    T, B, E, H = kernel_sizes("rnn_forward", x, W_hh, 1, cache)
    dt = cache.h.dtype
    check_kernel_arrays("rnn_forward", dt, {
        "x": (x, (T, B, E)), "h0": (h0, (B, H)), "W_ih": (W_ih, (H, E)), "W_hh": (W_hh, (H, H)),
        "b_ih": (b_ih, (H,)), "b_hh": (b_hh, (H,)), "cache.xproj": (cache.xproj, (T, B, H)),
        "cache.h": (cache.h, (T + 1, B, H))})
    pblas.matmul(cache.xproj.reshape(T * B, -1), x.reshape(T * B, E), W_ih.T)
    cache.h[0] = h0
    if bounds is None:
        bounds = paths.unit_bounds(W_hh.shape[1], "rnn")
    else:
        bounds = check_bounds("rnn_forward", bounds, W_hh.shape[1])
    args = (cache.h, cache.xproj, W_hh, b_ih + b_hh, act.kind, dt.type(act.a), dt.type(act.b))
    if len(bounds) == 2:
        _rnn_forward_serial(*args)
    else:
        _rnn_forward(*args, bounds)
    return cache._replace(x=x)


@one_blas_thread()   # B = 32 products: threads cost more than they give (_blas.py)
def rnn_backward(dx, dW_ih, dW_hh, db_ih, db_hh, dh0, dz, dhs, dh_out, cache: RNNCache, W_ih, W_hh, act,
                 bounds=None):
    """Backprop through the T steps of `cache`.

    Accumulates into dW_ih, dW_hh, db_ih, db_hh, dh0 (B, H). Writes dx (T, B, E)
    (skipped if None), dz (T, B, H) scratch and dhs (T, B, H): dhs[t] = dL/dh
    of the state after step t (the gradient instruments read it). dh_out
    (T, B, H) is the gradient arriving from above at each step's output. bounds: as
    for rnn_forward.
    """
    check_backward_arrays("rnn_backward", cache, 1, dx, (dW_ih, dW_hh, db_ih, db_hh), (W_ih, W_hh), dh0, dhs,
                          dh_out, lambda T, B, H: {"dz": (dz, (T, B, H))})
    act = parse_activation(act)
    dt = cache.h.dtype
    if bounds is None:
        bounds = paths.unit_bounds(W_hh.shape[1], "rnn")
    else:
        bounds = check_bounds("rnn_backward", bounds, W_hh.shape[1])
    W_hh_T = np.ascontiguousarray(W_hh.T)   # (H, H): a part's rows are its units' columns of W_hh
    args = (dz, dhs, dh0, dh_out, cache.h, W_hh_T, act.kind, dt.type(act.a), dt.type(act.b))
    if len(bounds) == 2:
        _rnn_backward_serial(*args)
    else:
        _rnn_backward(*args, bounds)
    # forward: z = W_ih x + b_ih + W_hh h_prev + b_hh, batched over all steps
    recurrent_affine_backward(dz, cache.x, cache.h[:-1], W_ih, dW_ih, dW_hh, db_ih, db_hh, dx)


# ---------------------------------------------------------------- the cell interface (cells.py)

GATES = ("",)     # one block of W_ih, W_hh and the biases (no gate name)
STATES = ("h",)   # the state a layer carries from step to step


def alloc(T, B, E, H, dtype) -> RNNCache:
    """An empty RNNCache for a window of T steps, B streams, input size E, hidden size H, in dtype
    (float32 or float64): the forward fills it, the backward reads it (the shape of each field: RNNCache)."""
    return rnn_alloc(T, B, E, H, dtype)


def scratch_shapes(T, B, H) -> dict:
    """The backward's scratch buffers: name -> shape."""
    return {"dz": (T, B, H)}


def forward(cache, x, state0, weights, act, plan) -> RNNCache:
    """cells.Cell.forward: state0 (h0,); weights (W_ih, W_hh, b_ih, b_hh)."""
    return rnn_forward(cache, x, state0[0], *weights, act, bounds=plan.unit_bounds)


def backward(dx, dweights, dstate0, dhs, dh_out, scratch, cache, weights, act, plan):
    """cells.Cell.backward: dweights (dW_ih, dW_hh, db_ih, db_hh) and dstate0 (dh0,) accumulate."""
    rnn_backward(dx, *dweights, dstate0[0], scratch["dz"], dhs, dh_out, cache, weights[0], weights[1], act,
                 bounds=plan.unit_bounds)


# ---------------------------------------------------------------- step Jacobians (instruments, float64)


def step_jacobian(cache: RNNCache, t, b, W_ih, W_hh, act, with_input=False):
    """A = dh_{t+1}/dh_t (K, H, H) at steps t of row b, and with_input dh_{t+1}/dx (K, H, E).
    t: the K steps, a (K,) integer array (0-based; one step is t = np.array([s]))."""
    # forward: h = f(z), z = W_ih x + b_ih + W_hh h_prev + b_hh
    fp = fprime(cache.h[t + 1, b], act)[:, :, None]
    return fp * W_hh, (fp * W_ih if with_input else None)


def jacobian_advance(J, cache: RNNCache, t, b, W_hh, act, spare: dict):
    """J · A_t = J diag(f') W_hh (K, S, H), as one (K*S, H) x (H, H) product."""
    K, S, H = J.shape
    return ((J * fprime(cache.h[t + 1, b], act)[:, None, :]).reshape(K * S, H) @ W_hh).reshape(K, S, H)
