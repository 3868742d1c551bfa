"""Session 42: figures and probe reports (see each test's docstring)"""
import json
from pathlib import Path

import pytest

from rnnlm import plotlag, plots, sweepplot
from rnnlm.cli import main

from test_plots_figures import _close, _doc, _fake_run, _legend, _title

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def _flat(text: str) -> str:
    return " ".join(text.split())


# ---------------------------------------------------------------- 1. --flow --bound


def test_flow_with_bound_is_refused_in_one_line_instead_of_writing_the_flow_figure(tmp_path, capsys):
    """`plot lag RUN --flow --bound` drew no bound (the gradient flow has none), printed nothing about it and
    wrote over lag-flow-layer0.png, while the README said --bound writes its own `-bound` figure."""
    run = _fake_run(tmp_path / "runs" / "a", cell="rnn")
    (run / "jacobian.json").write_text(json.dumps(_doc("rnn")))
    capsys.readouterr()
    assert main(["plot", "lag", str(run), "--flow", "--bound"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1, captured.err
    assert captured.err.startswith("error: --bound applies to the Jacobian-norm view only (it bounds "
                                   "||dh_t/dh_{t-d}||;"), captured.err
    assert captured.err.rstrip().endswith("drop --bound or --flow"), captured.err
    assert not (run / "plots").exists()         # no figure written, under either name
    # each flag alone still draws, under its own name
    assert main(["plot", "lag", str(run), "--flow"]) == 0
    assert main(["plot", "lag", str(run), "--bound"]) == 0
    assert sorted(p.name for p in (run / "plots").glob("*.png")) == [
        "lag-auto-spectral-layer0-bound.png", "lag-flow-layer0.png"]
    # the README says so where it names the -bound figure and where it describes --bound
    assert "| `plot lag ... --bound` (not with `--flow`: refused) |" in README
    assert "It applies to the Jacobian-norm view only: `--flow --bound` is refused" in _flat(README)


# ---------------------------------------------------------------- 2. per-curve optimizer and lr


def _trained(cell, lr, **kw):
    doc = _doc(cell, **kw)
    doc["meta"].update(source="runs/x/best.npz", clip="clip-norm 0.25", optimizer="sgd", lr=lr)
    return doc


def test_a_comparison_of_two_lrs_names_each_curves_lr_in_its_legend_entry_not_unattributed_in_the_title():
    """`plot lag r1 s0` of an lstm at lr 20 and an rnn at lr 5: the subtitle read 'sgd lr 20 at start / sgd
    lr 5 at start' without saying which curve had which, and the legend entries left the lr out, though the
    README says each entry names every setting that differs between the curves."""
    fig = plotlag.draw_lag([_trained("lstm", 20.0), _trained("rnn", 5.0)])
    entries = _legend(fig.axes[0])
    assert entries[0].startswith("lstm, init orthogonal") and "sgd lr 20 at start" in entries[0], entries
    assert entries[1].startswith("rnn tanh, init orthogonal") and "sgd lr 5 at start" in entries[1], entries
    assert "lr 5" not in entries[0] and "lr 20" not in entries[1]
    title = _flat(_title(fig))
    assert " lr " not in title and "each curve's other settings in its legend entry" in title, title
    _close(fig)
    # with the caller's labels (no settings in the legend) each lr is written with its curve's label
    fig = plotlag.draw_lag([_trained("lstm", 20.0), _trained("rnn", 5.0)], labels=["r1", "s0"])
    assert "; sgd lr 20 at start (r1) / sgd lr 5 at start (s0); median over" in _flat(_title(fig)), _title(fig)
    _close(fig)
    # one lr for both: the subtitle states it once and the entries leave it out
    fig = plotlag.draw_lag([_trained("lstm", 5.0), _trained("rnn", 5.0)])
    assert "; sgd lr 5 at start; median over" in _flat(_title(fig)), _title(fig)
    assert not any(" lr " in e for e in _legend(fig.axes[0]))
    _close(fig)


# ---------------------------------------------------------------- 3. gender at distance 1


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """An untrained GRU saved like a training run, on a small sintetico-like text (the sintetico grammar's
    words, the predicatives of gender agreement among them)."""
    from saved_runs import untrained_gru_run
    return untrained_gru_run(tmp_path_factory.mktemp("s42_probe"), 1500, 12)


def test_gender_agreement_says_why_distance_1_has_no_row_and_counts_only_the_distances_probed(tiny_run, capsys):
    """`probe agreement RUN --feature gender --distances 1,2` dropped distance 1 from the table and the verdict
    without a word (a gender pair's target sits one after the copula: no pair is that short), under a header
    that promised 'each of 2 distances (1..2)'; `--distances 1` alone ended in a traceback."""
    out = tiny_run / "g.json"
    assert main(["probe", "agreement", str(tiny_run), "--feature", "gender", "--distances", "1,2", "--n", "8",
                 "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "probing gender agreement: up to 8 sentence pairs at each of 1 distance (2)..." in captured.err
    lines = captured.out.splitlines()
    assert lines[1] == ("distance 1 not probed: a gender pair's target, the predicative, sits one after the "
                        "copula, so its distance is at least 2"), lines
    res = json.loads(out.read_text())
    assert [b["distance"] for b in res["by_distance"]] == [2]
    assert res["distances"] == [1, 2] and res["not_probed"] == [1]
    # number agreement has a pair at distance 1: nothing said
    assert main(["probe", "agreement", str(tiny_run), "--distances", "1,2", "--n", "8", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "at each of 2 distances (1..2)" in captured.err and "not probed" not in captured.out
    # no distance left: one line, before the model loads, instead of a traceback
    assert main(["probe", "agreement", str(tiny_run), "--feature", "gender", "--distances", "1", "--n", "8",
                 "--out", str(tiny_run / "none.json")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: --distances 1: no gender agreement pair is that short ("), err
    assert err.rstrip().endswith("give distances >= 2"), err
    assert not (tiny_run / "none.json").exists()


# ---------------------------------------------------------------- 4. categorical and whole-number x


def _sweep_figure(tmp_path, monkeypatch, x, hue=None):
    """The figure `plot sweep` draws of best_val_ppl against x for a 2-cell x 2-seed sweep."""
    folder = tmp_path / "s"
    folder.mkdir(exist_ok=True)
    rows = [{"name": f"cell={c},seed={k}", "fn": "x:y", "settings": {"cell": c, "seed": k}, "status": "done",
             "best_val_ppl": ppl, "steps": 4, "wall_s": 1.0, "worker": "w", "attempts": 1}
            for c, k, ppl in (("rnn", 0, 224.0), ("rnn", 1, 243.0), ("gru", 0, 263.0), ("gru", 1, 257.0))]
    (folder / "sweep.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    figures = []
    monkeypatch.setattr(plots, "_save", lambda fig, out: figures.append(fig) or out)
    sweepplot.plot_sweep(folder, x, "best_val_ppl", hue=hue)
    (fig,) = figures
    fig.canvas.draw()
    return fig


def test_a_text_x_is_points_at_named_ticks_never_joined_by_a_line(tmp_path, monkeypatch):
    """`plot sweep SWEEP --x cell` drew a line from gru to rnn, as if there were cells between them."""
    fig = _sweep_figure(tmp_path, monkeypatch, "cell")
    ax = fig.axes[0]
    (means,) = [ln for ln in ax.get_lines() if len(ln.get_xdata()) == 2]
    assert means.get_linestyle() == "None" and means.get_marker() == "o"
    assert list(means.get_xdata()) == [0, 1]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["gru", "rnn"]
    assert list(ax.get_xticks()) == [0, 1]
    _close(fig)
    # with a hue: each cell's points a little aside of the tick, still not joined
    fig = _sweep_figure(tmp_path, monkeypatch, "cell", hue="seed")
    lines = [ln for ln in fig.axes[0].get_lines() if ln.get_label().startswith("seed=")]
    assert [ln.get_linestyle() for ln in lines] == ["None", "None"]
    assert [list(ln.get_xdata()) for ln in lines] == [[-0.1, 0.9], [0.1, 1.1]]
    _close(fig)


def test_a_whole_number_x_gets_whole_ticks_only(tmp_path, monkeypatch):
    """`plot sweep SWEEP --x seed` put ticks at seeds 0.5 and 1.5, seeds that do not exist."""
    for hue in (None, "cell"):
        fig = _sweep_figure(tmp_path, monkeypatch, "seed", hue=hue)
        ax = fig.axes[0]
        lo, hi = ax.get_xlim()
        shown = [t for t in ax.get_xticks() if lo <= t <= hi]
        assert shown == [0, 1], (hue, list(ax.get_xticks()))
        assert all(ln.get_linestyle() == "-" for ln in ax.get_lines() if len(ln.get_xdata()) == 2)   # joined
        _close(fig)


def test_points_that_pool_another_setting_say_so_in_the_title(tmp_path, monkeypatch):
    """`plot sweep SWEEP --x seed` of a sweep over cells drew "2 runs per point" that were an rnn and a gru,
    read as repeated runs (session 42's trial); the title now says what the points pool."""
    fig = _sweep_figure(tmp_path, monkeypatch, "seed")
    title = " ".join(fig.axes[0].get_title().split())
    assert title.endswith("2 runs per point, pooled over cell (--hue cell draws it apart)"), title
    _close(fig)
    fig = _sweep_figure(tmp_path, monkeypatch, "seed", hue="cell")
    assert " ".join(fig.axes[0].get_title().split()).endswith("1 run per point")
    _close(fig)


def test_a_hue_of_numbers_is_in_numeric_order_and_one_whole_x_value_is_its_own_tick(tmp_path, monkeypatch):
    """hidden=16 was listed before hidden=8 (sorted as text), and an x of one whole value (hidden 16 alone)
    had ticks at 15.2 ... 16.8."""
    folder = tmp_path / "s"
    folder.mkdir()
    rows = [{"name": f"h{h}-s{k}", "fn": "x:y", "settings": {"hidden": h, "seed": k}, "status": "done",
             "best_val_ppl": 100.0 + h + k, "steps": 4, "wall_s": 1.0, "worker": "w", "attempts": 1}
            for h in (8, 16) for k in (0, 1)]
    (folder / "sweep.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    figures = []
    monkeypatch.setattr(plots, "_save", lambda fig, out: figures.append(fig) or out)
    sweepplot.plot_sweep(folder, "seed", "best_val_ppl", hue="hidden")
    assert [t.get_text() for t in figures[-1].axes[0].get_legend().get_texts()] == ["hidden=8", "hidden=16"]
    (folder / "sweep.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows if r["settings"]["hidden"] == 16))
    sweepplot.plot_sweep(folder, "hidden", "best_val_ppl")
    ax = figures[-1].axes[0]
    figures[-1].canvas.draw()
    assert list(ax.get_xticks()) == [16] and [t.get_text() for t in ax.get_xticklabels()] == ["16"]
    for fig in figures:
        _close(fig)
