"""The non-recurrent layers: embedding, linear (decoder), fused softmax cross-entropy.

Legend: T = BPTT steps, B = batch, E = embedding size, H = hidden size,
V = vocabulary, N = T*B rows. Arrays are time-major.

The one thing to know before editing: the decoder bias is *not* added by
`linear_forward`; the fused cross-entropy adds it while it reads the logits
anyway, which saves one pass over the (N, V) buffer, the biggest array of a
training step. The cross-entropy also writes dlogits in place of the logits.
"""
from __future__ import annotations

import contextlib

import numpy as np
from numba import prange

from ._blas import one_blas_thread
from ._jit import njit, njit_parallel

# Rows of the logits are split into this many fixed chunks for the parallel
# cross-entropy; each chunk has its own bias-gradient buffer, reduced in order,
# so results do not depend on the number of threads.
XENT_CHUNKS = 8


# ---------------------------------------------------------------- embedding


@njit
def _embedding_forward(out, ids, weight):
    T, B = ids.shape
    for t in range(T):
        for b in range(B):
            out[t, b, :] = weight[ids[t, b]]


@njit
def _embedding_backward(dweight, dout, ids):
    T, B = ids.shape
    for t in range(T):
        for b in range(B):
            dweight[ids[t, b]] += dout[t, b]


def embedding_forward(out, ids, weight):
    """out (T, B, E) = weight[ids]; ids (T, B) int, weight (V, E)."""
    _embedding_forward(out, ids, weight)


def embedding_backward(dweight, dout, ids):
    """Scatter-add: dweight[ids[t, b]] += dout[t, b] (serial, so deterministic)."""
    _embedding_backward(dweight, dout, ids)


# ---------------------------------------------------------------- linear

# Output-layer products with fewer multiply-adds than this run on one BLAS
# thread (see _blas.py). Measured on the loaded 2-core machine, whole training
# steps: tiny (N·H·V = 1.4e8) ran 1.35x faster with one thread, medium (2.9e9)
# 1.3x slower, so the line sits between them.
ONE_THREAD_BELOW = 5e8


def _blas_threads_for(x, weight):
    small = x.shape[0] * x.shape[1] * weight.shape[0] < ONE_THREAD_BELOW
    return one_blas_thread() if small else contextlib.nullcontext()


def linear_forward(out, x, weight):
    """out (N, V) = x (N, H) · weightᵀ (H, V): one BLAS call, no bias (see module doc)."""
    with _blas_threads_for(x, weight):
        np.matmul(x, weight.T, out=out)


def linear_backward(dx, dweight, dout, x, weight, accumulate=False):
    """dx (N, H) = dout · weight (written); dweight (V, H) = doutᵀ · x.

    dweight is written in place by BLAS (no temporary) unless accumulate=True
    (tied embeddings add it to an existing gradient).
    """
    # forward: out = x · weightᵀ
    with _blas_threads_for(x, weight):
        if dx is not None:
            np.matmul(dout, weight, out=dx)
        if accumulate:
            dweight += dout.T @ x
        else:
            np.matmul(dout.T, x, out=dweight)


def recurrent_affine_backward(dpre, x, h_prev, W_ih, dW_ih, dW_hh, db_ih, db_hh, dx):
    """The batched part of a cell's backward, once dpre = dL/d(pre-activations) is known.

    Forward (rnn, lstm): pre = x · W_ihᵀ + b_ih + h_prev · W_hhᵀ + b_hh for all T·B rows
    at once, so the weight gradients are one product each over the whole window.
    dpre (T, B, G·H); x (T, B, E); h_prev (T, B, H) (the states before each step).
    Accumulates into dW_ih, dW_hh, db_ih, db_hh; writes dx (T, B, E) unless None.
    """
    T, B, GH = dpre.shape
    E, H = x.shape[2], h_prev.shape[2]
    dpre2 = dpre.reshape(T * B, GH)
    dW_ih += dpre2.T @ x.reshape(T * B, E)
    dW_hh += dpre2.T @ h_prev.reshape(T * B, H)
    dbias = dpre2.sum(axis=0)
    db_ih += dbias
    db_hh += dbias
    if dx is not None:
        np.matmul(dpre2, W_ih, out=dx.reshape(T * B, E))


# ---------------------------------------------------------------- softmax cross-entropy


@njit
def _row_max_shift(row, bias):
    """row += bias in place; returns max(row). Blocks of 16 lanes so the max vectorizes."""
    V = row.shape[0]
    acc = np.empty(16, row.dtype)
    acc[:] = -np.inf
    v0 = 0
    while v0 + 16 <= V:
        for k in range(16):
            z = row[v0 + k] + bias[v0 + k]
            row[v0 + k] = z
            acc[k] = max(acc[k], z)
        v0 += 16
    m = acc.max()
    for v in range(v0, V):
        z = row[v] + bias[v]
        row[v] = z
        m = max(m, z)
    return m


# float32 exp by Cody-Waite range reduction and Cephes' degree-6 polynomial
# (max relative error ~1e-7, like libm's expf). Numba has no vector exp without
# Intel's SVML, so np.exp is a scalar libm call per logit: ~2x slower over the
# (N, V) logits, the largest elementwise pass of a step. Inputs are x - max <= 0;
# below -87.3 (where float32 exp underflows) the result is clamped to ~1e-38,
# not 0, which changes no sum. NaN propagates (the non-finite guard needs it).
_LOG2E, _LN2_HI, _LN2_LO = 1.44269504088896341, 0.693359375, -2.12194440e-4
_EXP_P = (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1)


@njit
def _exp_block(out, row, v0, m, y, pow2, pow2_bits):
    """out[k] = exp(row[v0 + k] - m) for k < 16, float32, vectorized (see above)."""
    f = row.dtype.type
    for k in range(16):
        x = row[v0 + k] - m
        x = f(-87.3) if x < f(-87.3) else x
        x = f(88.3) if x > f(88.3) else x
        n = np.floor(x * f(_LOG2E) + f(0.5))
        r = x - n * f(_LN2_HI) - n * f(_LN2_LO)
        p = ((((f(_EXP_P[0]) * r + f(_EXP_P[1])) * r + f(_EXP_P[2])) * r
              + f(_EXP_P[3])) * r + f(_EXP_P[4])) * r + f(_EXP_P[5])
        y[k] = p * (r * r) + r + f(1)
        pow2_bits[k] = (np.int32(n) + np.int32(127)) << 23   # the bits of 2.0**n
    for k in range(16):
        out[k] = y[k] * pow2[k]


@njit
def _row_exp_sum(row, m, fast):
    """row = exp(row - m) in place; returns the sum in float64 (16 partial sums).

    fast: the float32 polynomial exp (only for float32 rows); else np.exp.
    """
    V = row.shape[0]
    acc = np.zeros(16, np.float64)
    e16 = np.empty(16, row.dtype)
    y = np.empty(16, row.dtype)
    pow2_bits = np.empty(16, np.int32)
    pow2 = pow2_bits.view(np.float32)
    v0 = 0
    while v0 + 16 <= V:
        if fast:
            _exp_block(e16, row, v0, m, y, pow2, pow2_bits)
        else:
            for k in range(16):
                e16[k] = np.exp(row[v0 + k] - m)
        for k in range(16):
            row[v0 + k] = e16[k]
            acc[k] += e16[k]
        v0 += 16
    s = acc.sum()
    for v in range(v0, V):
        e = np.exp(row[v] - m)
        row[v] = e
        s += e
    return s


@njit_parallel
def _xent_forward_backward(logits, row_loss, dbias_parts, bias, targets, scale, fast):
    """In place: logits (N, V) become dlogits = scale * (softmax - onehot).

    row_loss (N,) float64 gets -log p(target); dbias_parts (C, V) the per-chunk
    column sums of dlogits.
    """
    N, V = logits.shape
    C = dbias_parts.shape[0]
    for c in prange(C):
        db = dbias_parts[c]
        db[:] = 0
        for r in range(c * N // C, (c + 1) * N // C):
            row = logits[r]
            tgt = targets[r]
            m = _row_max_shift(row, bias)
            z_tgt = row[tgt]
            s = _row_exp_sum(row, m, fast)
            row_loss[r] = np.log(s) + m - z_tgt
            inv = scale / row.dtype.type(s)  # scale carries the dtype
            for v in range(V):
                g = row[v] * inv
                row[v] = g
                db[v] += g
            row[tgt] -= scale
            db[tgt] -= scale


@njit_parallel
def _xent_forward(row_loss, logits, bias, targets, fast):
    """row_loss[r] = -log softmax(logits[r] + bias)[targets[r]]; logits is scratch (overwritten)."""
    N, V = logits.shape
    for r in prange(N):
        row = logits[r]
        m = _row_max_shift(row, bias)
        z_tgt = row[targets[r]]
        s = _row_exp_sum(row, m, fast)
        row_loss[r] = np.log(s) + m - z_tgt


@njit_parallel
def _log_softmax(logits, bias):
    """In place: logits (N, V) become log_softmax(logits + bias), row by row."""
    N, V = logits.shape
    for r in prange(N):
        row = logits[r]
        m = _row_max_shift(row, bias)
        s = 0.0
        for v in range(V):
            s += np.exp(row[v] - m)
        lse = row.dtype.type(np.log(s)) + m
        for v in range(V):
            row[v] -= lse


def xent_forward_backward(logits, dbias_parts, bias, targets):
    """Fused softmax cross-entropy over all rows, mean over rows.

    logits (N, V) in place becomes dlogits of the *mean* loss; dbias_parts is a
    (XENT_CHUNKS, V) scratch buffer. Returns (mean loss as float, dbias (V,)).
    """
    N = logits.shape[0]
    row_loss = np.empty(N, np.float64)
    scale = logits.dtype.type(1.0 / N)
    fast = logits.dtype == np.float32
    _xent_forward_backward(logits, row_loss, dbias_parts, bias, targets.reshape(N), scale, fast)
    # forward: loss = mean_r row_loss[r]; fixed order sum over chunks
    return float(row_loss.sum() / N), dbias_parts.sum(axis=0)


def xent_forward(logits, bias, targets):
    """Mean cross-entropy (nats) of logits (N, V) + bias; logits is scratch (overwritten)."""
    N = logits.shape[0]
    row_loss = np.empty(N, np.float64)
    _xent_forward(row_loss, logits, bias, targets.reshape(N), logits.dtype == np.float32)
    return float(row_loss.sum() / N)


def log_softmax(logits, bias):
    """In place: logits (N, V) become log-probabilities of logits + bias."""
    _log_softmax(logits, bias)
