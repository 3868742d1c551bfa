"""The non-recurrent layers: embedding, linear (decoder), fused softmax cross-entropy.

Legend: T = BPTT steps, B = batch, E = embedding size, H = hidden size,
V = vocabulary, N = T*B rows. Arrays are time-major.

The one thing to know before editing: the decoder bias is *not* added by
`linear_forward`; the fused cross-entropy adds it while it reads the logits
anyway, which saves one pass over the (N, V) buffer, the biggest array of a
training step. The cross-entropy also writes dlogits in place of the logits.
"""
from __future__ import annotations

import numpy as np
from numba import prange

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


def linear_forward(out, x, weight):
    """out (N, V) = x (N, H) · weightᵀ (H, V): one BLAS call, no bias (see module doc)."""
    np.matmul(x, weight.T, out=out)


def linear_backward(dx, dweight, dout, x, weight, accumulate=False):
    """dx (N, H) = dout · weight (written); dweight (V, H) = doutᵀ · x.

    dweight is written in place by BLAS (no temporary) unless accumulate=True
    (tied embeddings add it to an existing gradient).
    """
    # forward: out = x · weightᵀ
    if dx is not None:
        np.matmul(dout, weight, out=dx)
    if accumulate:
        dweight += dout.T @ x
    else:
        np.matmul(dout.T, x, out=dweight)


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


@njit
def _row_exp_sum(row, m):
    """row = exp(row - m) in place; returns the sum in float64 (16 partial sums)."""
    V = row.shape[0]
    acc = np.zeros(16, np.float64)
    v0 = 0
    while v0 + 16 <= V:
        for k in range(16):
            e = np.exp(row[v0 + k] - m)
            row[v0 + k] = e
            acc[k] += e
        v0 += 16
    s = acc.sum()
    for v in range(v0, V):
        e = np.exp(row[v] - m)
        row[v] = e
        s += e
    return s


@njit_parallel
def _xent_forward_backward(logits, row_loss, dbias_parts, bias, targets, scale):
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
            s = _row_exp_sum(row, m)
            row_loss[r] = np.log(s) + m - z_tgt
            inv = scale / row.dtype.type(s)  # scale carries the dtype
            for v in range(V):
                g = row[v] * inv
                row[v] = g
                db[v] += g
            row[tgt] -= scale
            db[tgt] -= scale


@njit_parallel
def _xent_forward(row_loss, logits, bias, targets):
    """row_loss[r] = -log softmax(logits[r] + bias)[targets[r]]; logits gets the bias added."""
    N, V = logits.shape
    for r in prange(N):
        row = logits[r]
        m = _row_max_shift(row, bias)
        z_tgt = row[targets[r]]
        s = 0.0
        for v in range(V):
            s += np.exp(row[v] - m)
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
    _xent_forward_backward(logits, row_loss, dbias_parts, bias, targets.reshape(N), scale)
    # forward: loss = mean_r row_loss[r]; fixed order sum over chunks
    return float(row_loss.sum() / N), dbias_parts.sum(axis=0)


def xent_forward(logits, bias, targets):
    """Mean cross-entropy (nats) of logits (N, V) + bias; logits gets the bias added."""
    N = logits.shape[0]
    row_loss = np.empty(N, np.float64)
    _xent_forward(row_loss, logits, bias, targets.reshape(N))
    return float(row_loss.sum() / N)


def log_softmax(logits, bias):
    """In place: logits (N, V) become log-probabilities of logits + bias."""
    _log_softmax(logits, bias)
