"""plot lag on curves that explode to float64's edge, plot probe over several runs, probe's note on a
replaced measurement, and the age note of a measurement in a copied run folder."""
import json

import numpy as np
import pytest

from rnnlm.errors import UserError


def _close(fig):
    import matplotlib.pyplot as plt
    plt.close(fig)


def _legend(ax):
    leg = ax.get_legend()
    return [t.get_text() for t in leg.get_texts()] if leg else []


def _exploding_doc(per_step=1e30, D=10, null_from=None):
    """A relu RNN's lag curve growing as per_step^d (1e30^10 = 1e300), null (beyond float64) from
    lag null_from on."""
    med = [per_step ** d if (null_from is None or d < null_from) else None for d in range(1, D + 1)]
    summ = {k: [None if m is None else m * f for m in med]
            for k, f in (("median", 1.0), ("geomean", 1.0), ("p10", 0.9), ("p90", 1.1))}
    lags = list(range(1, D + 1))
    return {"meta": {"cell": "rnn", "activation": "relu", "init": "orthogonal", "recurrent_scale": per_step,
                     "H": 16, "layers": 1, "anchors": 4, "tokens": 1000, "seed": 0, "source": "init",
                     "bound_per_step": [per_step]},
            "curves": {"layer0": {"h": {"lag": lags, "spectral": summ, "frobenius": summ},
                                  "flow": {"lag": lags, "norm": summ}}}}


def _drawn_medians(ax):
    lines = [ln for ln in ax.get_lines() if ln.get_marker() == "o"]
    return np.concatenate([np.asarray(ln.get_ydata(), float) for ln in lines])


@pytest.mark.parametrize("bound", [False, True])
def test_a_curve_reaching_1e300_is_drawn_within_finite_limits(bound):
    from rnnlm.plotlag import draw_lag
    fig = draw_lag([_exploding_doc()], bound=bound)       # crashed (OverflowError) or drew empty axes
    ax = fig.axes[0]
    lo, hi = ax.get_ylim()
    assert np.isfinite([lo, hi]).all() and 0 < lo <= 0.9e30 and 1.1e300 <= hi <= 1.8e308
    y = _drawn_medians(ax)
    assert np.isfinite(y).sum() == 10 and y.max() == pytest.approx(1e300)
    ticks = ax.yaxis.get_majorticklocs()
    assert len(ticks) and np.isfinite(ticks).all()
    fig.canvas.draw()                                     # the ticks are formatted without an OverflowError
    _close(fig)


def test_a_null_tail_draws_the_finite_lags_and_says_from_which_lag(tmp_path):
    from rnnlm.plotlag import draw_lag, plot_lag
    fig = draw_lag([_exploding_doc(D=12, null_from=11)], bound=True)
    ax = fig.axes[0]
    assert np.isfinite(_drawn_medians(ax)).sum() == 10
    assert ("median beyond float64's range (over 1.8e308, written as null) from lag 11: not drawn"
            in _legend(ax))
    assert ax.get_xlim() == (0.5, 12.5)                   # the x axis shows the lags measured
    _close(fig)
    path = tmp_path / "c.json"
    path.write_text(json.dumps(_exploding_doc(D=12, null_from=11)))
    assert plot_lag([path], None, tmp_path / "out").is_file()


def test_nothing_drawable_is_one_line_error(tmp_path, capsys):
    from rnnlm.cli import main
    path = tmp_path / "c.json"
    path.write_text(json.dumps(_exploding_doc(D=4, null_from=1)))
    assert main(["plot", "lag", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err == ("error: nothing to draw: no median or band of spectral norm of ∂h(t)/∂h(t−d) in layer0 is "
                   "a finite number above 0 (null: beyond float64's range)\n")
    assert not (tmp_path / "out.png").exists()
    from rnnlm.plotlag import draw_lag
    with pytest.raises(UserError):
        draw_lag([path])


def test_an_ordinary_curve_keeps_matplotlibs_limits():
    from rnnlm.plotlag import draw_lag
    fig = draw_lag([_exploding_doc(per_step=10.0, D=10)])
    lo, hi = fig.axes[0].get_ylim()
    # matplotlib's own autoscaling over 1 (the axhline) to 1.1e10: 5% of the span beyond each side
    assert np.log10(lo) == pytest.approx(-0.05 * np.log10(1.1e10)) and hi < 1e11
    _close(fig)



def _tracked_run(folder, docs_by_step):
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"train": {"model": {"cell": "rnn", "activation": "relu",
                                                                       "hidden": 16, "init": "orthogonal",
                                                                       "recurrent_scale": 1e30},
                                                             "clip_norm": 0.0, "optimizer": "sgd", "seed": 0}}))
    events = [{"type": "jacobian", "step": step, "meta": {"max_lag": 10, "anchors": 4, "tokens": 1000},
               "curves": d["curves"]} for step, d in docs_by_step]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    return folder


def test_lag_over_training_of_curves_reaching_1e300_is_drawn(tmp_path):
    from rnnlm.plotruns import draw_lag_over_training
    run = _tracked_run(tmp_path / "run", [(0, _exploding_doc()), (10, _exploding_doc(D=12, null_from=11))])
    fig = draw_lag_over_training(run)                     # drew empty axes (10^0-10^1)
    ax = fig.axes[0]
    lo, hi = ax.get_ylim()
    assert np.isfinite([lo, hi]).all() and lo <= 1e30 and 1e300 <= hi <= 1.8e308
    assert np.isfinite(ax.yaxis.get_majorticklocs()).all()
    fig.canvas.draw()
    _close(fig)
    nothing = _tracked_run(tmp_path / "nulls", [(0, _exploding_doc(D=4, null_from=1))])
    with pytest.raises(UserError, match=r"^nothing to draw: no recorded median of spectral norm of .* is a finite "):
        draw_lag_over_training(nothing)


def test_the_legend_of_long_bound_entries_fits_the_png(tmp_path):
    from rnnlm.plotlag import draw_lag
    from rnnlm.plots import SAVE_DPI
    slow = _exploding_doc(per_step=1000.0, D=100)
    slow["meta"]["bound_per_step"] = [1200.0]                   # 4·1200^d leaves the range at d = 97.6
    fig = draw_lag([slow, _exploding_doc()], norm="frobenius", bound=True)
    ax = fig.axes[0]
    label = [t.replace("\n", " ") for t in _legend(ax) if "1.2e+03" in t][0]
    assert "leaves the plotted range at d = 97.6;" in label    # (was 'd = 98' or 'd = 1e+02')
    fig.set_dpi(SAVE_DPI)                                       # as the PNG is drawn: text a little wider
    box = ax.get_legend().get_window_extent(fig.canvas.get_renderer())
    assert box.x0 >= 0 and box.x1 <= fig.bbox.width             # was cut at both edges of the PNG
    _close(fig)

# ---------------------------------------------------------------- 2. plot probe over several runs


def _agreement_json(path, distances=(1, 2, 3), accuracy=0.7):
    bins = [{"distance": d, "n": 100, "correct": 100 * accuracy, "accuracy": accuracy,
             "ci": [accuracy - 0.09, accuracy + 0.09], "attractor": None, "no_attractor": None} for d in distances]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"run": str(path.parent), "cell": "gru", "probe": "agreement", "feature": "number",
                                "seed": 0, "n_per_distance": 100, "by_distance": bins, "model": {"cell": "gru"}}))
    return path


def test_plot_probe_of_several_runs_is_a_comparison_apart_from_the_first_runs_figure(tmp_path, capsys):
    from rnnlm.cli import main
    r1, d2 = tmp_path / "runs" / "r1", tmp_path / "runs" / "d2"
    _agreement_json(r1 / "probe-agreement-number.json")
    _agreement_json(d2 / "probe-agreement-number.json", accuracy=0.9)
    assert main(["plot", "probe", str(r1)]) == 0
    own = r1 / "plots" / "probe-agreement.png"
    assert capsys.readouterr().out == f"wrote {own} (and .svg)\n"
    before = own.read_bytes()
    assert main(["plot", "probe", str(r1), str(d2)]) == 0
    compare = r1 / "plots" / "probe-compare-r1+d2-agreement.png"
    assert capsys.readouterr().out == f"wrote {compare} (and .svg)\n"
    assert own.read_bytes() == before                     # r1's own figure is left as it was
    # the same name plot lag gives a comparison (one helper for both)
    from rnnlm.cliinstruments import figure_out
    assert figure_out([str(r1), str(d2)], "lag", "h-spectral-layer0") == (
        r1 / "plots" / "lag-compare-r1+d2-h-spectral-layer0.png")


# ---------------------------------------------------------------- 3. probe says when it replaces other settings


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from saved_runs import untrained_gru_run
    return untrained_gru_run(tmp_path_factory.mktemp("probe_run"), 1500, 12)


def test_probe_context_says_it_replaces_a_measurement_of_another_split(tiny_run, capsys):
    from rnnlm.cli import main
    args = ["probe", "context", str(tiny_run), "--distances", "1,2", "--window", "10", "--n-targets", "10"]
    out = tiny_run / "probe-context-shuffle.json"
    assert main(args + ["--split", "train"]) == 0
    assert capsys.readouterr().err == ""
    assert main(args + ["--split", "train"]) == 0                # the same settings again: no word
    assert capsys.readouterr().err == ""
    assert main(args + ["--split", "valid", "--window", "12"]) == 0
    assert capsys.readouterr().err == (
        f"note: {out} held a measurement of other settings (--split train -> valid; --window 10 -> 12); "
        "replaced (give --out FILE to keep each measurement)\n")
    assert json.loads(out.read_text())["split"] == "valid"
    # --out naming it: the same note, with its own advice
    assert main(args + ["--split", "train", "--out", str(out)]) == 0
    assert capsys.readouterr().err == (
        f"note: {out} held a measurement of other settings (--split valid -> train; --window 12 -> 10); "
        "replaced (give another --out to keep each measurement)\n")


def test_probe_agreement_says_it_replaces_a_measurement_of_other_settings(tiny_run, capsys):
    from rnnlm.cli import main
    args = ["probe", "agreement", str(tiny_run), "--n", "5"]
    assert main(args + ["--distances", "1..3"]) == 0
    capsys.readouterr()
    assert main(args + ["--distances", "1,2", "--seed", "3"]) == 0
    assert capsys.readouterr().err == (
        "probing number agreement: up to 5 sentence pairs at each of 2 distances (1..2)...\n"
        f"note: {tiny_run / 'probe-agreement-number.json'} held a measurement of other settings "
        "(--distances 1..3 -> 1,2; --seed 0 -> 3); replaced (give --out FILE to keep each measurement)\n")


# ---------------------------------------------------------------- 4. the age note of a copied run folder


JAC = ["--max-lag", "3", "--anchors", "2", "--tokens", "30", "--no-progress"]


def _saved_at(folder, step):
    from rnnlm import checkpoint
    ck = checkpoint.load(folder / "best.npz")
    checkpoint.save(folder / "best.npz", ck.model, config=ck.config, vocab=ck.vocab,
                    train={"step": np.array(step), "epoch": np.array(1), "val_loss": np.array(5.0)})


@pytest.fixture
def g1(tmp_path):
    from saved_runs import untrained_gru_run
    (tmp_path / "runs").mkdir()
    folder = untrained_gru_run(tmp_path / "runs", 300, 8)
    _saved_at(folder, 500)
    return folder


def _notes(capsys):
    return [x for x in capsys.readouterr().err.splitlines() if x.startswith("note:")]


def test_a_copied_run_folder_is_compared_with_its_own_checkpoint(g1, capsys):
    import shutil

    from rnnlm.cli import main
    assert main(["jacobian", str(g1), *JAC]) == 0
    e11 = g1.parent / "e11"
    shutil.copytree(g1, e11)
    _saved_at(g1, 1200)                         # the original trained on: the copy's measurement is not older
    capsys.readouterr()
    assert main(["plot", "lag", str(e11)]) == 0
    assert _notes(capsys) == []                 # was: "... rerun 'python cli.py jacobian <g1> ...'"
    (e11 / "best.npz").unlink()                 # no checkpoint of that name in the copy: not g1's either
    assert main(["plot", "lag", str(e11)]) == 0
    assert _notes(capsys) == []
    shutil.copy(g1 / "best.npz", e11 / "best.npz")      # the copy's own checkpoint at a later step
    assert main(["plot", "lag", str(e11)]) == 0
    assert _notes(capsys) == [
        f"note: {e11 / 'jacobian.json'} measured best.npz at step 500; the run's best.npz is now at step 1,200 "
        f"(the run trained further since): rerun 'python cli.py jacobian {e11} --max-lag 3 --anchors 2 --tokens 30' "
        f"to measure it"]


def test_the_rerun_advice_keeps_the_measured_settings_and_file(g1, capsys):
    from rnnlm.cli import main
    ctx = ["--distances", "1,2", "--window", "10", "--n-targets", "10"]
    best = g1 / "best-context.json"
    assert main(["probe", "context", str(g1), "--split", "valid", *ctx, "--mode", "drop", "--out", str(best)]) == 0
    assert main(["jacobian", str(g1), *JAC, "--split", "train", "--seed", "2", "--out",
                 str(g1 / "best-jacobian.json")]) == 0
    _saved_at(g1, 1200)
    capsys.readouterr()
    assert main(["plot", "probe", str(best)]) == 0
    assert _notes(capsys) == [
        f"note: {best} measured best.npz at step 500; the run's best.npz is now at step 1,200 (the run trained "
        f"further since): rerun 'python cli.py probe context {g1} --mode drop --split valid --distances 1,2 "
        f"--n-targets 10 --window 10 --out {best}' to measure it"]
    assert main(["plot", "lag", str(g1 / "best-jacobian.json")]) == 0
    assert _notes(capsys) == [
        f"note: {g1 / 'best-jacobian.json'} measured best.npz at step 500; the run's best.npz is now at step 1,200 "
        f"(the run trained further since): rerun 'python cli.py jacobian {g1} --split train --max-lag 3 --anchors 2 "
        f"--tokens 30 --seed 2 --out {g1 / 'best-jacobian.json'}' to measure it"]
