"""steps.py: a walk of T steps in one parallel region, parts claimed from counters.

Each step's parts read the whole of the previous step's result, so a part
that started before the previous step was finished would see a partial sum;
any thread count, any number of parts, and no hang when the workers run one
after another on one thread."""
import numba
import numpy as np
import pytest
from numba import prange

from rnnlm import gru, lstm, paths, rnn, steps


@numba.njit(parallel=True)
def _walk(out, P):
    T = out.shape[0]
    count = steps.counters(T)
    for _ in prange(P):
        for t in range(T):
            p = steps.claim(count, t)
            while p < P:
                prev = out[t - 1].sum() if t > 0 else 0.0
                out[t, p] = prev + p + 1
                steps.done(count, t)
                p = steps.claim(count, t)
            steps.wait(count, t, P)
    return count


def _expected(T, P):
    r = np.zeros((T, P))
    for t in range(T):
        for p in range(P):
            r[t, p] = (r[t - 1].sum() if t > 0 else 0.0) + p + 1
    return r


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("P", [1, 2, 3, 5, 8])
def test_every_step_sees_the_whole_previous_step(threads, P):
    before = numba.get_num_threads()
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    try:
        out = np.zeros((35, P))
        count = _walk(out, P)
    finally:
        numba.set_num_threads(before)
    np.testing.assert_array_equal(out, _expected(35, P))
    assert (count[:, 1] == P).all()                 # every part counted done once
    assert (count[:, 0] >= P + 1).all() and (count[:, 0] <= 2 * P).all()   # each worker's last claim failed once


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_a_split_step_gives_the_same_bits_on_one_thread(cell, monkeypatch):
    """3 parts on 1 thread (every part done by one worker) against 3 parts on the pool: bitwise equal."""
    for name in ("SPLIT_MIN_H", "GRU_SPLIT_MIN_H", "RNN_SPLIT_MIN_H"):
        monkeypatch.setattr(paths, name, 1)
    monkeypatch.setattr(paths.pblas, "n_blocks", lambda: 3)
    rng = np.random.default_rng(0)
    T, B, E, H, g = 7, 4, 5, 9, {"rnn": 1, "lstm": 4, "gru": 3}[cell]
    x = rng.standard_normal((T, B, E)).astype(np.float32)
    h0 = (0.5 * rng.standard_normal((B, H))).astype(np.float32)
    W_ih, W_hh = (0.5 * rng.standard_normal((2, g * H, max(E, H)))).astype(np.float32)
    W_ih, W_hh = W_ih[:, :E].copy(), W_hh[:, :H].copy()
    b_ih, b_hh = (0.3 * rng.standard_normal((2, g * H))).astype(np.float32)

    def run():
        if cell == "rnn":
            c = rnn.rnn_forward(rnn.rnn_alloc(T, B, E, H, np.float32), x, h0, W_ih, W_hh, b_ih, b_hh, "tanh")
        elif cell == "lstm":
            c = lstm.lstm_forward(lstm.lstm_alloc(T, B, E, H, np.float32), x, h0, h0, W_ih, W_hh, b_ih, b_hh)
        else:
            c = gru.gru_forward(gru.gru_alloc(T, B, E, H, np.float32), x, h0, W_ih, W_hh, b_ih, b_hh)
        return c.h.copy()

    assert len(paths.unit_bounds(H, cell)) == 4
    pooled = run()
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        alone = run()
    finally:
        numba.set_num_threads(before)
    np.testing.assert_array_equal(alone, pooled)
