"""Each cell alone: forward against tests/naive.py, backward against finite differences.

The backward is driven through loss = sum(h_out * dout) with a random dout,
in float64 (central differences, as every backward pass here is checked). Tiny shapes, reused, so kernels
compile once.
"""
import numpy as np
import pytest

from rnnlm import gru, lstm, paths, rnn
from rnnlm.activations import ModelConfigError, parse_activation
from rnnlm.config import ACTIVATION_EXAMPLES
from rnnlm.errors import UserError

import naive

T, B, E, H = 4, 3, 5, 6
ACTS = list(ACTIVATION_EXAMPLES)
G = {"rnn": 1, "lstm": 4, "gru": 3}


def _setup(cell, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    g = G[cell]
    w = dict(x=rng.standard_normal((T, B, E)), h0=0.5 * rng.standard_normal((B, H)),
             c0=0.5 * rng.standard_normal((B, H)),
             W_ih=0.5 * rng.standard_normal((g * H, E)), W_hh=0.5 * rng.standard_normal((g * H, H)),
             b_ih=0.3 * rng.standard_normal(g * H), b_hh=0.3 * rng.standard_normal(g * H),
             dout=rng.standard_normal((T, B, H)))
    return {k: v.astype(dtype) for k, v in w.items()}


def _forward(cell, w, act="tanh"):
    """Runs the kernel; returns the cache (fresh buffers)."""
    dt, n = w["x"].dtype, w["x"].shape[0]
    if cell == "rnn":
        return rnn.rnn_forward(rnn.rnn_alloc(n, B, E, H, dt), w["x"], w["h0"], w["W_ih"], w["W_hh"],
                               w["b_ih"], w["b_hh"], act)
    if cell == "lstm":
        return lstm.lstm_forward(lstm.lstm_alloc(n, B, E, H, dt), w["x"], w["h0"], w["c0"], w["W_ih"],
                                 w["W_hh"], w["b_ih"], w["b_hh"])
    return gru.gru_forward(gru.gru_alloc(n, B, E, H, dt), w["x"], w["h0"], w["W_ih"], w["W_hh"],
                           w["b_ih"], w["b_hh"])


def _backward(cell, w, cache, act="tanh"):
    """Returns dict of gradients of sum(h[1:] * dout) plus dhs (and dcs)."""
    dt = w["x"].dtype
    g = {k: np.zeros_like(w[k]) for k in ("W_ih", "W_hh", "b_ih", "b_hh", "h0", "c0")}
    g["x"] = np.empty_like(w["x"])
    n = w["x"].shape[0]
    dhs = np.empty((n, B, H), dt)
    if cell == "rnn":
        rnn.rnn_backward(g["x"], g["W_ih"], g["W_hh"], g["b_ih"], g["b_hh"], g["h0"], np.empty((n, B, H), dt),
                         dhs, w["dout"], cache, w["W_ih"], w["W_hh"], act)
    elif cell == "lstm":
        g["dcs"] = np.empty((n, B, H), dt)
        lstm.lstm_backward(g["x"], g["W_ih"], g["W_hh"], g["b_ih"], g["b_hh"], g["h0"], g["c0"],
                           np.empty((n, B, 4 * H), dt), dhs, g["dcs"], w["dout"], cache, w["W_ih"], w["W_hh"])
    else:
        gru.gru_backward(g["x"], g["W_ih"], g["W_hh"], g["b_ih"], g["b_hh"], g["h0"], np.empty((n, B, 3 * H), dt),
                         np.empty((n, B, 3 * H), dt), dhs, w["dout"], cache, w["W_ih"], w["W_hh"])
    g["dhs"] = dhs
    return g


@pytest.mark.parametrize("cell,act", [("rnn", a) for a in ACTS] + [("lstm", "tanh"), ("gru", "tanh")])
@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-12), (np.float32, 2e-5)])
def test_forward_matches_naive(cell, act, dtype, rtol):
    w = _setup(cell, dtype=dtype)
    cache = _forward(cell, w, act)
    w64 = {k: v.astype(np.float64) for k, v in w.items()}
    f = naive.activation(act)
    for b in range(B):
        h, c = w64["h0"][b], w64["c0"][b]
        for t in range(T):
            args = (w64["W_ih"], w64["W_hh"], w64["b_ih"], w64["b_hh"])
            if cell == "rnn":
                h = naive.rnn_step(w64["x"][t, b], h, *args, f)
            elif cell == "lstm":
                h, c = naive.lstm_step(w64["x"][t, b], h, c, *args)
                np.testing.assert_allclose(cache.c[t + 1, b], c, rtol=rtol, atol=rtol)
            else:
                h = naive.gru_step(w64["x"][t, b], h, *args)
            np.testing.assert_allclose(cache.h[t + 1, b], h, rtol=rtol, atol=rtol)



def _split_everywhere(monkeypatch, parts):
    """Every cell's step shared by hidden unit into `parts` parts, whatever H and the CPU."""
    for name in ("SPLIT_MIN_H", "GRU_SPLIT_MIN_H", "RNN_SPLIT_MIN_H"):
        monkeypatch.setattr(paths, name, 1)
    monkeypatch.setattr(paths.pblas, "n_blocks", lambda: parts)


SPLIT_CASES = [("rnn", a) for a in ACTS] + [("lstm", "tanh"), ("gru", "tanh")]


@pytest.mark.parametrize("cell,act", SPLIT_CASES)
@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-12), (np.float32, 2e-5)])
def test_step_shared_between_threads_matches_naive(cell, act, dtype, rtol, monkeypatch):
    """The step split by hidden unit into 2 parts (as from paths' thresholds up), whatever the CPU."""
    _split_everywhere(monkeypatch, 2)
    assert list(paths.unit_bounds(H, cell)) == [0, 3, 6]
    test_forward_matches_naive(cell, act, dtype, rtol)


@pytest.mark.parametrize("cell,act", SPLIT_CASES)
def test_step_shared_between_threads_backward_equals_serial(cell, act, monkeypatch):
    """The split backward (4 unequal parts) gives the serial backward's gradients (float64)."""
    w = _setup(cell, seed=4)
    serial = _backward(cell, w, _forward(cell, w, act), act)
    _split_everywhere(monkeypatch, 4)
    assert list(paths.unit_bounds(H, cell)) == [0, 1, 3, 4, 6]
    split = _backward(cell, w, _forward(cell, w, act), act)
    for name in serial:
        np.testing.assert_allclose(split[name], serial[name], rtol=1e-12, atol=1e-12, err_msg=name)

def _numeric(fn, arr, eps=1e-5):
    out = np.empty(arr.size)
    flat = arr.reshape(-1)
    for i in range(flat.size):
        x0 = flat[i]
        flat[i] = x0 + eps
        fp = fn()
        flat[i] = x0 - eps
        fm = fn()
        flat[i] = x0
        out[i] = (fp - fm) / (2 * eps)
    return out.reshape(arr.shape)


@pytest.mark.parametrize("cell,act", [("rnn", a) for a in ACTS] + [("lstm", "tanh"), ("gru", "tanh")])
def test_backward_matches_finite_differences(cell, act):
    w = _setup(cell, seed=1)
    g = _backward(cell, w, _forward(cell, w, act), act)

    def loss():
        return float(np.sum(_forward(cell, w, act).h[1:] * w["dout"]))

    names = ["W_ih", "W_hh", "b_ih", "b_hh", "h0", "x"] + (["c0"] if cell == "lstm" else [])
    for name in names:
        num = _numeric(loss, w[name])
        err = np.abs(g[name] - num) / np.maximum(np.abs(g[name]) + np.abs(num), 1e-6)
        assert err.max() < 1e-6, (name, err.max(), err.mean())


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_state_gradients_dhs(cell):
    """dhs[t-1] = dL/dh_t: the direct dout[t-1] plus dh0 of a run started from h_t on the later steps."""
    w = _setup(cell, seed=2)
    cache = _forward(cell, w, "tanh")
    g = _backward(cell, w, cache, "tanh")
    np.testing.assert_allclose(g["dhs"][-1], w["dout"][-1], rtol=1e-13)
    for t in (1, 2):
        sub = dict(w, x=np.ascontiguousarray(w["x"][t:]), h0=cache.h[t].copy(),
                   dout=np.ascontiguousarray(w["dout"][t:]))
        if cell == "lstm":
            sub["c0"] = cache.c[t].copy()
        gs = _backward(cell, sub, _forward(cell, sub, "tanh"), "tanh")
        np.testing.assert_allclose(g["dhs"][t - 1], gs["h0"] + w["dout"][t - 1], rtol=1e-10, atol=1e-12)
        if cell == "lstm":
            # dcs[t-1] also holds the path through h_t = o*tanh(c_t), which the sub-run lacks
            o, tc = cache.gates[t - 1][:, 3 * H:], cache.tanh_c[t - 1]
            np.testing.assert_allclose(g["dcs"][t - 1] - g["dhs"][t - 1] * o * (1 - tc * tc), gs["c0"],
                                       rtol=1e-10, atol=1e-12)


def test_activation_strings():
    assert parse_activation("tanh:2") == ("tanh:2", 0, 1.0, 2.0)
    assert parse_activation(" Scaled-Tanh:1.7159,0.6667 ").a == 1.7159
    for bad in ["tahn", "tanh:", "tanh:x", "scaled-tanh:1", "scaled-tanh:1,2,3", "tanh:0", "tanh:inf", ""]:
        with pytest.raises(ModelConfigError):
            parse_activation(bad)
    with pytest.raises(UserError):
        parse_activation("softmax")
    with pytest.raises(ValueError):
        parse_activation("softmax")
