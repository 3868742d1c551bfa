"""Vanilla (Elman) RNN cell, as PyTorch nn.RNN: h = f(W_ih x + b_ih + W_hh h_prev + b_hh).

Legend: T = BPTT steps, B = batch, E = input size (embedding or the layer
below), H = hidden size, N = T*B. Arrays are time-major and C-contiguous.

The one thing to know before editing: the input projection W_ih·x of all T
steps is one BLAS product *before* the time loop (and the weight gradients
one product each *after* it); only h_prev·W_hhᵀ and the elementwise math
run inside the per-step loop, which is a single Numba kernel.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from . import pblas
from ._blas import one_blas_thread
from .gemm import gemm
from ._jit import njit
from .activations import _act_inplace, _dact, fprime, parse_activation
from .layers import recurrent_affine_backward


class RNNCache(NamedTuple):
    x: np.ndarray       # (T, B, E)   the layer input (a reference, not a copy)
    xproj: np.ndarray   # (T, B, H)   x · W_ihᵀ (no bias), computed before the loop
    h: np.ndarray       # (T+1, B, H) hidden states; h[0] is the initial state


def rnn_alloc(T, B, E, H, dtype) -> RNNCache:
    """Empty cache buffers (x is filled in by rnn_forward)."""
    return RNNCache(None, np.empty((T, B, H), dtype), np.empty((T + 1, B, H), dtype))


@njit
def _rnn_forward(h, xproj, W_hh, bias, kind, a, b):
    """h[t+1] = f(xproj[t] + bias + h[t] · W_hhᵀ), all T steps; h[0] is set."""
    T, B, H = xproj.shape
    hh = np.empty((B, H), h.dtype)
    W_hh_T = W_hh.T
    for t in range(T):
        # np.dot, not gemm: at B = 32 the newer OpenBLAS is no faster for h · W_hhᵀ (0.86-1.04x, H = 64-512)
        np.dot(h[t], W_hh_T, hh)
        for i in range(B):
            z, x_row, hh_row = h[t + 1, i], xproj[t, i], hh[i]
            for j in range(H):
                z[j] = x_row[j] + bias[j] + hh_row[j]
            _act_inplace(z, kind, a, b)


@njit
def _rnn_backward(dz, dhs, dh0, dh_out, h, W_hh, kind, a, b):
    """Walk the cache backwards: dz (T, B, H) pre-activation grads, dhs (T, B, H) state grads."""
    T, B, H = dz.shape
    one = h.dtype.type(1)
    dh_next = np.zeros((B, H), h.dtype)
    for t in range(T - 1, -1, -1):
        # dL/dh_{t+1} = the layer above's gradient + what flows back from step t+1
        dht = dhs[t]
        dzt = dz[t]
        ht = h[t + 1]
        for i in range(B):
            for j in range(H):
                g = dh_out[t, i, j] + dh_next[i, j]
                dht[i, j] = g
                # forward: h = f(z)
                dzt[i, j] = g * _dact(ht[i, j], kind, a, b, one)
        # forward: z = ... + h_prev · W_hhᵀ
        gemm(dzt, W_hh, dh_next)
    dh0 += dh_next


@one_blas_thread()   # B = 32 products: threads cost more than they give (_blas.py)
def rnn_forward(cache: RNNCache, x, h0, W_ih, W_hh, b_ih, b_hh, act) -> RNNCache:
    """Run T steps; fills cache.xproj and cache.h, returns the cache with x set.

    x (T, B, E), h0 (B, H), W_ih (H, E), W_hh (H, H), b_ih, b_hh (H,).
    act: an Activation or activation string.
    """
    act = parse_activation(act)
    T, B, E = x.shape
    dt = cache.h.dtype
    pblas.matmul(cache.xproj.reshape(T * B, -1), x.reshape(T * B, E), W_ih.T)
    cache.h[0] = h0
    _rnn_forward(cache.h, cache.xproj, W_hh, b_ih + b_hh, act.kind, dt.type(act.a), dt.type(act.b))
    return cache._replace(x=x)


@one_blas_thread()   # B = 32 products: threads cost more than they give (_blas.py)
def rnn_backward(dx, dW_ih, dW_hh, db_ih, db_hh, dh0, dz, dhs, dh_out, cache: RNNCache, W_ih, W_hh, act):
    """Backprop through the T steps of `cache`.

    Accumulates into dW_ih, dW_hh, db_ih, db_hh, dh0 (B, H). Writes dx (T, B, E)
    (skipped if None), dz (T, B, H) scratch and dhs (T, B, H): dhs[t] = dL/dh
    of the state after step t (the gradient instruments read it). dh_out
    (T, B, H) is the gradient arriving from above at each step's output.
    """
    act = parse_activation(act)
    dt = cache.h.dtype
    _rnn_backward(dz, dhs, dh0, dh_out, cache.h, W_hh, act.kind, dt.type(act.a), dt.type(act.b))
    # forward: z = W_ih x + b_ih + W_hh h_prev + b_hh, batched over all steps
    recurrent_affine_backward(dz, cache.x, cache.h[:-1], W_ih, dW_ih, dW_hh, db_ih, db_hh, dx)


# ---------------------------------------------------------------- the cell interface (cells.py)

GATES = ("",)     # one block of W_ih, W_hh and the biases (no gate name)
STATES = ("h",)   # the state a layer carries from step to step


def alloc(T, B, E, H, dtype) -> RNNCache:
    return rnn_alloc(T, B, E, H, dtype)


def scratch_shapes(T, B, H) -> dict:
    """The backward's scratch buffers: name -> shape."""
    return {"dz": (T, B, H)}


def forward(cache, x, state0, weights, act, plan) -> RNNCache:
    """cells.Cell.forward: state0 (h0,); weights (W_ih, W_hh, b_ih, b_hh)."""
    return rnn_forward(cache, x, state0[0], *weights, act)


def backward(dx, dweights, dstate0, dhs, dh_out, scratch, cache, weights, act, plan):
    """cells.Cell.backward: dweights (dW_ih, dW_hh, db_ih, db_hh) and dstate0 (dh0,) accumulate."""
    rnn_backward(dx, *dweights, dstate0[0], scratch["dz"], dhs, dh_out, cache, weights[0], weights[1], act)


# ---------------------------------------------------------------- step Jacobians (instruments, float64)


def step_jacobian(cache: RNNCache, t, b, W_ih, W_hh, act, with_input=False):
    """A = dh_{t+1}/dh_t (K, H, H) at steps t (0-based) of row b, and with_input dh_{t+1}/dx (K, H, E)."""
    # forward: h = f(z), z = W_ih x + b_ih + W_hh h_prev + b_hh
    fp = fprime(cache.h[t + 1, b], act)[:, :, None]
    return fp * W_hh, (fp * W_ih if with_input else None)


def jacobian_advance(J, cache: RNNCache, t, b, W_hh, act, spare: dict):
    """J · A_t = J diag(f') W_hh (K, S, H), as one (K*S, H) x (H, H) product."""
    K, S, H = J.shape
    return ((J * fprime(cache.h[t + 1, b], act)[:, None, :]).reshape(K * S, H) @ W_hh).reshape(K, S, H)
