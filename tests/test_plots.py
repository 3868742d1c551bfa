"""Figures, the jacobian and plot commands, and train --track-jacobian-every, on tiny runs.

One tiny LSTM run (12 steps, stopped at 7 and resumed) records Jacobian curves;
an identical run without tracking must end with bitwise-equal parameters.
"""
import dataclasses
import json
import os

import numpy as np
import pytest

from rnnlm import jacobian as jac
from rnnlm import plotlag, plotruns
from rnnlm.cli import main
from rnnlm.data import DataConfig
from rnnlm.model import ModelConfig, RNNModel
from rnnlm.runs import resume_config
from rnnlm.tracking import TRACK_MAX_LAG
from rnnlm.train import TrainConfig, train




def tiny(text, out, **kw):
    base = dict(data=DataConfig(corpus=str(text), max_vocab=300, valid_fraction=0.1, test_fraction=0.1),
                cell="lstm", emsize=16, hidden=16, bptt=8, batch_size=16, eval_batch_size=4, dropout=0.1,
                epochs=1, max_steps=12, max_minutes=0, eval_every=4, log_every=2, progress=False,
                sample_words=0, out=str(out))
    base.update(kw)
    model = {k: base.pop(k) for k in {f.name for f in dataclasses.fields(ModelConfig)} & set(base)}
    return TrainConfig(model=ModelConfig(**model), **base)


@pytest.fixture(scope="module")
def runs(text, tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    plain = root / "plain"
    train(tiny(text, plain))
    tracked = root / "tracked"
    train(tiny(text, tracked, track_jacobian_every=5, max_steps=7))
    train(resume_config(tracked, {"max_steps": 12}), resume=tracked)
    return plain, tracked


def _events(run, kind):
    lines = (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    return [e for e in map(json.loads, lines) if e["type"] == kind]


def _arrays(path):
    # As in test_train: wall time, the run folder in meta.config, and best_saved (the session that
    # stopped at step 7 ran a report-only final evaluation) legitimately differ.
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files if k not in ("train.elapsed", "train.best_saved", "meta.config")}


def _figure_ok(png, *texts):
    png = os.fspath(png)
    assert png.endswith(".png")
    with open(png, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    svg = open(png[:-4] + ".svg", encoding="utf-8").read()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    for t in texts:
        assert t in svg, t


# ---------------------------------------------------------------- --track-jacobian-every


def test_tracking_logs_curves_once_per_step_across_resume(runs):
    _, tracked = runs
    evs = _events(tracked, "jacobian")
    assert [e["step"] for e in evs] == [0, 5, 10]      # at init, then every 5; the resume at 7 repeats none
    for e in evs:
        assert e["meta"]["max_lag"] == TRACK_MAX_LAG and e["meta"]["anchors"] == 4
        layer = e["curves"]["layer0"]
        assert set(layer) == {"h", "c", "state", "flow"}
        med = layer["state"]["spectral"]["median"]
        assert len(med) == TRACK_MAX_LAG and all(m is None or m >= 0 for m in med)
        # The full state Jacobian's spectral norm bounds its h block's.
        assert all(s >= h * (1 - 1e-4) for s, h in zip(med, layer["h"]["spectral"]["median"]) if s and h)
        assert "per_step" not in e
    # Same tokens and anchors each time: the curve at init is a pure function of the initial weights.
    doc = jac.lag_curve(_model_at_init(tracked), _tracking_tokens(tracked), max_lag=TRACK_MAX_LAG, anchors=4,
                        rng=np.random.default_rng(0), per_step=False)
    want = doc["curves"]["layer0"]["state"]["spectral"]["median"]
    np.testing.assert_allclose(evs[0]["curves"]["layer0"]["state"]["spectral"]["median"], want, rtol=1e-4)


def _model_at_init(run):
    info = json.loads((run / "config.json").read_text())
    return RNNModel(ModelConfig(**info["model"]), seed=info["train"]["seed"])


def _tracking_tokens(run):
    from rnnlm.data import load_corpus
    from rnnlm.config import config_from_dict
    from rnnlm.tracking import tracking_tokens
    info = json.loads((run / "config.json").read_text())
    return tracking_tokens(load_corpus(config_from_dict(info["train"]).data))


def test_tracking_does_not_change_training(runs):
    plain, tracked = runs
    assert not _events(plain, "jacobian")
    a, b = _arrays(plain / "model.npz"), _arrays(tracked / "model.npz")
    assert a.keys() == b.keys() and "train.rng" in a
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


# ---------------------------------------------------------------- figures


def _doc(cell, activation="tanh", scale=1.0):
    cfg = ModelConfig(vocab_size=11, cell=cell, activation=activation, emsize=4, hidden=5,
                      recurrent_scale=scale, dtype="float64")
    toks = np.random.default_rng(0).integers(0, 11, 24)
    return jac.lag_curve(RNNModel(cfg, seed=0), toks, max_lag=8, anchors=4, rng=np.random.default_rng(0))


def test_plot_lag_from_documents(tmp_path):
    docs = [_doc("rnn", "relu", 1.5), _doc("lstm"), _doc("gru")]
    png = plotlag.plot_lag(docs, None, tmp_path / "lag.png", bound=True)
    assert png == tmp_path / "lag.png"
    _figure_ok(png, "rnn relu", "lstm", "gru", "W_hh ×1.5", "[state]", "bound", "lag d (time steps)")
    json.dump(docs[0], open(tmp_path / "rnn.json", "w"))
    png = plotlag.plot_lag([tmp_path / "rnn.json"], ["my rnn"], tmp_path / "flow", flow=True)
    _figure_ok(png, "my rnn", "Gradient flow")
    assert png == tmp_path / "flow.png"


def test_plot_training_and_over_training(runs, tmp_path):
    _, tracked = runs
    _figure_ok(plotruns.plot_training(tracked, tmp_path / "t.png"), "clip threshold 0.25", "validation",
               "lstm, init default")
    _figure_ok(plotruns.plot_lag_over_training(tracked, tmp_path / "o.png"), "training step")


def test_plot_training_marks_nonfinite_events(text, tmp_path):
    run = tmp_path / "boom"
    # test_train's explosion recipe: an IRNN with a high learning rate and no clipping diverges in a few steps.
    train(tiny(text, run, cell="rnn", activation="relu", init="identity", hidden=32, lr=5.0, bptt=20, batch_size=4,
               clip_norm=0.0, epochs=2, max_steps=60, eval_every=0, log_every=1, dropout=0.0))
    assert _events(run, "nonfinite")
    _figure_ok(plotruns.plot_training(run, tmp_path / "boom.png"), "non-finite", "no clipping")


# ---------------------------------------------------------------- commands


def test_jacobian_command_on_a_run(runs, tmp_path, capsys):
    _, tracked = runs
    out = tmp_path / "j.json"
    assert main(["jacobian", str(tracked), "--max-lag", "10", "--anchors", "4", "--tokens", "120",
                 "--seed", "3", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "spectral median" in printed and "decay rate" in printed and "below 1e-6 of lag 1" in printed
    assert f"wrote {out}" in printed
    doc = json.loads(out.read_text())
    meta = doc["meta"]
    assert meta["source"].endswith("best.npz") and meta["seed"] == 3 and meta["text"].endswith(":valid")
    assert meta["max_lag"] == 10 and meta["anchors"] == 4 and meta["tokens"] == 120
    assert meta["clip"] == "clip-norm 0.25" and meta["H"] == 16 and meta["cell"] == "lstm"
    state = doc["curves"]["layer0"]["state"]
    assert state["lag"] == list(range(1, 11))
    assert set(state["spectral"]) == {"median", "geomean", "p10", "p90"}
    for p10, med, p90 in zip(state["spectral"]["p10"], state["spectral"]["median"], state["spectral"]["p90"]):
        assert p10 <= med <= p90
    # Frobenius >= spectral for every matrix, so for their medians too.
    assert all(f >= s * (1 - 1e-9) for f, s in zip(state["frobenius"]["median"], state["spectral"]["median"]))
    assert set(doc["curves"]["layer0"]["flow"]) == {"lag", "norm", "decay_rate", "vanish_lag", "zero_lag"}
    assert "per_step" in doc
    # The default output path and the plot command read it back.
    assert main(["jacobian", str(tracked), "--max-lag", "6", "--anchors", "2", "--tokens", "60"]) == 0
    assert (tracked / "jacobian.json").exists()
    # a fresh model's settings with a checkpoint would be ignored: refused
    assert main(["jacobian", str(tracked), "--hidden", "8", "--max-lag", "6"]) == 2
    assert main(["plot", "lag", str(tracked), str(out), "--labels", "a,b", "--norm", "frobenius"]) == 0
    # two inputs: a comparison, named apart from the run's own lag figure
    _figure_ok(tracked / "plots" / f"lag-compare-{tracked.name}+{out.stem}-auto-frobenius-layer0.png", "a", "b")
    assert main(["plot", "lag", str(tracked), "--over-training", "--quantity", "c"]) == 0
    _figure_ok(tracked / "plots" / "lag-over-training-c-spectral-layer0.png")
    assert main(["plot", "training", str(tracked)]) == 0
    _figure_ok(tracked / "plots" / "training.png")


def test_jacobian_command_init_mode(text, tmp_path, capsys):
    out = tmp_path / "init.json"
    # Bare --init selects the mode; a later --init orthogonal picks the scheme (the README's example).
    args = ["jacobian", "--init", "--cell", "rnn", "--activation", "tanh", "--recurrent-scale", "1.5",
            "--hidden", "8", "--init", "orthogonal", "--corpus", "none", "--vocab-size", "50",
            "--max-lag", "6", "--anchors", "3", "--tokens", "40", "--out", str(out)]
    assert main(args) == 0
    assert "per-step bound ||W_hh|| max|f'| = 1.5" in capsys.readouterr().out
    doc = json.loads(out.read_text())
    meta = doc["meta"]
    assert (meta["source"], meta["init"], meta["recurrent_scale"], meta["text"]) == ("init", "orthogonal", 1.5,
                                                                                    "random:50")
    # Orthogonal W_hh times 1.5: every singular value is 1.5, and tanh' <= 1 keeps each lag under 1.5^d.
    assert meta["norm_Whh"][0] == pytest.approx(1.5) and meta["bound_per_step"][0] == pytest.approx(1.5)
    med = doc["curves"]["layer0"]["h"]["spectral"]["median"]
    assert all(0 < m <= 1.5 ** d * (1 + 1e-9) for d, m in zip(range(1, 7), med))
    # Tokens from a corpus split; a corpus the user named that cannot be found is an error (random tokens
    # stand in only for the default corpus: test_ux_fixes2).
    assert main(["jacobian", "--init", "--cell", "gru", "--hidden", "6", "--corpus", str(text), "--max-vocab", "300",
                 "--valid-fraction", "0.1", "--test-fraction", "0.1", "--max-lag", "5", "--anchors", "2",
                 "--tokens", "30", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["meta"]["text"] == f"{text}:valid"
    capsys.readouterr()
    assert main(["jacobian", "--init", "--hidden", "6", "--corpus", str(tmp_path / "nowhere"), "--max-lag", "5",
                 "--anchors", "2", "--tokens", "30", "--vocab-size", "20", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: corpus ") and "nowhere" in err and "random tokens" not in err
    assert json.loads(out.read_text())["meta"]["text"] == f"{text}:valid"     # the earlier file, untouched


@pytest.fixture
def not_a_curve(tmp_path):
    p = tmp_path / "other.json"
    p.write_text(json.dumps({"probe": "agreement"}))
    return p


@pytest.mark.parametrize("argv", [
    ["jacobian", "{tmp}/missing"],
    ["jacobian"],
    ["jacobian", "{plain}", "--init"],
    ["jacobian", "{plain}", "--max-lag", "0"],
    ["jacobian", "{plain}", "--max-lag", "50", "--tokens", "20"],
    ["jacobian", "--init", "--cell", "rnn", "--activation", "cosh", "--corpus", "none"],
    ["plot", "lag", "{tmp}/missing.json"],
    ["plot", "lag", "{other}"],
    ["plot", "lag", "{plain}"],
    ["plot", "lag", "{plain}", "--over-training"],
    ["plot", "lag", "{curve}", "--labels", "a,b"],
    ["plot", "lag", "{curve}", "--quantity", "c"],
    ["plot", "lag", "{curve}", "--scope", "layer3"],
    ["plot", "training", "{tmp}/missing"],
])
def test_bad_inputs_exit_2_with_one_line(argv, runs, tmp_path, not_a_curve, capsys):
    plain, _ = runs
    curve = tmp_path / "rnn.json"
    curve.write_text(json.dumps(_doc("rnn")))
    argv = [a.format(tmp=tmp_path, plain=plain, other=not_a_curve, curve=curve) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
