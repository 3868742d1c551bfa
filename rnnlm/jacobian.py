"""Jacobian norms by lag and gradient flow: how fast a recurrent network forgets.

Legend: T = BPTT steps, B = batch, E = embedding size, H = hidden size,
V = vocabulary, L = layers, G = gates per cell, D = max lag, K = anchors,
S = state size of one layer (H; 2H for the LSTM's (h, c)). Time runs forward.

Definitions. A model reads the token sequence x_1..x_N from a zero state
(s_0 = 0, no dropout); s_t is the state after reading x_t.

* Per-step Jacobian: A_k = ds_k/ds_{k-1}, the Jacobian of one step of the
  cell equations, evaluated at the visited states, in float64. The states
  are the model's own: it is converted to float64 and run through its
  forward, and each cell module builds A_k from that forward's cache
  (cells.Cell.step_jacobian / jacobian_advance); nothing here re-implements
  a cell.
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
  the bound ||dh_t/dh_k|| <= (||W_hh|| max|f'|)^(t-k) for the vanilla RNN
  (Pascanu, Mikolov & Bengio 2013, "On the difficulty of training recurrent neural
  networks", section 2.1; Bengio, Simard & Frasconi 1994 for the vanishing it implies).
  (The common claim that a tanh RNN's Jacobian norm is at most 1 holds only
  when ||W_hh|| <= 1; the curves show when it fails.)
* decay_rate: least-squares slope of ln(median norm) against lag (natural
  log per step; exp(rate) is the factor per step; zero norms are left out;
  None, undefined, when fewer than two lags have a finite nonzero median,
  e.g. a curve that is 0 from lag 1 or 2).
  zero_lag: the first lag whose median norm is exactly 0 (at least half the
  anchors' J(t, d) are the zero matrix; then so are all later lags'), None if
  none is. A vanilla RNN gets there when every unit of a step is saturated
  (tanh'(z) = 1 - tanh(z)^2 rounds to exactly 0 for |z| > ~19 in float64):
  nothing flows back through that step at all.
  vanish_lag: the first lag whose median norm is below 1e-6 of the lag-1
  median or is 0 (so a curve that is 0 from lag d vanishes at d, d = 1
  included), None if none is.
* An exploding network's forward itself overflows: from some step on its
  states (or the prediction made from them) are inf or NaN, and a Jacobian
  read there is meaningless (relu' of a NaN is 0: a zero matrix that would
  read as saturation). forward_overflow finds that step; lag_curve draws its
  anchors only before it (a StateOverflowWarning; meta "overflow_step", null
  when the forward stays finite) and refuses (StateOverflowError) when no
  anchor position is left. A model whose parameters hold NaN or inf is refused
  (ModelConfigError).

JSON written by the `jacobian` command (and returned by `lag_curve`):

    {"meta": {"cell", "activation", "init", "recurrent_scale", "H", "E",
              "layers", "max_lag", "anchors", "seed", "source", "tokens",
              "spectral_radius_Whh": [per layer], "norm_Whh": [per layer],
              "max_fprime", "bound_per_step": [per layer], "tolerance",
              "overflow_step": t | null,
              the command's own: "text", "clip", "checkpoint_step" (the step the checkpoint read was
              saved at, null for one holding none; absent from earlier documents and --init)},
     "curves": {SCOPE: {QUANTITY: SERIES, ..., "flow": FLOW}},
     "per_step": {SCOPE: {QUANTITY: {"steps": n, "spectral": SUMMARY,
                                      "frobenius": SUMMARY}}}}
    SCOPE    = "layer0" .. "layer<L-1>", and "stacked" when L > 1
    QUANTITY = "h" (every cell), "c" and "state" (lstm)
    SERIES   = {"lag": [1..D], "spectral": SUMMARY, "frobenius": SUMMARY,
                "decay_rate": {"spectral": r | null, "frobenius": r | null},
                "vanish_lag": {"spectral": d | null, "frobenius": d | null},
                "zero_lag": {"spectral": d | null, "frobenius": d | null}}
    FLOW     = {"lag": [1..D], "norm": SUMMARY, "decay_rate": r | null, "vanish_lag": d | null,
                "zero_lag": d | null}
    SUMMARY  = {"median": [...], "geomean": [...], "p10": [...], "p90": [...]}

For the vanilla RNN spectral_radius_Whh and norm_Whh are floats per layer and
max_fprime a float; for gated cells they are per-layer dicts keyed by gate
("i", "f", "g", "o" or "r", "z", "n") and max_fprime and bound_per_step are null.
Norms too small or large for float64 are written as 0.0 or null (a median
of 0.0 is exactly 0 where zero_lag says so, an underflow otherwise; documents
written before zero_lag existed lack it; curve_zero_lag reads them both).

The `jacobian` command's run (the model, the output file, the table it prints)
is jacobianrun.py. The float64 forward the Jacobians are read at (traces,
step_losses) and where an exploding one overflows (forward_overflow,
overflow_limit, StateOverflowWarning, StateOverflowError) are jacobianstates.py's.

The one thing to know before editing: J(t, d) is only ever extended by one
right-multiplication, J(t, d+1) = J(t, d) A_{t-d}, batched over the K
anchors, and renormalised after each step (a log scale is carried beside it)
so that products that vanish or explode over 100 lags stay representable.
Spectral norms come from spectral.py: a Lanczos (Golub-Kahan) iteration
per anchor, the anchors in parallel, each stopping on its own Ritz residual,
warm-started from the previous lag's left singular vector, which barely
moves from lag to lag. Its matrix-vector products, bound by memory bandwidth
(a 2H x 2H LSTM state Jacobian for 32 anchors is 67 MB in float64), read a
float32 copy of J with float64 arithmetic: twice as fast, and the singular
value moves by at most the rounding of J, ~6e-8 of ||J||_F (the tests hold
the curves to 1e-5 of a float64 SVD). Frobenius norms use J itself.
"""
from __future__ import annotations

import math
import warnings
from typing import Callable, NamedTuple

import numpy as np

from .activations import max_fprime
from .argcheck import check_generator, check_token_ids, is_int, is_real
from .cells import CELLS
from .errors import UserError
from .jacobianstates import (LayerTrace, Spec, _check_anchors_finite, _f64, _float64_model, model_spec,
                             overflow_limit, step_losses, traces)
from .spectral import spectral_norms

VANISH_FRACTION = 1e-6
LOG_FLOOR = -1e4          # ln of a zero norm, so that percentiles stay finite


class FewerAnchorsWarning(UserWarning):
    """lag_curve was asked for more anchors than the tokens hold positions for (N - max_lag) and measured at
    all of those: the curve is still a measurement, at fewer anchors than asked. The jacobian command says
    so in its own note (jacobianrun.anchors_note), in its flags, and silences this one."""


# ---------------------------------------------------------------- per-step Jacobians


def layer_jacobians(spec: Spec, tr: LayerTrace, ks, with_input=False):
    """Dense per-step Jacobians of one layer at steps ks: A (K,S,S) and, if asked, ds/dx (K,S,In)."""
    ks = np.asarray(ks)
    return CELLS[spec.cell].step_jacobian(tr.cache, ks - 1, 0, tr.W_ih, tr.W_hh, tr.act, with_input)


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
    return len(CELLS[spec.cell].states) * spec.hidden


# ---------------------------------------------------------------- norms


def frobenius_norms(J):
    """(K, H, H) Jacobians -> (K,) Frobenius norms sqrt(sum of squared entries)."""
    return np.sqrt(np.einsum("kij,kij->k", J, J))


def _log(x):
    with np.errstate(divide="ignore"):
        return np.maximum(np.log(x), LOG_FLOOR)


def zero_median(zeros: np.ndarray) -> np.ndarray:
    """(D,) whether the per-lag median of (D, K) norms, `zeros` marking the exact zeros, is exactly 0:
    the median of K values is (the geometric mean of) the middle one(s), 0 once (K+1)//2 of them are."""
    zeros = np.asarray(zeros, dtype=bool)
    return zeros.sum(axis=1) >= (zeros.shape[1] + 1) // 2


def summarize(log_norms: np.ndarray, zeros: np.ndarray | None = None) -> dict:
    """Per-lag summaries of (D, K) natural-log norms -> dict of lists; `zeros` (D, K) marks the norms that
    are exactly 0 (their logs are floored at LOG_FLOOR), so that their lags' median is written as 0.0."""
    def exp(v):
        return [_clean(math.exp(x)) if x < 709.0 else None for x in v]
    median = exp(np.median(log_norms, axis=1))
    if zeros is not None:
        median = [0.0 if z else m for m, z in zip(median, zero_median(zeros))]
    return {
        "median": median,
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
    """First lag whose median is 0 or below `fraction` of a nonzero lag-1 median; None if never.

    A curve that is 0 from lag d (every unit saturated: nothing flows back) vanishes at d, lag 1 included;
    with a lag-1 median too large for float64 (None) only a 0 counts."""
    if not medians:
        return None
    first = medians[0]
    scale = first if first is not None and first > 0 else None
    for lag, m in zip(lags, medians):
        if m is None:
            continue
        if m <= 0 or (scale is not None and m < fraction * scale):
            return int(lag)
    return None


def zero_lag(lags, zeros) -> int | None:
    """First lag whose median is exactly 0 (`zeros` (D, K) marks the exact zeros; see zero_median), or None."""
    hit = np.flatnonzero(zero_median(zeros))
    return int(lags[hit[0]]) if len(hit) else None


def curve_zero_lag(series: dict, kind: str | None = None) -> int | None:
    """The first lag at which a SERIES (kind "spectral" / "frobenius") or FLOW (kind None) is 0: its
    zero_lag, or for a document written before zero_lag existed the first lag whose median reads 0."""
    if "zero_lag" in series:
        z = series["zero_lag"]
        return z if kind is None else z[kind]
    med = series["norm"]["median"] if kind is None else series[kind]["median"]
    return next((d for d, m in zip(series["lag"], med) if m == 0), None)


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


def _measure_scope(scope: Scope, anchors, max_lag, tol, rng, on_lag=None):
    """Log norms (D,K) per quantity (spectral, frobenius) and per flow; on_lag() after each lag (a bar)."""
    D, K = max_lag, len(anchors)
    out = {q: (np.empty((D, K)), np.empty((D, K)), np.zeros((D, K), dtype=bool)) for q in scope.views}
    flow = {name: (np.empty((D, K)), np.zeros((D, K), dtype=bool)) for name in scope.flows}
    u = {}
    for d, J, log_scale in lag_products(scope, anchors, max_lag):
        for q, view in scope.views.items():
            V = view(J)
            if q not in u:
                u[q] = rng.standard_normal((K, V.shape[1]))
            # a contiguous float32 copy for the Lanczos products only (see the module doc)
            sigma, u[q] = spectral_norms(V.astype(np.float32), u[q], tol=tol)
            frob = frobenius_norms(V)
            out[q][0][d - 1] = _log(sigma) + log_scale
            out[q][1][d - 1] = _log(frob) + log_scale
            out[q][2][d - 1] = frob == 0          # the zero matrix: exactly 0 in both norms
        if scope.grad is not None:
            row = np.matmul(scope.grad[:, None, :], J)[:, 0, :]
            for name, pick in scope.flows.items():
                norm = np.linalg.norm(pick(row), axis=1)
                flow[name][0][d - 1] = _log(norm) + log_scale
                flow[name][1][d - 1] = norm == 0
        if on_lag is not None:
            on_lag()
    return out, flow


def _layer_advance(spec, tr):
    """(J, steps) -> J A_steps for one layer, through the cell's jacobian_advance."""
    cell, spare = CELLS[spec.cell], {}

    def advance(J, ks):
        return cell.jacobian_advance(J, tr.cache, np.asarray(ks) - 1, 0, tr.W_hh, tr.act, spare)
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
        advance = _layer_advance(spec, tr)
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
    """log_norms: (spectral (D,K), frobenius (D,K), exact zeros (D,K)) -> SERIES."""
    zeros = log_norms[2]
    spec_, frob = summarize(log_norms[0], zeros), summarize(log_norms[1], zeros)
    first_zero = zero_lag(lags, zeros)
    return {
        "lag": lags,
        "spectral": spec_,
        "frobenius": frob,
        "decay_rate": {"spectral": decay_rate(lags, spec_["median"]),
                       "frobenius": decay_rate(lags, frob["median"])},
        "vanish_lag": {"spectral": vanish_lag(lags, spec_["median"]),
                       "frobenius": vanish_lag(lags, frob["median"])},
        "zero_lag": {"spectral": first_zero, "frobenius": first_zero},
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
        blocks = {g: W[j * H:(j + 1) * H] for j, g in enumerate(CELLS[spec.cell].gates)}
        rad = {g: _clean(float(np.max(np.abs(np.linalg.eigvals(B))))) for g, B in blocks.items()}
        nrm = {g: _clean(float(np.linalg.norm(B, 2))) for g, B in blocks.items()}
        radius.append(rad[""] if spec.cell == "rnn" else rad)
        norm.append(nrm[""] if spec.cell == "rnn" else nrm)
    if spec.cell == "rnn":
        fmax = max_fprime(spec.activation)
        return {"spectral_radius_Whh": radius, "norm_Whh": norm, "max_fprime": fmax,
                "bound_per_step": [_clean(n * fmax) for n in norm]}
    return {"spectral_radius_Whh": radius, "norm_Whh": norm, "max_fprime": None, "bound_per_step": None}


def check_enough_tokens(n_tokens: int, max_lag: int, where: str) -> None:
    """UserError unless N tokens hold an anchor for lags up to max_lag (N >= max_lag + 2), worded with the
    Python arguments of `where` (the jacobian command checks its flags first: jacobianrun.run_jacobian)."""
    if n_tokens < max_lag + 2:
        raise UserError(f"{where}: max_lag={max_lag} needs at least max_lag + 2 = {max_lag + 2} tokens, got "
                        f"{n_tokens}: pass more tokens or a smaller max_lag")


def pick_anchors(n_tokens: int, max_lag: int, anchors: int, rng) -> np.ndarray:
    """K distinct 1-based anchor steps t with D <= t <= N-1, sorted (all N - D of them when K is more),
    drawn from rng (a numpy Generator; TypeError otherwise)."""
    from .argcheck import check_generator
    check_generator(rng, "pick_anchors")
    check_enough_tokens(n_tokens, max_lag, "pick_anchors")
    candidates = np.arange(max_lag, n_tokens)
    k = min(anchors, len(candidates))
    return np.sort(rng.choice(candidates, size=k, replace=False))


def _lag_bar(total: int, anchors: int, show: bool, scopes: int = 1):
    """The measurement's tqdm bar on stderr, counting lags (each one all anchors at once) toward `total`;
    drawn only when `show` and stderr is a terminal. Into a log (`show`, no terminal) one plain line says
    what is being measured instead, as train's silent phases do, so that a long measurement does not
    look hung."""
    import sys

    from tqdm import tqdm

    from .runs import stderr_is_terminal
    if show and not stderr_is_terminal():
        each = f" ({total // scopes} in each of {scopes} scopes: the layers and their stack)" if scopes > 1 else ""
        print(f"measuring the Jacobian norms: {total} lags{each} at {anchors} anchors...", file=sys.stderr,
              flush=True)
    return tqdm(total=total, desc=f"jacobian ({anchors} anchors)", unit="lag", leave=False, file=sys.stderr,
                disable=not (show and stderr_is_terminal()), dynamic_ncols=True,
                bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} lags "
                           "[{elapsed}<{remaining}, {rate_fmt}{postfix}]")


def _check_count(name: str, value, where: str) -> None:
    """TypeError unless `value` is an int; ValueError unless settings.RANGES[name] (the CLI's own limit) takes it."""
    from .settings import RANGES
    if not is_int(value):
        raise TypeError(f"{where}: {name} must be an int, got {value!r} ({type(value).__name__})")
    r = RANGES[name]
    if not r.accepts(int(value)):
        raise ValueError(f"{where}: {name} must be {r.describe()}, got {value!r}")


def _check_model(model, where: str) -> None:
    """TypeError unless `model` has .config and .params; ValueError unless its cell is one of CELLS and its
    params hold the encoder and every layer's recurrent weights (what the measurement reads), all finite
    (check_finite_params: a ModelConfigError, which is a ValueError)."""
    if not hasattr(model, "config") or not hasattr(model, "params"):
        raise TypeError(f"{where}: model must have .config and .params (an RNNModel), got {type(model).__name__}")
    cell = getattr(model.config, "cell", None)
    if cell not in CELLS:
        raise ValueError(f"{where}: model must be a recurrent model with cell {', '.join(CELLS)}, "
                         f"got cell {cell!r} ({type(model).__name__})")
    layers = getattr(model.config, "layers", None)
    if not is_int(layers) or layers < 1:
        raise ValueError(f"{where}: model.config.layers must be an int >= 1, got {layers!r}")
    names = ["encoder.weight", "decoder.bias"] + [f"rnn.weight_{w}_l{l}" for l in range(int(layers)) for w in ("ih", "hh")]
    missing = [n for n in names if n not in model.params]
    if missing:
        raise ValueError(f"{where}: model.params lacks {', '.join(missing)} (PyTorch names, as RNNModel.params)")
    check_finite_params(model.params, where)


def check_finite_params(params: dict, where: str) -> None:
    """ModelConfigError (a ValueError, and a UserError for the CLI) naming the parameters that hold NaN or inf:
    a model that diverged has no Jacobian to measure (and W_hh's spectral radius is not defined)."""
    bad = []
    for name, a in params.items():
        a = np.asarray(a)
        if np.issubdtype(a.dtype, np.floating) and not np.isfinite(a).all():
            n_nan, n_inf = int(np.isnan(a).sum()), int(np.isinf(a).sum())
            bad.append(f"{name} ({', '.join(f'{n} {w}' for n, w in ((n_nan, 'NaN'), (n_inf, 'inf')) if n)})")
    if bad:
        from .config import ModelConfigError
        raise ModelConfigError(f"{where}: the model's parameters {', '.join(bad)} hold non-finite values (it "
                               "diverged); measure a model saved before it did, e.g. a run's best checkpoint")


def _check_tokens(tokens, model, where: str) -> np.ndarray:
    """`tokens` as a 1-D int64 array of ids the model's vocabulary holds; else TypeError (not integers) or
    ValueError, naming the argument (argcheck.check_token_ids). (Too few for max_lag: check_enough_tokens's
    UserError.)"""
    return check_token_ids(tokens, int(model.params["encoder.weight"].shape[0]), where)


def check_lag_curve_args(model, tokens, max_lag, anchors, rng, tol, quantities) -> tuple:
    """lag_curve's arguments checked before any work (the CLI's limits from settings.RANGES: max_lag and
    anchors at least 1): TypeError / ValueError naming the argument as the caller gave it ("lag_curve:
    max_lag must be ..."), and UserError for fewer than max_lag + 2 tokens (check_enough_tokens). Returns
    (tokens as int64, quantities as a tuple or None)."""
    where = "lag_curve"
    _check_model(model, where)
    _check_count("max_lag", max_lag, where)
    _check_count("anchors", anchors, where)
    check_generator(rng, where, or_none="seed 0")
    if not is_real(tol):
        raise TypeError(f"{where}: tol must be a number in (0, 1), got {tol!r} ({type(tol).__name__})")
    if not 0 < tol < 1:
        raise ValueError(f"{where}: tol must be a number in (0, 1), got {tol!r}")
    known = ("h", "c", "state") if model.config.cell == "lstm" else ("h",)
    if quantities is not None:
        if isinstance(quantities, str):
            if quantities not in ("h", "c", "state"):   # "h,c", "hc": not one name; a list says which are meant
                raise TypeError(f"{where}: quantities must be a list of {', '.join(known)}, got the string "
                                f"{quantities!r}: pass a list, e.g. {list(known[:2])!r} (one name alone is taken as "
                                "that one)")
            quantities = (quantities,)
        try:
            quantities = tuple(quantities)
        except TypeError:
            raise TypeError(f"{where}: quantities must be a list of {', '.join(known)}, got {quantities!r}") from None
        if not quantities:
            raise ValueError(f"{where}: quantities is empty; give at least one of {', '.join(known)}, or None "
                             "for all of them")
        bad = [q for q in quantities if q not in known]
        if bad:
            raise ValueError(f"{where}: quantities: unknown {', '.join(map(repr, bad))}; a {model.config.cell} "
                             f"model has {', '.join(known)} (flow is always measured)")
    tokens = _check_tokens(tokens, model, where)
    check_enough_tokens(len(tokens), int(max_lag), where)
    return tokens, quantities or None


def lag_curve(model, tokens, max_lag: int = 50, anchors: int = 8, rng=None, *,
              tol: float = 1e-6, per_step: bool = True, quantities=None, progress: bool = False) -> dict:
    """Jacobian norms and gradient flow by lag for `model` reading `tokens` from a zero state.

    model: anything with `.config` (cell, activation, layers, hidden, ...) and
    `.params` (PyTorch names); it is run in float64 here, without dropout.
    tokens: 1-D int array, N >= max_lag + 2. rng: numpy Generator for the
    anchors and the power-iteration starts (default: seed 0).
    quantities: restrict to these of h, c, state (a list; one name alone as a string is that one; flow is
    always measured); an empty list is refused (None measures all).
    progress: a bar on stderr (a terminal only) counting the lags of every scope (_lag_bar).
    Returns the JSON dict described in the module docstring (meta without
    `source`/`seed`, which the caller adds). Cost at H=256: see the README.
    Arguments are checked first (check_lag_curve_args): TypeError or ValueError naming the one at fault,
    UserError for fewer than max_lag + 2 tokens; a ModelConfigError (a ValueError) for parameters that hold
    NaN or inf. More `anchors` than the N - max_lag positions the tokens hold measures at all of them
    (meta["anchors"] says how many) with a FewerAnchorsWarning. A forward that overflows (an exploding
    network: forward_overflow) is measured only at anchors before the step where it does, with a
    StateOverflowWarning (meta["overflow_step"] says where), or refused with a StateOverflowError (a
    UserError) when that step leaves no anchor position: never read as zeros (saturation).
    """
    tokens, quantities = check_lag_curve_args(model, tokens, max_lag, anchors, rng, tol, quantities)
    max_lag, anchors = int(max_lag), int(anchors)
    there = len(tokens) - max_lag
    if anchors > there:
        warnings.warn(FewerAnchorsWarning(
            f"lag_curve: anchors={anchors}, but {len(tokens)} tokens hold only {there} anchor positions for "
            f"max_lag={max_lag} (t from {max_lag} to {len(tokens) - 1}); measuring at all {there} (more "
            f"tokens, or a smaller max_lag, gives more)"), stacklevel=2)
    rng = np.random.default_rng(0) if rng is None else rng
    spec = model_spec(model)
    params = model.params
    trs = traces(_float64_model(model), tokens)
    usable, overflow = overflow_limit(params, trs, tokens, max_lag, anchors)
    t_anchor = pick_anchors(usable, max_lag, anchors, rng)
    _, grad = step_losses(params, trs, tokens, t_anchor)
    scopes = _scopes(spec, trs, grad)
    if quantities:
        for s in scopes.values():
            for q in list(s.views):
                if q not in quantities:
                    del s.views[q]
    lags = list(range(1, max_lag + 1))
    curves = {}
    flows = {}
    with _lag_bar(len(scopes) * max_lag, len(t_anchor), progress, len(scopes)) as bar:
        for name, scope in scopes.items():
            if len(scopes) > 1:
                bar.set_postfix_str(f"scope {name}")
            logs, flow = _measure_scope(scope, t_anchor, max_lag, tol, rng, bar.update)
            curves[name] = {q: _series(v, lags) for q, v in logs.items()}
            flows.update(flow)
    for name, (logs, zeros) in flows.items():
        summ = summarize(logs, zeros)
        curves[name]["flow"] = {"lag": lags, "norm": summ,
                                "decay_rate": decay_rate(lags, summ["median"]),
                                "vanish_lag": vanish_lag(lags, summ["median"]),
                                "zero_lag": zero_lag(lags, zeros)}
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
            "overflow_step": overflow.step if overflow is not None else None,
            **weight_meta(spec, params),
        },
        "curves": curves,
    }
    if per_step:
        visited = np.unique((t_anchor[:, None] - np.arange(max_lag)[None, :]).ravel())
        steps = np.sort(rng.choice(visited, size=min(len(visited), 4 * len(t_anchor)), replace=False))
        result["per_step"] = _per_step(scopes, steps, tol)
    return result


def check_lag_args(model, tokens, anchors, max_lag, scope, where: str, quantity: str | None = None) -> tuple:
    """The arguments of lag_jacobians and gradient_rows checked before any work, each error naming the one at
    fault as the caller gave it: TypeError (model without .config/.params, ids or anchors not integers,
    max_lag not an int), ValueError (a cell that is not rnn/lstm/gru, max_lag < 1, ids outside the
    vocabulary, anchors not a 1-D array of steps in [max_lag, N-1], an unknown scope or quantity) and
    UserError for fewer than max_lag + 2 tokens (check_enough_tokens). Returns (tokens, anchors) as int64."""
    _check_model(model, where)
    _check_count("max_lag", max_lag, where)
    max_lag = int(max_lag)
    tokens = _check_tokens(tokens, model, where)
    N = len(tokens)
    check_enough_tokens(N, max_lag, where)
    arr = np.asarray(anchors)
    steps = f"1-based anchor steps t with max_lag <= t <= N-1 ({max_lag} to {N - 1} here)"
    if arr.ndim == 0 and arr.dtype != object and np.issubdtype(arr.dtype, np.integer) and not np.issubdtype(arr.dtype, np.bool_):
        raise TypeError(f"{where}: anchors must be a 1-D array of {steps}, not a count as lag_curve's anchors; "
                        f"got {anchors!r} (pick_anchors(len(tokens), max_lag, {int(arr)}, rng) picks that many)")
    if arr.size == 0:
        raise ValueError(f"{where}: anchors is empty; give at least one of the {steps}")
    if arr.dtype == object or not np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.bool_):
        raise TypeError(f"{where}: anchors must be a 1-D array of integer {steps}, got dtype {arr.dtype}")
    if arr.ndim != 1:
        raise ValueError(f"{where}: anchors must be a 1-D array of {steps}, got shape {arr.shape}")
    bad = arr[(arr < max_lag) | (arr > N - 1)]
    if bad.size:
        raise ValueError(f"{where}: anchors must be {steps}, got {int(bad[0])}")
    spec = model_spec(model)
    scopes = [f"layer{l}" for l in range(spec.layers)] + (["stacked"] if spec.layers > 1 else [])
    if not isinstance(scope, str) or scope not in scopes:
        raise ValueError(f"{where}: scope must be one of {', '.join(scopes)} for a {spec.layers}-layer model, "
                         f"got {scope!r}")
    if quantity is not None:
        known = ("h", "c", "state") if spec.cell == "lstm" else ("h",)
        if not isinstance(quantity, str) or quantity not in known:
            raise ValueError(f"{where}: quantity must be one of {', '.join(known)} for a {spec.cell} model, "
                             f"got {quantity!r}")
    return tokens, arr.astype(np.int64)


def lag_jacobians(model, tokens, anchors, max_lag: int, scope: str = "layer0", quantity: str = "h") -> np.ndarray:
    """The J(t, d) that `lag_curve` measures, unscaled: (D, K, m, n). For tests and notebooks.
    anchors: the K 1-based steps t (an array, max_lag <= t <= N-1; pick_anchors picks them), not a count.
    Arguments are checked first (check_lag_args); an anchor at or after the step where the forward overflows
    is a StateOverflowError (forward_overflow)."""
    where = "lag_jacobians"
    tokens, anchors = check_lag_args(model, tokens, anchors, max_lag, scope, where, quantity)
    max_lag = int(max_lag)
    spec = model_spec(model)
    trs = traces(_float64_model(model), tokens)
    _check_anchors_finite(model.params, trs, tokens, anchors, where)
    _, grad = step_losses(model.params, trs, tokens, anchors)
    sc = _scopes(spec, trs, grad)[scope]
    view = sc.views[quantity]
    return np.stack([view(J) * np.exp(ls)[:, None, None]
                     for _, J, ls in lag_products(sc, anchors, max_lag)])


def gradient_rows(model, tokens, anchors, max_lag: int, scope: str = "layer0") -> dict:
    """The rows g_t^T J(t, d) behind the flow curves, unscaled: flow name -> (D, K, n).
    anchors: the K 1-based steps t, as lag_jacobians's. Arguments are checked first (check_lag_args); a
    model of L > 1 layers has its flows (layer0 .. layer<L-1> and stacked) in scope "stacked" only."""
    where = "gradient_rows"
    tokens, anchors = check_lag_args(model, tokens, anchors, max_lag, scope, where)
    max_lag = int(max_lag)
    spec = model_spec(model)
    if spec.layers > 1 and scope != "stacked":
        raise ValueError(f"{where}: a {spec.layers}-layer model's gradient rows (flows of every layer and of "
                         f"the stack) come from scope 'stacked'; scope {scope!r} is one layer's Jacobian alone, "
                         f"with the layers above held fixed")
    trs = traces(_float64_model(model), tokens)
    _check_anchors_finite(model.params, trs, tokens, anchors, where)
    _, grad = step_losses(model.params, trs, tokens, anchors)
    sc = _scopes(spec, trs, grad)[scope]
    rows = {name: [] for name in sc.flows}
    for _, J, ls in lag_products(sc, anchors, max_lag):
        row = np.matmul(sc.grad[:, None, :], J)[:, 0, :] * np.exp(ls)[:, None]
        for name, pick in sc.flows.items():
            rows[name].append(pick(row))
    return {name: np.stack(v) for name, v in rows.items()}
