"""What the figures say: labels, titles, legends, bounds and their clipping, read back from the
matplotlib Figures that plotlag.draw_lag and plotruns.draw_* return; where the commands write; the small lies of issue 14.

Run folders here are written by hand (config.json + metrics.jsonl, or an untrained model saved as a
checkpoint), so nothing trains and every test is quick.
"""
import dataclasses
import json
import math
import os

import numpy as np
import pytest

from rnnlm import jacobian as jac
from rnnlm import plotlag, plotruns, plots
from rnnlm.cli import build_parser, main
from rnnlm.config import ModelConfig, TrainConfig, config_to_dict, parse_activation
from rnnlm.model import RNNModel


# ---------------------------------------------------------------- helpers


def _doc(cell, activation="tanh", scale=1.0, init="orthogonal", max_lag=8, hidden=5, tokens=40):
    cfg = ModelConfig(vocab_size=11, cell=cell, activation=activation, emsize=4, hidden=hidden, init=init,
                      recurrent_scale=scale, dtype="float64")
    toks = np.random.default_rng(0).integers(0, 11, tokens)
    doc = jac.lag_curve(RNNModel(cfg, seed=0), toks, max_lag=max_lag, anchors=4, rng=np.random.default_rng(0),
                        per_step=False)
    doc["meta"].update(source="init", seed=0, text="random:11")
    return doc


def _texts(fig) -> str:
    """Every text of a figure (titles, axis labels, legend entries, annotations), one per line."""
    out = [t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text") and callable(a.get_text))]
    return "\n".join(t for t in out if t)


def _legend(ax) -> list[str]:
    leg = ax.get_legend()
    return [t.get_text() for t in leg.get_texts()] if leg else []


def _title(fig) -> str:
    sup = fig._suptitle.get_text() if fig._suptitle is not None else ""
    return sup + "\n" + "\n".join(ax.get_title() for ax in fig.axes)


def _lines(ax, contains):
    return [ln for ln in ax.get_lines() if contains in (ln.get_label() or "")]


def _titles_inside(fig):
    """No title is cut off: every title's drawn box lies inside the figure."""
    fig.canvas.draw()
    box = fig.bbox
    titles = [ax.title for ax in fig.axes] + ([fig._suptitle] if fig._suptitle is not None else [])
    for t in titles:
        if not t.get_text():
            continue
        ext = t.get_window_extent()
        assert ext.x0 >= box.x0 - 1 and ext.x1 <= box.x1 + 1 and ext.y1 <= box.y1 + 1, t.get_text()


def _close(fig):
    import matplotlib.pyplot as plt
    plt.close(fig)


def _fake_run(folder, cell="rnn", activation="tanh", clip_norm=0.25, scale=3.0, init="orthogonal",
              losses=(5.0, 9.0, 40.0), norms=(1.0, 30.0, 2000.0), val_ppl=None, jacobian_docs=()):
    """A run folder as train leaves it, written by hand: config.json and metrics.jsonl."""
    folder.mkdir(parents=True, exist_ok=True)
    cfg = TrainConfig(model=ModelConfig(cell=cell, activation=activation, init=init, recurrent_scale=scale,
                                        hidden=16, emsize=16),
                      clip_norm=clip_norm, optimizer="sgd", lr=5.0, seed=7, log_every=1)
    (folder / "config.json").write_text(json.dumps({"train": config_to_dict(cfg)}))
    events = []
    for k, (loss, g) in enumerate(zip(losses, norms), start=1):
        events.append({"type": "step", "step": k, "loss": loss, "loss_avg": loss, "grad_norm": g,
                       "clipped": bool(clip_norm and g > clip_norm), "lr": 5.0})
    if val_ppl is not None:
        events.append({"type": "eval", "split": "valid", "step": len(losses), "val_loss": math.log(val_ppl),
                       "val_ppl": val_ppl})
    for k, doc in enumerate(jacobian_docs):
        events.append({"type": "jacobian", "step": 5 * k, "meta": {**doc["meta"], "tokens": 40},
                       "curves": doc["curves"]})
    (folder / "metrics.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    return folder


# ---------------------------------------------------------------- legend entries


def test_two_lag_curves_differing_only_in_h_get_different_legend_entries():
    docs = [_doc("lstm", hidden=32), _doc("lstm", hidden=64)]
    for d in docs:
        d["meta"]["clip"] = "clip-norm 0.25"
    fig = plotlag.draw_lag(docs, None)
    assert _legend(fig.axes[0]) == ["lstm, init orthogonal, W_hh ×1, clip-norm 0.25, H=32 [state]",
                                    "lstm, init orthogonal, W_hh ×1, clip-norm 0.25, H=64 [state]"]
    _close(fig)
    # what every curve shares stays out of the entries (the subtitle has it): one curve, no H
    assert plotlag.lag_labels(docs[:1]) == ["lstm, init orthogonal, W_hh ×1, clip-norm 0.25"]
    # every setting that differs is named, in the same order on every entry
    other = _doc("lstm", hidden=64)
    other["meta"].update(clip="clip-norm 0.25", seed=5, text="machado:valid")
    assert plotlag.lag_labels([docs[0], other]) == [
        "lstm, init orthogonal, W_hh ×1, clip-norm 0.25, H=32, seed 0, on random:11",
        "lstm, init orthogonal, W_hh ×1, clip-norm 0.25, H=64, seed 5, on machado:valid"]


def test_lag_curves_that_differ_in_no_recorded_setting_are_told_apart_by_run_name(tmp_path):
    doc = _doc("gru")
    runs = [_fake_run(tmp_path / name, cell="gru") for name in ("first", "second")]
    for run in runs:
        (run / "jacobian.json").write_text(json.dumps(doc))
    fig = plotlag.draw_lag(runs, None)
    assert _legend(fig.axes[0]) == ["gru, init orthogonal, W_hh ×1, at init (first) [h]",
                                    "gru, init orthogonal, W_hh ×1, at init (second) [h]"]
    _close(fig)
    # a JSON file inside a run folder: the run and the file; documents passed as dicts: their place
    fig = plotlag.draw_lag([runs[0] / "jacobian.json", doc], None)
    assert _legend(fig.axes[0]) == ["gru, init orthogonal, W_hh ×1, at init (first/jacobian) [h]",
                                    "gru, init orthogonal, W_hh ×1, at init (curve 2) [h]"]
    _close(fig)
    assert plotlag.lag_labels([doc, doc]) == ["gru, init orthogonal, W_hh ×1, at init (curve 1)",
                                            "gru, init orthogonal, W_hh ×1, at init (curve 2)"]
    # labels given by the caller are kept as they are (with the quantity, as before)
    fig = plotlag.draw_lag([doc, doc], ["a", "b"])
    assert _legend(fig.axes[0]) == ["a [h]", "b [h]"]
    _close(fig)


# ---------------------------------------------------------------- bounds


def test_spectral_bound_is_drawn_with_the_spectral_norm_only():
    doc = _doc("rnn", scale=1.5)
    fig = plotlag.draw_lag([doc], None, norm="spectral", bound=True)
    ax = fig.axes[0]
    (b,) = _lines(ax, "bound")
    assert b.get_label().startswith("bound (‖W_hh‖·max|f′|)^d = 1.5^d")
    assert "Frobenius" not in b.get_label()
    lags = np.asarray(b.get_xdata(), float)
    y = np.asarray(b.get_ydata(), float)
    drawn = np.isfinite(y)
    np.testing.assert_allclose(y[drawn], 1.5 ** lags[drawn], rtol=1e-12)
    _close(fig)


def test_frobenius_bound_is_sqrt_h_times_the_spectral_one_and_says_so():
    doc = _doc("rnn", scale=1.5, hidden=5)
    fig = plotlag.draw_lag([doc], None, norm="frobenius", bound=True)
    ax = fig.axes[0]
    (b,) = _lines(ax, "bound")
    assert b.get_label().startswith("Frobenius bound √H·(‖W_hh‖·max|f′|)^d = √5·1.5^d")
    lags = np.asarray(b.get_xdata(), float)
    y = np.asarray(b.get_ydata(), float)
    drawn = np.isfinite(y)
    np.testing.assert_allclose(y[drawn], math.sqrt(5) * 1.5 ** lags[drawn], rtol=1e-12)
    # and it does bound what is drawn: every measured Frobenius median lies under it
    med = np.asarray(doc["curves"]["layer0"]["h"]["frobenius"]["median"], float)
    assert np.all(med <= math.sqrt(5) * 1.5 ** lags * (1 + 1e-9))
    _close(fig)


def test_no_bound_for_the_flow_or_for_gated_cells_and_the_legend_says_why():
    fig = plotlag.draw_lag([_doc("rnn", scale=1.5)], None, flow=True, bound=True)
    assert not _lines(fig.axes[0], "bound (")
    assert any("no bound drawn" in t for t in _legend(fig.axes[0]))
    _close(fig)
    fig = plotlag.draw_lag([_doc("gru"), _doc("rnn")], None, bound=True)
    assert len(_lines(fig.axes[0], "bound (")) == 1
    assert any(t.startswith("no bound drawn for gru") for t in _legend(fig.axes[0]))
    _close(fig)


def test_a_huge_bound_is_cut_at_the_data_range_and_the_legend_says_so():
    doc = _doc("rnn", scale=3.0, max_lag=60, tokens=120)       # 3^60 = 4e28
    fig = plotlag.draw_lag([doc], None, bound=True)
    ax = fig.axes[0]
    (b,) = _lines(ax, "bound")
    assert "cut at the data's range" in b.get_label() and "4.2e+28 at d = 60" in b.get_label()
    s = doc["curves"]["layer0"]["h"]["spectral"]
    top = max(v for v in s["p90"] + s["median"] if v)
    y = np.asarray(b.get_ydata(), float)
    assert np.nanmax(y) <= 10 * top * (1 + 1e-9)
    assert np.isnan(y[-1])                                     # the end of the bound is not drawn
    assert ax.get_ylim()[1] <= 10 ** 1.2 * top * (1 + 1e-9)
    _close(fig)
    # a bound within the data's range is drawn whole and not called cut
    fig = plotlag.draw_lag([_doc("rnn", scale=1.0)], None, bound=True)
    (b,) = _lines(fig.axes[0], "bound")
    assert "cut" not in b.get_label() and np.all(np.isfinite(b.get_ydata()))
    _close(fig)


# ---------------------------------------------------------------- labels and titles


def test_y_label_names_the_jacobian_of_the_cells_drawn():
    for cells, want, not_want in ((["rnn", "gru"], "∂h(t)/∂h(t−d)", "(h,c)"),
                                  (["lstm"], "∂(h,c)(t)/∂(h,c)(t−d)", "∂h(t)/∂h(t−d)")):
        fig = plotlag.draw_lag([_doc(c) for c in cells], None)
        label = fig.axes[0].get_ylabel().replace("\n", " ")
        assert want in label and not_want not in label, label
        _close(fig)
    fig = plotlag.draw_lag([_doc("rnn"), _doc("lstm")], None)
    label = fig.axes[0].get_ylabel().replace("\n", " ")
    assert "∂h(t)/∂h(t−d) (rnn)" in label and "∂(h,c)(t)/∂(h,c)(t−d) (lstm)" in label
    _close(fig)


def test_lag_figure_states_every_setting_and_the_anchors():
    docs = [_doc("rnn", "relu", 1.5), _doc("rnn", "lecun-tanh", 0.5)]
    fig = plotlag.draw_lag(docs, ["a", "b"], title="my title")
    title = _title(fig).replace("\n", " ")
    for want in ("my title", "cell rnn relu / rnn lecun-tanh", "init orthogonal", "W_hh ×1.5 / 0.5",
                 "at init (no training)", "4 anchors × 40 tokens of random:11", "seed 0", "H=5"):
        assert want in title, (want, title)
    _titles_inside(fig)
    _close(fig)


def test_lecun_tanh_is_one_name_for_one_thing():
    a, b = parse_activation("lecun-tanh"), parse_activation("scaled-tanh:1.7159,0.6667")
    assert (a.kind, a.a, a.b) == (b.kind, b.a, b.b) == (0, 1.7159, 0.6667)
    assert plots.activation_label("scaled-tanh:1.7159,0.6667") == "lecun-tanh" == plots.activation_label("lecun-tanh")
    assert plots.activation_label("scaled-tanh:1.7,0.6") == "scaled-tanh:1.7,0.6"
    x = np.random.default_rng(0).integers(0, 11, (6, 2)).astype(np.int32)
    h = [RNNModel(ModelConfig(vocab_size=11, cell="rnn", activation=act, emsize=4, hidden=5, dtype="float64"),
                  seed=0).forward_states(x).hs[0] for act in ("lecun-tanh", "scaled-tanh:1.7159,0.6667")]
    np.testing.assert_array_equal(h[0], h[1])
    ModelConfig(cell="rnn", activation="lecun-tanh").validate(need_vocab=False)


def test_help_texts_read_the_same_in_train_and_jacobian():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices

    def help_of(command, flag):
        return next(a.help for a in sub[command]._actions if flag in a.option_strings)
    for flag in ("--recurrent-scale", "--activation"):
        assert help_of("train", flag) == help_of("jacobian", flag)
    assert "lecun-tanh" in help_of("train", "--activation")
    g = {a.dest: a.help for a in sub["gradcheck"]._actions}
    for dest, default in (("cell", "all"), ("activation", "tanh"), ("layers", "1"), ("dropout", "0"),
                          ("seed", "0")):
        assert f"default {default}" in g[dest], (dest, g[dest])


def test_fmt_ppl_uses_scientific_notation_for_exploded_runs():
    assert plotruns.fmt_ppl(82.4812) == "82.48"
    assert plotruns.fmt_ppl(1.7e9) == "1.70e+09"
    assert plotruns.fmt_ppl(math.exp(80)) == "5.54e+34"
    assert plotruns.fmt_ppl(float("inf")) == "inf"
    assert plotruns.fmt_ppl(None) == "n/a"


# ---------------------------------------------------------------- run figures


def test_training_figure_titles_settings_and_exploded_perplexity(tmp_path):
    run = _fake_run(tmp_path / "boom", val_ppl=math.exp(80))
    fig = plotruns.draw_training(run)
    title = _title(fig).replace("\n", " ")
    for want in ("rnn tanh", "init orthogonal", "W_hh ×3", "clip-norm 0.25", "seed 7", "sgd lr 5"):
        assert want in title, (want, title)
    legend = _legend(fig.axes[0])
    assert "validation (last perplexity 5.54e+34)" in legend
    assert any(t == "clip threshold 0.25" for t in _legend(fig.axes[1]))
    _titles_inside(fig)
    _close(fig)


def test_over_training_figure_states_anchors_and_seed(tmp_path):
    run = _fake_run(tmp_path / "tracked", cell="gru", jacobian_docs=[_doc("gru"), _doc("gru")])
    fig = plotruns.draw_lag_over_training(run)
    title = _title(fig).replace("\n", " ")
    for want in ("cell gru", "init orthogonal", "W_hh ×3", "clip-norm 0.25", "4 anchors × 40 tokens",
                 "2 recorded steps", "seed 7"):
        assert want in title, (want, title)
    assert "(h,c)" not in fig.axes[0].get_ylabel()
    _titles_inside(fig)
    _close(fig)


def test_explosion_figure_has_a_line_at_the_clip_threshold(tmp_path):
    a = _fake_run(tmp_path / "noclip", clip_norm=0.0)
    b = _fake_run(tmp_path / "clip", clip_norm=0.25, losses=(5.0, 4.9, 4.8), norms=(1.0, 3.0, 0.2))
    fig = plotruns.draw_explosion(a, b, "rnn tanh, W_hh ×3: no clipping vs --clip-norm 0.25")
    ax_norm = fig.axes[1]
    (line,) = _lines(ax_norm, "clip threshold")
    assert line.get_label().startswith("clip threshold 0.25") and list(line.get_ydata()) == [0.25, 0.25]
    title = _title(fig).replace("\n", " ")
    for want in ("rnn tanh", "init orthogonal", "W_hh ×3", "no clipping / clip-norm 0.25", "seed 7"):
        assert want in title, (want, title)
    _titles_inside(fig)
    _close(fig)


def test_factor_summary_keeps_lstm_and_gru_apart():
    results = {"rnn-tanh-x0.5": {"gain": 0.5, "factor_per_step": 0.5},
               "rnn-tanh-x1": {"gain": 1.0, "factor_per_step": 0.97},
               "lstm": {"factor_per_step": 0.749}, "gru": {"factor_per_step": 0.75}}
    fig = plotruns.draw_factor_summary(results, ["tanh"], (0.5, 1.0, 2.0))
    ax = fig.axes[0]
    lstm, = _lines(ax, "lstm")
    gru, = _lines(ax, "gru")
    assert lstm.get_label() == "lstm, W_hh ×1 (no such bound; drawn across): 0.749 per step"
    assert gru.get_label() == "gru, W_hh ×1 (no such bound; drawn across): 0.75 per step"
    assert lstm.get_color() != gru.get_color() and lstm.get_marker() != gru.get_marker()
    assert not np.allclose(lstm.get_xdata(), gru.get_xdata())      # offset: neither marker hides the other
    assert "init orthogonal" in _title(fig) and "no clipping" in _title(fig)
    _titles_inside(fig)
    _close(fig)


def test_factor_summary_keeps_tanh_and_lecun_tanh_apart():
    # the two share every bound and nearly every factor: the same marker would hide one under the other
    results = {f"rnn-{a}-x{g}": {"gain": g, "factor_per_step": f} for a in ("tanh", "lecun-tanh")
               for g, f in ((0.5, 0.5), (1.0, 0.97), (2.0, 1.19))}
    fig = plotruns.draw_factor_summary(results, ["tanh", "lecun-tanh"], (0.5, 1.0, 2.0))
    ax = fig.axes[0]
    tanh = [ln for ln in ax.get_lines() if ln.get_label() == "rnn tanh"][0]
    lecun = [ln for ln in ax.get_lines() if ln.get_label().startswith("rnn lecun")][0]
    assert tanh.get_marker() != lecun.get_marker() and tanh.get_linestyle() != lecun.get_linestyle()
    assert lecun.get_fillstyle() == "none" and tanh.get_markersize() > lecun.get_markersize()
    _close(fig)


# ---------------------------------------------------------------- probes


def _probe_run(tmp_path, name="run"):
    """An untrained GRU saved like a training run (as test_probes does), on a tiny sintetico text."""
    from rnnlm import checkpoint, fileio
    from rnnlm import sintetico as S
    from rnnlm.data import DataConfig, load_corpus

    text = tmp_path / "text.txt"
    if not text.exists():
        sents = S.generate_sentences(300, np.random.default_rng(0), 1, 6)
        text.write_text("".join(s.text + "\n\n" for s in sents), encoding="utf-8")
    data = DataConfig(corpus=str(text), use_cache=False)
    corpus = load_corpus(data)
    mcfg = ModelConfig(vocab_size=len(corpus.vocab), cell="gru", emsize=8, hidden=8, init="orthogonal")
    model = RNNModel(mcfg, seed=0)
    info = {"train": config_to_dict(TrainConfig(data=data, model=dataclasses.replace(mcfg, vocab_size=None),
                                                clip_norm=0.5, seed=3)),
            "model": dataclasses.asdict(mcfg), "corpus": {"checksum": corpus.checksum}}
    run = tmp_path / name
    run.mkdir()
    fileio.atomic_write_json(run / "config.json", info)
    fileio.atomic_write_json(run / "vocab.json", corpus.vocab.to_json())
    checkpoint.save(run / "model.npz", model.state_dict(), config=info, vocab=corpus.vocab.to_json())
    return run


@pytest.fixture(scope="module")
def probe_run(tmp_path_factory):
    return _probe_run(tmp_path_factory.mktemp("probe"))


def test_probe_figures_state_the_model_and_the_pairs(probe_run, tmp_path):
    a = tmp_path / "agr.json"
    c = tmp_path / "ctx.json"
    assert main(["probe", "agreement", str(probe_run), "--distances", "1..3", "--n", "6", "--out", str(a),
                 "--checkpoint", "latest"]) == 0
    assert main(["probe", "context", str(probe_run), "--distances", "1,2,5", "--n-targets", "10",
                 "--window", "12", "--split", "valid", "--out", str(c), "--checkpoint", "latest"]) == 0
    fig = plotruns.draw_probe([a])
    title = _title(fig).replace("\n", " ")
    for want in ("cell gru", "init orthogonal", "W_hh ×1", "clip-norm 0.5", "6 pairs per distance",
                 "probe seed 0"):
        assert want in title, (want, title)
    _titles_inside(fig)
    _close(fig)
    fig = plotruns.draw_probe([c])
    title = _title(fig).replace("\n", " ")
    assert "10 targets" in title and "clip-norm 0.5" in title
    # log-scaled d with plain tick labels: the distances themselves
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["1", "2", "5"]
    _titles_inside(fig)
    _close(fig)


def test_plot_probe_is_named_after_the_data_not_after_kind(probe_run, tmp_path):
    c = probe_run / "probe-context-shuffle.json"
    assert main(["probe", "context", str(probe_run), "--distances", "1,2", "--n-targets", "8", "--window", "10",
                 "--split", "valid", "--checkpoint", "latest"]) == 0
    assert c.exists()
    # a context file with the default --kind (agreement): the figure is the context one, named so
    assert main(["plot", "probe", str(c)]) == 0
    plots = probe_run / "plots"
    assert (plots / "probe-context.png").exists() and not (plots / "probe-agreement.png").exists()


# ---------------------------------------------------------------- where things go and small lies


def test_jacobian_init_files_are_named_by_their_settings(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    common = ["jacobian", "--init", "--cell", "rnn", "--corpus", "none", "--vocab-size", "20", "--max-lag", "4",
              "--anchors", "2", "--tokens", "20"]
    assert main(common + ["--hidden", "6"]) == 0
    assert main(common + ["--hidden", "7", "--recurrent-scale", "1.5", "--init", "orthogonal"]) == 0
    files = sorted(p.name for p in (tmp_path / "runs" / "jacobian-init").iterdir())
    assert files == ["rnn-tanh-default-x1-H6-E256-L1-random20-20tok-D4-K2-seed0.json",
                     "rnn-tanh-orthogonal-x1.5-H7-E256-L1-random20-20tok-D4-K2-seed0.json"]
    assert os.listdir(tmp_path) == ["runs"]


def test_generate_says_which_checkpoint_it_read(probe_run, capsys):
    assert main(["generate", str(probe_run), "--words", "3"]) == 0
    err = capsys.readouterr().err
    assert f"checkpoint: {probe_run / 'model.npz'} (no best.npz: no validation has run yet)" in err
    assert main(["generate", str(probe_run), "--words", "3", "--checkpoint", "latest"]) == 0
    err = capsys.readouterr().err
    assert f"checkpoint: {probe_run / 'model.npz'}\n" in err and "no best.npz" not in err
    assert main(["evaluate", str(probe_run)]) == 0          # evaluate says the same
    assert f"checkpoint: {probe_run / 'model.npz'} (no best.npz: no validation has run yet)\n" in \
        capsys.readouterr().out


def test_commands_that_read_a_run_leave_the_current_folder_empty(tmp_path_factory, monkeypatch):
    """The README's rule: a command that reads a run writes into that run's folder; one that reads
    no run writes under runs/; nothing lands loose in the current folder."""
    root = tmp_path_factory.mktemp("where")
    run = _probe_run(root)
    tracked = _fake_run(root / "tracked", cell="rnn", jacobian_docs=[_doc("rnn")])
    loose = root / "loose"
    loose.mkdir()
    curve = loose / "curve.json"
    curve.write_text(json.dumps(_doc("rnn")))
    cwd = tmp_path_factory.mktemp("cwd")
    monkeypatch.chdir(cwd)
    reads_a_run = [
        ["jacobian", str(run), "--max-lag", "3", "--anchors", "2", "--tokens", "12", "--checkpoint", "latest"],
        ["plot", "lag", str(run)],
        ["plot", "lag", str(run / "jacobian.json"), "--bound"],
        ["plot", "lag", str(tracked), "--over-training"],
        ["plot", "training", str(tracked)],
        ["probe", "agreement", str(run), "--distances", "1..2", "--n", "4", "--checkpoint", "latest"],
        ["probe", "context", str(run), "--distances", "1,2", "--n-targets", "6", "--window", "8",
         "--split", "valid", "--checkpoint", "latest"],
        ["plot", "probe", str(run)],
        ["plot", "probe", str(run), "--kind", "context"],
        ["generate", str(run), "--words", "2", "--checkpoint", "latest"],
    ]
    for argv in reads_a_run:
        assert main(argv) == 0, argv
        assert os.listdir(cwd) == [], (argv, os.listdir(cwd))
    assert (run / "jacobian.json").exists() and (run / "plots" / "lag-auto-spectral-layer0.png").exists()
    assert (run / "plots" / "lag-auto-spectral-layer0-bound.png").exists()     # (--bound; jacobian.json is the run)
    assert (tracked / "plots" / "training.png").exists()
    assert (run / "plots" / "probe-agreement.png").exists() and (run / "plots" / "probe-context.png").exists()
    reads_no_run = [
        ["jacobian", "--init", "--cell", "gru", "--hidden", "4", "--corpus", "none", "--vocab-size", "9",
         "--max-lag", "3", "--anchors", "2", "--tokens", "12"],
        ["plot", "lag", str(curve)],
    ]
    for argv in reads_no_run:
        assert main(argv) == 0, argv
        assert os.listdir(cwd) == ["runs"], (argv, os.listdir(cwd))
    assert sorted(os.listdir(cwd / "runs")) == ["jacobian-init", "plots"]
    assert sorted(os.listdir(cwd / "runs" / "plots")) == ["curve-lag-auto-spectral-layer0.png",
                                                         "curve-lag-auto-spectral-layer0.svg"]
    assert os.listdir(loose) == ["curve.json"]


def test_agreement_report_prints_a_dash_for_an_empty_cell():
    from rnnlm.probereport import format_agreement
    empty = {"n": 0, "correct": 0.0, "accuracy": None, "ci": [0.0, 1.0]}
    full = {"n": 4, "correct": 3.0, "accuracy": 0.75, "ci": [0.3, 0.95]}
    res = {"feature": "number", "pairs": 4, "coverage": 1.0, "chance_at": None,
           "by_distance": [{"distance": 1, **full, "attractor": empty, "no_attractor": full}],
           "overall": full, "attractor": empty, "no_attractor": full}
    lines = format_agreement(res).splitlines()
    assert lines[2].split()[:4] == ["1", "4", "0.750", "[0.300,"] and "    -" in lines[2]
    assert lines[3].startswith(" all     4  0.750 [0.300, 0.950]") and "    -" in lines[3]


def test_jacobian_init_names_differ_by_corpus_settings():
    import dataclasses

    from rnnlm.config import DataConfig, JacobianConfig, ModelConfig
    from rnnlm.jacobianrun import init_name
    c = JacobianConfig(model=ModelConfig(cell="rnn", init="orthogonal", recurrent_scale=1.5, hidden=16, emsize=16),
                       data=DataConfig(corpus="sintetico", max_vocab=300))
    assert init_name(c) != init_name(dataclasses.replace(c, data=DataConfig(corpus="sintetico")))
    assert "-V300-" in init_name(c)


def test_context_figure_explains_its_dotted_lines(tmp_path):
    # a caller's own title (demo longrange's) drops the default title's "dotted: effective context":
    # the legend must say what the dotted lines are, and each curve's label its effective context
    def probe(name, ec):
        rows = [{"distance": d, "n": 10, "mean_increase": m, "sem": 0.01, "ci": [m - 0.02, m + 0.02],
                 "within_noise": m < 0.01} for d, m in ((1, 2.0), (2, 0.8), (5, 0.1), (10, 0.0))]
        p = tmp_path / name / "probe-context-shuffle.json"
        p.parent.mkdir()
        p.write_text(json.dumps({"run": str(p.parent), "cell": "rnn", "probe": "context", "mode": "shuffle",
                                 "window": 20, "seed": 0, "n_targets": 10, "results": rows,
                                 "effective_context": ec, "model": {"cell": "rnn"}}))
        return p
    fig = plotruns.draw_probe([probe("a", 5), probe("b", None)], title="Loss increase when context is shuffled")
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert any(t.startswith("dotted: effective context") for t in labels), labels
    assert any(t.endswith("effective context 5") for t in labels) and any(t.endswith("effective context > 10")
                                                                           for t in labels), labels
    _close(fig)
