"""A new user's trial of `train`, third round: an lr annealed to 1e-194 while training went on doing
nothing (--min-lr), a Ctrl-C'd run told to raise limits instead of how to resume, a refused second
run that named the folder before its error, and a training figure whose lr drop and clipped marks
could be misread."""
import math

import numpy as np
import pytest
from filelock import FileLock

from rnnlm import plotruns, runs
from rnnlm.cli import main
from rnnlm.config import MIN_LR_FACTOR, TrainConfig
from rnnlm.errors import UserError
from rnnlm.runs import resume_config
from rnnlm.loopstate import LoopState
from rnnlm.stopping import STOP_REASONS, stop_reason
from rnnlm.summary import format_summary
from rnnlm.train import train

from test_plots_figures import _close, _fake_run, _legend
from test_plots_ux import _add_events
from test_train import _arrays, events, tiny

FLAGS = ["--max-vocab", "300", "--valid-fraction", "0.1", "--test-fraction", "0.1",
         "--emsize", "16", "--hidden", "16", "--bptt", "8", "--batch-size", "16", "--dropout", "0",
         "--sample-words", "0", "--no-progress"]

# SGD lr 20 (the default), validation every 2 steps, no patience limit: the first validation that does
# not improve divides the lr by 1e7, to 2e-6, below the default floor 20 x 1e-6.
PLATEAU = dict(epochs=10, eval_every=2, patience=0, lr_decay=1e7)


# ---------------------------------------------------------------- --min-lr


def test_min_lr_default_is_relative_to_the_initial_lr_and_checked():
    assert MIN_LR_FACTOR == 1e-6
    assert TrainConfig(lr=20.0).lr_floor() == pytest.approx(2e-5)
    assert TrainConfig(optimizer="adam").lr_floor() == pytest.approx(1e-9)     # Adam's default lr 1e-3
    assert TrainConfig(lr=20.0, min_lr=0.02).lr_floor() == 0.02
    assert TrainConfig(lr=20.0, min_lr=0).lr_floor() == 0.0
    # the main job (lr 20 / 4 once or twice) and the long-range demo (Adam 0.002 / 4 nine times) stay above it
    assert 20.0 / 4 ** 2 >= TrainConfig(lr=20.0).lr_floor()
    assert 0.002 / 4 ** 9 >= TrainConfig(optimizer="adam", lr=0.002).lr_floor()
    assert 20.0 / 4 ** 10 < TrainConfig(lr=20.0).lr_floor()                  # the 10th division stops
    with pytest.raises(UserError, match=r"--min-lr 30 must be below the learning rate \(20\)"):
        TrainConfig(min_lr=30.0).validate()
    with pytest.raises(UserError, match=r"--min-lr must be a finite number >= 0 \(0 = no floor\), got -1.0"):
        TrainConfig(min_lr=-1.0).validate()
    assert "min_lr" in STOP_REASONS


def test_stop_reason_min_lr_after_the_other_limits():
    config = TrainConfig(lr=1.0, min_lr=0.01, max_minutes=0, patience=3)
    assert stop_reason(config, LoopState(step=5), diverged=False, interrupted=False, elapsed=0.0, lr=0.02) is None
    assert stop_reason(config, LoopState(step=5), diverged=False, interrupted=False, elapsed=0.0, lr=0.005) == "min_lr"
    assert stop_reason(config, LoopState(step=5), diverged=False, interrupted=False, elapsed=0.0) is None  # lr unknown
    # patience binding at the same validation keeps its own reason (as before --min-lr existed)
    assert stop_reason(config, LoopState(step=5, bad_evals=3), diverged=False, interrupted=False, elapsed=0.0,
                       lr=0.005) == "early_stop"
    off = TrainConfig(lr=1.0, min_lr=0, max_minutes=0)
    assert stop_reason(off, LoopState(step=5), diverged=False, interrupted=False, elapsed=0.0, lr=1e-300) is None


def test_annealing_below_min_lr_stops_the_run_and_says_so(text, tmp_path, capsys):
    out = tmp_path / "r"
    s = train(tiny(text, out, **PLATEAU))
    assert s["stopped"] == "min_lr" and s["plateaus"] == 1
    assert s["min_lr"] == pytest.approx(20.0 * MIN_LR_FACTOR) and s["lr"] == pytest.approx(2e-6)
    evals = [e for e in events(out, "eval") if e["reason"] != "final"]
    assert evals[-1]["step"] == s["steps"] and evals[-1]["next_lr"] == pytest.approx(2e-6)
    assert sum(e["next_lr"] < e["lr"] for e in evals) == 1
    (stop,) = events(out, "stop")
    assert stop["reason"] == "min_lr" and stop["step"] == s["steps"] and stop["plateaus"] == 1
    assert stop["lr"] == pytest.approx(2e-6) and stop["min_lr"] == pytest.approx(2e-5)
    printed = format_summary(s)
    assert "stopped: min_lr after" in printed
    assert "  the learning rate fell below --min-lr 2e-05 after 1 plateau (" in printed
    assert "more steps would barely move the weights" in printed
    assert "train longer" not in printed

    # --resume refuses it like the other limits (one line, nothing written)...
    capsys.readouterr()
    before = (out / "metrics.jsonl").read_bytes()
    assert main(["train", "--resume", str(out), "--no-progress"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and f"already at step {s['steps']}" in err[0] and "--min-lr below 2e-06" in err[0], err
    assert (out / "metrics.jsonl").read_bytes() == before
    # ... and a lower --min-lr continues it exactly as a run that never had the floor.
    n = s["steps"] + 6
    again = train(resume_config(out, {"min_lr": 0.0, "max_steps": n}), resume=out)
    assert again["stopped"] == "max_steps" and again["steps"] == n
    ref = train(tiny(text, tmp_path / "ref", **PLATEAU, min_lr=0.0, max_steps=n))
    assert ref["stopped"] == "max_steps"
    a, b = _arrays(out / "model.npz"), _arrays(tmp_path / "ref" / "model.npz")
    assert a.keys() == b.keys() and "train.plateaus" in a
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_min_lr_flag_reaches_the_run(text, tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["train", "--corpus", str(text), *FLAGS, "--epochs", "10", "--eval-every", "2", "--patience", "0",
                 "--lr-decay", "100", "--min-lr", "0.01", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "the learning rate fell below --min-lr 0.01 after 2 plateaus (" in printed   # 20 -> 0.2 -> 0.002
    assert events(out, "stop")[0]["reason"] == "min_lr"


# ---------------------------------------------------------------- the closing summary after Ctrl-C


def _summary(stopped, **kw):
    return {"run_dir": "runs/R", "stopped": stopped, "steps": 50, "tokens": 1000, "elapsed_s": 30.0,
            "tokens_per_s": 100.0, "val_loss": math.log(300.0), "val_ppl": 300.0, "best_val_loss": math.log(300.0),
            "best_val_ppl": 300.0, "lr": 20.0, "clip_fraction": 0.5, "skipped": 0, "nonfinite": None,
            "baseline": {"valid": {"ppl": 120.0}}, **kw}


def test_an_interrupted_run_is_told_how_to_continue():
    printed = format_summary(_summary("interrupted"))
    assert "NOT beaten it yet on valid" in printed
    assert "(train longer: continue it with python cli.py train --resume runs/R)" in printed
    assert "raise --max-minutes" not in printed
    # runs stopped by a limit keep naming the limit
    assert "(train longer: raise --max-minutes)" in format_summary(_summary("max_minutes"))
    assert "(train longer: raise --epochs)" in format_summary(_summary("epochs"))


# ---------------------------------------------------------------- a refused run prints only its error


def test_a_second_run_into_a_taken_folder_prints_only_the_error(text, tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["train", "--corpus", str(text), *FLAGS, "--max-steps", "2", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["train", "--corpus", str(text), *FLAGS, "--max-steps", "2", "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and "already holds a run" in err[0], err
    # A folder another process is training: the same, one line and nothing on stdout.
    other = tmp_path / "busy"
    other.mkdir()
    with FileLock(str(other / runs.LOCK), timeout=0):
        assert main(["train", "--corpus", str(text), *FLAGS, "--max-steps", "2", "--out", str(other)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.strip().splitlines()) == 1
    assert "being trained by another process" in captured.err
    # A run refused after taking a new folder (a batch larger than the text) leaves no folder behind.
    new = tmp_path / "new" / "deeper"
    assert main(["train", "--corpus", str(text), *FLAGS, "--batch-size", "100000", "--out", str(new)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "too few for batch size 100000" in captured.err
    assert not (tmp_path / "new").exists()


# ---------------------------------------------------------------- plot training


def test_training_figure_drops_the_lr_at_the_validation_that_annealed_it(tmp_path):
    run = _fake_run(tmp_path / "r", losses=(), norms=())
    # step events every 10 steps; the validation at step 15 divides the lr by 4
    _add_events(run, [{"type": "step", "step": k, "loss": 5.0, "loss_avg": 5.0, "grad_norm": 1.0,
                       "clipped": True, "lr": 5.0 if k <= 15 else 1.25} for k in (10, 20, 30)]
                + [{"type": "eval", "split": "valid", "reason": "every", "step": 15, "val_loss": 4.0,
                    "val_ppl": math.exp(4.0), "lr": 5.0, "next_lr": 1.25}])
    fig = plotruns.draw_training(run)
    a_lr = fig.axes[2]
    (line,) = [ln for ln in a_lr.get_lines() if ln.get_label().startswith("learning rate")]
    x, y = np.asarray(line.get_xdata(), float), np.asarray(line.get_ydata(), float)
    assert line.get_drawstyle() == "steps-post"

    def at(step):          # the drawn value at `step` (steps-post)
        return y[np.searchsorted(x, step, side="right") - 1]

    assert at(0) == at(14) == 5.0 and at(15) == at(17) == at(30) == 1.25
    assert x[-1] == 30
    assert "changes at the validation that annealed it" in line.get_label()
    # the clipped marks say they cover the logged steps only
    (clip_label,) = [t for t in _legend(fig.axes[1]) if t.startswith("clipped")]
    assert "logged steps only (3 of 3 logged steps" in clip_label and "counts every step" in clip_label
    _close(fig)


def test_lr_schedule_without_next_lr_falls_back_to_the_step_events():
    evs = [{"type": "step", "step": k, "lr": lr} for k, lr in ((10, 5.0), (20, 1.25))]
    x, y, from_evals = plotruns.lr_schedule(evs, 5.0)
    assert not from_evals and x == [0, 19, 20] and y == [5.0, 1.25, 1.25]


def test_an_infinite_value_is_told_it_must_be_finite():
    # "--max-minutes must be >= 0 (0 = no limit), got inf" was true of inf: the message says what it fails
    from rnnlm.settings import check_range
    from rnnlm.errors import UserError
    with pytest.raises(UserError, match=r"^--lr must be a finite positive number, got inf$"):
        check_range("lr", math.inf)
    with pytest.raises(UserError, match=r"^--max-minutes must be a finite number >= 0 \(0 = no limit\), got inf$"):
        check_range("max_minutes", float("inf"))
    with pytest.raises(UserError, match=r"^--max-minutes must be a finite number >= 0 \(0 = no limit\), got -1.0$"):
        check_range("max_minutes", -1.0)
