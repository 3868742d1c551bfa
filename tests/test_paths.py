"""The cell registry (rnnlm/cells.py) and the fast-path plan (rnnlm/paths.py)."""
import numpy as np
import pytest

from rnnlm import overlap, paths, pblas
from rnnlm.cells import CELLS, Cell
from rnnlm.init import GATES
from rnnlm.model import ModelConfig, RNNModel


def test_every_cell_has_the_whole_interface():
    assert set(CELLS) == {"rnn", "lstm", "gru"}
    for name, cell in CELLS.items():
        assert isinstance(cell, Cell) and cell.name == name
        assert len(cell.gates) == GATES[name]
        assert cell.states == (("h", "c") if name == "lstm" else ("h",))
        assert all(callable(f) for f in cell[3:])
        cache = cell.alloc(3, 2, 4, 5, np.float64)
        assert all(hasattr(cache, s) for s in cell.states)
        assert all(len(shape) == 3 and shape[:2] == (3, 2) for shape in cell.scratch_shapes(3, 2, 5).values())


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_step_jacobian_reads_any_batch_row(cell):
    """Row b of a batched forward gives the step Jacobian of that sequence run alone."""
    cfg = ModelConfig(vocab_size=11, cell=cell, emsize=4, hidden=5, dropout=0.0, dtype="float64")
    m = RNNModel(cfg, seed=1)
    ids = np.random.default_rng(0).integers(0, 11, (6, 3))
    c = CELLS[cell]
    W_ih, W_hh = m.params["rnn.weight_ih_l0"], m.params["rnn.weight_hh_l0"]
    t = np.array([0, 2, 5])
    together = m.forward_states(ids).caches[0]
    alone = m.forward_states(ids[:, 1:2]).caches[0]
    A, X = c.step_jacobian(together, t, 1, W_ih, W_hh, m.act, True)
    A1, X1 = c.step_jacobian(alone, t, 0, W_ih, W_hh, m.act, True)
    np.testing.assert_allclose(A, A1, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(X, X1, rtol=1e-13, atol=1e-15)
    # the advance is the product with the same A
    J = np.random.default_rng(1).standard_normal(A.shape)
    np.testing.assert_allclose(c.jacobian_advance(J, together, t, 1, W_hh, m.act, {}), J @ A, rtol=1e-12, atol=1e-14)


def test_plan_applies_the_thresholds(monkeypatch):
    monkeypatch.setattr(pblas, "n_blocks", lambda: 2)
    small, split = paths.plan("lstm", paths.SPLIT_MIN_H - 1), paths.plan("lstm", paths.SPLIT_MIN_H)
    assert small.overlapped and len(small.unit_bounds) == 2 and small.dW_transposed
    assert not split.overlapped and list(split.unit_bounds) == [0, 64, 128]
    assert not paths.plan("gru", 64).overlapped and not paths.plan("rnn", 64).overlapped
    assert paths.plan("gru", paths.DW_TRANSPOSED_MAX_H).dW_transposed
    assert not paths.plan("gru", paths.DW_TRANSPOSED_MAX_H + 1).dW_transposed
    # the GRU step is shared from its own threshold up
    assert len(paths.plan("gru", paths.GRU_SPLIT_MIN_H - 1).unit_bounds) == 2
    assert list(paths.plan("gru", 256).unit_bounds) == [0, 128, 256] == list(paths.unit_bounds(256, "gru"))
    # and the vanilla RNN's from its own
    assert len(paths.plan("rnn", paths.RNN_SPLIT_MIN_H - 1).unit_bounds) == 2
    assert list(paths.plan("rnn", 512).unit_bounds) == [0, 256, 512] == list(paths.unit_bounds(512, "rnn"))
    monkeypatch.setattr(pblas, "n_blocks", lambda: 1)
    assert not paths.plan("lstm", 64).overlapped and len(paths.plan("lstm", 512).unit_bounds) == 2


def test_plan_is_decided_once_per_workspace(monkeypatch):
    """A model decides its paths when it allocates a (T, B) workspace and then follows them."""
    monkeypatch.setattr(pblas, "n_blocks", lambda: 2)
    calls = []
    real = overlap.lstm_forward_and_output
    monkeypatch.setattr(overlap, "lstm_forward_and_output", lambda *a, **k: calls.append(1) or real(*a, **k))
    m = RNNModel(ModelConfig(vocab_size=13, cell="lstm", emsize=6, hidden=6, dropout=0.0, dtype="float64"))
    ids = np.random.default_rng(0).integers(0, 13, (4, 3))
    m.loss_and_grads(ids, ids)
    assert len(calls) == 1
    monkeypatch.setattr(paths, "overlapped", lambda *a: False)
    m.loss_and_grads(ids, ids)          # same shape: the workspace keeps its plan
    assert len(calls) == 2
    m.loss_and_grads(ids[:3], ids[:3])  # a new shape decides again
    assert len(calls) == 2


def test_plan_puts_the_output_layer_on_openblas_threads_from_its_threshold(monkeypatch):
    monkeypatch.setattr(pblas, "n_blocks", lambda: 4)
    assert paths.OUTPUT_BLAS_MIN_THREADS == 0 and not paths.plan("gru", 512).output_blas   # off by default
    monkeypatch.setattr(paths, "OUTPUT_BLAS_MIN_THREADS", 4)
    assert paths.plan("gru", 512).output_blas and paths.plan("lstm", 512).output_blas
    # the overlapped LSTM keeps its own row blocks
    assert paths.plan("lstm", 64).overlapped and not paths.plan("lstm", 64).output_blas
    monkeypatch.setattr(pblas, "n_blocks", lambda: 3)
    assert not paths.plan("gru", 512).output_blas


def test_training_step_on_openblas_threads_equals_row_blocks(monkeypatch):
    """A float32 training step's loss and gradients, output products on OpenBLAS's threads
    against the row blocks (the same sums in another order: float32 rounding apart)."""
    cfg = ModelConfig(vocab_size=300, cell="gru", emsize=16, hidden=32, dropout=0.0)
    ids = np.random.default_rng(3).integers(0, 300, (9, 5))
    want = RNNModel(cfg, seed=2).loss_and_grads(ids[:-1], ids[1:])
    monkeypatch.setattr(paths, "OUTPUT_BLAS_MIN_THREADS", 1)
    m = RNNModel(cfg, seed=2)
    got = m.loss_and_grads(ids[:-1], ids[1:])
    assert m._workspace(8, 5).plan.output_blas
    assert got[0] == pytest.approx(want[0], rel=1e-6)
    assert m.loss(ids[:-1], ids[1:])[0] == pytest.approx(want[0], rel=1e-6)   # the eval path
    for name, g in want[1].items():
        np.testing.assert_allclose(got[1][name], g, rtol=1e-4, atol=1e-6, err_msg=name)
