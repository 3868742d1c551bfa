"""The gradient instruments against finite differences, the model's BPTT and closed forms.

Float64, tiny sizes (H = 5, D <= 6) so that the whole file runs in seconds.
"""
import json

import numpy as np
import pytest

from rnnlm import jacobian as jac
from rnnlm import jacobianstates as js
from rnnlm.activations import apply as act_apply
from rnnlm.config import ACTIVATION_EXAMPLES
from rnnlm.model import ModelConfig, RNNModel

V, E, H = 11, 4, 5
N = 16


def make_model(cell="rnn", activation="tanh", layers=1, scale=1.0, init="default", seed=0, tied=False):
    cfg = ModelConfig(vocab_size=V, cell=cell, activation=activation, emsize=H if tied else E, hidden=H,
                      layers=layers, init=init, recurrent_scale=scale, tied=tied, dtype="float64")
    model = RNNModel(cfg, seed=seed)
    if cell == "lstm":   # non-zero c_{t-d} terms and gates away from 1/2
        for name, p in model.params.items():
            if name.startswith("rnn.bias"):
                p += np.random.default_rng(seed + 1).normal(0, 0.5, p.shape)
    return model


def tokens(seed=0, n=N):
    return np.random.default_rng(seed).integers(0, V, n)


def sig(z):
    return 1 / (1 + np.exp(-z))


def cell_step(cell, act, W_ih, W_hh, b_ih, b_hh, x, h, c):
    """One step of the cell, written out independently of rnnlm.jacobian (PyTorch equations)."""
    a = W_ih @ x + b_ih
    r_ = W_hh @ h + b_hh
    if cell == "rnn":
        return act_apply(a + r_, act), None
    if cell == "lstm":
        i, f, g, o = np.split(a + r_, 4)
        c = sig(f) * c + sig(i) * np.tanh(g)
        return sig(o) * np.tanh(c), c
    ar, az, an = np.split(a, 3)
    hr, hz, hn = np.split(r_, 3)
    r, z = sig(ar + hr), sig(az + hz)
    n = np.tanh(an + r * hn)
    return (1 - z) * n + z * h, None


def run_from(model, toks, start, stop, states, layers_run, inputs_below=None):
    """Run `layers_run` from their states after step `start` through step `stop` (1-based, inclusive).

    states: per layer (h, c). inputs_below: (N, H) outputs of the layer under the
    lowest layer run, held fixed (None: the embeddings). Returns the per-layer
    states after `stop` and the top layer's h after each step.
    """
    cfg, P = model.config, model.params
    emb = P["encoder.weight"][toks]
    states = [tuple(None if s is None else s.copy() for s in st) for st in states]
    for k in range(start + 1, stop + 1):
        x = emb[k - 1] if inputs_below is None else inputs_below[k - 1]
        for j, layer in enumerate(layers_run):
            h, c = states[j]
            W = [P[f"rnn.{n}_l{layer}"] for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
            h, c = cell_step(cfg.cell, cfg.activation, *W, x, h, c)
            states[j] = (h, c)
            x = h
    return states


def fd_jacobian(model, toks, t, d, scope="layer0", eps=1e-3):
    """Central differences of s_t with respect to s_{t-d} (the scope's state).

    Five-point stencil: truncation O(eps^4) and rounding O(1e-16/eps) both stay
    near 1e-12, so even Jacobians of size 1e-5 are checked to 1e-6 relative.
    """
    cfg = model.config
    tr = js.forward(js.model_spec(model), model.params, toks)
    lstm = cfg.cell == "lstm"
    if scope == "stacked":
        layers_run, below = list(range(cfg.layers)), None
    else:
        layer = int(scope[5:])
        layers_run = [layer]
        below = tr[layer - 1].h[1:] if layer > 0 else None

    def flat(states):
        return np.concatenate([np.concatenate([h, c]) if lstm else h for h, c in states])

    base = [(tr[l].h[t - d], tr[l].c[t - d] if lstm else None) for l in layers_run]
    x0 = flat(base)
    S = 2 * H if lstm else H
    cols = []
    for j in range(len(x0)):
        out = []
        for step in (2, 1, -1, -2):
            x = x0.copy()
            x[j] += step * eps
            st = [(x[i * S:i * S + H], x[i * S + H:(i + 1) * S] if lstm else None) for i in range(len(layers_run))]
            out.append(flat(run_from(model, toks, t - d, t, st, layers_run, below)))
        cols.append((-out[0] + 8 * out[1] - 8 * out[2] + out[3]) / (12 * eps))
    return np.stack(cols, axis=1)


def rel_err(a, b):
    return np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300)


# ---------------------------------------------------------------- forward agrees with the model

@pytest.mark.parametrize("cell,activation,layers", [("rnn", "tanh", 1), ("rnn", "scaled-tanh:1.7,0.6", 2),
                                                    ("lstm", "tanh", 2), ("gru", "tanh", 1)])
def test_float64_forward_matches_model(cell, activation, layers):
    model = make_model(cell, activation, layers)
    toks = tokens()
    traces = js.forward(js.model_spec(model), model.params, toks)
    ref = model.forward_states(toks[:, None])
    for l, tr in enumerate(traces):
        np.testing.assert_allclose(tr.h[1:], ref.hs[l][:, 0], rtol=1e-12, atol=1e-13)
    loss, _ = model.loss(toks[:-1, None], toks[1:, None])
    steps = np.arange(1, N)
    L, _ = js.step_losses(model.params, traces, toks, steps)
    assert abs(L.mean() - loss) < 1e-12


# ---------------------------------------------------------------- Jacobians vs finite differences

CASES = [*(("rnn", a, 1, "layer0", "h") for a in ACTIVATION_EXAMPLES),   # every activation kind and form
         ("lstm", "tanh", 1, "layer0", "h"), ("lstm", "tanh", 1, "layer0", "c"),
         ("lstm", "tanh", 1, "layer0", "state"), ("gru", "tanh", 1, "layer0", "h"),
         ("rnn", "tanh", 2, "layer1", "h"), ("rnn", "tanh", 2, "stacked", "h"),
         ("gru", "tanh", 2, "stacked", "h"), ("lstm", "tanh", 2, "layer1", "state"),
         ("lstm", "tanh", 2, "stacked", "state"), ("lstm", "tanh", 2, "stacked", "c")]


@pytest.mark.parametrize("cell,activation,layers,scope,quantity", CASES)
def test_lag_jacobians_match_finite_differences(cell, activation, layers, scope, quantity):
    model = make_model(cell, activation, layers, scale=1.5 if cell == "rnn" else 1.0)
    toks = tokens(1)
    anchors, D = np.array([8, 13]), 6
    Js = jac.lag_jacobians(model, toks, anchors, D, scope, quantity)
    lstm = model.config.cell == "lstm"
    S = 2 * H if lstm else H
    nl = layers if scope == "stacked" else 1
    idx = np.arange(nl * S)
    if lstm and quantity != "state":
        off = 0 if quantity == "h" else H
        idx = np.concatenate([np.arange(l * S + off, l * S + off + H) for l in range(nl)])
    for k, t in enumerate(anchors):
        for d in (1, 2, 4, 6):
            fd = fd_jacobian(model, toks, t, d, scope)[np.ix_(idx, idx)]
            assert rel_err(Js[d - 1, k], fd) < 1e-6, (t, d)


def test_stacked_step_jacobian_is_block_lower_triangular():
    model = make_model("gru", layers=3)
    spec = js.model_spec(model)
    A = jac.stacked_jacobians(spec, js.forward(spec, model.params, tokens()), np.array([5]))[0]
    for r in range(3):
        for c in range(r + 1, 3):
            assert not A[r * H:(r + 1) * H, c * H:(c + 1) * H].any()
        assert A[r * H:(r + 1) * H, :(r + 1) * H].any()


# ---------------------------------------------------------------- norms in the curves

@pytest.mark.parametrize("cell,layers", [("rnn", 1), ("lstm", 1), ("gru", 2)])
def test_curve_norms_are_norms_of_the_jacobians(cell, layers):
    model = make_model(cell, layers=layers)
    toks = tokens(2, 30)
    D, K = 5, 6
    out = jac.lag_curve(model, toks, D, K, np.random.default_rng(3), tol=1e-10)
    anchors = jac.pick_anchors(len(toks), D, K, np.random.default_rng(3))
    scope = "stacked" if layers > 1 else "layer0"
    for q, series in out["curves"][scope].items():
        if q == "flow":
            continue
        Js = jac.lag_jacobians(model, toks, anchors, D, scope, q)
        spec = np.linalg.norm(Js, 2, axis=(2, 3))
        frob = np.linalg.norm(Js, "fro", axis=(2, 3))
        np.testing.assert_allclose(series["spectral"]["median"], np.exp(np.median(np.log(spec), axis=1)), rtol=1e-5)
        np.testing.assert_allclose(series["frobenius"]["median"], np.exp(np.median(np.log(frob), axis=1)), rtol=1e-5)
        np.testing.assert_allclose(series["spectral"]["geomean"], np.exp(np.log(spec).mean(1)), rtol=1e-5)
        np.testing.assert_allclose(series["spectral"]["p90"], np.exp(np.percentile(np.log(spec), 90, axis=1)),
                                   rtol=1e-5)
    json.dumps(out)   # serializable as is


def test_spectral_norms_match_lapack():
    rng = np.random.default_rng(0)
    J = rng.standard_normal((7, 9, 6)) * np.array([1e-8, 1, 3, 1e5, 0.2, 1, 1])[:, None, None]
    J[5, :, :] = np.outer(rng.standard_normal(9), rng.standard_normal(6))   # rank one
    J[6] = 0.0
    sigma, _ = jac.spectral_norms(J, tol=1e-12)
    np.testing.assert_allclose(sigma, np.linalg.norm(J, 2, axis=(1, 2)), rtol=1e-9)
    # near-degenerate top singular values (an orthogonal matrix times 1 + tiny)
    Q = np.linalg.qr(rng.standard_normal((3, 40, 40)))[0] * np.linspace(1, 1.01, 40)
    sigma, u = jac.spectral_norms(Q, tol=1e-8)
    np.testing.assert_allclose(sigma, np.linalg.norm(Q, 2, axis=(1, 2)), rtol=1e-6)
    # warm start from the answer: converges at once and returns the same vector
    sigma2, u2 = jac.spectral_norms(Q, u, tol=1e-8)
    np.testing.assert_allclose(sigma2, sigma, rtol=1e-7)


def test_fixed_per_step_jacobian_gives_powers():
    """The core recursion with A_k = a I: both norms are exactly |a|^d (times sqrt(n) for Frobenius)."""
    n, K, D = 4, 3, 200
    for a in (0.5, -1.3, 1.0):
        scope = jac.Scope(first=lambda ks: np.broadcast_to(a * np.eye(n), (len(ks), n, n)).copy(),
                          advance=lambda J, ks: J * a, views={"h": lambda J: J}, flows={}, grad=None)
        logs, _ = jac._measure_scope(scope, np.arange(D, D + K), D, 1e-10, np.random.default_rng(0))
        lags = np.arange(1, D + 1)
        np.testing.assert_allclose(logs["h"][0], np.log(abs(a)) * lags[:, None] * np.ones((1, K)), atol=1e-9)
        np.testing.assert_allclose(logs["h"][1], (np.log(abs(a)) * lags + 0.5 * np.log(n))[:, None]
                                   * np.ones((1, K)), atol=1e-9)


def test_relu_identity_rnn_gives_exact_powers():
    """relu RNN with W_hh = a I, W_ih = 0 and a positive bias: states stay positive, J(t, d) = a^d I."""
    a = 1.1
    model = make_model("rnn", "relu")
    P = model.params
    P["rnn.weight_hh_l0"][:] = a * np.eye(H)
    P["rnn.weight_ih_l0"][:] = 0.0
    P["rnn.bias_ih_l0"][:] = 0.5
    out = jac.lag_curve(model, tokens(0, 60), 40, 5, np.random.default_rng(0), tol=1e-12)
    series = out["curves"]["layer0"]["h"]
    lags = np.array(series["lag"])
    # the JSON keeps 6 significant digits
    np.testing.assert_allclose(series["spectral"]["median"], a ** lags, rtol=5e-6)
    np.testing.assert_allclose(series["frobenius"]["p10"], np.sqrt(H) * a ** lags, rtol=5e-6)
    assert series["decay_rate"]["spectral"] == pytest.approx(np.log(a), rel=1e-5)
    assert series["vanish_lag"]["spectral"] is None
    assert out["meta"]["norm_Whh"][0] == pytest.approx(a)
    assert out["meta"]["bound_per_step"][0] == pytest.approx(a)


# ---------------------------------------------------------------- gradient flow vs BPTT

@pytest.mark.parametrize("cell,layers", [("rnn", 1), ("lstm", 1), ("gru", 1), ("lstm", 2), ("rnn", 2)])
def test_gradient_flow_matches_model_bptt(cell, layers):
    """dL_t/dh_{t-d} from the model's own BPTT: d*dh0(window of d) - (d-1)*dh0(window of d-1)."""
    model = make_model(cell, layers=layers)
    toks = tokens(4)
    anchors, D = np.array([7, 12]), 5
    scope = "stacked" if layers > 1 else "layer0"
    rows = jac.gradient_rows(model, toks, anchors, D, scope)
    ref = model.forward_states(toks[:, None])
    lstm = cell == "lstm"
    states = ref.caches

    def dh0(start, length):
        """Sum over the window's losses of d(loss)/dh_start, the window starting after step `start`."""
        if length == 0:
            return 0.0
        st = [np.stack([c.h[start] for c in states])]
        if lstm:
            st.append(np.stack([c.c[start] for c in states]))
        # inputs x_{start+1}..x_{start+length}, targets one step ahead
        r = model.bptt(toks[start:start + length, None], toks[start + 1:start + length + 1, None], tuple(st))
        return length * r.dstate0[0][:, 0]                    # (L, H): the mean loss times its count

    for k, t in enumerate(anchors):
        for d in range(1, D + 1):
            want = dh0(t - d, d) - dh0(t - d, d - 1)          # only L_t is left
            for l in range(layers):
                np.testing.assert_allclose(rows[f"layer{l}"][d - 1, k], want[l], rtol=1e-8, atol=1e-12)
            if layers > 1:
                np.testing.assert_allclose(rows["stacked"][d - 1, k], want.ravel(), rtol=1e-8, atol=1e-12)


# ---------------------------------------------------------------- analysis helpers

def test_decay_rate_and_vanish_lag():
    lags = list(range(1, 31))
    med = [0.5 ** d for d in lags]
    assert jac.decay_rate(lags, med) == pytest.approx(np.log(0.5))
    assert jac.vanish_lag(lags, med) == 21          # 0.5^20 = 9.5e-7 of 0.5
    assert jac.vanish_lag(lags, [1.0] * 30) is None
    assert jac.decay_rate(lags, [0.0] * 30) is None
    assert jac.vanish_lag(lags, [1.0, 1e-7, None]) == 2


def test_lag_curve_schema_and_per_step():
    model = make_model("lstm", layers=2)
    out = jac.lag_curve(model, tokens(5, 40), 8, 4, np.random.default_rng(0))
    assert set(out["curves"]) == {"layer0", "layer1", "stacked"}
    for scope in out["curves"].values():
        assert {"h", "c", "state", "flow"} <= set(scope)
        assert scope["flow"]["lag"] == list(range(1, 9))
        assert len(scope["h"]["spectral"]["p10"]) == 8
    ps = out["per_step"]["layer0"]["c"]
    assert ps["steps"] > 4 and ps["spectral"]["median"] <= 1.0       # the c-block is diag(f)
    assert out["meta"]["max_fprime"] is None and set(out["meta"]["norm_Whh"][0]) == set("ifgo")
    # the lag-1 curve is the per-step Jacobian at the anchors: bounded like the per-step sample
    assert out["curves"]["layer0"]["c"]["spectral"]["median"][0] <= 1.0


def test_too_few_tokens_is_a_user_error():
    from rnnlm.errors import UserError
    with pytest.raises(UserError):
        jac.lag_curve(make_model(), tokens(0, 10), 9, 4)
