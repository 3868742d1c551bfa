"""The small LSTM's recurrence overlapped with the output layer (rnnlm/overlap.py).

The overlapped step must give the plain step's loss, gradients and state (only
the order of dbias's and dW's partial sums differs), with and without dropout,
at any split the cost model could choose, and pass the finite-difference
gradcheck.
"""
import numpy as np
import pytest

from rnnlm import overlap, paths, pblas
from rnnlm.gradcheck import gradcheck
from rnnlm.model import ModelConfig, RNNModel

V, E, H, T, B = 23, 6, 7, 9, 4


def _model(layers, tied, dtype="float64", dropout=0.0):
    cfg = ModelConfig(vocab_size=V, cell="lstm", emsize=H if tied else E, hidden=H, layers=layers,
                      tied=tied, dtype=dtype, dropout=dropout)
    m = RNNModel(cfg, seed=0)
    rng = np.random.default_rng(5)
    for p in m.params.values():
        p[...] = rng.uniform(-0.5, 0.5, p.shape)
    return m


def _step(m, plain, monkeypatch):
    """(loss, grads, state, eval loss, eval state) with the overlap on (plain=False) or off;
    with the model's dropout, one fixed set of masks for both."""
    m = RNNModel(m.config, params=m.params)   # fresh workspaces: their paths.Plan is decided under the patch
    rng = np.random.default_rng(1)
    x, y = rng.integers(0, V, (T, B)), rng.integers(0, V, (T, B))
    state = tuple(0.4 * rng.standard_normal(s.shape).astype(m.dtype) for s in m.init_state(B))
    masks = m.draw_masks(T, B, rng)
    with monkeypatch.context() as mp:
        if plain:
            mp.setattr(paths, "overlapped", lambda *a: False)
        loss, grads, final = m.loss_and_grads(x, y, state, masks=masks)
        eval_loss, eval_final = m.loss(x, y, state, masks=masks)
    return loss, grads, final, eval_loss, eval_final


def _assert_same(a, b, rtol):
    assert a[0] == pytest.approx(b[0], rel=rtol) and a[3] == pytest.approx(b[3], rel=rtol)
    for name in b[1]:
        np.testing.assert_allclose(a[1][name], b[1][name], rtol=rtol, atol=rtol * np.abs(b[1][name]).max(),
                                   err_msg=name)
    for s, r in zip(a[2] + a[4], b[2] + b[4]):
        np.testing.assert_array_equal(s, r)   # the recurrence itself is the same arithmetic


def test_applies_only_to_a_serial_lstm_top_layer(monkeypatch):
    monkeypatch.setattr(pblas, "n_blocks", lambda: 2)
    assert overlap.applies("lstm", 64)
    assert not overlap.applies("lstm", paths.SPLIT_MIN_H)   # split by unit instead
    assert not overlap.applies("gru", 64) and not overlap.applies("rnn", 64)
    monkeypatch.setattr(pblas, "n_blocks", lambda: 1)
    assert not overlap.applies("lstm", 64)                          # one thread: nothing to overlap


@pytest.mark.parametrize("threads", [2, 3])
@pytest.mark.parametrize("layers,tied,dropout", [(1, False, 0.0), (2, True, 0.0), (2, False, 0.0),
                                                 (1, False, 0.3), (2, True, 0.3)])
def test_overlapped_step_equals_plain_step(monkeypatch, threads, layers, tied, dropout):
    monkeypatch.setattr(pblas, "n_blocks", lambda: threads)   # 3 parts on 2 cores is still correct
    m = _model(layers, tied, dropout=dropout)
    calls = []
    real = overlap.lstm_forward_and_output
    monkeypatch.setattr(overlap, "lstm_forward_and_output", lambda *a, **k: calls.append(1) or real(*a, **k))
    got = _step(m, plain=False, monkeypatch=monkeypatch)
    assert len(calls) == 2   # the training step and the eval loss both took the overlapped path
    _assert_same(got, _step(m, plain=True, monkeypatch=monkeypatch), rtol=1e-12)


@pytest.mark.parametrize("t1", [0, 1, T])
@pytest.mark.parametrize("n0", [0, 5, T * B])
def test_every_split_gives_the_same_step(monkeypatch, t1, n0):
    """The extremes too: no steps before the overlap, all of them; thread 0 with no dW rows, all."""
    monkeypatch.setattr(pblas, "n_blocks", lambda: 2)
    monkeypatch.setattr(overlap, "_split_forward", lambda *a: t1)
    monkeypatch.setattr(overlap, "_split_backward", lambda *a: n0)
    m = _model(1, False, dropout=0.3)
    _assert_same(_step(m, False, monkeypatch), _step(m, True, monkeypatch), rtol=1e-12)


def test_float32_step_close_to_plain(monkeypatch):
    monkeypatch.setattr(pblas, "n_blocks", lambda: 2)
    m = _model(1, False, dtype="float32")
    got, ref = _step(m, False, monkeypatch), _step(m, True, monkeypatch)
    assert got[1]["decoder.weight"].dtype == np.float32
    _assert_same(got, ref, rtol=2e-5)


@pytest.mark.parametrize("layers,dropout", [(1, 0.0), (2, 0.0), (2, 0.3)])
def test_gradcheck_through_the_overlapped_path(monkeypatch, layers, dropout):
    monkeypatch.setattr(pblas, "n_blocks", lambda: 3)
    assert overlap.applies("lstm", 8)
    rep = gradcheck(cell="lstm", layers=layers, hidden=8, emsize=8, dropout=dropout)
    assert rep.ok, "\n".join(rep.lines())


def test_cost_model_at_the_tiny_config():
    """Measured best at V = 2000, H = 64, B = 32, T = 35, 2 threads: t1 = 2..4, dW rows 400 of 1120."""
    assert 2 <= overlap._split_forward(35, 32, 64, 2000, 2) <= 5
    assert 300 <= overlap._split_backward(35, 32, 64, 2000, 2) <= 500
    # eval: the output rows are cheaper, so thread 0 starts its share of the recurrence later
    assert overlap._split_forward(35, 32, 64, 2000, 2, grads=False) > overlap._split_forward(35, 32, 64, 2000, 2)
    # the bounds hold for any shape
    for args in [(1, 1, 1, 2, 2), (35, 32, 127, 10, 2), (35, 32, 8, 100000, 8)]:
        assert 0 <= overlap._split_forward(*args) <= args[0]
        assert 0 <= overlap._split_backward(*args) <= args[0] * args[1]
