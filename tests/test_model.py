"""The whole model: forward/loss against tests/naive.py, state semantics, params, init, float32."""
import numpy as np
import pytest

from rnnlm.activations import ModelConfigError
from rnnlm.config import ACTIVATION_EXAMPLES
from rnnlm.errors import UserError
from rnnlm.init import init_params
from rnnlm.model import ModelConfig, RNNModel

import naive

V, E, H, T, B = 11, 5, 5, 4, 3


def _model(cell="lstm", layers=2, tied=False, dropout=0.0, dtype="float64", seed=0, **kw):
    cfg = ModelConfig(vocab_size=V, cell=cell, emsize=E, hidden=H, layers=layers, tied=tied,
                      dropout=dropout, dtype=dtype, **kw)
    m = RNNModel(cfg, seed=seed)
    if seed:
        # larger than the training init, so the check is not dominated by near-linear gates
        rng = np.random.default_rng(seed)
        for p in m.params.values():
            p[...] = rng.uniform(-0.6, 0.6, p.shape)
    return m


def _data(seed=0, T=T, B=B, n_state=2, layers=2):
    rng = np.random.default_rng(seed)
    x, y = rng.integers(0, V, (T, B)), rng.integers(0, V, (T, B))
    state = tuple(0.4 * rng.standard_normal((layers, B, H)) for _ in range(n_state))
    return x, y, state


CONFIGS = [(c, a, L, tied) for c, a in [*(("rnn", a) for a in ACTIVATION_EXAMPLES), ("lstm", "tanh"), ("gru", "tanh")]
           for L, tied in [(1, False), (2, True)]]


@pytest.mark.parametrize("cell,act,layers,tied", CONFIGS)
def test_loss_matches_naive(cell, act, layers, tied):
    m = _model(cell, layers, tied, activation=act, seed=3, dropout=0.5)
    x, y, state = _data(1, n_state=m.n_state, layers=layers)
    masks = m.draw_masks(T, B, np.random.default_rng(2))
    for use_masks in (None, masks):
        ref, ref_state = naive.model_loss(m.params, cell, act, layers, tied, x, y, state, use_masks)
        loss, st = m.loss(x, y, state, masks=use_masks)
        assert loss == pytest.approx(ref, rel=1e-12)
        for a, b in zip(st, ref_state):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-13)
        lg, grads, st2 = m.loss_and_grads(x, y, state, masks=use_masks)
        assert lg == pytest.approx(ref, rel=1e-12)
        # float32: same kernels, looser tolerance
        m32 = m.to_dtype("float32")
        l32, st32 = m32.loss(x, y, state, masks=use_masks)
        assert l32 == pytest.approx(ref, rel=2e-5)
        np.testing.assert_allclose(st32[0], ref_state[0], rtol=1e-4, atol=1e-5)
        l32g, g32, _ = m32.loss_and_grads(x, y, state, masks=use_masks)
        assert l32g == pytest.approx(ref, rel=2e-5)
        for name, g in grads.items():
            assert g32[name].dtype == np.float32
            np.testing.assert_allclose(g32[name], g, rtol=1e-3, atol=1e-5 * np.abs(g).max() + 1e-9)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_forward_states_and_step_logprobs(cell):
    m = _model(cell, seed=4)
    x, y, state = _data(3, n_state=m.n_state)
    _, outs, ref_final = naive.model_forward(m.params, cell, "tanh", 2, False, x, state)
    fr = m.forward_states(x, state)
    for h, ref in zip(fr.hs, outs):
        np.testing.assert_allclose(h, ref, rtol=1e-10, atol=1e-13)
    assert fr.caches[0].h.shape == (T + 1, B, H)
    # one step at a time gives the same final state and the same loss
    st, nll = state, 0.0
    for t in range(T):
        logp, st = m.step_logprobs(x[t], st)
        assert logp.shape == (B, V)
        np.testing.assert_allclose(np.exp(logp).sum(axis=1), 1.0, rtol=1e-12)
        nll -= logp[np.arange(B), y[t]].sum()
    assert nll / (T * B) == pytest.approx(m.loss(x, y, state)[0], rel=1e-12)
    for a, b in zip(st, fr.state):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_carried_state_equals_longer_window(cell):
    """Two chained T-step windows = one 2T-step window (forward), as in PyTorch with detach()."""
    m = _model(cell, seed=5)
    x, y, _ = _data(4, T=2 * T, n_state=m.n_state)
    state = m.init_state(B)
    l_all, s_all = m.loss(x, y, state)
    l1, g1, s1 = m.loss_and_grads(x[:T], y[:T], state)
    l2, g2, s2 = m.loss_and_grads(x[T:], y[T:], s1)
    assert (l1 + l2) / 2 == pytest.approx(l_all, rel=1e-12)
    for a, b in zip(s2, s_all):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    # the returned state is a detached copy: later calls do not change it
    keep = [a.copy() for a in s1]
    m.loss_and_grads(x[T:], y[T:], s1)
    m.loss(x[:T], y[:T], m.init_state(B))
    for a, b in zip(s1, keep):
        np.testing.assert_array_equal(a, b)


def test_grads_are_fresh_and_deterministic():
    m = _model("gru", seed=6, dropout=0.3)
    x, y, state = _data(5, n_state=1)
    l1, g1, _ = m.loss_and_grads(x, y, state, rng=np.random.default_rng(7))
    keep = {k: v.copy() for k, v in g1.items()}
    m.loss_and_grads(y, x, state, rng=np.random.default_rng(8))
    l3, g3, _ = m.loss_and_grads(x, y, state, rng=np.random.default_rng(7))
    assert l1 == l3
    for k in g1:
        np.testing.assert_array_equal(g1[k], keep[k])
        np.testing.assert_array_equal(g3[k], keep[k])
    assert list(g1) == list(m.params)
    # rng=None means no dropout: equals loss()
    assert m.loss_and_grads(x, y, state)[0] == pytest.approx(m.loss(x, y, state)[0], rel=1e-14)


def test_bptt_extras():
    m = _model("lstm", seed=8)
    x, y, state = _data(6)
    r = m.bptt(x, y, state)
    assert len(r.hs) == len(r.dhs) == 2 and r.dhs[0].shape == (T, B, H)
    assert len(r.dstate0) == 2 and r.dstate0[1].shape == (2, B, H)
    assert np.all(np.isfinite(r.dhs[1]))


def test_state_dict_round_trip():
    for tied in (False, True):
        a = _model("lstm", tied=tied, seed=9)
        b = _model("lstm", tied=tied, seed=10)
        x, y, state = _data(7)
        d = a.state_dict()
        assert ("decoder.weight" in d) and d["decoder.weight"].shape == (V, H)
        b.load_state_dict(d)
        assert b.loss(x, y, state)[0] == a.loss(x, y, state)[0]
        d["encoder.weight"][0, 0] += 1.0          # a copy, not the model's array
        assert b.loss(x, y, state)[0] == a.loss(x, y, state)[0]
    m = _model("lstm")
    d = m.state_dict()
    bad = dict(d)
    bad.pop("rnn.weight_hh_l1")
    with pytest.raises(ModelConfigError, match="missing"):
        m.load_state_dict(bad)
    bad = dict(d, **{"rnn.weight_hh_l1": np.zeros((4 * H, H + 1))})
    with pytest.raises(ValueError, match="shape"):
        m.load_state_dict(bad)
    bad = dict(d, extra=np.zeros(3))
    with pytest.raises(UserError, match="unexpected"):
        m.load_state_dict(bad)


def test_init_options():
    kw = dict(vocab_size=V, emsize=E, hidden=H, layers=2, tied=False)
    for cell, G in (("rnn", 1), ("lstm", 4), ("gru", 3)):
        p = init_params(cell, init="orthogonal", rng=np.random.default_rng(0), **kw)
        for k in range(G):
            block = p["rnn.weight_hh_l1"][k * H:(k + 1) * H]
            np.testing.assert_allclose(block @ block.T, np.eye(H), atol=1e-12)
        p = init_params(cell, init="identity", rng=np.random.default_rng(0), **kw)
        np.testing.assert_array_equal(p["rnn.weight_hh_l0"], np.tile(np.eye(H), (G, 1)))
        assert not p["rnn.bias_ih_l0"].any() and not p["rnn.bias_hh_l1"].any()
        p1 = init_params(cell, rng=np.random.default_rng(3), **kw)
        p2 = init_params(cell, recurrent_scale=2.5, rng=np.random.default_rng(3), **kw)
        for name in p1:
            want = p1[name] * 2.5 if "weight_hh" in name else p1[name]
            np.testing.assert_array_equal(p2[name], want)
        p = init_params(cell, init="default", rng=np.random.default_rng(0), **kw)
        assert np.abs(p["rnn.weight_hh_l0"]).max() <= 1 / np.sqrt(H)
        assert np.abs(p["encoder.weight"]).max() <= 0.1 and not p["decoder.bias"].any()
        x = init_params(cell, init="xavier", rng=np.random.default_rng(0), **kw)
        assert np.abs(x["rnn.weight_hh_l0"]).max() <= np.sqrt(6 / (2 * H))
    p0 = init_params("lstm", rng=np.random.default_rng(1), **kw)
    pf = init_params("lstm", forget_bias=1.0, rng=np.random.default_rng(1), **kw)
    np.testing.assert_array_equal(pf["rnn.bias_ih_l0"][H:2 * H], p0["rnn.bias_ih_l0"][H:2 * H] + 1.0)
    np.testing.assert_array_equal(pf["rnn.bias_ih_l0"][:H], p0["rnn.bias_ih_l0"][:H])
    # same seed, same model, in float32 and float64
    a = RNNModel(ModelConfig(vocab_size=V, cell="gru", emsize=E, hidden=H), seed=4)
    b = RNNModel(ModelConfig(vocab_size=V, cell="gru", emsize=E, hidden=H, dtype="float64"), seed=4)
    for name in a.params:
        np.testing.assert_array_equal(a.params[name], b.params[name].astype(np.float32))


def test_param_names_and_shapes():
    m = _model("lstm", layers=2, tied=False)
    shapes = {k: v.shape for k, v in m.params.items()}
    assert shapes == {"encoder.weight": (V, E), "rnn.weight_ih_l0": (4 * H, E), "rnn.weight_hh_l0": (4 * H, H),
                      "rnn.bias_ih_l0": (4 * H,), "rnn.bias_hh_l0": (4 * H,), "rnn.weight_ih_l1": (4 * H, H),
                      "rnn.weight_hh_l1": (4 * H, H), "rnn.bias_ih_l1": (4 * H,), "rnn.bias_hh_l1": (4 * H,),
                      "decoder.weight": (V, H), "decoder.bias": (V,)}
    assert "decoder.weight" not in _model("gru", tied=True).params
    assert [s.shape for s in _model("lstm").init_state(7)] == [(2, 7, H)] * 2
    assert len(_model("rnn").init_state(7)) == 1


def test_float32_training_path_at_init():
    m = RNNModel(ModelConfig(vocab_size=50, cell="lstm", emsize=8, hidden=8, dropout=0.2), seed=0)
    x, y, _ = _data(8)
    x, y = x * 4, y * 4   # ids below 50
    loss, grads, st = m.loss_and_grads(x, y, m.init_state(B), rng=np.random.default_rng(0))
    assert np.isfinite(loss) and abs(loss - np.log(50)) < 0.05
    assert all(g.dtype == np.float32 and np.all(np.isfinite(g)) for g in grads.values())
    assert st[0].dtype == np.float32


def test_bad_config_and_inputs():
    with pytest.raises(ModelConfigError, match="tied"):
        RNNModel(ModelConfig(vocab_size=V, emsize=4, hidden=5, tied=True))
    with pytest.raises(UserError, match="activation"):
        RNNModel(ModelConfig(vocab_size=V, cell="rnn", activation="tanh:x"))
    with pytest.raises(ValueError, match="cell"):
        RNNModel(ModelConfig(vocab_size=V, cell="transformer"))
    # another cell's option would be silently ignored
    with pytest.raises(ModelConfigError, match="vanilla RNN"):
        RNNModel(ModelConfig(vocab_size=V, cell="lstm", activation="relu"))
    with pytest.raises(ModelConfigError, match="no forget gate"):
        RNNModel(ModelConfig(vocab_size=V, cell="gru", forget_bias=1.0))
    with pytest.raises(ValueError, match="dropout"):
        RNNModel(ModelConfig(vocab_size=V, dropout=1.0))
    m = _model("gru")
    with pytest.raises(ValueError, match="outside"):
        m.loss(np.full((T, B), V), np.zeros((T, B), int), m.init_state(B))
    with pytest.raises(ValueError, match="shape"):
        m.loss(np.zeros((T, B), int), np.zeros((T, B), int), m.init_state(B + 1))


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("tied", [False, True])
def test_train_grads_equal_loss_and_grads_bitwise_and_reuse_buffers(cell, tied):
    # train_grads keeps its gradient buffers and clears only the embedding rows it wrote
    # last time: over windows with different token ids it must still equal loss_and_grads
    m = _model(cell, seed=9, tied=tied, dropout=0.2)
    rng = np.random.default_rng(10)
    kept = None
    for k in range(4):
        x, y = (rng.integers(0, V, (T, B)) for _ in range(2))
        state = m.init_state(B)
        loss, grads, final = m.loss_and_grads(x, y, state, rng=np.random.default_rng(k))
        r = m.train_grads(x, y, state, rng=np.random.default_rng(k))
        assert r.loss == loss and list(r.grads) == list(grads)
        for name in grads:
            np.testing.assert_array_equal(r.grads[name], grads[name], err_msg=f"{name}, window {k}")
        for a, b in zip(r.state, final):
            np.testing.assert_array_equal(a, b)
        if tied:
            assert r.grad_rows == {}
        else:
            np.testing.assert_array_equal(r.grad_rows["encoder.weight"], np.unique(x))
            outside = np.setdiff1d(np.arange(V), np.unique(x))
            assert not r.grads["encoder.weight"][outside].any()
        if kept is not None:      # the same arrays, overwritten (the (V,) decoder.bias is a fresh sum)
            assert all(r.grads[name] is kept[name] for name in grads if name != "decoder.bias")
        kept = r.grads
        for p in m.params.values():   # move the weights, as an update would
            p -= 0.05 * rng.standard_normal(p.shape).astype(p.dtype)
