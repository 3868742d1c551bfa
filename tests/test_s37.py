"""Stop 37's trials: a float flag whose literal float64 cannot hold (1e-400, 1e400) is refused as typed,
not reported as the 0.0 or inf it reads as."""
import pytest

from rnnlm.cli import main


def _cli(argv, capsys):
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err.strip().splitlines()


@pytest.mark.parametrize("text, says", [("1e-400", "'1e-400' is too small for a float64 (it reads as 0.0)"),
                                        ("-2.5e-999", "'-2.5e-999' is too small for a float64 (it reads as 0.0)"),
                                        ("1e400", "'1e400' is too large for a float64 (it reads as inf)"),
                                        ("-1e400", "'-1e400' is too large for a float64 (it reads as -inf)")])
@pytest.mark.parametrize("flag", ["--lr", "--clip-norm", "--dropout"])
def test_a_float_beyond_float64_is_refused_as_typed(capsys, tmp_path, flag, text, says):
    status, out, err = _cli(["train", f"{flag}={text}", "--out", tmp_path / "r"], capsys)
    assert status == 2 and out == ""
    assert err == [f"error: python cli.py train: argument {flag}: {says} (see 'python cli.py train --help')"]
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("text", ["0", "0.000", "0e5", "-0.0", "inf"])
def test_a_typed_zero_or_inf_still_meets_the_range_check(capsys, tmp_path, text):
    status, _, err = _cli(["train", f"--lr={text}", "--out", tmp_path / "r"], capsys)
    assert status == 2
    assert err == [f"error: --lr must be a finite positive number, got {float(text)!r}"]


def test_a_sweep_list_names_the_item_beyond_float64(capsys):
    status, _, err = _cli(["sweep", "run", "--lr", "1,1e-400"], capsys)
    assert status == 2
    assert err == ["error: python cli.py sweep run: argument --lr: '1e-400' is too small for a float64 "
                   "(it reads as 0.0) "
                   "(item 2 of the list '1,1e-400') (see 'python cli.py sweep run --help')"]
    status, _, err = _cli(["sweep", "run", "--lr", "1,x"], capsys)
    assert err == ["error: python cli.py sweep run: argument --lr: 'x' is not a number (item 2 of the list '1,x') "
                   "(see 'python cli.py sweep run --help')"]


def test_a_word_that_is_no_number_keeps_argparses_wording(capsys, tmp_path):
    status, _, err = _cli(["generate", "--temperature", "warm", tmp_path], capsys)
    assert status == 2
    assert err == ["error: python cli.py generate: argument --temperature: invalid float value: 'warm' "
                   "(see 'python cli.py generate --help')"]


# ---------------------------------------------------------------- a grid grown by an axis keeps its trainings


def _rows(out):
    from rnnlm.sweep import read_rows
    return [(r["name"], r["settings"]["train"]["model"]["dropout"], r["settings"]["train"]["seed"])
            for r in read_rows(out)]


def test_a_grid_grown_by_an_axis_or_narrowed_skips_the_trainings_it_recorded(text, tmp_path, capsys):
    """A researcher's trial: `--cell rnn --seeds 2` then `--dropout 0,0.5` into the same folder renamed the two
    recorded jobs (seed=0 -> dropout=0,seed=0), trained them again and listed each twice in the table."""
    from test_sweep import _flags
    out = tmp_path / "sw"
    base = ["sweep", "run", "--cell", "rnn", "--max-steps", "3", "--eval-every", "0", "--scheduler", "serial",
            *_flags(text, out)]
    assert main([*base, "--seeds", "2"]) == 0
    assert _rows(out) == [("seed=0", 0.0, 0), ("seed=1", 0.0, 1)]
    capsys.readouterr()
    assert main([*base, "--seeds", "2", "--dropout", "0,0.5"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err[0] == (f"4 jobs (dropout x seed) into {out}: skipping 2 finished in an earlier run (2 of them "
                      "recorded under an earlier name, e.g. seed=0 for dropout=0,seed=0), running 2")
    assert _rows(out) == [("seed=0", 0.0, 0), ("seed=1", 0.0, 1),
                          ("dropout=0.5,seed=0", 0.5, 0), ("dropout=0.5,seed=1", 0.5, 1)]
    # narrowed back to one value of the axis: every job recorded, under whichever name
    assert main([*base, "--seeds", "2", "--dropout", "0.5"]) == 0
    assert capsys.readouterr().err.splitlines()[0] == (
        f"2 jobs (seed) into {out}: skipping 2 finished in an earlier run (2 of them recorded under an earlier "
        "name, e.g. dropout=0.5,seed=0 for seed=0), running 0")
    assert len(_rows(out)) == 4
    # a job whose settings differ from every recorded one still runs (seed 2 is new)
    assert main([*base, "--seeds", "3"]) == 0
    assert capsys.readouterr().err.splitlines()[0] == (
        f"3 jobs (seed) into {out}: skipping 2 finished in an earlier run, running 1")
    assert _rows(out)[-1] == ("seed=2", 0.0, 2) and len(_rows(out)) == 5


# ---------------------------------------------------------------- the progress shows an explosion


def test_the_gradient_norm_shown_keeps_an_exploding_step_visible():
    """A teacher's trial: the bar's |g| was the interval's mean, so a step at 1,784 followed by steps near 3
    showed as a smooth decline (892, 596, 448 ... 50), while metrics.jsonl had the spike and the collapse."""
    from types import SimpleNamespace

    from rnnlm.progress import _norm_text, _Progress
    assert _norm_text(0.201, 0.25) == "0.201"
    assert _norm_text(3.9, 1783.6) == "3.9 (max 1.78e+03)"
    assert _norm_text(float("nan"), 5.0) == "nan"
    p = object.__new__(_Progress)       # its figures alone: no run, no bar (a log's path, no line due)
    p.tty, p.lines = False, 1
    p.s = SimpleNamespace(config=SimpleNamespace(log_interval=1000))
    p._interval()
    p.last_norm = None
    for step, norm in enumerate([1783.6, 0.77, 3.9, 3.6], 1):
        result = SimpleNamespace(tokens=10, bad=None, loss=5.0, clipped=False, grad_norm=norm)
        p.step(SimpleNamespace(step=step), result, 0.1)
    assert " |g| 3.6 clip " in p._figures()                       # the bar: the latest step's
    assert p._averages(2)[2] == "448 (max 1.78e+03)"              # the lines: the mean (447.97), and the spike
    p._interval()
    p.step(SimpleNamespace(step=5), SimpleNamespace(tokens=10, bad=None, loss=5.0, clipped=False, grad_norm=3.0),
           0.1)
    assert " |g| 3 clip " in p._figures() and p._averages(2)[2] == "3"     # a new interval forgets it


# ---------------------------------------------------------------- a growing curve is said to grow


def test_a_growing_lag_curve_has_a_growth_rate_not_a_positive_decay_rate():
    """A teacher's trial: an exploding network's table read "decay rate +0.0737 /step"."""
    import math

    from rnnlm import jacobian as jac
    from rnnlm.demogradients import _curve_sentence
    from rnnlm.jacobianrun import decay_line
    lags = [1, 2, 3, 4]

    def series(median, vanish=None):
        return {"lag": lags, "spectral": {"median": median}, "vanish_lag": {"spectral": vanish},
                "decay_rate": {"spectral": jac.decay_rate(lags, median)}, "zero_lag": {"spectral": None}}
    grow = [1.5 ** d for d in lags]
    assert decay_line(series(grow), "spectral", "rnn") == (
        f"growth rate +{math.log(1.5):.4f} /step (x1.5 per step); median below 1e-6 of lag 1: not within 4 lags "
        "(it grows)")
    shrink = [0.5 ** d for d in lags]
    assert decay_line(series(shrink), "spectral", "rnn") == (
        f"decay rate -{math.log(2):.4f} /step (x0.5 per step); median below 1e-6 of lag 1: not within 4 lags")
    n = {"median_lag1": 1.5, "factor_per_step": 1.076, "decay_rate": 0.0733, "vanish_lag": None, "max_lag": 60,
         "median_last": 1.07e5}
    assert _curve_sentence(n).endswith("(growth rate 0.0733/step), grows to a median of 1.07e+05 at lag 60")
    n.update(decay_rate=-0.03, factor_per_step=0.97, median_last=0.16)
    assert _curve_sentence(n).endswith("(decay rate -0.03/step), has not fallen below 1e-6 of its lag-1 value by "
                                       "lag 60 (median there 0.16)")


def test_the_factor_summary_labels_its_log_axes_as_plain_numbers():
    """A teacher's trial: the axes read 2⁻¹, 2⁰, 2¹ and 4×10⁻¹, 6×10⁻¹, 10⁰, 2×10⁰."""
    import matplotlib.pyplot as plt

    from rnnlm import plotruns
    results = {f"rnn-tanh-x{g}": {"gain": g, "factor_per_step": f} for g, f in ((0.5, 0.5), (1.0, 0.97), (2.0, 1.19))}
    results.update(lstm={"factor_per_step": 0.75}, gru={"factor_per_step": 0.75})
    fig = plotruns.draw_factor_summary(results, ["tanh"], (0.5, 1.0, 2.0))
    fig.canvas.draw()
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0.5", "1", "2"]
    ys = [t.get_text() for t in ax.get_yticklabels()]
    assert ys[0] in ("0.4", "0.5") and "1" in ys and ys[-1] == "2" and all("×" not in y and "^" not in y for y in ys)
    assert not any(t.get_text() for t in ax.get_yticklabels(minor=True) + ax.get_xticklabels(minor=True))
    lo, hi = ax.get_ylim()
    assert lo < 0.5 and hi > 2 * 0.99           # the limits the data asked for, kept
    plt.close(fig)


def test_gradchecks_unknown_activation_lists_all_too(capsys):
    assert main(["gradcheck", "--activation", "swish"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: unknown activation 'swish'; accepted: tanh, relu, sigmoid,")
    assert err.endswith(", or all (one of each kind)")
    assert main(["gradcheck", "--activation", "scaled-tanh:1"]) == 2      # not a name: no 'or all'
    assert "or all" not in capsys.readouterr().err


def test_a_new_job_whose_short_name_the_folder_holds_is_named_apart_not_refused(text, tmp_path, capsys):
    """A new user's trial: after a narrowed grid recorded "seed=2" (dropout 0.5), the grid at dropout 0.2 with
    three seeds was refused ("records job seed=2 with other settings"), though its seed 2 was never trained. A
    setting the folder's jobs never varied, changed for the whole grid, is still refused."""
    from test_sweep import _flags
    out = tmp_path / "sw"
    base = ["sweep", "run", "--cell", "rnn", "--max-steps", "3", "--eval-every", "0", "--scheduler", "serial",
            *_flags(text, out)]
    assert main([*base, "--seeds", "2", "--dropout", "0.2"]) == 0
    assert main([*base, "--seeds", "2", "--dropout", "0.2,0.5"]) == 0
    capsys.readouterr()
    assert main([*base, "--seeds", "3", "--dropout", "0.5"]) == 0
    assert capsys.readouterr().err.splitlines()[0] == (
        f"3 jobs (seed) into {out}: skipping 2 finished in an earlier run (2 of them recorded under an earlier "
        "name, e.g. dropout=0.5,seed=0 for seed=0), running 1")
    assert main([*base, "--seeds", "3", "--dropout", "0.2"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err[:2] == [f"3 jobs (seed) into {out}: skipping 2 finished in an earlier run, running 1",
                       "note: 1 job of this grid named apart from the folder's jobs of the same name and other "
                       "settings, e.g. seed=2 as seed=2,dropout=0.2"]
    assert sorted(_rows(out)) == [("dropout=0.5,seed=0", 0.5, 0), ("dropout=0.5,seed=1", 0.5, 1),
                                  ("seed=0", 0.2, 0), ("seed=1", 0.2, 1), ("seed=2", 0.5, 2),
                                  ("seed=2,dropout=0.2", 0.2, 2)]
    # the same command again: every job recorded, none renamed or trained
    assert main([*base, "--seeds", "3", "--dropout", "0.2"]) == 0
    assert capsys.readouterr().err.splitlines()[0] == (
        f"3 jobs (seed) into {out}: skipping 3 finished in an earlier run (1 of them recorded under an earlier "
        "name, e.g. seed=2,dropout=0.2 for seed=2), running 0")
    # --lr, which no job of the folder varied, changed for the whole grid: refused, naming it alone
    assert main([*base, "--seeds", "3", "--dropout", "0.2", "--lr", "5"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: {out / 'sweep.jsonl'} records job seed=0 with other settings (cannot change --lr (20.0 -> 5.0)); "
        "use another folder, or delete its line to run it again")
    assert len(_rows(out)) == 6


def test_a_job_run_again_leaves_no_file_of_its_earlier_run(tmp_path):
    """A new user's trial: a --keep-models job whose line was deleted, run again without it, kept the old
    model.npz beside the new config.json, and `evaluate` read the old model."""
    from rnnlm.sweep import Job, run_sweep
    out = tmp_path / "sw"
    job = Job("run", "test_s37:files_job", {"files": ["config.json", "model.npz", "sub/best.npz"]})
    run_sweep(out, [job], scheduler="serial", progress=False)
    assert sorted(p.relative_to(out / "run").as_posix() for p in (out / "run").rglob("*") if p.is_file()) == [
        "config.json", "model.npz", "sub/best.npz"]
    (out / "sweep.jsonl").write_text("")                  # its line deleted, to run it again
    run_sweep(out, [Job("run", "test_s37:files_job", {"files": ["config.json"]})], scheduler="serial",
              progress=False)
    assert [p.relative_to(out / "run").as_posix() for p in (out / "run").rglob("*") if p.is_file()] == ["config.json"]
    assert (out / "run" / "config.json").read_text() == "config.json of ['config.json']"


def files_job(settings, payload):
    """A job that writes the files its settings name."""
    from rnnlm.sweep import JobResult
    return JobResult(row={}, files={f: f"{f} of {settings['files']}".encode() for f in settings["files"]})
