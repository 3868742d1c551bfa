"""The non-recurrent layers: embedding, and the output layer (linear + softmax cross-entropy, fused).

Legend: T = BPTT steps, B = batch, E = embedding size, H = hidden size,
V = vocabulary, N = T*B rows. Arrays are time-major.

The one thing to know before editing: the output layer is one kernel per
direction. The N rows are cut into blocks (one per Numba thread, see
pblas.py); each block computes its logits with one BLAS product, then the
cross-entropy of its rows while they are still in cache, and in training the
dlogits (written in place of the logits), dx and its partial dW. The decoder
bias is added by the cross-entropy as it reads the logits, which saves a pass
over the (N, V) buffer, the biggest array of a training step.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import prange

from . import paths, pblas
from ._blas import one_blas_thread
from .gemm import gemm
from ._jit import njit, njit_parallel
from .vecmath import fexp, fmax


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


@njit
def clear_rows(a, rows):
    """a[rows] = 0 for a (V, E) and rows (n,) int."""
    for i in range(rows.shape[0]):
        a[rows[i]] = 0


def embedding_forward(out, ids, weight):
    """out (T, B, E) = weight[ids]; ids (T, B) int, weight (V, E)."""
    _embedding_forward(out, ids, weight)


def embedding_backward(dweight, dout, ids):
    """Scatter-add: dweight[ids[t, b]] += dout[t, b] (serial, so deterministic)."""
    _embedding_backward(dweight, dout, ids)


# ---------------------------------------------------------------- the cells' batched products


class _AffineParts(NamedTuple):
    """Per-block partial sums of recurrent_affine_backward (P = row blocks), added up in order."""
    ih: np.ndarray    # (P, G·H, E)
    hh: np.ndarray    # (P, G·H, H)
    b: np.ndarray     # (P, G·H)  bias sums of dpre
    bhh: np.ndarray   # (P, G·H)  bias sums of dpre_hh (separate_hh only)


@njit_parallel
def _affine_backward(dpre, dpre_hh, x, h_prev, W_ih, dweights, dx, with_dx, separate_hh, parts):
    """recurrent_affine_backward's products in one launch: block k of the N rows puts
    its dW_ih, dW_hh and bias sums in parts[k] and writes its rows of dx; then the
    parts are added to dweights (dW_ih, dW_hh, db_ih, db_hh) in a fixed order (rows of
    the weights in parallel)."""
    dW_ih, dW_hh, db_ih, db_hh = dweights
    parts_ih, parts_hh, parts_b, parts_bhh = parts
    N, P = dpre.shape[0], parts_ih.shape[0]
    GH = dpre.shape[1]
    for k in prange(P):
        r0, r1 = k * N // P, (k + 1) * N // P
        parts_b[k] = 0
        parts_bhh[k] = 0
        if r1 == r0:
            parts_ih[k] = 0
            parts_hh[k] = 0
            continue
        # forward: pre = x · W_ihᵀ + b_ih + h_prev · W_hhᵀ + b_hh
        gemm(dpre[r0:r1].T, x[r0:r1], parts_ih[k])
        gemm(dpre_hh[r0:r1].T, h_prev[r0:r1], parts_hh[k])
        if with_dx:
            gemm(dpre[r0:r1], W_ih, dx[r0:r1])
        for r in range(r0, r1):
            for j in range(GH):
                parts_b[k, j] += dpre[r, j]
            if separate_hh:
                for j in range(GH):
                    parts_bhh[k, j] += dpre_hh[r, j]
    for j in prange(GH):
        for k in range(P):
            dW_ih[j] += parts_ih[k, j]
            dW_hh[j] += parts_hh[k, j]
            db_ih[j] += parts_b[k, j]
            db_hh[j] += parts_bhh[k, j] if separate_hh else parts_b[k, j]


def recurrent_affine_backward(dpre, x, h_prev, W_ih, dW_ih, dW_hh, db_ih, db_hh, dx, dpre_hh=None):
    """The batched part of a cell's backward, once dpre = dL/d(pre-activations) is known.

    Forward (rnn, lstm): pre = x · W_ihᵀ + b_ih + h_prev · W_hhᵀ + b_hh for all T·B rows
    at once, so the weight gradients are one product each over the whole window.
    dpre (T, B, G·H); x (T, B, E); h_prev (T, B, H) (the states before each step).
    dpre_hh: the gradient of the hidden side h_prev · W_hhᵀ + b_hh when it differs
    from dpre's (the GRU's reset gate multiplies part of it); default dpre.
    Accumulates into dW_ih, dW_hh, db_ih, db_hh; writes dx (T, B, E) unless None.
    All of it is one parallel launch (it was five, plus NumPy's bias sums: ~0.3 ms
    of a 16 ms tiny window).
    """
    T, B, GH = dpre.shape
    E, H = x.shape[2], h_prev.shape[2]
    N, P = T * B, pblas.n_blocks()
    dpre2 = dpre.reshape(N, GH)
    dpre_hh2 = dpre2 if dpre_hh is None else dpre_hh.reshape(N, GH)
    dx2 = np.empty((1, E), dpre.dtype) if dx is None else dx.reshape(N, E)
    with one_blas_thread():
        parts = _AffineParts(np.empty((P, GH, E), dpre.dtype), np.empty((P, GH, H), dpre.dtype),
                             np.empty((P, GH), dpre.dtype), np.empty((P, GH), dpre.dtype))
        _affine_backward(dpre2, dpre_hh2, x.reshape(N, E), h_prev.reshape(N, H), W_ih, (dW_ih, dW_hh, db_ih, db_hh),
                         dx2, dx is not None, dpre_hh is not None, parts)


# ---------------------------------------------------------------- output layer: rows of the softmax


# The row passes are plain loops: the max through fmax (LLVM's maxnum) and the
# sums with reassoc, so that LLVM vectorizes both as reductions (8 lanes, several
# accumulators). Written with a lane array instead, the loops stayed mostly scalar
# (LLVM cannot tell that the array does not alias the row): max 0.44 ns per logit
# against 0.10 now, exp and sum 0.65 against 0.48. The sums are in the row's dtype.


@njit
def _row_max(row, bias):
    """max(row + bias) (a NaN entry is skipped here; the exp pass then gives NaN)."""
    m = row[0] + bias[0]
    for v in range(1, row.shape[0]):
        m = fmax(m, row[v] + bias[v])
    return m


@njit(reassoc=True)
def _row_sum_exp(row, bias, m):
    """sum_v exp(row[v] + bias[v] - m); every term is <= 1 when m is the max."""
    s = row.dtype.type(0)
    for v in range(row.shape[0]):
        s += fexp(row[v] + bias[v] - m)
    return s


@njit(reassoc=True)
def _row_exp_inplace(row, bias, m):
    """row[v] = exp(row[v] + bias[v] - m); returns their sum as _row_sum_exp does.

    The training pass; the eval pass (_row_sum_exp) only reads the row.
    """
    s = row.dtype.type(0)
    for v in range(row.shape[0]):
        e = fexp(row[v] + bias[v] - m)
        row[v] = e
        s += e
    return s


@njit
def _xent_rows_backward(logits, row_loss, db, bias, targets, scale, r0, r1):
    """Rows r0..r1: row_loss gets -log p(target); logits become scale * (softmax - onehot); db += them."""
    V = logits.shape[1]
    for r in range(r0, r1):
        row = logits[r]
        tgt = targets[r]
        z_tgt = row[tgt] + bias[tgt]
        m = _row_max(row, bias)
        s = _row_exp_inplace(row, bias, m)
        row_loss[r] = np.log(s) + m - z_tgt
        inv = scale / row.dtype.type(s)  # scale carries the dtype
        for v in range(V):
            g = row[v] * inv
            row[v] = g
            db[v] += g
        row[tgt] -= scale
        db[tgt] -= scale


@njit
def _xent_rows(logits, row_loss, bias, targets, r0, r1):
    """Rows r0..r1: row_loss gets -log p(target) (logits are only read)."""
    for r in range(r0, r1):
        row = logits[r]
        m = _row_max(row, bias)
        s = _row_sum_exp(row, bias, m)
        row_loss[r] = np.log(s) + m - (row[targets[r]] + bias[targets[r]])


@njit
def output_rows(row_loss, logits, dx, dbias, x, W, W_T, bias, targets, scale, r0, r1, grads):
    """Rows r0..r1 of the output layer: logits (one BLAS call) and each row's -log p(target);
    with grads also dlogits (in place of the logits), dx, and dbias += their dlogits.
    (Without grads, dx, dbias, W and scale are not used.)"""
    if r1 > r0:
        # forward: logits = x · Wᵀ (+ bias inside the cross-entropy)
        gemm(x[r0:r1], W_T, logits[r0:r1])
        if grads:
            _xent_rows_backward(logits, row_loss, dbias, bias, targets, scale, r0, r1)
            gemm(logits[r0:r1], W, dx[r0:r1])
        else:
            _xent_rows(logits, row_loss, bias, targets, r0, r1)


@njit_parallel
def _output_loss(row_loss, logits, x, W_T, bias, targets, blocks):
    """Per block of rows: its logits (one BLAS call), then each row's -log p(target)."""
    N = x.shape[0]
    for k in prange(blocks):
        r0, r1 = k * N // blocks, (k + 1) * N // blocks
        if r1 > r0:
            gemm(x[r0:r1], W_T, logits[r0:r1])
        _xent_rows(logits, row_loss, bias, targets, r0, r1)


@njit_parallel
def _output_loss_and_grads(row_loss, logits, dx, dW, dW_parts, dbias_parts, x, W, W_T, bias, targets, scale,
                           transposed):
    """Per block k of rows: logits, cross-entropy and dlogits, its rows of dx, and its
    share of dW: transposed, dWᵀ in dW_parts[k]; else block 0's into dW and block k's
    into dW_parts[k-1] (the caller adds them up)."""
    N, blocks = x.shape[0], dbias_parts.shape[0]
    for k in prange(blocks):
        r0, r1 = k * N // blocks, (k + 1) * N // blocks
        dW_k = dW_parts[k] if transposed else (dW if k == 0 else dW_parts[k - 1])
        dbias_parts[k] = 0
        if r1 == r0:
            dW_k[:] = 0
            continue
        output_rows(row_loss, logits, dx, dbias_parts[k], x, W, W_T, bias, targets, scale, r0, r1, True)
        # forward: logits = x · Wᵀ
        if transposed:
            gemm(x[r0:r1].T, logits[r0:r1], dW_k)
        else:
            gemm(logits[r0:r1].T, x[r0:r1], dW_k)


def dW_transposed(H) -> bool:
    """Whether the output layer's dW is computed as dWᵀ = xᵀ · dlogits (H, V) per block
    (then added up by pblas.sum_parts_transposed): paths.dW_transposed, where the
    threshold and its measurement are."""
    return paths.dW_transposed(H)


def output_scratch_shapes(N, V, H, transposed=None, blas=None):
    """Shapes of the scratch buffers output_loss_and_grads takes (name -> shape).

    transposed: the plan's dW_transposed (default: decided here from H); blas: the
    plan's output_blas (default: paths.output_blas()), which needs no dW parts.
    """
    blocks = pblas.n_blocks()
    if transposed is None:
        transposed = dW_transposed(H)
    if blas is None:
        blas = paths.output_blas()
    if blas:
        parts = (0, V, H)
    else:
        parts = (blocks, H, V) if transposed else (blocks - 1, V, H)
    return {"logits": (N, V), "dW_parts": parts, "dbias_parts": (blocks, V)}


def output_loss(logits, x, W, bias, targets, blas=None):
    """Mean cross-entropy (nats/row) of softmax(x · Wᵀ + bias) against targets.

    x (N, H), W (V, H), bias (V,), targets N ints; logits (N, V) is scratch.
    blas: the products as one OpenBLAS call on all threads (default: paths.output_blas()).
    """
    N = x.shape[0]
    row_loss = np.empty(N, np.float64)
    if blas is None:
        blas = paths.output_blas()
    if blas:
        with one_blas_thread(gemm_threads=pblas.n_blocks()):
            _product(x, W.T, logits)
        _xent_blocks(row_loss, logits, np.empty((0, 0), logits.dtype), bias, targets.reshape(N),
                     logits.dtype.type(0), pblas.n_blocks(), False)
    else:
        with one_blas_thread():
            _output_loss(row_loss, logits, x, W.T, bias, targets.reshape(N), pblas.n_blocks())
    return float(row_loss.sum() / N)


def output_loss_and_grads(buffers, dx, dW, x, W, bias, targets, transposed=None, blas=None):
    """Forward and backward of the output layer with the mean cross-entropy.

    Writes dx (N, H) and dW (V, H); returns (mean loss, dbias (V,)). buffers:
    name -> array of the shapes output_scratch_shapes gives (with the same
    `transposed`, the plan's dW_transposed, default decided here from H, and the
    same `blas`, the plan's output_blas, default paths.output_blas());
    afterwards buffers["logits"] holds dlogits.
    """
    N = x.shape[0]
    row_loss = np.empty(N, np.float64)
    scale = x.dtype.type(1.0 / N)
    parts, dbias_parts = buffers["dW_parts"], buffers["dbias_parts"]
    if transposed is None:
        transposed = dW_transposed(x.shape[1])
    if blas is None:
        blas = paths.output_blas()
    if blas:
        _output_blas(row_loss, buffers["logits"], dx, dW, dbias_parts, x, W, bias, targets.reshape(N), scale)
    else:
        with one_blas_thread():
            _output_loss_and_grads(row_loss, buffers["logits"], dx, dW, parts, dbias_parts,
                                   x, W, W.T, bias, targets.reshape(N), scale, transposed)
        if transposed:
            pblas.sum_parts_transposed(dW, parts)
        elif len(parts):
            pblas.add_parts(dW, parts)
    # forward: loss = mean_r row_loss[r]; partial sums added in a fixed order
    return float(row_loss.sum() / N), dbias_parts.sum(axis=0)


# ---------------------------------------------------------------- the same on OpenBLAS's threads


@njit
def _product(a, b, out):
    """out = a · b, one gemm call: OpenBLAS shares it among its own threads (as many as
    its thread count, set by the caller)."""
    gemm(a, b, out)


@njit_parallel
def _xent_blocks(row_loss, logits, dbias_parts, bias, targets, scale, blocks, grads):
    """The cross-entropy of the rows, in `blocks` row blocks on Numba's threads; with grads,
    dlogits in place of the logits and block k's dbias in dbias_parts[k]."""
    N = logits.shape[0]
    for k in prange(blocks):
        r0, r1 = k * N // blocks, (k + 1) * N // blocks
        if grads:
            dbias_parts[k] = 0
            _xent_rows_backward(logits, row_loss, dbias_parts[k], bias, targets, scale, r0, r1)
        else:
            _xent_rows(logits, row_loss, bias, targets, r0, r1)


def _output_blas(row_loss, logits, dx, dW, dbias_parts, x, W, bias, targets, scale):
    """output_loss_and_grads with each product one OpenBLAS call on all the threads
    (paths.OUTPUT_BLAS_MIN_THREADS): the logits, then the cross-entropy and dlogits on
    Numba's threads, then dx and dW, whole (no per-thread dW parts to add up)."""
    threads = pblas.n_blocks()
    with one_blas_thread(gemm_threads=threads):
        # forward: logits = x · Wᵀ (+ bias inside the cross-entropy)
        _product(x, W.T, logits)
        _xent_blocks(row_loss, logits, dbias_parts, bias, targets, scale, dbias_parts.shape[0], True)
        # forward: logits = x · Wᵀ
        _product(logits, W, dx)
        _product(logits.T, x, dW)


@njit_parallel
def _log_softmax(logits, bias):
    """In place: logits (N, V) become log_softmax(logits + bias), row by row."""
    N, V = logits.shape
    for r in prange(N):
        row = logits[r]
        m = _row_max(row, bias)
        lse = row.dtype.type(np.log(_row_sum_exp(row, bias, m))) + m
        for v in range(V):
            row[v] = row[v] + bias[v] - lse


def output_log_softmax(out, x, W, bias):
    """out (N, V) = log_softmax(x · Wᵀ + bias), for generation and scoring."""
    pblas.matmul(out, x, W.T)
    _log_softmax(out, bias)


# ---------------------------------------------------------------- output layer with per-position loss weights


def output_loss_weighted(x, W, bias, targets, weights, dx=None, dW=None):
    """The output layer with a weighted mean cross-entropy: loss = Σ_r w_r·nll_r / Σ_r w_r.

    The semantics of PyTorch's CrossEntropyLoss with per-position weights
    (reduction='mean' divides by the sum of the weights of the rows; a weight
    of 0 is ignore_index): https://pytorch.org/docs/stable/generated/torch.nn.CrossEntropyLoss.html
    x (N, H), W (V, H), bias (V,), targets (N,) int, weights (N,) >= 0 with a positive sum.
    With dx (N, H) and dW (V, H) given, writes their gradients and returns (loss, dbias (V,));
    else returns (loss, None).

    Only the learnability tasks use it (RNNModel's weights=); the language-model path keeps the
    fused kernels above. Plain NumPy: their vocabularies are tens of words, so the (N, V)
    logits are small, and NumPy's order of operations is fixed.
    """
    w = np.asarray(weights, x.dtype).reshape(-1)
    total = float(w.sum(dtype=np.float64))
    if not np.all(w >= 0) or not total > 0:
        raise ValueError("loss weights must be >= 0 with a positive sum")
    N = x.shape[0]
    tgt = np.asarray(targets).reshape(N)
    rows = np.arange(N)
    logits = x @ W.T + bias                              # forward: z = x · Wᵀ + b   (N, V)
    m = logits.max(axis=1, keepdims=True)
    e = np.exp(logits - m)
    s = e.sum(axis=1, keepdims=True)
    nll = (np.log(s) + m)[:, 0] - logits[rows, tgt]     # forward: nll_r = logsumexp(z_r) - z_r[target_r]
    loss = float(np.dot(w.astype(np.float64), nll.astype(np.float64)) / total)
    if dx is None:
        return loss, None
    # forward: loss = Σ_r w_r nll_r / Σ w;   dnll_r/dz_r = softmax(z_r) - onehot(target_r)
    dlogits = e / s
    dlogits[rows, tgt] -= 1
    dlogits *= (w / x.dtype.type(total))[:, None]
    # forward: z = x · Wᵀ + b
    np.dot(dlogits, W, out=dx)
    np.dot(dlogits.T, x, out=dW)
    return loss, dlogits.sum(axis=0)
