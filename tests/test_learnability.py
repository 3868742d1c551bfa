"""The learnability training mode: weighted loss, the measurements at the key, the bookkeeping."""
import numpy as np
import pytest

from rnnlm import learnability as L
from rnnlm import tasks
from rnnlm.gradcheck import _derivative, rel_error
from rnnlm.model import ModelConfig, RNNModel

CELLS = ("rnn", "lstm", "gru")


def _tiny_model(cell, seed=0, V=11, H=5, dtype="float64", scale=0.5):
    cfg = ModelConfig(vocab_size=V, cell=cell, emsize=4, hidden=H, layers=1, dropout=0.0, dtype=dtype)
    m = RNNModel(cfg, seed=seed)
    rng = np.random.default_rng(seed + 1)
    for p in m.params.values():
        p[...] = rng.uniform(-scale, scale, p.shape)
    return m


# ---------------------------------------------------------------- the weighted loss


@pytest.mark.parametrize("cell", CELLS)
def test_weights_of_ones_equal_the_unweighted_loss(cell):
    m = _tiny_model(cell)
    rng = np.random.default_rng(3)
    x, y = rng.integers(0, 11, (6, 3)), rng.integers(0, 11, (6, 3))
    state = tuple(0.5 * rng.standard_normal((1, 3, 5)) for _ in range(m.n_state))
    r0 = m.bptt(x, y, state)
    r1 = m.bptt(x, y, state, weights=np.ones((6, 3)))
    assert abs(r0.loss - r1.loss) < 1e-13
    for k in r0.grads:
        np.testing.assert_allclose(r1.grads[k], r0.grads[k], rtol=1e-11, atol=1e-14)
    np.testing.assert_allclose(r1.dstate0[0], r0.dstate0[0], rtol=1e-11, atol=1e-14)
    assert abs(m.loss(x, y, state, weights=np.ones((6, 3)))[0] - m.loss(x, y, state)[0]) < 1e-13


@pytest.mark.parametrize("cell", CELLS)
def test_weighted_loss_gradients_match_finite_differences(cell):
    m = _tiny_model(cell)
    rng = np.random.default_rng(4)
    T, B = 6, 3
    x, y = rng.integers(0, 11, (T, B)), rng.integers(0, 11, (T, B))
    state = tuple(0.5 * rng.standard_normal((1, B, 5)) for _ in range(m.n_state))
    w = rng.uniform(0, 2, (T, B))
    w[1] = 0.0            # ignored positions
    r = m.bptt(x, y, state, weights=w)
    # the loss is Σ w·nll / Σ w
    nll = np.empty((T, B))
    for t in range(T):
        for c in range(B):
            ww = np.zeros((T, B))
            ww[t, c] = 1.0
            nll[t, c] = m.loss(x, y, state, weights=ww)[0]
    assert r.loss == pytest.approx((w * nll).sum() / w.sum(), rel=1e-12)
    assert m.loss(x, y, state)[0] == pytest.approx(nll.mean(), rel=1e-12)
    worst = 0.0
    checks = [(n, m.params[n], r.grads[n]) for n in m.params] + [("h0", state[0], r.dstate0[0])]
    for name, p, analytic in checks:
        flat = p.reshape(-1)
        num = np.array([_derivative(lambda: m.loss(x, y, state, weights=w)[0], flat, i, 1e-3)
                        for i in range(flat.size)])
        worst = max(worst, rel_error(analytic.reshape(-1), num).max())
    assert worst < 1e-6


def test_weights_are_checked():
    m = _tiny_model("rnn")
    x = np.zeros((3, 2), np.int64)
    with pytest.raises(ValueError, match="shape"):
        m.loss_and_grads(x, x, weights=np.ones((2, 2)))
    with pytest.raises(ValueError, match="positive sum"):
        m.loss_and_grads(x, x, weights=np.zeros((3, 2)))


# ---------------------------------------------------------------- the measurements at the key


def _task(d=4, cell="rnn", seed=0, keys=2):
    data = tasks.make_task(tasks.TaskSpec("recall", d, keys=keys, n_train=200, n_test=50, seed=seed))
    return data, _tiny_model(cell, V=data.vocab_size, H=4, scale=0.8)


def _run_from_key(m, batch, b, state_key, h):
    """h_query of column b, starting from the key state with h replaced (c held fixed)."""
    k, a = int(batch.key_t[b]), int(batch.answer_t[b])
    st = (h[None, None, :],) + tuple(state_key[1:])
    r = m.forward_states(batch.inputs[k + 1:a + 1, b:b + 1], st)
    return r.hs[-1][-1, 0]


@pytest.mark.parametrize("cell", CELLS)
def test_lag_jacobian_norm_matches_finite_differences(cell):
    data, m = _task(d=4, cell=cell)
    batch = tasks.make_batch(data.test, np.arange(3), "answer")
    logn = L.lag_jacobian_log_norms(m, batch)
    assert logn.shape == (3,)
    for b in range(3):
        k = int(batch.key_t[b])
        state_key = m.forward_states(batch.inputs[:k + 1, b:b + 1]).state
        h0 = state_key[0][0, 0].copy()
        H, eps = h0.size, 1e-5
        J = np.empty((H, H))
        for j in range(H):
            e = np.zeros(H)
            e[j] = eps
            J[:, j] = (_run_from_key(m, batch, b, state_key, h0 + e)
                       - _run_from_key(m, batch, b, state_key, h0 - e)) / (2 * eps)
        assert logn[b] == pytest.approx(np.log10(np.linalg.norm(J, 2)), abs=1e-7)


@pytest.mark.parametrize("cell", CELLS)
def test_key_gradient_matches_finite_differences(cell):
    data, m = _task(d=3, cell=cell)
    batch = tasks.make_batch(data.test, np.arange(4), "answer")
    g_key, g_ans = L.key_gradients(m, batch)
    W, bias = m.params["decoder.weight"], m.params["decoder.bias"]
    for b in range(4):
        k = int(batch.key_t[b])
        state_key = m.forward_states(batch.inputs[:k + 1, b:b + 1]).state
        h0 = state_key[0][0, 0].copy()

        def nll(h):
            z = W @ _run_from_key(m, batch, b, state_key, h) + bias
            return np.log(np.exp(z - z.max()).sum()) + z.max() - z[batch.answers[b]]
        eps, g = 1e-5, np.empty(h0.size)
        for j in range(h0.size):
            e = np.zeros(h0.size)
            e[j] = eps
            g[j] = (nll(h0 + e) - nll(h0 - e)) / (2 * eps)
        assert g_key[b] == pytest.approx(np.log10(np.linalg.norm(g)), abs=1e-6)
    assert np.all(np.isfinite(g_ans))


def test_summaries_are_in_log10_and_keep_zero_as_null():
    assert L.summarize_log10([-2.0, -4.0, -9.0]) == {"median": -4.0, "geomean": -5.0}
    assert L.summarize_log10([-np.inf, -1.0, -2.0])["geomean"] is None


# ---------------------------------------------------------------- training bookkeeping


def _scripted(monkeypatch, accs):
    """Make measure() return the scripted accuracies in turn (and the jac measure a constant)."""
    it = iter(accs)

    def fake(model, data, probe, eval_size, jac_size=0):
        s = {"median": -1.0, "geomean": -1.0}
        return {"acc": next(it), "log10_grad_key": s, "log10_grad_ans": s, "log10_jac": s if jac_size else None}
    monkeypatch.setattr(L, "measure", fake)
    monkeypatch.setattr(L, "lag_jacobian_log_norms", lambda m, b: np.full(len(b.key_t), -2.0))


def _tiny_config(**kw):
    base = dict(cell="rnn", emsize=4, hidden=4, batch_size=4, steps=10, eval_every=1, eval_size=20,
                probe_size=4, jac_size=2, jac_every=1000, patience=3)
    return L.TaskTrainConfig(**{**base, **kw})


def test_first_step_solved_step_and_early_stop(monkeypatch):
    data, _ = _task(d=3)
    #          step 0    1    2     3     4    5     6     7 ...
    _scripted(monkeypatch, [0.5, 0.6, 0.96, 0.5, 0.95, 0.97, 0.99, 0.2, 0.2, 0.2, 0.2])
    r = L.train_task(_tiny_config(), data)
    assert r["first_step"] == 2 and r["solved_step"] == 4 and r["solved"]
    assert r["steps_run"] == 6 and r["stopped_early"] and not r["diverged"]
    assert r["final_acc"] == 0.99 and r["best_acc"] == 0.99
    assert r["history"]["step"] == [0, 1, 2, 3, 4, 5, 6]
    assert r["history"]["jac_step"] == [0, 6]    # step 0 and the last evaluation


def test_unsolved_runs_the_full_budget(monkeypatch):
    data, _ = _task(d=3)
    _scripted(monkeypatch, [0.5, 0.96, 0.97, 0.5, 0.96, 0.97, 0.2, 0.3, 0.96, 0.4, 0.5])
    r = L.train_task(_tiny_config(), data)
    assert not r["solved"] and r["solved_step"] is None and r["first_step"] == 1
    assert r["steps_run"] == 10 and not r["stopped_early"]
    assert r["final_acc"] == 0.5 and r["best_acc"] == 0.97
    # without early stop a solved run also runs the full budget
    _scripted(monkeypatch, [0.5] + [0.99] * 10)
    r = L.train_task(_tiny_config(early_stop=False), data)
    assert r["solved"] and r["solved_step"] == 1 and r["steps_run"] == 10 and not r["stopped_early"]


def test_truncated_bptt_keeps_the_loss_and_cuts_the_gradient_to_the_key():
    data, _ = _task(d=6)
    cfg = _tiny_config(cell="gru", loss="answer")
    m = RNNModel(cfg.model_config(data.vocab_size), seed=1)
    batch = tasks.make_batch(data.train, np.arange(8), "answer")
    key_ids = np.unique(batch.inputs[batch.key_t, np.arange(8)])
    full = L._window_grads(m, batch, "answer", 0, batch.weights)
    cut = L._window_grads(m, batch, "answer", 3, batch.weights)
    assert cut[0] == pytest.approx(full[0], rel=1e-5)
    # the key words appear only at the key: with the gradient cut, nothing reaches their embeddings
    assert np.abs(full[1]["encoder.weight"][key_ids]).max() > 0
    assert np.abs(cut[1]["encoder.weight"][key_ids]).max() == 0
    # loss on every position: windows of T steps are the whole window
    T = batch.inputs.shape[0]
    a = L._window_grads(m, batch, "all", T, batch.weights)
    b = L._window_grads(m, batch, "all", 0, batch.weights)
    assert a[0] == b[0]
    c = L._window_grads(m, batch, "all", 2, batch.weights)
    assert c[0] == pytest.approx(b[0], rel=1e-5)


def _blind(data: tasks.TaskData) -> tasks.TaskData:
    """The task with every key replaced by the first filler word (the answer stays)."""
    def hide(s):
        tok = s.tokens.copy()
        tok[np.arange(len(tok)), s.key_pos] = data.stoi[tasks.filler_pool()[0]]
        return tasks.Split(tok, *s[1:])
    return tasks.TaskData(data.spec, data.vocab, hide(data.train), hide(data.test))


@pytest.mark.slow
def test_a_model_that_cannot_see_the_key_scores_chance():
    data = tasks.make_task(tasks.TaskSpec("recall", 3, keys=2, n_train=400, n_test=400, seed=5))
    cfg = L.TaskTrainConfig(cell="gru", emsize=8, hidden=16, steps=400, eval_every=100, eval_size=400,
                            probe_size=8, jac_size=2, loss="answer", lr=1e-2, early_stop=False, seed=0)
    seen = L.train_task(cfg, data)
    blind = L.train_task(cfg, _blind(data))
    assert seen["final_acc"] >= 0.95                   # the same budget learns it when the key is visible
    assert abs(blind["final_acc"] - 0.5) < 0.1         # chance 1/2; 400 held-out: s.e. 0.025
    assert blind["best_acc"] < 0.65


def test_config_is_checked():
    with pytest.raises(Exception, match="omega"):
        L.TaskTrainConfig(cell="gru", omega=1.0).validate()
    with pytest.raises(Exception, match="loss mode"):
        L.TaskTrainConfig(loss="middle").validate()
    with pytest.raises(Exception, match="hiden"):
        L.TaskTrainConfig.from_dict({"hiden": 3})


def test_task_arrays_round_trip():
    data, _ = _task(d=3)
    back = L.task_from_arrays(data.spec, L.task_arrays(data))
    assert back.vocab == data.vocab
    for s in ("train", "test"):
        for a, b in zip(data.split(s), back.split(s)):
            np.testing.assert_array_equal(a, b)


def test_a_last_evaluation_off_the_schedule_does_not_count_toward_patience(monkeypatch):
    # steps 11 with eval_every 5: evaluations at 0, 5, 10 and 11; the one at 11 came 1 step after the one
    # at 10 and made a third "consecutive" success out of two
    data, _ = _task(d=3)
    _scripted(monkeypatch, [0.5, 0.99, 0.99, 0.99])
    r = L.train_task(_tiny_config(steps=11, eval_every=5), data)
    assert r["history"]["step"] == [0, 5, 10, 11] and r["final_acc"] == 0.99
    assert not r["solved"] and r["solved_step"] is None and r["steps_run"] == 11
    _scripted(monkeypatch, [0.5, 0.99, 0.99, 0.99])
    r = L.train_task(_tiny_config(steps=15, eval_every=5), data)
    assert r["solved"] and r["solved_step"] == 5 and r["history"]["step"] == [0, 5, 10, 15]
