"""The states a Jacobian is read at: the model's own forward in float64, and where it overflows.

`traces` runs a model (converted to float64, no dropout) from a zero state over the tokens and
keeps each layer's cache (`LayerTrace`), from which jacobian.py builds the per-step Jacobians;
`step_losses` gives the loss L_t and dL_t/dh_t at chosen steps (the gradient flow's start).
An exploding network's forward itself overflows: `forward_overflow` finds the first step whose
cached state, or the prediction made from it, is not finite, `overflow_limit` tells lag_curve
which steps it may still anchor at (a StateOverflowWarning) or refuses (StateOverflowError), and
`_check_anchors_finite` refuses anchors at or after that step (lag_jacobians, gradient_rows).

    trs = traces(_float64_model(model), tokens)     # one LayerTrace per layer
    over = forward_overflow(model.params, trs, tokens)   # Overflow(step, layer, what) or None

The one thing to know before editing: nothing here re-implements a cell; the states are the
model's own forward's (RNNModel.forward_states), so that a Jacobian measured on them is the
Jacobian of the network that was trained. A Jacobian read at a step that is not finite is
meaningless (relu' of a NaN is 0: a zero matrix that would read as saturation), so every cached
array of each layer is checked per step, never only h.
"""
from __future__ import annotations

import warnings
from typing import NamedTuple

import numpy as np

from .errors import UserError
from .model import ModelConfig, RNNModel


class StateOverflowWarning(UserWarning):
    """lag_curve's float64 forward stopped being finite at step `step` (the network explodes: a state
    overflowed to inf, or the prediction made from it did) and only anchors before that step were measured:
    the curve is still a measurement, of the steps before the overflow (meta["overflow_step"] says where).
    The jacobian command says so in its own note, in its flags, and silences this one."""

    def __init__(self, message: str, step: int):
        super().__init__(message)
        self.step = step


class StateOverflowError(UserError):
    """lag_curve's float64 forward stopped being finite at step `step`, before any anchor position
    (t >= max_lag, and the state must be finite through the anchor): the network explodes, the forward pass
    itself diverges, so there is no Jacobian to measure. `layer` and `what` (e.g. "hidden state h of layer 0
    overflowed to inf") say where; the jacobian command rewords it in its flags."""

    def __init__(self, message: str, step: int, layer: int | None, what: str):
        super().__init__(message)
        self.step, self.layer, self.what = step, layer, what


# ---------------------------------------------------------------- the float64 model's caches


class Spec(NamedTuple):
    cell: str        # rnn | lstm | gru
    activation: str  # rnn only
    layers: int
    hidden: int


class LayerTrace(NamedTuple):
    """One layer's visited states, read from the float64 model's forward cache (batch row 0).

    Step k (1-based) is index k-1 of the cache's per-step arrays; h[k], c[k] the state after it.
    """
    W_ih: np.ndarray    # (G*H, In) float64
    W_hh: np.ndarray    # (G*H, H)  float64
    h: np.ndarray       # (N+1, H), h[0] = 0 (a view of cache.h)
    c: np.ndarray       # (N+1, H) lstm (a view of cache.c), else None
    cache: tuple        # the cell's cache (cells.Cell.alloc), T = N steps of B = 1
    act: object         # the rnn's Activation (unused by gated cells)


def model_spec(model) -> Spec:
    cfg = model.config
    return Spec(cfg.cell, getattr(cfg, "activation", "tanh"), int(cfg.layers), int(cfg.hidden))


def _float64_model(model) -> RNNModel:
    """model in float64 (a converted copy); anything with .config and .params is rebuilt as an RNNModel."""
    if isinstance(model, RNNModel):
        return model.to_dtype("float64")
    return _spec_model(model_spec(model), model.params)


def _spec_model(spec: Spec, params: dict) -> RNNModel:
    """An RNNModel in float64 with these parameters (vocabulary, E and tying read off them)."""
    V, E = params["encoder.weight"].shape
    cfg = ModelConfig(vocab_size=int(V), cell=spec.cell, activation=spec.activation if spec.cell == "rnn" else "tanh",
                      emsize=int(E), hidden=spec.hidden, layers=spec.layers, dropout=0.0,
                      tied="decoder.weight" not in params, dtype="float64")
    return RNNModel(cfg, params={k: np.ascontiguousarray(v, dtype=np.float64) for k, v in params.items()})


def traces(model64: RNNModel, tokens: np.ndarray) -> list[LayerTrace]:
    """Run a float64 model from a zero state over `tokens` (N,) through its own forward,
    without dropout; one trace per layer, read from its caches."""
    tokens = np.asarray(tokens, dtype=np.int64)
    caches = model64.forward_states(tokens[:, None]).caches
    out = []
    for layer, cache in enumerate(caches):
        W_ih, W_hh = model64.params[f"rnn.weight_ih_l{layer}"], model64.params[f"rnn.weight_hh_l{layer}"]
        c = cache.c[:, 0] if "c" in model64.cell.states else None
        out.append(LayerTrace(W_ih, W_hh, cache.h[:, 0], c, cache, model64.act))
    return out


def forward(spec: Spec, params: dict, tokens: np.ndarray) -> list[LayerTrace]:
    """Run the model (spec, params) in float64 from a zero state over `tokens` (N,); one trace per layer."""
    return traces(_spec_model(spec, params), tokens)


def _f64(a):
    return np.ascontiguousarray(a, dtype=np.float64)


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


class Overflow(NamedTuple):
    """Where the float64 forward first stops being finite (forward_overflow)."""
    step: int              # 1-based step t: the state after reading x_t (or the prediction made from it)
    layer: int | None      # the layer whose state it is; None for the prediction (the top layer's logits)
    what: str              # e.g. "hidden state h of layer 0 overflowed to inf"


def forward_overflow(params: dict, traces: list[LayerTrace], tokens: np.ndarray) -> Overflow | None:
    """The first step whose state is not finite in float64 (an exploding network's h overflows to inf,
    then NaN follows), or whose prediction L_t, dL_t/dh_t is not (logits overflow a step or two earlier);
    None if the whole forward is finite. A Jacobian read from such a step is meaningless (relu' of a NaN
    pre-activation is 0: a zero matrix that would read as saturation), so lag_curve measures only anchors
    before it. Every cached array of each layer is checked per step (h, c, gates: _step_finite)."""
    N = len(tokens)
    first = None
    for layer, tr in enumerate(traces):
        for name, (ok, values) in _step_finite(tr, N).items():
            bad = np.flatnonzero(~ok)
            if len(bad) and (first is None or bad[0] + 1 < first.step):
                kind = "overflowed to inf" if np.isinf(values[bad[0]]).any() else "overflowed to NaN (inf - inf)"
                label = {"h": "hidden state h", "c": "cell state c"}.get(name, f"cached {name}")
                first = Overflow(int(bad[0]) + 1, layer, f"{label} of layer {layer} {kind}")
    # the prediction at step t (t <= N-1): |logit| <= ||h_t|| max_v ||W_v|| + max|b|; checked where that bound is large
    last = (first.step if first is not None else N) - 1
    if last >= 1:
        W, b = _decoder(params)
        h = traces[-1].h[1:last + 1]
        with np.errstate(over="ignore", invalid="ignore"):
            bound = np.linalg.norm(h, axis=1) * np.sqrt(np.einsum("ij,ij->i", W, W).max()) + np.abs(b).max()
        risky = np.flatnonzero(~(bound < 1e300)) + 1
        if len(risky):
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                loss, grad = step_losses(params, traces, tokens, risky)
            bad = risky[~(np.isfinite(loss) & np.isfinite(grad).all(axis=1))]
            if len(bad):
                first = Overflow(int(bad[0]), None, "prediction (the decoder's logits) overflowed")
    return first


def _step_finite(tr: LayerTrace, n_steps: int) -> dict:
    """Cached array name -> ((N,) whether step k's entries, row k-1, are all finite; those rows (N, m)), the
    states h and c first: the states (N+1 rows, row 0 the zero start) are read after each step; the input x
    (the layer below's h, or embeddings) is not read."""
    out = {}
    fields = tr.cache._asdict()
    for name in sorted(fields, key=lambda n: n not in ("h", "c")):
        a = fields[name]
        if name == "x" or a is None:
            continue
        a = np.asarray(a)[:, 0]
        a = (a[1:] if len(a) == n_steps + 1 else a).reshape(n_steps, -1)
        out[name] = (np.isfinite(a).all(axis=1), a)
    return out


# ---------------------------------------------------------------- anchors before an overflow


def overflow_limit(params, trs, tokens, max_lag: int, anchors: int, where: str = "lag_curve") -> tuple:
    """(tokens whose steps lag_curve may anchor at, the forward_overflow or None): all N when the forward
    stays finite through step N-1; else the steps before the overflow, with a StateOverflowWarning, or a
    StateOverflowError when they hold no anchor position (fewer than max_lag + 2 finite steps)."""
    N = len(tokens)
    over = forward_overflow(params, trs, tokens)
    if over is None or over.step >= N:       # (the state after the last token is never read)
        return N, over
    at = f"the {over.what} at step {over.step} of {N}: the network explodes, its forward pass itself diverges"
    if over.step < max_lag + 2:
        raise StateOverflowError(
            f"{where}: {at} before step max_lag + 2 = {max_lag + 2}, so no anchor (t >= max_lag={max_lag}) is "
            f"left to measure at; a smaller recurrent scale{f', or max_lag={over.step - 2} or less,' * (over.step >= 3)} "
            "measures it", over.step, over.layer, over.what)
    there = over.step - max_lag
    warnings.warn(StateOverflowWarning(
        f"{where}: {at}; measuring only at anchors before it ({min(anchors, there)} of the {there} positions t "
        f"from {max_lag} to {over.step - 1}), the Jacobians from step {over.step} on are not finite", over.step),
        stacklevel=3)
    return over.step, over


def _check_anchors_finite(params, trs, tokens, anchors, where: str) -> None:
    """StateOverflowError when an anchor t lies at or after the step where the forward overflows
    (forward_overflow): its Jacobians are not finite (lag_jacobians, gradient_rows)."""
    over = forward_overflow(params, trs, tokens)
    if over is not None and anchors.max() >= over.step:
        raise StateOverflowError(
            f"{where}: the {over.what} at step {over.step} of {len(tokens)}: the network explodes, its forward "
            f"pass itself diverges, and the Jacobians from there on are not finite; anchors must be steps before "
            f"it, got t = {int(anchors.max())}", over.step, over.layer, over.what)
