"""What a new user saw go wrong around `train`: a resume that had nothing left to do, the run folder
named twice, and a bar whose time left did not follow the time budget to its end."""

import json
import math
from types import SimpleNamespace

import pytest

from rnnlm.cli import main
from rnnlm.errors import UserError
from rnnlm.config import TrainConfig
from rnnlm.loopstate import LoopState
from rnnlm.progress import _Progress, _Timing, command_time_left
from rnnlm.resume import refuse_finished_resume

FLAGS = ["--max-vocab", "300", "--valid-fraction", "0.1", "--test-fraction", "0.1",
         "--emsize", "16", "--hidden", "16", "--bptt", "8", "--batch-size", "16", "--dropout", "0",
         "--sample-words", "0", "--no-progress"]


def _snapshot(folder):
    """Every file of a run folder with its bytes (the lock file aside: it is no content)."""
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.name != ".train.lock"}


def test_resume_at_or_below_the_reached_step_is_refused_and_writes_nothing(text, tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["train", "--corpus", str(text), *FLAGS, "--max-steps", "4", "--out", str(out)]) == 0
    capsys.readouterr()
    before = _snapshot(out)
    for n in ("4", "3"):
        assert main(["train", "--resume", str(out), "--max-steps", n, "--no-progress"]) == 2
        captured = capsys.readouterr()
        assert captured.out == ""
        err = captured.err.strip().splitlines()
        assert len(err) == 1 and "already at step 4" in err[0] and "--max-steps above 4" in err[0], err
        assert _snapshot(out) == before
    # Without --max-steps the run's own limit (4) still holds: the same refusal.
    assert main(["train", "--resume", str(out), "--no-progress"]) == 2
    assert "--max-steps above 4" in capsys.readouterr().err
    assert _snapshot(out) == before


def test_resume_names_the_folder_once_with_its_step(text, tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["train", "--corpus", str(text), *FLAGS, "--max-steps", "4", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["train", "--resume", str(out), "--max-steps", "6", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert printed.splitlines()[0] == f"resuming {out} from step 4 (epoch 1)"
    assert printed.count("run folder:") == 1 and printed.count(str(out)) == 2


def _config(**kw):
    return TrainConfig(**{"max_minutes": 0, **kw})


def test_refuse_finished_resume_names_the_limit_that_binds():
    refuse_finished_resume(_config(max_steps=10), LoopState(step=9), "R")          # one window left: fine
    with pytest.raises(UserError, match=r"R is already at step 10, the limit of --max-steps 10; give --max-steps above 10"):
        refuse_finished_resume(_config(max_steps=10), LoopState(step=10), "R")
    with pytest.raises(UserError, match=r"already at step 64, the end of its 2 epoch\(s\); give --epochs above 2"):
        refuse_finished_resume(_config(epochs=2), LoopState(step=64, epoch=3), "R")
    refuse_finished_resume(_config(epochs=3), LoopState(step=64, epoch=3), "R")
    with pytest.raises(UserError, match=r"^R is already at step 5: it has trained 0.92 min and its final evaluation "
                                        r"needs about 5 s, which fills --max-minutes 1; give --max-minutes above 1.00 "
                                        r"\(or 0: no time limit\) to train further$"):
        refuse_finished_resume(_config(max_minutes=1.0), LoopState(step=5, elapsed=55.0), "R", reserve=5.0)
    # the figure to exceed is rounded up: 30.3 s + 6 s = 0.605 min, so "above 0.61" (0.6 would be refused again)
    with pytest.raises(UserError, match=r"trained 0.51 min .* fills --max-minutes 0.6; give --max-minutes above 0.61 "
                                        r"\(or 0"):
        refuse_finished_resume(_config(max_minutes=0.6), LoopState(step=5, elapsed=30.3), "R", reserve=6.0)
    refuse_finished_resume(_config(max_minutes=0.61), LoopState(step=5, elapsed=30.3), "R", reserve=6.0)
    refuse_finished_resume(_config(max_minutes=1.0), LoopState(step=5, elapsed=50.0), "R", reserve=5.0)
    with pytest.raises(UserError, match=r"which --patience 3 allows no more of; give --patience above 3"):
        refuse_finished_resume(_config(patience=3), LoopState(step=5, bad_evals=3), "R")


# ---------------------------------------------------------------- the bar's time left


def test_time_left_includes_the_final_evaluation():
    # 600-s budget, 580 s elapsed, the final evaluation expected to take 14.6 s (the reserve):
    # training has 5.4 s left, the command 20 s. The bar showed 5.4 s (2.7x too little).
    left, budget = command_time_left(600 - 14.6 - 580, 10_000, 1.0, 14.6)
    assert budget and left == pytest.approx(20.0)
    # Past the training end (steps finishing late), only the final evaluation is left.
    assert command_time_left(-3.0, 10_000, 1.0, 14.6) == (pytest.approx(14.6), True)
    # The step limit binds first: its steps at the measured rate, then the final evaluation.
    left, budget = command_time_left(300.0, 50, 2.0, 10.0)
    assert not budget and left == pytest.approx(35.0)
    # No budget (inf) and no rate yet: unknown.
    assert command_time_left(math.inf, 50, math.nan, 0.0) == (math.inf, False)


def test_the_bar_shows_the_budget_left_to_the_end(monkeypatch):
    # The training bar's estimate, on a session whose clock is set by hand: with the budget
    # binding it is the budget's remaining wall time (the reserved final evaluation included).
    config = TrainConfig(max_minutes=10, progress=False)
    timing = _Timing(config, final_tokens=12_000)
    timing.observe_eval(1000, 1.0)                  # 1000 tokens/s: 1.05 * 12 s + 2 s = 14.6 s reserved
    assert timing.reserve() == pytest.approx(14.6)
    now = {"t": 500.0}
    s = SimpleNamespace(config=config, windows_per_epoch=100_000, clock=lambda: now["t"])
    loop = LoopState(step=100)
    progress = _Progress(s, loop, timing)
    for elapsed in (560.0, 580.0, 585.0):      # training ends at 585.4 s
        now["t"] = elapsed
        loop.step = 100 + int(elapsed - 500)        # one step per second
        left, what, _ = progress.eta(loop)
        assert what == "time budget" and left == pytest.approx(600.0 - elapsed), elapsed
    progress.close()


def test_the_bar_never_counts_past_its_total(monkeypatch):
    # Between two estimates (every few steps) the steps can pass the estimated last step; tqdm then
    # drops the total and shows "2641/? steps" at 0% (seen at the end of a real run): the total follows.
    config = TrainConfig(max_minutes=10, progress=True)
    timing = _Timing(config, final_tokens=12_000)
    s = SimpleNamespace(config=config, windows_per_epoch=100_000, clock=lambda: 0.0)
    loop = LoopState(step=0)
    import io
    import sys
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)     # a terminal: the bar is on
    progress = _Progress(s, loop, timing)
    assert progress.tty and not progress.bar.disable
    progress.eta_t = float("inf")                    # no new estimate in this test
    progress.bar.total = 5
    result = SimpleNamespace(tokens=10, bad=None, loss=1.0, clipped=False, grad_norm=0.1)
    monkeypatch.setattr(type(progress), "eta", lambda self, loop: (1.0, "time budget", 5))
    for step in range(1, 9):
        loop.step = step
        progress.step(loop, result, 0.01)
        assert progress.bar.n <= progress.bar.total, (progress.bar.n, progress.bar.total)
    assert progress.bar.n == 8 and progress.bar.total == 8
    progress.close()


def test_the_first_frame_shows_no_step_total_a_time_budget_has_not_estimated(monkeypatch):
    # With --max-minutes the last step is known only from the first steps' rate; the first frame showed the
    # epochs' step count (0/75400) until then. With --max-steps (or no budget) that limit is shown.
    import io
    import sys
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    s = SimpleNamespace(config=TrainConfig(max_minutes=10, progress=True), windows_per_epoch=75_400,
                        clock=lambda: 0.0)
    budget = _Progress(s, LoopState(step=0), _Timing(s.config, final_tokens=12_000))
    assert budget.bar.total is None and "0/? steps" in sys.stderr.getvalue()
    budget.step(LoopState(step=1), SimpleNamespace(tokens=10, bad=None, loss=1.0, clipped=False, grad_norm=0.1), 0.01)
    assert budget.bar.total is not None and budget.bar.n == 1      # the first step's estimate sets it
    budget.close()
    for config in (TrainConfig(max_steps=40, progress=True), TrainConfig(max_steps=40, max_minutes=0, progress=True)):
        s.config = config
        steps = _Progress(s, LoopState(step=0), _Timing(s.config, final_tokens=12_000))
        assert steps.bar.total == 40
        steps.close()


def test_an_unevaluated_run_is_not_said_to_have_failed_the_baseline():
    # A run interrupted before its first validation has no perplexity yet: the summary said "the model has
    # no finite perplexity: it has not beaten the baseline", as for a diverged run.
    from rnnlm.summary import _baseline_lines
    base = {"baseline": {"valid": {"ppl": 114.12}, "test": {"ppl": 94.59}}, "best_val_loss": math.inf,
            "best_val_ppl": math.inf, "run_dir": "runs/t2"}
    lines = _baseline_lines({**base, "stopped": "interrupted"})
    assert lines[1] == ("  the model has not been evaluated yet, so there is nothing to compare: "
                        "continue it with python cli.py train --resume runs/t2")
    assert "not beaten" not in " ".join(lines)
    diverged = _baseline_lines({**base, "stopped": "nonfinite", "test_ppl": math.nan})
    assert diverged[1] == "  the model has no finite perplexity: it has not beaten the baseline"


def test_resume_with_more_steps_keeps_the_runs_time_budget(text, tmp_path, capsys):
    """A trial: a run trained with --max-minutes 0.3 and stopped there, resumed with --max-steps 99999, ran
    16,000 steps with no time limit (config.json then said max_minutes 0). --max-steps without --max-minutes
    replaces the *default* budget of a new run; a resume keeps the run's own."""
    from rnnlm.config import given_train_settings
    assert given_train_settings({"max_steps": 99999}) == {"max_steps": 99999, "max_minutes": 0.0}
    assert given_train_settings({"max_steps": 99999}, resume=True) == {"max_steps": 99999}
    out = tmp_path / "r"
    assert main(["train", "--corpus", str(text), *FLAGS, "--max-minutes", "0.005", "--out", str(out),
                 "--no-progress"]) == 0
    assert json.loads((out / "config.json").read_text())["train"]["max_minutes"] == 0.005
    capsys.readouterr()
    assert main(["train", "--resume", str(out), "--max-steps", "99999", "--no-progress"]) == 2
    assert "give --max-minutes above" in capsys.readouterr().err
    assert json.loads((out / "config.json").read_text())["train"]["max_minutes"] == 0.005
