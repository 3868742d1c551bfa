"""The lag figures of trained models state the optimizer (the README: every figure states cell, init,
clipping, optimizer and seed): demo gradients' trained-*.png and trained-all.png said none."""
import json
from pathlib import Path

import numpy as np

from rnnlm import plotlag, plotruns

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
    from rnnlm import runs
    from rnnlm.data import DataConfig
    from rnnlm.demo import QUICK

    drawn = {}

    def plot_lag(docs, labels, out, title, **kw):
        drawn[Path(out).stem] = docs
        return str(out)

    monkeypatch.setattr(G, "_plot_lag", plot_lag)
    monkeypatch.setattr(G, "_tokens", lambda data_config, n: (np.arange(n) % 50, 50, "machado:valid"))
    monkeypatch.setattr(G, "_initial_model", lambda config, seed: None)
    monkeypatch.setattr(G, "_lag", lambda *a, **k: {"meta": {"optimizer": k.get("optimizer"), "lr": k.get("lr")}})
    monkeypatch.setattr(G, "curve_numbers", lambda doc: {})
    monkeypatch.setattr(runs, "load_model", lambda run, which: (None, None, None, Path(run) / "best.npz"))
    monkeypatch.setattr(plotruns, "plot_lag_over_training", lambda run, out, **kw: out)
    summaries = {f"train-{c}": {"steps": 15, "best_val_ppl": 300.0, "stopped": "max_steps", "wall_s": 1.0}
                 for c in ("rnn", "lstm", "gru")}
    G.training_study(tmp_path, QUICK["gradients"], DataConfig(corpus="machado"), 0, summaries)
    assert [d["meta"].get("optimizer") for d in drawn["trained-all"]] == ["adam"] * 3
    assert [d["meta"].get("lr") for d in drawn["trained-all"]] == [0.002] * 3
    for cell in ("rnn", "lstm", "gru"):     # at init: none; trained: adam
        assert [d["meta"].get("optimizer") for d in drawn[f"trained-{cell}"]] == [None, "adam"]


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
