"""Every gradient of the whole model against finite differences (rnnlm.gradcheck), float64.

Covers every cell, every activation, 1 and 2 layers, tied and untied, and
dropout with a fixed mask. The combinations are a covering set, not the full
product, to keep the run short; `rnnlm gradcheck` runs any of them by hand.
"""
import pytest

from rnnlm.cli import main
from rnnlm.gradcheck import ACTIVATIONS, TOLERANCE, gradcheck, rel_error

CASES = (
    # every activation: 1 layer plain, 2 layers tied with dropout
    [("rnn", a, 1, False, 0.0) for a in ACTIVATIONS]
    + [("rnn", a, 2, True, 0.3) for a in ACTIVATIONS]
    # the full (layers, tied, dropout) grid for the tanh rnn, lstm and gru
    + [(cell, "tanh", L, tied, p)
       for cell in ("rnn", "lstm", "gru") for L in (1, 2) for tied in (False, True) for p in (0.0, 0.3)
       if not (cell == "rnn" and ((L, tied, p) in ((1, False, 0.0), (2, True, 0.3))))]
)


@pytest.mark.parametrize("cell,act,layers,tied,dropout", CASES)
def test_gradcheck(cell, act, layers, tied, dropout):
    rep = gradcheck(cell=cell, activation=act, layers=layers, tied=tied, dropout=dropout)
    expected = {"encoder.weight", "decoder.bias", "h0"} | ({"c0"} if cell == "lstm" else set())
    expected |= set() if tied else {"decoder.weight"}
    assert expected <= set(rep.errors)
    assert len(rep.errors) == len(expected) + 4 * layers
    assert rep.ok, "\n".join(rep.lines())


def test_rel_error_is_robust():
    assert rel_error([0.0], [0.0]).max() == 0.0
    assert rel_error([1.0, 1e-9], [1.0, 1e-9 + 1e-13]).max() < 1e-6   # noise far below the tensor's scale
    assert rel_error([1.0], [1.1]).max() > TOLERANCE


def test_subsampling_large_tensors():
    rep = gradcheck(cell="gru", vocab_size=30, emsize=8, hidden=9, T=2, B=2, max_entries=20)
    assert rep.checked["rnn.weight_hh_l0"] == (20, 27 * 9)
    assert rep.ok, "\n".join(rep.lines())


def test_cli(capsys):
    assert main(["gradcheck", "--cell", "gru", "--layers", "2", "--tied", "--dropout", "0.2"]) == 0
    out = capsys.readouterr().out
    assert "rnn.weight_hh_l1" in out and "c0" not in out and "PASS" in out
    assert main(["gradcheck", "--cell", "rnn", "--activation", "tahn"]) == 2
    assert main(["gradcheck", "--cell", "lstm", "--activation", "relu"]) == 2   # would be ignored
    assert "for --cell rnn" in capsys.readouterr().err


@pytest.mark.parametrize("cell,act", [("lstm", "tanh"), ("gru", "tanh"), ("rnn", "tanh"), ("rnn", "sigmoid")])
@pytest.mark.parametrize("layers", [1, 2])
def test_gradcheck_step_shared_between_threads(monkeypatch, layers, cell, act):
    """Each cell's recurrence split by hidden unit (used from paths' thresholds up) against finite differences."""
    from rnnlm import paths
    for name in ("SPLIT_MIN_H", "GRU_SPLIT_MIN_H", "RNN_SPLIT_MIN_H"):
        monkeypatch.setattr(paths, name, 1)
    monkeypatch.setattr(paths.pblas, "n_blocks", lambda: 3)   # 3 unequal parts of H = 8, whatever the CPU
    assert len(paths.unit_bounds(8, cell)) == 4
    rep = gradcheck(cell=cell, layers=layers, hidden=8, emsize=8, activation=act)
    assert rep.ok, "\n".join(rep.lines())


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_gradcheck_output_layer_on_openblas_threads(monkeypatch, cell):
    """The output layer's products as single OpenBLAS calls (paths.OUTPUT_BLAS_MIN_THREADS),
    the model's whole gradient against finite differences."""
    from rnnlm import paths
    monkeypatch.setattr(paths, "OUTPUT_BLAS_MIN_THREADS", 1)
    monkeypatch.setattr(paths, "SPLIT_MIN_H", 1)          # the LSTM off the overlapped path, which keeps row blocks
    monkeypatch.setattr(paths.pblas, "n_blocks", lambda: 3)
    assert paths.plan(cell, 8).output_blas and not paths.plan(cell, 8).overlapped
    rep = gradcheck(cell=cell, layers=1, hidden=8, emsize=8)
    assert rep.ok, "\n".join(rep.lines())
