"""The lag figures of trained models state the optimizer (the README: every figure states cell, init,
clipping, optimizer and seed): demo gradients' trained-*.png and trained-all.png said none."""
import json

import numpy as np

from rnnlm import plotlag

from test_plots_coincide import _doc
from test_plots_figures import _close, _fake_run, _title


def test_a_trained_curve_states_its_optimizer():
    init, trained = _doc("rnn"), _doc("rnn", 0.9)
    trained["meta"].update(source="runs/a/best.npz", clip="clip-norm 0.25", optimizer="adam", lr=0.002)
    fig = plotlag.draw_lag([init, trained], labels=["at init", "trained"])
    assert "; adam lr 0.002 at start; median over 4 anchors" in " ".join(_title(fig).split())
    _close(fig)
    fig = plotlag.draw_lag([init])                 # at init: no optimizer to state
    assert "lr" not in _title(fig)
    _close(fig)


def test_a_lag_curve_in_a_run_folder_gets_the_runs_optimizer(tmp_path):
    run = _fake_run(tmp_path / "r")                # sgd, lr 5
    doc = _doc("rnn", 0.9)
    doc["meta"].update(source=str(run / "best.npz"))     # written before lag curves recorded the optimizer
    (run / "jacobian.json").write_text(json.dumps(doc))
    fig = plotlag.draw_lag([run])
    assert "sgd lr 5 at start" in _title(fig)
    _close(fig)


def test_demo_gradients_trained_curves_record_their_optimizer(tmp_path, monkeypatch):
    """training_study with its trainings, checkpoints and curves replaced by stand-ins."""
    from rnnlm import demogradients as G
    from rnnlm.data import DataConfig
    from rnnlm.demo import QUICK
    from test_trial6_figs import stand_in_training_study

    drawn, summaries = stand_in_training_study(
        monkeypatch, lag=lambda *a, **k: {"meta": {"optimizer": k.get("optimizer"), "lr": k.get("lr")}},
        text="machado:valid")
    G.training_study(tmp_path, QUICK["gradients"], DataConfig(corpus="machado"), 0, summaries)
    assert [d["meta"].get("optimizer") for d in drawn["trained-all"][0]] == ["adam"] * 3
    assert [d["meta"].get("lr") for d in drawn["trained-all"][0]] == [0.002] * 3
    for cell in ("rnn", "lstm", "gru"):     # at init: none; trained: adam
        assert [d["meta"].get("optimizer") for d in drawn[f"trained-{cell}"][0]] == [None, "adam"]


def test_the_demos_lag_curve_records_what_it_is_given():
    from rnnlm.config import ModelConfig
    from rnnlm.demo import QUICK, _lag
    from rnnlm.model import RNNModel
    model = RNNModel(ModelConfig(vocab_size=11, cell="rnn", emsize=4, hidden=5, dtype="float64"), seed=0)
    sizes = {**QUICK["gradients"], "max_lag": 3, "anchors": 2}
    doc = _lag(model, np.arange(30) % 11, sizes, 0, per_step=False, text="random:11", source="x/best.npz",
               clip="clip-norm 0.25", optimizer="adam", lr=0.002)
    assert (doc["meta"]["optimizer"], doc["meta"]["lr"], doc["meta"]["clip"]) == ("adam", 0.002, "clip-norm 0.25")
    assert "optimizer" not in _lag(model, np.arange(30) % 11, sizes, 0, per_step=False, text="random:11")["meta"]
