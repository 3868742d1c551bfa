"""The largest singular value of a batch of matrices: warm-started Lanczos bidiagonalization.

Legend: K = matrices in the batch, each m x n (the Jacobian instrument's anchors
and its S x S, or H x H, blocks of J(t, d)).

`spectral_norms` runs Golub-Kahan-Lanczos bidiagonalization on every J[k] at
once, J V = U B with B upper bidiagonal, from a starting left vector u: the
Jacobian instrument passes the previous lag's left singular vector, which
barely moves from lag to lag, so that most lags need a few steps. The
matrix-vector products are the whole cost (they read J, which is bound by
memory bandwidth); a C-contiguous float32 J is read by two Numba kernels in
float64 arithmetic, twice as fast as float64 NumPy, and every other array is
float64.

The one thing to know before editing: the stopping rule is a residual test,
not a change test. With (sigma, x, y) the top singular triplet of the small
B, the Ritz vectors u~ = U x and v~ = V y satisfy J v~ = sigma u~ exactly and
J^T u~ - sigma v~ = b_j x_j v_{j+1}, so |b_j x_j| is the residual at no extra
product, and it bounds the distance from sigma to a singular value of J. A
rule that stops when one step changes sigma by less than tol stops at once
when the top two singular values are close (the first step barely moves the
estimate there) and leaves sigma up to ~delta/2 low, delta = 1 - s2/s1; do not
bring it back to save steps.
"""
from __future__ import annotations

import numpy as np
from numba import prange

from ._jit import njit_parallel

BREAKDOWN = 1e-12         # a new direction this small (relative) means the space is exhausted


@njit_parallel(reassoc=True)
def _matvec32(out, J, x):
    """out[k] = J[k] · x[k]: J (K,m,n) C-contiguous float32, x and out float64."""
    K, m, n = J.shape
    for k in prange(K):
        xk = x[k]
        for i in range(m):
            row = J[k, i]
            s = 0.0
            for j in range(n):
                s += row[j] * xk[j]
            out[k, i] = s


@njit_parallel
def _rmatvec32(out, J, y):
    """out[k] = J[k]ᵀ · y[k]: J (K,m,n) C-contiguous float32, y and out float64."""
    K, m, n = J.shape
    for k in prange(K):
        o = out[k]
        o[:] = 0.0
        for i in range(m):
            a = y[k, i]
            row = J[k, i]
            for j in range(n):
                o[j] += row[j] * a


def _matvec(J, x):
    if J.dtype == np.float32 and J.flags.c_contiguous:
        out = np.empty((J.shape[0], J.shape[1]))
        _matvec32(out, J, np.ascontiguousarray(x))
        return out
    return np.matmul(J, x[:, :, None])[:, :, 0]


def _rmatvec(J, y):
    if J.dtype == np.float32 and J.flags.c_contiguous:
        out = np.empty((J.shape[0], J.shape[2]))
        _rmatvec32(out, J, np.ascontiguousarray(y))
        return out
    return np.matmul(J.transpose(0, 2, 1), y[:, :, None])[:, :, 0]


def _coefficients(basis, x):
    """(K,j): the coordinates basis[k] · x[k] of x (K,n) on the rows of basis (K,j,n)."""
    return np.matmul(basis, x[:, :, None])[:, :, 0]


def _combine(basis, c):
    """(K,n): sum_j c[k, j] basis[k, j]."""
    return np.matmul(c[:, None, :], basis)[:, 0, :]


def spectral_norms(J: np.ndarray, u: np.ndarray | None = None, tol: float = 1e-6,
                   steps: int = 20, restarts: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """Largest singular value of each J[k] (K,m,n), and its left singular vector.

    Batched Golub-Kahan-Lanczos bidiagonalization with full
    reorthogonalization, started from u (K,m) (the previous lag's left
    singular vector: a warm start; random if None), restarted from the Ritz
    vector every `steps` steps, at most `restarts` times. Stops when, for
    every k, the Ritz pair's residual ||J[k]^T u~ - sigma v~|| is at most
    tol * sigma: sigma is then within tol (relative) of a singular value of
    J[k], and within ~tol^2 / gap of it when the top one is separated from
    the next by a relative gap `gap`. The estimates never exceed the true
    values. Lanczos converges to the largest singular value first unless the
    start is nearly orthogonal to its vector; two singular values closer than
    tol are not told apart (either one is a right answer).
    J may be float32 (the products then read it with float64 arithmetic);
    everything else is float64.
    """
    K, m, n = J.shape
    steps = min(steps, m, n)
    if u is None:
        u = np.random.default_rng(0).standard_normal((K, m))
    fallback = np.random.default_rng(1).standard_normal((K, n))
    sigma = np.zeros(K)
    for _ in range(restarts):
        U = np.zeros((K, steps, m))
        Vs = np.zeros((K, steps + 1, n))
        B = np.zeros((K, steps, steps))             # upper bidiagonal: J V = U B
        v = _rmatvec(J, u)
        nv = np.linalg.norm(v, axis=1)
        v = np.where(nv[:, None] > 0, v, fallback)  # u in the left null space: start anywhere
        Vs[:, 0] = v / np.maximum(np.linalg.norm(v, axis=1), 1e-300)[:, None]
        for j in range(steps):
            p = _matvec(J, Vs[:, j])
            for _ in range(2 if j else 0):              # twice is enough (CGS2)
                p -= _combine(U[:, :j], _coefficients(U[:, :j], p))
            a = np.linalg.norm(p, axis=1)
            scale = np.maximum(scale, a) if j else a
            a = np.where(a > BREAKDOWN * scale, a, 0.0)          # invariant subspace: stop that anchor
            U[:, j] = p / np.where(a > 0, a, np.inf)[:, None]
            q = _rmatvec(J, U[:, j])
            for _ in range(2):
                q -= _combine(Vs[:, :j + 1], _coefficients(Vs[:, :j + 1], q))
            b = np.linalg.norm(q, axis=1)
            scale = np.maximum(scale, b)
            b = np.where(b > BREAKDOWN * scale, b, 0.0)
            Vs[:, j + 1] = q / np.where(b > 0, b, np.inf)[:, None]
            B[:, j, j] = a
            if j + 1 < steps:
                B[:, j, j + 1] = b
            X, s, _ = np.linalg.svd(B[:, :j + 1, :j + 1])
            est = s[:, 0]
            # J^T (U x) - est (V y) = b_j x_j v_{j+1}: the residual of the Ritz pair, free
            residual = b * np.abs(X[:, j, 0])
            done = np.all(residual <= tol * est)
            if done:
                break
        u = np.einsum("kjm,kj->km", U[:, :j + 1], X[:, :, 0])
        sigma = np.maximum(sigma, est)
        if done:
            break
    return sigma, u
