"""The largest singular value of a batch of matrices: warm-started Lanczos bidiagonalization.

Legend: K = matrices in the batch, each m x n (the Jacobian instrument's anchors
and its S x S, or H x H, blocks of J(t, d)).

`spectral_norms` runs Golub-Kahan-Lanczos bidiagonalization on every J[k],
J V = U B with B upper bidiagonal, from a starting left vector u: the
Jacobian instrument passes the previous lag's left singular vector, which
barely moves from lag to lag, so that most lags need a few steps. One Numba
kernel runs the whole iteration for each matrix on its own (a prange over
k), so that each J[k] stops as soon as its own residual is small: a batch
that stepped together ran until its slowest matrix converged (~35% more
products on the instrument's lags), and its per-step NumPy bookkeeping cost
as much as the products. The matrix-vector products are the rest of the cost
(they read J, bound by memory bandwidth); a float32 J is read in float64
arithmetic, twice as fast as float64, and every other array is float64.

The one thing to know before editing: the stopping rule is a residual test,
not a change test. With (sigma, x, y) the top singular triplet of the small
B, the Ritz vectors u~ = U x and v~ = V y satisfy J v~ = sigma u~ exactly and
J^T u~ - sigma v~ = b_j x_j v_{j+1}, so |b_j x_j| is the residual at no extra
product, and it bounds the distance from sigma to a singular value of J. A
rule that stops when one step changes sigma by less than tol stops at once
when the top two singular values are close (the first step barely moves the
estimate there) and leaves sigma up to ~delta/2 low, delta = 1 - s2/s1; do not
bring it back to save steps. Matrices share nothing: each one's answer is the
same whatever else is in the batch.
"""
from __future__ import annotations

import numpy as np
from numba import prange

from ._jit import njit, njit_parallel

BREAKDOWN = 1e-12         # a new direction this small (relative) means the space is exhausted


@njit(reassoc=True)
def _dot(a, b):
    s = 0.0
    for i in range(a.shape[0]):
        s += a[i] * b[i]
    return s


@njit(reassoc=True)
def _orthogonalize(x, basis, count):
    """x -= its components on basis[:count] (orthonormal rows), twice (CGS2); returns ||x||."""
    if count:
        c = np.empty(count)
        for _ in range(2):                          # twice is enough
            for l in range(count):
                c[l] = _dot(basis[l], x)
            for l in range(count):
                cl = c[l]
                row = basis[l]
                for i in range(x.shape[0]):
                    x[i] -= cl * row[i]
    return np.sqrt(_dot(x, x))


@njit(reassoc=True)
def _lanczos_one(Jk, u, fallback, tol, steps, restarts, out_u):
    """The top singular value of one matrix Jk (m,n), from u (m,); its left vector into out_u.

    Returns (sigma, matrix-vector products used)."""
    m, n = Jk.shape
    U = np.zeros((steps, m))
    Vs = np.zeros((steps + 1, n))
    B = np.zeros((steps, steps))                    # upper bidiagonal: J V = U B
    p = np.empty(m)
    sigma = 0.0
    products = 0
    start = u.copy()
    for _ in range(restarts):
        U[:] = 0.0
        Vs[:] = 0.0
        B[:] = 0.0
        v = Vs[0]
        for i in range(m):                          # v = J^T u
            w = start[i]
            row = Jk[i]
            for l in range(n):
                v[l] += row[l] * w
        nv = np.sqrt(_dot(v, v))
        if not np.isfinite(nv):                     # a NaN or inf in Jk (every row is read): not a norm
            out_u[:] = np.nan
            return (nv if nv > 0 else np.nan), products
        if not nv > 0:                              # u in the left null space: start anywhere
            v[:] = fallback
            nv = np.sqrt(_dot(v, v))
        v /= max(nv, 1e-300)
        scale = 0.0
        done = False
        est = 0.0
        x = np.zeros(1)
        j = 0
        for j in range(steps):
            vj = Vs[j]
            for i in range(m):                      # p = J v_j
                row = Jk[i]
                acc = 0.0
                for l in range(n):
                    acc += row[l] * vj[l]
                p[i] = acc
            a = _orthogonalize(p, U, j)
            scale = max(scale, a)
            if not a > BREAKDOWN * scale:           # invariant subspace: stop here
                a = 0.0
            if a > 0:
                U[j] = p / a
            q = Vs[j + 1]
            uj = U[j]
            for i in range(m):                      # q = J^T u_j
                w = uj[i]
                row = Jk[i]
                for l in range(n):
                    q[l] += row[l] * w
            products += 1
            b = _orthogonalize(q, Vs, j + 1)
            scale = max(scale, b)
            if not b > BREAKDOWN * scale:
                b = 0.0
            if b > 0:
                q /= b
            else:
                q[:] = 0.0
            B[j, j] = a
            if j + 1 < steps:
                B[j, j + 1] = b
            X, s, _ = np.linalg.svd(np.ascontiguousarray(B[:j + 1, :j + 1]))
            est = s[0]
            x = X[:, 0].copy()
            # J^T (U x) - est (V y) = b_j x_j v_{j+1}: the residual of the Ritz pair, free
            if b * abs(x[j]) <= tol * est:
                done = True
                break
        start[:] = 0.0
        for l in range(j + 1):                      # the Ritz vector U x
            start += x[l] * U[l]
        sigma = max(sigma, est)
        if done:
            break
    out_u[:] = start
    return sigma, products


@njit_parallel(reassoc=True)
def _lanczos(J, u, fallback, tol, steps, restarts, sigma, out_u, products):
    """_lanczos_one on every J[k], in parallel: each matrix stops on its own residual."""
    for k in prange(J.shape[0]):
        sigma[k], products[k] = _lanczos_one(J[k], u[k], fallback[k], tol, steps, restarts, out_u[k])


def spectral_norms(J: np.ndarray, u: np.ndarray | None = None, tol: float = 1e-6,
                   steps: int = 20, restarts: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """Largest singular value of each J[k] (K,m,n), and its left singular vector.

    Golub-Kahan-Lanczos bidiagonalization with full reorthogonalization,
    started from u (K,m) (the previous lag's left singular vector: a warm
    start; random if None), restarted from the Ritz vector every `steps`
    steps, at most `restarts` times. Each J[k] stops on its own as soon as
    its Ritz pair's residual ||J[k]^T u~ - sigma v~|| is at most
    tol * sigma: sigma is then within tol (relative) of a singular value of
    J[k], and within ~tol^2 / gap of it when the top one is separated from
    the next by a relative gap `gap`. The estimates never exceed the true
    values. Lanczos converges to the largest singular value first unless the
    start is nearly orthogonal to its vector; two singular values closer than
    tol are not told apart (either one is a right answer).
    J may be float32 (the products then read it with float64 arithmetic);
    everything else is float64. A J[k] holding a NaN gets sigma NaN, one
    holding an inf (and no NaN) inf, and its u is NaN: never a finite norm.
    """
    sigma, u, _ = _run(J, u, tol, steps, restarts)
    return sigma, u


def _run(J, u, tol, steps, restarts):
    """spectral_norms, plus the matrix-vector products (J v, J^T u pairs) each matrix used (K,)."""
    K, m, n = J.shape
    steps = min(steps, m, n)
    if u is None:
        u = np.random.default_rng(0).standard_normal((K, m))
    u = np.ascontiguousarray(u, dtype=np.float64)
    fallback = np.random.default_rng(1).standard_normal((K, n))
    sigma, out_u, products = np.zeros(K), np.zeros((K, m)), np.zeros(K, dtype=np.int64)
    if K:
        _lanczos(J, u, fallback, float(tol), steps, restarts, sigma, out_u, products)
    return sigma, out_u, products
