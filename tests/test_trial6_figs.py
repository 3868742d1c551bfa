"""A teacher's trial of the README: figures whose tick labels print on top of one another or read
as fractions of a word, titles that name the wrong training text, and a probe summary that read as
"fails from distance 1 on" for a model above chance at every distance but the first."""
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from rnnlm import plotruns, probereport, probes

from test_plots_figures import _close, _fake_run

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


# ---------------------------------------------------------------- 1. the training figure's loss axis


def _loss_labels(fig):
    """(text, window extent) of every y tick label drawn on the loss axis, major and minor."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    ax = fig.axes[0]
    out = []
    for tick in ax.yaxis.get_major_ticks() + ax.yaxis.get_minor_ticks():
        label = tick.label1
        lo, hi = sorted(ax.get_ylim())
        inside = lo <= tick.get_loc() * (1 + 1e-9) and tick.get_loc() <= hi * (1 + 1e-9)
        if label.get_visible() and label.get_text() and inside:
            out.append((label.get_text(), label.get_window_extent(renderer)))
    return out


@pytest.mark.parametrize("losses", [
    [5.0 + 95.0 * (k / 59) ** 3 for k in range(60)],          # 5 -> 100 nats: a diverging run, over a decade
    [3.0 * 10 ** (3 * k / 39) for k in range(40)],            # 3 -> 3000: three decades
    [13.5 - 6.0 * k / 29 for k in range(30)],                 # 13.5 -> 7.5: within one decade, across 10
    [6.1 - 3.6 * k / 29 for k in range(30)],                  # 6.1 -> 2.5: within one decade
], ids=["diverging", "three-decades", "across-10", "one-decade"])
def test_loss_axis_labels_never_overlap_and_cover_the_range(tmp_path, losses):
    run = _fake_run(tmp_path / "r", losses=losses, norms=[1.0] * len(losses))
    fig = plotruns.draw_training(run)
    labels = _loss_labels(fig)
    texts = [t for t, _ in labels]
    assert len(labels) >= 2, texts
    boxes = sorted((b for _, b in labels), key=lambda b: b.y0)
    for a, b in zip(boxes, boxes[1:]):
        assert b.y0 >= a.y1, f"tick labels overlap: {texts}"
    values = sorted(float(t) for t in texts)          # plain numbers (%g), no 10^k
    # the labels span at least half the range (in log terms): not only the bottom of it
    lo, hi = min(losses), max(losses)
    assert math.log(values[-1] / values[0]) >= 0.5 * math.log(hi / lo), (texts, lo, hi)
    # minor ticks stay, unlabeled
    assert not any(t.label1.get_text() for t in fig.axes[0].yaxis.get_minor_ticks())
    _close(fig)


# ---------------------------------------------------------------- 2. agreement figure: integer distances


def _agreement_json(path: Path, distances, accuracy=0.7):
    bins = [{"distance": d, "n": 100, "correct": 100 * accuracy, "accuracy": accuracy,
             "ci": [accuracy - 0.09, accuracy + 0.09], "attractor": None, "no_attractor": None} for d in distances]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"run": str(path.parent), "cell": "gru", "probe": "agreement", "feature": "number",
                                "seed": 0, "n_per_distance": 100, "by_distance": bins, "model": {"cell": "gru"}}))
    return path


@pytest.mark.parametrize("distances", [range(1, 21), range(1, 9), [1, 5, 10, 15, 20, 25]])
def test_agreement_figure_has_integer_distance_ticks(tmp_path, distances):
    fig = plotruns.draw_probe([_agreement_json(tmp_path / "r" / "probe-agreement-number.json", distances)])
    ax = fig.axes[0]
    fig.canvas.draw()
    lo, hi = ax.get_xlim()
    locs = [x for x in ax.get_xticks() if lo <= x <= hi]
    assert len(locs) >= 3, locs
    assert all(float(x).is_integer() for x in locs), locs
    texts = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
    assert texts and not any("." in t for t in texts), texts
    _close(fig)


# ---------------------------------------------------------------- 3. demo gradients: what was trained on


def test_trained_on_names_the_quick_text():
    from rnnlm.demogradients import trained_on
    assert trained_on("machado") == "Machado"
    assert trained_on("/corpora/machado/txt/crônica/velhoSenado.txt") == "one Machado crônica (velhoSenado)"
    assert trained_on("/elsewhere/velhoSenado.txt") == "one Machado text (velhoSenado)"


def stand_in_training_study(monkeypatch, lag=lambda *a, **k: {}, text="velhoSenado.txt:valid"):
    """demo gradients' training_study with its trainings, checkpoints and curves replaced by stand-ins
    (`lag`: the curve each _lag call returns); returns ({figure stem: (docs, title)}, the trainings' summaries)."""
    from rnnlm import demogradients as G
    from rnnlm import runs

    drawn = {}

    def plot_lag(docs, labels, out, title, **kw):
        drawn[Path(out).stem] = (docs, title)
        return str(out)

    monkeypatch.setattr(G, "_plot_lag", plot_lag)
    monkeypatch.setattr(G, "_tokens", lambda data_config, n: (np.arange(n) % 50, 50, text))
    monkeypatch.setattr(G, "_initial_model", lambda config, seed: None)
    monkeypatch.setattr(G, "_lag", lag)
    monkeypatch.setattr(G, "curve_numbers", lambda doc: {})
    monkeypatch.setattr(runs, "load_model", lambda run, which: (None, None, None, Path(run) / "best.npz"))
    monkeypatch.setattr(plotruns, "plot_lag_over_training", lambda run, out, **kw: out)
    summaries = {f"train-{c}": {"steps": 15, "best_val_ppl": 300.0, "stopped": "max_steps", "wall_s": 1.0}
                 for c in ("rnn", "lstm", "gru")}
    return drawn, summaries


def test_trained_figures_titles_name_the_quick_text(tmp_path, monkeypatch):
    """training_study's titles, with the trainings, checkpoints and curves replaced by stand-ins."""
    from rnnlm import demogradients as G
    from rnnlm.data import DataConfig
    from rnnlm.demo import QUICK

    drawn, summaries = stand_in_training_study(monkeypatch)
    quick = DataConfig(corpus=str(tmp_path / "machado" / "txt" / "crônica" / "velhoSenado.txt"))
    G.training_study(tmp_path, QUICK["gradients"], quick, 0, summaries)
    titles = {stem: title for stem, (_, title) in drawn.items()}
    assert titles["trained-all"] == "After a short training on one Machado crônica (velhoSenado): rnn vs lstm vs gru"
    for cell in ("rnn", "lstm", "gru"):
        assert titles[f"trained-{cell}"].endswith("after training on one Machado crônica (velhoSenado)")
    drawn.clear()
    G.training_study(tmp_path, QUICK["gradients"], DataConfig(corpus="machado"), 0, summaries)
    titles = {stem: title for stem, (_, title) in drawn.items()}
    assert titles["trained-all"] == "After a short training on Machado: rnn vs lstm vs gru"


def test_readme_states_the_anchors_and_tokens_each_demo_figure_uses():
    from rnnlm.demo import FULL
    from rnnlm.tracking import TRACK_ANCHORS, TRACK_MAX_LAG, TRACK_TOKENS
    g = FULL["gradients"]
    start = README.index("### `python cli.py demo gradients`")
    text = " ".join(README[start:README.index("![", start)].split())
    assert (f"at init and before/after training, {g['anchors']} anchors in the first {g['curve_tokens']} tokens, "
            f"lags 1–{g['max_lag']}") in text, text
    assert (f"the tanh(n·z) figure, {g['anchors']} anchors in the first {g['equivalence_tokens']} tokens, "
            f"lags 1–{g['max_lag']}") in text, text
    assert f"{TRACK_ANCHORS} anchors in the first {TRACK_TOKENS} tokens, lags 1–{TRACK_MAX_LAG}" in text, text
    assert f"H = E = {g['hidden']}" in text and g["hidden"] == g["train_hidden"] == g["emsize"]


# ---------------------------------------------------------------- 4. the agreement summary's wording


CI = {"above": [0.55, 0.8], "chance": [0.4, 0.6], "below": [0.2, 0.45]}


def _result(pattern):
    """An agreement result whose bins at distances 1, 2, ... are above / at / below chance as `pattern` says."""
    rec = {"n": 100, "correct": 60.0, "accuracy": 0.6, "ties": 0}
    correct = {"above": 75.0, "chance": 50.0, "below": 25.0}     # counts that agree with CI (for Holm's verdict)
    bins = [{"distance": d, **rec, "correct": correct[p], "accuracy": correct[p] / 100, "ci": CI[p],
             "attractor": None, "no_attractor": None}
            for d, p in enumerate(pattern, start=1)]
    return {"feature": "number", "pairs": 100 * len(bins), "coverage": 1.0, "by_distance": bins,
            "overall": {**rec, "ci": [0.5, 0.7]}, "attractor": None, "no_attractor": None,
            **probes.chance_pattern(bins)}


def _last_line(pattern):
    return probereport.format_agreement(_result(pattern)).splitlines()[-1]


def test_a_model_at_chance_only_at_distance_1_is_said_to_be_above_chance_from_2_on():
    line = _last_line(["chance"] + ["above"] * 19)
    assert "first at distance 1" not in line
    assert "at distance 1;" in line and "above chance at every distance from 2 on (to 20, the largest probed)" in line


def test_a_model_that_falls_to_chance_and_stays_is_told_apart_from_an_isolated_chance_distance():
    falls = _last_line(["above"] * 9 + ["chance"] * 11)
    assert "falls to chance from distance 10 on and stays there (to 20, the largest probed)" in falls, falls
    isolated = _last_line(["above"] * 4 + ["chance"] + ["above"] * 15)
    assert "at distance 5;" in isolated and "above chance at every other distance" in isolated, isolated
    assert "falls" not in isolated
    dips = _last_line(["above", "chance", "above", "chance", "chance"])
    assert "distances 2 and 4-5" in dips and "falls to chance from distance 4 on" in dips, dips


def test_the_summary_of_a_model_never_or_always_at_chance():
    assert "above chance (95% CI over 0.5) at every distance probed (1-5)" in _last_line(["above"] * 5)
    assert "95% CI contains 0.5 (chance) at every distance probed (1-5)" in _last_line(["chance"] * 5)
    below = _last_line(["above", "above", "chance", "below"])
    assert "below chance (95% CI under 0.5) at distance 4" in below and "chance or below from distance 3" in below


def test_the_result_keeps_chance_at_and_adds_where_chance_is():
    diffs = {1: [1, -1, 0, 1, -1, 1] * 10, 2: [1] * 60, 3: [1] * 50 + [-1] * 10}
    distances = [d for d in diffs for _ in diffs[d]]
    flat = np.array([x for d in diffs for x in diffs[d]], dtype=float)
    res = probes.evaluate_agreement(lambda p, c: flat, [[0]] * len(flat), [(0, 1)] * len(flat), distances,
                                    [False] * len(flat))
    assert res["chance_at"] == 1                                       # the old field, unchanged
    assert res["chance_distances"] == [1] and res["below_chance_distances"] == []
    assert res["above_chance_from"] == 2 and res["chance_from"] is None


def test_old_results_without_the_new_fields_still_print():
    res = _result(["chance", "above", "above"])
    for key in ("chance_distances", "below_chance_distances", "chance_from", "above_chance_from"):
        del res[key]
    assert "above chance at every distance from 2 on" in probereport.format_agreement(res)


# ---------------------------------------------------------------- 5. README: plot probe draws agreement by default


def test_readme_says_plot_probe_needs_kind_context_for_the_context_curve():
    row = next(line for line in README.splitlines() if line.startswith("| `plot probe runs/NAME`"))
    assert "agreement" in row and "--kind context" in row, row
    start = README.index("### Probes")
    probes_section = README[start:README.index("\n### ", start + 1)]
    assert re.search(r"plot probe runs/\S+ runs/\S+ --kind context", probes_section)
    assert "draws the agreement probe only" in " ".join(probes_section.split())
