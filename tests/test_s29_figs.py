"""A new user's figure defects: a comparison of lag curves written over a run's own lag figure, a
subtitle whose 'H=64 / 32' maps onto none of three curves and a legend cut at the figure's edge, a
training figure that speaks of clipping for an unclipped run, log axes not said to be log and a best
validation loss under the lowest label, a sweep title without the learning rate, a learnability figure
that reads its evaluation interval as a speed, lstm and gru lines drawn over each other, and a title
broken mid-phrase."""
import json
import math
from pathlib import Path

import pytest

from rnnlm import plotlag, plotruns, plots
from rnnlm.cli import main

from test_plots_figures import _close, _doc, _fake_run, _legend
from test_study_ux3 import _draw

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


# ---------------------------------------------------------------- 1. a comparison's own file name


def _run_with_curve(folder, cell="gru", **kw):
    run = _fake_run(folder, cell=cell)
    (run / "jacobian.json").write_text(json.dumps(_doc(cell, **kw)))
    return run


def test_a_comparison_of_several_lag_inputs_never_takes_the_single_runs_file_name(tmp_path, capsys):
    a = _run_with_curve(tmp_path / "a")
    b = _run_with_curve(tmp_path / "b", hidden=7)
    loose = tmp_path / "loose"
    loose.mkdir()
    (loose / "init.json").write_text(json.dumps(_doc("rnn")))
    assert main(["plot", "lag", str(a)]) == 0
    single = a / "plots" / "lag-auto-spectral-layer0.png"
    assert capsys.readouterr().out.strip() == f"wrote {single} (and .svg)"
    before = single.read_bytes()
    assert main(["plot", "lag", str(a), str(b), str(loose / "init.json")]) == 0
    compare = a / "plots" / "lag-compare-a+b+init-auto-spectral-layer0.png"
    assert capsys.readouterr().out.strip() == f"wrote {compare} (and .svg)"
    assert compare.is_file() and compare.with_suffix(".svg").is_file()
    assert single.read_bytes() == before                     # the run's own figure is left as it was
    # another set of inputs, another name; a long list of names: the first, how many more and a hash
    assert main(["plot", "lag", str(a), str(b), "--norm", "frobenius"]) == 0
    assert capsys.readouterr().out.strip().endswith("plots/lag-compare-a+b-auto-frobenius-layer0.png (and .svg)")
    from rnnlm.cliinstruments import compare_key
    long = [tmp_path / ("x" * 30 + str(k)) for k in range(3)]
    key = compare_key(long)
    assert key.startswith("x" * 30 + "+2-more-") and len(key) == 30 + len("+2-more-") + 8
    assert compare_key(long) == key and compare_key(long[:2] + long[:1]) != key
    # the README's table of where things go names it
    assert "`lag-compare-<A>+<B>...-<what>.png`" in README


# ---------------------------------------------------------------- 2. lag comparison: subtitle and legend


def test_a_lag_comparison_says_each_curves_settings_in_its_entry_and_only_shared_ones_above():
    docs = [_doc("lstm", hidden=6, init="default"), _doc("rnn", hidden=4, init="default"),
            _doc("rnn", hidden=6, init="orthogonal", scale=1.5)]
    fig = plotlag.draw_lag(docs, None)
    ax = fig.axes[0]
    title = " ".join(ax.get_title().split("\n"))
    assert " / " not in title, title                            # nothing listed that maps onto no curve
    assert "init default" not in title and "H=" not in title and "cell " not in title
    assert "median over 4 anchors × 40 tokens of random:11, seed 0" in title     # what they share stays
    assert "each curve's other settings in its legend entry" in title
    entries = _legend(ax)
    assert [("init default" in e, "H=6" in e, "H=4" in e) for e in entries] == [
        (True, True, False), (True, False, True), (False, True, False)]
    _close(fig)
    # labels of the caller's own carry no settings: the subtitle still lists each curve's
    fig = plotlag.draw_lag(docs, ["one", "two", "three"])
    assert "init default / orthogonal" in fig.axes[0].get_title()
    _close(fig)


def test_a_lag_comparison_legend_fits_inside_the_figure():
    docs = []
    for k, (cell, hidden) in enumerate((("lstm", 6), ("rnn", 4), ("rnn", 6))):
        d = _doc(cell, hidden=hidden)
        d["meta"].update(seed=k, text=f"/some/path/to/corpus-{k}/a-long-file-name-{k}-of-a-corpus-of-many-long-names.txt:valid",
                         anchors=4 + k, tokens=40 + k, clip="clip-norm 0.25", step=1000 * k)
        docs.append(d)
    fig = plotlag.draw_lag(docs, None)
    ax = fig.axes[0]
    assert max(len(e) for e in _legend(ax)) > 170                # entries wider than the figure was
    fig.canvas.draw()
    box, legend = fig.bbox, ax.get_legend().get_window_extent()
    assert legend.x0 >= box.x0 and legend.x1 <= box.x1 and legend.y0 >= box.y0, (legend, box)
    assert ax.bbox.width >= 0.7 * box.width                      # by breaking the entries, not squeezing the axes
    assert all(len(line) <= plots.NOTE_WIDTH for e in _legend(ax) for line in e.split("\n"))
    assert "clip-norm 0.25" in _legend(ax)[0]                   # broken at spaces only
    _close(fig)


# ---------------------------------------------------------------- 3. the training figure


def _ylabels(fig):
    return [" ".join(ax.get_ylabel().split("\n")) for ax in fig.axes[:3]]


def test_an_unclipped_runs_gradient_is_not_said_to_be_before_clipping(tmp_path):
    fig = plotruns.draw_training(_fake_run(tmp_path / "noclip", clip_norm=0.0))
    entries = _legend(fig.axes[1])
    assert entries == ["gradient L2 norm (no clipping)"]
    assert not any("clip" in e and "no clipping" not in e for ax in fig.axes for e in _legend(ax))
    _close(fig)
    fig = plotruns.draw_training(_fake_run(tmp_path / "clip", clip_norm=0.25))
    assert _legend(fig.axes[1])[0] == "gradient L2 norm before clipping"
    _close(fig)


def test_the_training_figures_log_axes_say_log_scale(tmp_path):
    fig = plotruns.draw_training(_fake_run(tmp_path / "r"))
    labels = _ylabels(fig)
    assert [ax.get_yscale() for ax in fig.axes[:3]] == ["log", "log", "log"]
    assert all("log scale" in lab for lab in labels), labels
    assert labels[0] == "cross-entropy, log scale (nats/token; perplexity = e^loss)"   # which axis is log: plain
    _close(fig)


def test_the_best_validation_loss_is_starred_and_written_in_the_legend(tmp_path):
    # a diverging run: validation 90, 89, 43.96, 140 nats; the loss axis is labelled 60 80 100 140, and the
    # best point sat under the lowest label with no value to read; written next to its point, the value
    # covered the curves: it is in the legend, above the axes
    run = _fake_run(tmp_path / "x1", clip_norm=0.0, losses=[145.0, 137.0, 104.0, 105.0, 82.0, 93.0, 84.0, 91.0],
                    norms=[20.0, 1.8, 1.3, 1.3, 9.5, 3.8, 12.0, 3.1])
    with open(run / "metrics.jsonl", "a") as f:
        for step, loss in ((2, 90.0), (4, 89.0), (6, 43.96), (8, 140.0)):
            f.write(json.dumps({"type": "eval", "split": "valid", "step": step, "val_loss": loss,
                                "val_ppl": math.exp(loss)}) + "\n")
    fig = plotruns.draw_training(run)
    ax = fig.axes[0]
    assert not [t for t in ax.texts if t.get_gid() == "best-validation"]
    (star,) = [ln for ln in ax.lines if ln.get_gid() == "best-validation"]
    assert (list(star.get_xdata()), list(star.get_ydata())) == ([6], [43.96])
    expected = "best validation 43.96 nats (perplexity 1.23e+19) at step 6"
    assert star.get_label() == expected
    assert expected in [t.get_text() for t in ax.get_legend().get_texts()]
    # the loss axis's labels keep their one precision (the change of tick_labels stays)
    labels = [t.get_text() for t in ax.yaxis.get_ticklabels() if t.get_text()]
    assert labels and min(float(t) for t in labels) > 43.96      # the case the star's entry is for
    _close(fig)


# ---------------------------------------------------------------- 4. the sweep figure's fixed settings


def _sweep_title(tmp_path, monkeypatch, lr, optimizer="sgd"):
    from rnnlm import sweepplot
    folder = tmp_path / f"s-{lr}-{optimizer}"
    folder.mkdir()
    rows = [{"name": f"cell={c}", "fn": "x:y", "status": "done", "best_val_ppl": 100.0 + k,
             "settings": {"train": {"model": {"cell": c, "hidden": 16}, "optimizer": optimizer, "lr": lr,
                                    "clip_norm": 0.25, "data": {"corpus": "machado"}}}}
            for k, c in enumerate(("rnn", "lstm"))]
    (folder / "sweep.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    figures = []
    monkeypatch.setattr(plots, "_save", lambda fig, out: figures.append(fig) or out)
    sweepplot.plot_sweep(folder, "cell", "best_val_ppl")
    (fig,) = figures
    title = " ".join(fig.axes[0].get_title().split("\n"))
    _close(fig)
    return title


def test_the_sweep_title_names_the_learning_rate_and_optimizer_held_fixed(tmp_path, monkeypatch):
    # lr None in the settings: the optimizer's default, which the jobs started with
    title = _sweep_title(tmp_path, monkeypatch, None)
    assert "optimizer=sgd, lr=20 (sgd default)," in title, title
    assert "optimizer=adam, lr=0.001 (adam default)," in _sweep_title(tmp_path, monkeypatch, None, "adam")
    assert "optimizer=sgd, lr=0.5," in _sweep_title(tmp_path, monkeypatch, 0.5)


# ---------------------------------------------------------------- 5. learnability and demo figures


@pytest.fixture
def drawn(monkeypatch):
    """{figure name: its legend entries' lines and its texts} of every figure write_figures saves."""
    from rnnlm import plots
    seen, original = {}, plots.write_figure

    def write_figure(self, files):
        for fname in files:
            if Path(fname).suffix == ".png":
                ax = self.axes[0]
                seen[Path(fname).stem] = {"lines": [(ln.get_label(), list(ln.get_xdata())) for ln in ax.get_lines()],
                                          "texts": [t.get_text() for t in ax.texts]}
        return original(self, files)
    monkeypatch.setattr(plots, "write_figure", write_figure)
    return seen


def test_the_steps_figure_marks_the_first_evaluation_as_the_floor(tmp_path, drawn):
    from rnnlm import config as C
    cfg = C.StudyConfig(distances="5,40,160", cells="rnn,gru", seeds="0,1")
    _draw(tmp_path, cfg)                  # every solved run solved at step 250, the first evaluation
    steps = drawn["steps"]
    floor = [(label, x) for label, x in steps["lines"] if label.startswith("first evaluation")]
    assert [label for label, _ in floor] == ["first evaluation (eval every 250): the fewest steps measurable;\n"
                                             "a point on it learned in ≤ 250 steps"]
    assert "first evaluation: ≤ 250" in steps["texts"]
    assert "first evaluation" not in " ".join(drawn["success"]["texts"])    # the steps figure's only


def test_lstm_and_gru_factors_close_together_are_both_written_apart():
    results = {f"rnn-tanh-x{g:g}": {"gain": g, "factor_per_step": f} for g, f in ((0.5, 0.5), (1, 0.97), (2, 1.2))}
    results.update(lstm={"factor_per_step": 0.742}, gru={"factor_per_step": 0.753})
    fig = plotruns.draw_factor_summary(results, ["tanh"], [0.5, 1.0, 2.0])
    ax = fig.axes[0]
    notes = {t.get_gid(): t for t in ax.texts if t.get_gid() in ("lstm-factor", "gru-factor")}
    assert {k: t.get_text() for k, t in notes.items()} == {"lstm-factor": "lstm 0.742", "gru-factor": "gru 0.753"}
    fig.canvas.draw()
    lstm, gru = notes["lstm-factor"].get_window_extent(), notes["gru-factor"].get_window_extent()
    assert gru.y0 >= lstm.y1, (gru, lstm)                      # gru's (higher) above lstm's, not on it
    for box in (lstm, gru):
        assert ax.bbox.x0 <= box.x0 and box.x1 <= ax.bbox.x1
    _close(fig)


def test_the_context_probe_title_breaks_between_phrases(tmp_path):
    rows = [{"distance": d, "mean_increase": 0.1 / d, "ci": [0.05 / d, 0.15 / d]} for d in (1, 2, 5, 10, 20, 50)]
    path = tmp_path / "probe-context-shuffle.json"
    path.write_text(json.dumps({"probe": "context", "mode": "shuffle", "cell": "lstm", "run": str(tmp_path),
                                "results": rows, "effective_context": 20, "seed": 0, "n_targets": 500,
                                "window": 300, "model": {"cell": "lstm", "init": "default"}, "clip": "clip-norm 0.25"}))
    fig = plotruns.draw_probe([path])
    lines = fig.axes[0].get_title().split("\n")
    assert lines[:2] == ["Context usage: context beyond d shuffled", "(95% bootstrap band; dotted: effective context)"]
    _close(fig)


def context_result(folder, mode):
    """A small context-probe result of a GRU, as `probe context` writes it, in folder/probe-context-<mode>.json."""
    path = folder / f"probe-context-{mode}.json"
    path.write_text(json.dumps({"probe": "context", "mode": mode, "cell": "gru", "run": str(folder),
                                "results": [{"distance": 1, "mean_increase": 0.1, "ci": [0.0, 0.2]},
                                            {"distance": 4, "mean_increase": 0.0, "ci": [-0.1, 0.1]}],
                                "effective_context": None, "seed": 0, "n_targets": 10, "window": 8,
                                "model": {"cell": "gru"}, "clip": "no clipping"}))
    return path


@pytest.mark.parametrize("mode,word", [("replace", "replaced by random words"), ("drop", "dropped")])
def test_the_context_probe_title_of_other_modes(tmp_path, mode, word):
    path = context_result(tmp_path, mode)
    fig = plotruns.draw_probe([path])
    assert fig.axes[0].get_title().split("\n")[0] == f"Context usage: context beyond d {word}"
    _close(fig)
