"""A trial user's `study`, seventh round: a step budget too short to ever count a run solved, accepted
without a word, and an empty steps figure when no run was solved."""
import pytest

from rnnlm import config as C
from rnnlm import study
from rnnlm.cli import main
from rnnlm.errors import UserError

from test_study_ux3 import _draw, _row, drawn  # noqa: F401 (drawn: the fixture)


# ---------------------------------------------------------------- 3. a budget too short to solve


def _budget(steps, eval_every, **kw):
    return C.StudyConfig(train=C.TaskTrainConfig(steps=steps, eval_every=eval_every, **kw))


def test_the_smallest_budget_that_can_count_a_run_solved():
    # evaluations every eval_every steps count; solved after patience (3) in a row, so 3 x eval_every steps (a
    # last evaluation off the schedule, at step 501, came 1 step after the one at 500 and counted as the third)
    assert [study.evaluations(s, 250) for s in (1, 250, 251, 500, 501, 749, 750, 6000)] == [0, 1, 1, 2, 2, 2, 3, 24]
    for steps, ok in ((501, False), (749, False), (750, True), (6000, True)):
        if ok:
            study.check_budget(_budget(steps, 250))
        else:
            with pytest.raises(UserError, match="give --steps 750 or more"):
                study.check_budget(_budget(steps, 250))
    study.check_budget(_budget(30, 10))                 # evaluations at 10, 20, 30
    with pytest.raises(UserError, match=r"allows 2 evaluations.*--eval-every 10 or less"):
        study.check_budget(_budget(30, 11))             # at 11 and 22 only
    study.check_budget(_budget(250, 250, patience=1))   # one evaluation suffices
    study.check_budget(C.StudyConfig(quick=True))       # --quick's own budget
    with pytest.raises(UserError, match=r"^--steps 1 with --eval-every 250 allows 0 evaluations, .*--steps 750 or "
                                        r"more$"):
        study.check_budget(_budget(1, 250))             # no --eval-every can give 3 evaluations of 1 step


def test_study_refuses_a_budget_that_cannot_solve_in_one_line(tmp_path, capsys):
    out = tmp_path / "st"
    assert main(["study", "learnability", "--steps", "400", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [
        "error: --steps 400 with --eval-every 250 allows 1 evaluation, but a run counts as solved only after 3 "
        "consecutive evaluations at held-out accuracy >= 0.95: no run could be solved; give --steps 750 or more "
        "(or --eval-every 133 or less)"]
    assert not out.exists()


# ---------------------------------------------------------------- 5. no run solved: the steps figure says so


def test_the_steps_figure_says_when_no_run_was_solved(tmp_path, drawn):  # noqa: F811
    cfg = C.StudyConfig(distances="10,40", cells="rnn,gru", seeds="0,1")
    rows = [_row(c, d, s, False) for c in cfg.cell_list() for d in cfg.distance_list() for s in cfg.seed_list()]
    study.write_figures(cfg, study.summarize(cfg, rows), tmp_path, formats=("png",))
    assert "no run solved within the budget (6,000 steps)" in drawn["steps"]["texts"]
    drawn.clear()
    _draw(tmp_path, cfg)                                # seed 0 solved: the points say it, no note
    assert not any("no run solved" in t for t in drawn["steps"]["texts"])
