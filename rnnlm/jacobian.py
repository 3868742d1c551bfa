"""Jacobian norms by lag and gradient flow: how fast a recurrent network forgets.

Legend: T = BPTT steps, B = batch, E = embedding size, H = hidden size,
V = vocabulary, L = layers, G = gates per cell, D = max lag, K = anchors,
S = state size of one layer (H; 2H for the LSTM's (h, c)). Time runs forward.

Definitions. A model reads the token sequence x_1..x_N from a zero state
(s_0 = 0, no dropout); s_t is the state after reading x_t.

* Per-step Jacobian: A_k = ds_k/ds_{k-1}, the Jacobian of one step of the
  cell equations, evaluated at the visited states, in float64.
* Jacobian by lag: J(t, d) = ds_t/ds_{t-d} = A_t A_{t-1} ... A_{t-d+1},
  d = 1..D, everything else (the inputs x) held fixed.
  - rnn, gru: s = h, quantity `h` (H x H).
  - lstm: s = (h, c) and J(t, d) is the 2H x 2H product of the full state
    Jacobians; quantity `state` is that matrix, `h` its h-block
    dh_t/dh_{t-d} (the derivative with c_{t-d} held fixed: the intermediate
    c's still move) and `c` its c-block dc_t/dc_{t-d} (h_{t-d} held fixed).
  - L > 1 layers: scope `layer<l>` is layer l's own state across time with
    the lower layer's outputs held fixed (its A_k is layer l's recurrent
    Jacobian alone). Scope `stacked` is all layers' states together,
    s = (s^0, ..., s^{L-1}); its A_k is block lower-triangular because
    s^{l+1}_k depends on s^l_k of the same step. For the LSTM, `h` and `c`
    of the stacked scope are the rows and columns of every layer's h (or c).
* Gradient flow by lag: ||dL_t/dh_{t-d}||, where L_t = -log p(x_{t+1} | x_1..x_t)
  is the cross-entropy of the prediction made at step t: how much of the
  loss at step t reaches the state d steps back. It is the BPTT gradient of
  L_t alone, g_t^T J(t, d) restricted to h, with g_t = dL_t/dh_t of the top
  layer; for layer l of a stacked model it is the total derivative through
  the layers above (computed from the stacked J); for the LSTM the partial
  with c_{t-d} held fixed, as BPTT's dh.
* Each norm (spectral = largest singular value, Frobenius) is measured at K
  anchor positions t, drawn without replacement from D <= t <= N-1, and
  summarised per lag as median, geometric mean, 10th and 90th percentiles
  (computed on log norms, so even-count medians and percentiles interpolate
  geometrically).
* Per-step summaries: the same norms of A_k over steps k sampled from the
  anchors' windows; meta carries the spectral radius and norm of W_hh and
  max|f'| of the activation, so that the measured curve can be held against
  the bound ||dh_t/dh_k|| <= (||W_hh|| max|f'|)^(t-k) for the vanilla RNN.
  (The common claim that a tanh RNN's Jacobian norm is at most 1 holds only
  when ||W_hh|| <= 1; the curves show when it fails.)
* decay_rate: least-squares slope of ln(median norm) against lag (natural
  log per step; exp(rate) is the factor per step; zero norms are left out).
  vanish_lag: the first lag whose median norm is below 1e-6 of the lag-1
  median, None if none is.

JSON written by the `jacobian` command (and returned by `lag_curve`):

    {"meta": {"cell", "activation", "init", "recurrent_scale", "H", "E",
              "layers", "max_lag", "anchors", "seed", "source", "tokens",
              "spectral_radius_Whh": [per layer], "norm_Whh": [per layer],
              "max_fprime", "bound_per_step": [per layer], "tolerance"},
     "curves": {SCOPE: {QUANTITY: SERIES, ..., "flow": FLOW}},
     "per_step": {SCOPE: {QUANTITY: {"steps": n, "spectral": SUMMARY,
                                      "frobenius": SUMMARY}}}}
    SCOPE    = "layer0" .. "layer<L-1>", and "stacked" when L > 1
    QUANTITY = "h" (every cell), "c" and "state" (lstm)
    SERIES   = {"lag": [1..D], "spectral": SUMMARY, "frobenius": SUMMARY,
                "decay_rate": {"spectral": r, "frobenius": r},
                "vanish_lag": {"spectral": d | null, "frobenius": d | null}}
    FLOW     = {"lag": [1..D], "norm": SUMMARY, "decay_rate": r, "vanish_lag": d | null}
    SUMMARY  = {"median": [...], "geomean": [...], "p10": [...], "p90": [...]}

For the vanilla RNN spectral_radius_Whh and norm_Whh are floats per layer and
max_fprime a float; for gated cells they are per-layer dicts keyed by gate
("i", "f", "g", "o" or "r", "z", "n") and max_fprime and bound_per_step are null.
Norms too small or large for float64 are written as 0.0 or null.

The one thing to know before editing: J(t, d) is only ever extended by one
right-multiplication, J(t, d+1) = J(t, d) A_{t-d}, batched over the K
anchors, and renormalised after each step (a log scale is carried beside it)
so that products that vanish or explode over 100 lags stay representable.
Spectral norms come from a batched Lanczos (Golub-Kahan) iteration
warm-started from the previous lag's left singular vector, which barely
moves from lag to lag. Its matrix-vector products, bound by memory bandwidth
(a 2H x 2H LSTM state Jacobian for 32 anchors is 67 MB in float64), read a
float32 copy of J with float64 arithmetic: twice as fast, and the singular
value moves by at most the rounding of J, ~6e-8 of ||J||_F (the tests hold
the curves to 1e-5 of a float64 SVD). Frobenius norms use J itself.
"""
from __future__ import annotations

import math
from typing import Callable, NamedTuple

import numpy as np
from numba import prange

from ._jit import njit, njit_parallel
from .errors import UserError

GATES = {"rnn": ("",), "lstm": ("i", "f", "g", "o"), "gru": ("r", "z", "n")}
VANISH_FRACTION = 1e-6
LOG_FLOOR = -1e4          # ln of a zero norm, so that percentiles stay finite
BREAKDOWN = 1e-12         # Lanczos: a new direction this small (relative) means the space is exhausted


# ---------------------------------------------------------------- activations


def parse_activation(name: str):
    """The vanilla RNN's activation as (f, f' as a function of the pre-activation, max|f'|).

    Names as in activations.py: tanh, relu, sigmoid, "tanh:n" = tanh(n z),
    "scaled-tanh:a,b" = a tanh(b z).
    """
    from .activations import RELU, SIGMOID
    from .activations import parse_activation as parse
    act = parse(name)
    if act.kind == RELU:
        return (lambda z: np.maximum(z, 0.0)), (lambda z: (z > 0).astype(np.float64)), 1.0
    if act.kind == SIGMOID:
        return _sigmoid, (lambda z: _sigmoid(z) * (1.0 - _sigmoid(z))), 0.25
    a, b = act.a, act.b
    return (lambda z: a * np.tanh(b * z)), (lambda z: a * b * (1.0 - np.tanh(b * z) ** 2)), abs(a * b)


# ---------------------------------------------------------------- float64 forward


class Spec(NamedTuple):
    cell: str        # rnn | lstm | gru
    activation: str  # rnn only
    layers: int
    hidden: int


class LayerTrace(NamedTuple):
    """One layer's visited states; step k (1-based) is row k-1 of the per-step arrays."""
    W_ih: np.ndarray    # (G*H, In)
    W_hh: np.ndarray    # (G*H, H)
    h: np.ndarray       # (N+1, H), h[0] = 0
    c: np.ndarray       # (N+1, H) lstm, else None
    pre: np.ndarray     # (N, H) rnn: pre-activation; gated cells: None
    gates: np.ndarray   # (N, G*H) lstm: i,f,g,o / gru: r,z,n, after their nonlinearity; rnn: None
    hn: np.ndarray      # (N, H) gru: W_hn h_prev + b_hn; else None


def model_spec(model) -> Spec:
    cfg = model.config
    return Spec(cfg.cell, getattr(cfg, "activation", "tanh"), int(cfg.layers), int(cfg.hidden))


def _f64(a):
    return np.ascontiguousarray(a, dtype=np.float64)


def _sigmoid(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def forward(spec: Spec, params: dict, tokens: np.ndarray) -> list[LayerTrace]:
    """Run the model in float64 from a zero state over `tokens` (N,); one trace per layer."""
    tokens = np.asarray(tokens, dtype=np.int64)
    N, H = len(tokens), spec.hidden
    x = _f64(params["encoder.weight"])[tokens]                  # (N, E)
    f_act, _, _ = parse_activation(spec.activation) if spec.cell == "rnn" else (None, None, None)
    traces = []
    for layer in range(spec.layers):
        W_ih = _f64(params[f"rnn.weight_ih_l{layer}"])
        W_hh = _f64(params[f"rnn.weight_hh_l{layer}"])
        b_ih = _f64(params[f"rnn.bias_ih_l{layer}"])
        b_hh = _f64(params[f"rnn.bias_hh_l{layer}"])
        xin = x @ W_ih.T + b_ih                                  # (N, G*H)
        h = np.zeros((N + 1, H))
        c = np.zeros((N + 1, H)) if spec.cell == "lstm" else None
        pre = np.empty((N, H)) if spec.cell == "rnn" else None
        gates = np.empty((N, len(GATES[spec.cell]) * H)) if spec.cell != "rnn" else None
        hn = np.empty((N, H)) if spec.cell == "gru" else None
        for k in range(N):
            rec = W_hh @ h[k] + b_hh
            if spec.cell == "rnn":
                pre[k] = xin[k] + rec
                h[k + 1] = f_act(pre[k])
            elif spec.cell == "lstm":
                z = xin[k] + rec
                i, f, o = _sigmoid(z[:H]), _sigmoid(z[H:2 * H]), _sigmoid(z[3 * H:])
                g = np.tanh(z[2 * H:3 * H])
                gates[k] = np.concatenate([i, f, g, o])
                c[k + 1] = f * c[k] + i * g
                h[k + 1] = o * np.tanh(c[k + 1])
            else:
                r = _sigmoid(xin[k, :H] + rec[:H])
                zg = _sigmoid(xin[k, H:2 * H] + rec[H:2 * H])
                hn[k] = rec[2 * H:]
                n = np.tanh(xin[k, 2 * H:] + r * hn[k])
                gates[k] = np.concatenate([r, zg, n])
                h[k + 1] = (1.0 - zg) * n + zg * h[k]
        traces.append(LayerTrace(W_ih, W_hh, h, c, pre, gates, hn))
        x = h[1:]
    return traces


def _decoder(params):
    W = params.get("decoder.weight", params["encoder.weight"])   # tied models have no decoder.weight
    return _f64(W), _f64(params["decoder.bias"])


def step_losses(params: dict, traces: list[LayerTrace], tokens: np.ndarray, steps) -> tuple[np.ndarray, np.ndarray]:
    """L_t and g_t = dL_t/dh_t (top layer) at the 1-based steps t (each t <= N-1)."""
    W, b = _decoder(params)
    steps = np.asarray(steps)
    h = traces[-1].h[steps]                                      # (K, H)
    logits = h @ W.T + b
    logits -= logits.max(axis=1, keepdims=True)
    logp = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    target = np.asarray(tokens)[steps]                           # x_{t+1} is tokens[t] (0-based)
    rows = np.arange(len(steps))
    loss = -logp[rows, target]
    dlogits = np.exp(logp)
    dlogits[rows, target] -= 1.0
    return loss, dlogits @ W


# ---------------------------------------------------------------- per-step Jacobians


def _rows(v):
    return v[:, :, None]


def _lstm_factors(tr: LayerTrace, ks):
    """For steps ks (1-based): the per-unit factors (K,H) of the LSTM's step Jacobian.

    di, df, dg: dc/d(gate pre-activation) for i, f, g; do: dh/d(o pre-activation);
    dct: dh/dc; f: dc/dc_prev.
    """
    H = tr.h.shape[1]
    gates = tr.gates[ks - 1]
    i, f, g, o = gates[:, :H], gates[:, H:2 * H], gates[:, 2 * H:3 * H], gates[:, 3 * H:]
    ct = np.tanh(tr.c[ks])
    # forward: c = f*c_prev + i*g ; h = o*tanh(c)
    di, df, dg = g * i * (1 - i), tr.c[ks - 1] * f * (1 - f), i * (1 - g * g)
    do, dct = ct * o * (1 - o), o * (1 - ct * ct)
    return di, df, dg, do, dct, f


@njit
def _lstm_through(out, W, di, df, dg, do, dct):
    """out (K, 2H, n) = [dh/dy; dc/dy] per anchor, for an input y entering the gates as W y
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


def _lstm_pieces(tr: LayerTrace, ks):
    """For steps ks (1-based): dh/dh_prev, dc/dh_prev (K,H,H), the diagonals dh/dc_prev and
    dc/dc_prev (K,H), and `through(W)`, which gives (dh/dy, dc/dy) for an input y entering as W y."""
    di, df, dg, do, dct, f = _lstm_factors(tr, ks)
    K, H = di.shape

    def through(W):
        out = np.empty((K, 2 * H, W.shape[1]))
        _lstm_through(out, np.ascontiguousarray(W), di, df, dg, do, dct)
        return out[:, :H], out[:, H:]

    hh, ch = through(tr.W_hh)
    return hh, ch, dct * f, f, through


def _gru_jacobian(tr: LayerTrace, ks, W, hidden_side: bool):
    """dh/dh_prev (hidden_side) or dh/dx of the GRU at steps ks."""
    H = tr.h.shape[1]
    gates = tr.gates[ks - 1]
    r, z, n = gates[:, :H], gates[:, H:2 * H], gates[:, 2 * H:]
    hp, hn = tr.h[ks - 1], tr.hn[ks - 1]
    # forward: n = tanh(W_in x + b_in + r*(W_hn h + b_hn)) ; h = (1-z)*n + z*h_prev
    dn = (1 - z) * (1 - n * n)
    Wr, Wz, Wn = W[:H], W[H:2 * H], W[2 * H:]
    J = _rows(dn * hn * r * (1 - r)) * Wr + _rows((hp - n) * z * (1 - z)) * Wz
    J += _rows(dn * r if hidden_side else dn) * Wn
    if hidden_side:
        J[:, np.arange(H), np.arange(H)] += z
    return J


def layer_jacobians(spec: Spec, tr: LayerTrace, ks, with_input=False):
    """Dense per-step Jacobians of one layer at steps ks: A (K,S,S) and, if asked, ds/dx (K,S,In)."""
    ks = np.asarray(ks)
    if spec.cell == "rnn":
        _, fprime, _ = parse_activation(spec.activation)
        fp = fprime(tr.pre[ks - 1])
        A = _rows(fp) * tr.W_hh
        return (A, _rows(fp) * tr.W_ih) if with_input else (A, None)
    if spec.cell == "gru":
        A = _gru_jacobian(tr, ks, tr.W_hh, True)
        return (A, _gru_jacobian(tr, ks, tr.W_ih, False)) if with_input else (A, None)
    hh, ch, hc, cc, through = _lstm_pieces(tr, ks)
    K, H = hh.shape[0], hh.shape[1]
    A = np.zeros((K, 2 * H, 2 * H))
    A[:, :H, :H], A[:, H:, :H] = hh, ch
    diag = np.arange(H)
    A[:, diag, H + diag] = hc
    A[:, H + diag, H + diag] = cc
    if not with_input:
        return A, None
    hx, cx = through(tr.W_ih)
    return A, np.concatenate([hx, cx], axis=1)


def stacked_jacobians(spec: Spec, traces, ks):
    """Per-step Jacobian of the stacked state (s^0, ..., s^{L-1}) at steps ks: (K, L*S, L*S)."""
    ks = np.asarray(ks)
    S = _state_size(spec)
    H = spec.hidden
    A = np.zeros((len(ks), spec.layers * S, spec.layers * S))
    for layer, tr in enumerate(traces):
        Al, Bl = layer_jacobians(spec, tr, ks, with_input=layer > 0)
        rows = slice(layer * S, (layer + 1) * S)
        A[:, rows, rows] = Al
        if layer > 0:
            # s^l_k depends on h^{l-1}_k, which depends on the whole stacked s_{k-1}
            below = A[:, (layer - 1) * S:(layer - 1) * S + H, :]
            A[:, rows, :] += np.matmul(Bl, below)
    return A


def _state_size(spec):
    return 2 * spec.hidden if spec.cell == "lstm" else spec.hidden


# ---------------------------------------------------------------- norms


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
    singular vector: a warm start), restarted from the Ritz vector every
    `steps` steps. Stops when every estimate changed by at most tol
    (relative) in one step. The estimates never exceed the true values and
    converge far faster than power iteration when the top singular values
    are close (often ~20 products per matrix instead of a few hundred).
    J may be float32 (the products then read it with float64 arithmetic, see
    _measure_scope); everything else is float64.
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
        est = nv                                    # ||J^T u|| is already a lower bound
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
            new = np.linalg.svd(B[:, :j + 1, :j + 1], compute_uv=False)[:, 0]
            done = np.all(np.abs(new - est) <= tol * new)
            est = new
            if done:
                break
        Ub = np.linalg.svd(B[:, :j + 1, :j + 1])[0][:, :, 0]
        u = np.einsum("kjm,kj->km", U[:, :j + 1], Ub)
        sigma = np.maximum(sigma, est)
        if done:
            break
    return sigma, u


def frobenius_norms(J):
    return np.sqrt(np.einsum("kij,kij->k", J, J))


def _log(x):
    with np.errstate(divide="ignore"):
        return np.maximum(np.log(x), LOG_FLOOR)


def summarize(log_norms: np.ndarray) -> dict:
    """Per-lag summaries of (D, K) natural-log norms -> dict of lists."""
    def exp(v):
        return [_clean(math.exp(x)) if x < 709.0 else None for x in v]
    return {
        "median": exp(np.median(log_norms, axis=1)),
        "geomean": exp(np.mean(log_norms, axis=1)),
        "p10": exp(np.percentile(log_norms, 10, axis=1)),
        "p90": exp(np.percentile(log_norms, 90, axis=1)),
    }


def _clean(x: float):
    if not math.isfinite(x):
        return None
    return float(f"{x:.6g}")


def decay_rate(lags, medians) -> float | None:
    """Least-squares slope of ln(median) against lag: ln of the factor per step (zeros left out)."""
    lags = np.asarray(lags, dtype=float)
    med = np.array([np.nan if m is None else m for m in medians], dtype=float)
    keep = np.isfinite(med) & (med > 0)
    if keep.sum() < 2:
        return None
    slope = np.polyfit(lags[keep], np.log(med[keep]), 1)[0]
    return _clean(float(slope))


def vanish_lag(lags, medians, fraction: float = VANISH_FRACTION) -> int | None:
    """First lag whose median is below `fraction` of the lag-1 median; None if never."""
    if not medians or medians[0] is None or medians[0] <= 0:
        return None
    for lag, m in zip(lags, medians):
        if m is not None and m < fraction * medians[0]:
            return int(lag)
    return None


# ---------------------------------------------------------------- the recursion


class Scope(NamedTuple):
    """How to build and extend J(t, d) for one scope, and what to read off it."""
    first: Callable        # steps (K,) -> A_t (K,S,S)
    advance: Callable      # (J, steps) -> J A_steps (a new array)
    views: dict            # quantity -> J (K,S,S) -> (K,m,n) view
    flows: dict            # scope name -> row vector (K,S) -> (K,n) h part
    grad: np.ndarray       # (K,S) dL_t/ds_t or None


def lag_products(scope: Scope, anchors, max_lag):
    """Yield (d, J, log_scale) for d = 1..D: J(t,d) = J * exp(log_scale[:, None, None])."""
    anchors = np.asarray(anchors)
    J = scope.first(anchors)
    log_scale = np.zeros(len(anchors))
    for d in range(1, max_lag + 1):
        if d > 1:
            J = scope.advance(J, anchors - (d - 1))
        size = frobenius_norms(J)
        J *= np.where(size > 0, 1.0 / np.maximum(size, 1e-300), 1.0)[:, None, None]
        log_scale += _log(size)
        yield d, J, log_scale


def _measure_scope(scope: Scope, anchors, max_lag, tol, rng):
    """Log norms (D,K) per quantity (spectral, frobenius) and per flow."""
    D, K = max_lag, len(anchors)
    out = {q: (np.empty((D, K)), np.empty((D, K))) for q in scope.views}
    flow = {name: np.empty((D, K)) for name in scope.flows}
    u = {}
    for d, J, log_scale in lag_products(scope, anchors, max_lag):
        for q, view in scope.views.items():
            V = view(J)
            if q not in u:
                u[q] = rng.standard_normal((K, V.shape[1]))
            # a contiguous float32 copy for the Lanczos products only (see the module doc)
            sigma, u[q] = spectral_norms(V.astype(np.float32), u[q], tol=tol)
            out[q][0][d - 1] = _log(sigma) + log_scale
            out[q][1][d - 1] = _log(frobenius_norms(V)) + log_scale
        if scope.grad is not None:
            row = np.matmul(scope.grad[:, None, :], J)[:, 0, :]
            for name, pick in scope.flows.items():
                flow[name][d - 1] = _log(np.linalg.norm(pick(row), axis=1)) + log_scale
    return out, flow


@njit
def _lstm_c_columns(new, J, dct, f):
    """new[k, :, H:] = J_h diag(dct*f) + J_c diag(f): the c-columns of J A_t, in one pass."""
    K, S = J.shape[0], J.shape[1]
    H = S // 2
    for k in range(K):
        for i in range(S):
            for j in range(H):
                new[k, i, H + j] = (J[k, i, j] * dct[k, j] + J[k, i, H + j]) * f[k, j]


def _lstm_advance(tr):
    spare = {}   # the previous J and the stack, reused: fresh 67 MB arrays each lag cost page faults

    def advance(J, ks):
        K, S = J.shape[0], J.shape[1]
        H = S // 2
        new, stack = spare.pop("J", None), spare.pop("stack", None)
        if new is None or new.shape != J.shape:
            new, stack = np.empty_like(J), np.empty((K, S, H))
        di, df, dg, do, dct, f = _lstm_factors(tr, ks)
        _lstm_through(stack, tr.W_hh, di, df, dg, do, dct)   # [dh_k/dh_{k-1}; dc_k/dh_{k-1}]
        _lstm_c_columns(new, J, dct, f)
        # h-columns: J_h dh_k/dh_{k-1} + J_c dc_k/dh_{k-1} = [J_h | J_c] · stack, one product
        np.matmul(J, stack, out=new[:, :, :H])
        spare["J"], spare["stack"] = J, stack   # lag_products is done with J once it asks for the next
        return new
    return advance


def _rnn_advance(spec, tr):
    _, fprime, _ = parse_activation(spec.activation)

    def advance(J, ks):
        # J diag(f') W_hh as one (K*S, H) x (H, H) product
        K, S, H = J.shape
        return ((J * fprime(tr.pre[ks - 1])[:, None, :]).reshape(K * S, H) @ tr.W_hh).reshape(K, S, H)
    return advance


def _dense_advance(build):
    def advance(J, ks):
        return np.matmul(J, build(ks))
    return advance


def _views(spec, blocks):
    """Quantity -> view of J; blocks = index arrays of h and c within the scope's state."""
    if spec.cell != "lstm":
        return {"h": lambda J: J}
    hi, ci = blocks

    def pick(idx):
        if isinstance(idx, slice):
            return lambda J: J[:, idx, idx]
        return lambda J: J[:, idx][:, :, idx]
    return {"h": pick(hi), "c": pick(ci), "state": lambda J: J}


def _scopes(spec: Spec, traces, grad):
    """Scope name -> Scope. A single layer gets `layer0`; L > 1 adds each layer and `stacked`."""
    H, S, L = spec.hidden, _state_size(spec), spec.layers
    scopes = {}
    for layer, tr in enumerate(traces):
        build = (lambda tr_: lambda ks: layer_jacobians(spec, tr_, ks)[0])(tr)
        if spec.cell == "lstm":
            advance = _lstm_advance(tr)
        elif spec.cell == "rnn":
            advance = _rnn_advance(spec, tr)
        else:
            advance = _dense_advance(build)
        blocks = (slice(0, H), slice(H, 2 * H))
        top = layer == L - 1
        g = None
        if top and L == 1:
            g = np.zeros((grad.shape[0], S))
            g[:, :H] = grad
        flows = {f"layer{layer}": (lambda r: r[:, :H])} if g is not None else {}
        scopes[f"layer{layer}"] = Scope(build, advance, _views(spec, blocks), flows, g)
    if L > 1:
        build = lambda ks: stacked_jacobians(spec, traces, ks)  # noqa: E731
        hidx = np.concatenate([np.arange(l * S, l * S + H) for l in range(L)])
        cidx = hidx + H
        g = np.zeros((grad.shape[0], L * S))
        g[:, (L - 1) * S:(L - 1) * S + H] = grad
        flows = {f"layer{l}": (lambda l_: lambda r: r[:, l_ * S:l_ * S + H])(l) for l in range(L)}
        flows["stacked"] = lambda r: r[:, hidx]
        scopes["stacked"] = Scope(build, _dense_advance(build), _views(spec, (hidx, cidx)), flows, g)
    return scopes


def _series(log_norms: tuple, lags):
    spec_, frob = summarize(log_norms[0]), summarize(log_norms[1])
    return {
        "lag": lags,
        "spectral": spec_,
        "frobenius": frob,
        "decay_rate": {"spectral": decay_rate(lags, spec_["median"]),
                       "frobenius": decay_rate(lags, frob["median"])},
        "vanish_lag": {"spectral": vanish_lag(lags, spec_["median"]),
                       "frobenius": vanish_lag(lags, frob["median"])},
    }


def _per_step(scopes, steps, tol):
    out = {}
    for name, scope in scopes.items():
        A = scope.first(steps)
        out[name] = {}
        for q, view in scope.views.items():
            V = view(A)
            sigma, _ = spectral_norms(V.astype(np.float32), tol=tol)
            logs = (_log(sigma)[None, :], _log(frobenius_norms(V))[None, :])
            out[name][q] = {"steps": int(len(steps)),
                            "spectral": {k: v[0] for k, v in summarize(logs[0]).items()},
                            "frobenius": {k: v[0] for k, v in summarize(logs[1]).items()}}
    return out


def weight_meta(spec: Spec, params: dict) -> dict:
    """Spectral radius and norm of each layer's W_hh (per gate block for gated cells), max|f'|, the bound."""
    H = spec.hidden
    radius, norm = [], []
    for layer in range(spec.layers):
        W = _f64(params[f"rnn.weight_hh_l{layer}"])
        blocks = {g: W[j * H:(j + 1) * H] for j, g in enumerate(GATES[spec.cell])}
        rad = {g: _clean(float(np.max(np.abs(np.linalg.eigvals(B))))) for g, B in blocks.items()}
        nrm = {g: _clean(float(np.linalg.norm(B, 2))) for g, B in blocks.items()}
        radius.append(rad[""] if spec.cell == "rnn" else rad)
        norm.append(nrm[""] if spec.cell == "rnn" else nrm)
    if spec.cell == "rnn":
        fmax = parse_activation(spec.activation)[2]
        return {"spectral_radius_Whh": radius, "norm_Whh": norm, "max_fprime": fmax,
                "bound_per_step": [_clean(n * fmax) for n in norm]}
    return {"spectral_radius_Whh": radius, "norm_Whh": norm, "max_fprime": None, "bound_per_step": None}


def pick_anchors(n_tokens: int, max_lag: int, anchors: int, rng) -> np.ndarray:
    """K distinct 1-based anchor steps t with D <= t <= N-1, sorted."""
    if n_tokens < max_lag + 2:
        raise UserError(f"need at least max_lag + 2 = {max_lag + 2} tokens, got {n_tokens}: "
                        "use a longer text or a smaller --max-lag")
    candidates = np.arange(max_lag, n_tokens)
    k = min(anchors, len(candidates))
    return np.sort(rng.choice(candidates, size=k, replace=False))


def lag_curve(model, tokens, max_lag: int = 50, anchors: int = 8, rng=None, *,
              tol: float = 1e-6, per_step: bool = True, quantities=None) -> dict:
    """Jacobian norms and gradient flow by lag for `model` reading `tokens` from a zero state.

    model: anything with `.config` (cell, activation, layers, hidden, ...) and
    `.params` (PyTorch names); it is run in float64 here, without dropout.
    tokens: 1-D int array, N >= max_lag + 2. rng: numpy Generator for the
    anchors and the power-iteration starts (default: seed 0).
    quantities: restrict to these of h, c, state (flow is always measured).
    Returns the JSON dict described in the module docstring (meta without
    `source`/`seed`, which the caller adds). Cost at H=256: see the README.
    """
    rng = np.random.default_rng(0) if rng is None else rng
    spec = model_spec(model)
    params = model.params
    tokens = np.asarray(tokens, dtype=np.int64)
    t_anchor = pick_anchors(len(tokens), max_lag, anchors, rng)
    traces = forward(spec, params, tokens)
    _, grad = step_losses(params, traces, tokens, t_anchor)
    scopes = _scopes(spec, traces, grad)
    if quantities:
        for s in scopes.values():
            for q in list(s.views):
                if q not in quantities:
                    del s.views[q]
    lags = list(range(1, max_lag + 1))
    curves = {}
    flows = {}
    for name, scope in scopes.items():
        logs, flow = _measure_scope(scope, t_anchor, max_lag, tol, rng)
        curves[name] = {q: _series(v, lags) for q, v in logs.items()}
        flows.update(flow)
    for name, logs in flows.items():
        summ = summarize(logs)
        curves[name]["flow"] = {"lag": lags, "norm": summ,
                                "decay_rate": decay_rate(lags, summ["median"]),
                                "vanish_lag": vanish_lag(lags, summ["median"])}
    cfg = model.config
    result = {
        "meta": {
            "cell": spec.cell,
            "activation": spec.activation if spec.cell == "rnn" else None,
            "init": getattr(cfg, "init", None),
            "recurrent_scale": getattr(cfg, "recurrent_scale", None),
            "forget_bias": getattr(cfg, "forget_bias", None) if spec.cell == "lstm" else None,
            "H": spec.hidden,
            "E": int(params["encoder.weight"].shape[1]),
            "layers": spec.layers,
            "max_lag": max_lag,
            "anchors": int(len(t_anchor)),
            "tokens": int(len(tokens)),
            "tolerance": tol,
            **weight_meta(spec, params),
        },
        "curves": curves,
    }
    if per_step:
        visited = np.unique((t_anchor[:, None] - np.arange(max_lag)[None, :]).ravel())
        steps = np.sort(rng.choice(visited, size=min(len(visited), 4 * len(t_anchor)), replace=False))
        result["per_step"] = _per_step(scopes, steps, tol)
    return result


def lag_jacobians(model, tokens, anchors, max_lag: int, scope: str = "layer0", quantity: str = "h") -> np.ndarray:
    """The J(t, d) that `lag_curve` measures, unscaled: (D, K, m, n). For tests and notebooks."""
    spec = model_spec(model)
    tokens = np.asarray(tokens, dtype=np.int64)
    traces = forward(spec, model.params, tokens)
    _, grad = step_losses(model.params, traces, tokens, anchors)
    sc = _scopes(spec, traces, grad)[scope]
    view = sc.views[quantity]
    return np.stack([view(J) * np.exp(ls)[:, None, None]
                     for _, J, ls in lag_products(sc, anchors, max_lag)])


def gradient_rows(model, tokens, anchors, max_lag: int, scope: str = "layer0") -> dict:
    """The rows g_t^T J(t, d) behind the flow curves, unscaled: flow name -> (D, K, n)."""
    spec = model_spec(model)
    tokens = np.asarray(tokens, dtype=np.int64)
    traces = forward(spec, model.params, tokens)
    _, grad = step_losses(model.params, traces, tokens, anchors)
    sc = _scopes(spec, traces, grad)[scope]
    rows = {name: [] for name in sc.flows}
    for _, J, ls in lag_products(sc, anchors, max_lag):
        row = np.matmul(sc.grad[:, None, :], J)[:, 0, :] * np.exp(ls)[:, None]
        for name, pick in sc.flows.items():
            rows[name].append(pick(row))
    return {name: np.stack(v) for name, v in rows.items()}


# ---------------------------------------------------------------- the jacobian command

TABLE_LAGS = (1, 2, 3, 5, 10, 20, 30, 50, 75, 100, 150, 200, 300, 500)


def _init_model(config):
    """A freshly initialized model from a JacobianConfig's `model`, and its (tokens, text source).

    Tokens: the `split` of `data.corpus` (default machado, its default tokenizer
    and vocabulary), so that the input statistics are those of real Portuguese;
    uniformly random ids from a `vocab_size` vocabulary when the corpus is
    "none" or cannot be found (a note on stderr says so).
    """
    import sys

    from .data import load_corpus
    from .model import RNNModel
    ids, vocab_size, text = None, config.vocab_size, None
    if str(config.data.corpus).lower() != "none":
        try:
            corpus = load_corpus(config.data)
            ids, vocab_size = getattr(corpus, config.split), len(corpus.vocab)
            text = f"{config.data.corpus}:{config.split}"
        except UserError as exc:
            print(f"note: {exc}; measuring on random tokens instead", file=sys.stderr)
    if ids is None:
        if vocab_size < 2:
            raise UserError("--vocab-size must be at least 2")
        ids = np.random.default_rng([config.seed, 2]).integers(0, vocab_size, config.tokens)
        text = f"random:{vocab_size}"
    return RNNModel(config.model.with_vocab(vocab_size), seed=config.seed), ids, text


def default_out(config):
    """`out`, else jacobian.json in the run folder, CKPT-jacobian.json, or jacobian-init-<settings>.json here."""
    from pathlib import Path
    if config.out:
        return Path(config.out)
    m = config.model
    if m is not None:
        act = f"-{m.activation.replace(':', '').replace(',', '_')}" if m.cell == "rnn" else ""
        return Path(f"jacobian-init-{m.cell}{act}-{m.init}-x{m.recurrent_scale:g}.json")
    run = Path(config.run)
    return run / "jacobian.json" if run.is_dir() else run.with_name(f"{run.stem}-jacobian.json")


def _fmt(x) -> str:
    return f"{'-':>9}" if x is None else f"{x:9.3g}"


def format_table(doc: dict, scope: str = "layer0") -> str:
    """The lines the jacobian command prints: a few lags, then decay rates and vanish lags."""
    meta = doc["meta"]
    q = "state" if meta["cell"] == "lstm" else "h"
    sc = doc["curves"][scope]
    s, flow = sc[q], sc["flow"]
    lines = [f"{meta['cell']}{' ' + meta['activation'] if meta.get('activation') else ''}, H={meta['H']}, "
             f"{meta['layers']} layer(s), init {meta['init']}, W_hh x{meta['recurrent_scale']:g}; "
             f"{meta['anchors']} anchors over {meta['tokens']} tokens of {meta['text']}; scope {scope}, "
             f"quantity {q}",
             f"{'lag':>4} | {'spectral median':>15} {'p10':>9} {'p90':>9} | {'Frobenius median':>16} "
             f"{'p10':>9} {'p90':>9} | {'flow median':>11}"]
    for i, d in enumerate(s["lag"]):
        if d in TABLE_LAGS or d == s["lag"][-1]:
            sp, fr = s["spectral"], s["frobenius"]
            lines.append(f"{d:>4} | {_fmt(sp['median'][i]):>15} {_fmt(sp['p10'][i])} {_fmt(sp['p90'][i])} | "
                         f"{_fmt(fr['median'][i]):>16} {_fmt(fr['p10'][i])} {_fmt(fr['p90'][i])} | "
                         f"{_fmt(flow['norm']['median'][i]):>11}")
    for name, rate, vanish in (("spectral", s["decay_rate"]["spectral"], s["vanish_lag"]["spectral"]),
                               ("Frobenius", s["decay_rate"]["frobenius"], s["vanish_lag"]["frobenius"]),
                               ("flow", flow["decay_rate"], flow["vanish_lag"])):
        per = "-" if rate is None else f"{rate:+.4f} /step (x{math.exp(rate):.4g} per step)"
        van = f"lag {vanish}" if vanish is not None else f"not within {s['lag'][-1]} lags"
        lines.append(f"{name:>9}: decay rate {per}; median below 1e-6 of lag 1: {van}")
    if meta["cell"] == "rnn":
        lines.append("per-step bound ||W_hh|| max|f'| = "
                     + ", ".join(f"{b:.4g}" for b in meta["bound_per_step"])
                     + "; spectral radius of W_hh = " + ", ".join(f"{r:.4g}" for r in meta["spectral_radius_Whh"]))
    return "\n".join(lines)


def run_jacobian(config) -> tuple[dict, object]:
    """The `jacobian` command: the lag curves of a JacobianConfig's run or fresh model, written as
    JSON; returns (document, path written). format_table(document) is what the command prints."""
    import json

    config.validate()
    if config.model is not None:
        model, ids, text = _init_model(config)
        source, extra = "init", {}
    else:
        from .checkpoint import load_model
        from .train import run_text_ids
        model, vocab, info, path = load_model(config.run, config.checkpoint)
        ids = run_text_ids(info, vocab, split=config.split, text=config.text)
        ids, text = ids["ids"], ids["source"]
        from .plots import clip_label
        source, extra = str(path), {"clip": clip_label(info.get("train"))}
    ids = np.asarray(ids)[:config.tokens]
    doc = lag_curve(model, ids, max_lag=config.max_lag, anchors=config.anchors,
                    rng=np.random.default_rng(config.seed))
    doc["meta"].update(source=source, seed=config.seed, text=text, **extra)
    out = default_out(config)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    tmp.replace(out)
    return doc, out
