"""What a new user saw go wrong around `train`: a resume that had nothing left to do, the run folder
named twice, and a bar whose time left did not follow the time budget to its end."""

import pytest

from rnnlm.cli import main
from rnnlm.errors import UserError
from rnnlm.train import TrainConfig, _Loop, refuse_finished_resume

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
    refuse_finished_resume(_config(max_steps=10), _Loop(step=9), "R")          # one window left: fine
    with pytest.raises(UserError, match=r"R is already at step 10 .*--max-steps above 10"):
        refuse_finished_resume(_config(max_steps=10), _Loop(step=10), "R")
    with pytest.raises(UserError, match=r"already at step 64, the end of its 2 epoch\(s\); give --epochs above 2"):
        refuse_finished_resume(_config(epochs=2), _Loop(step=64, epoch=3), "R")
    refuse_finished_resume(_config(epochs=3), _Loop(step=64, epoch=3), "R")
    with pytest.raises(UserError, match=r"--max-minutes 1 budget \(1.0 min .*above 1.0"):
        refuse_finished_resume(_config(max_minutes=1.0), _Loop(step=5, elapsed=55.0), "R", reserve=5.0)
    refuse_finished_resume(_config(max_minutes=1.0), _Loop(step=5, elapsed=50.0), "R", reserve=5.0)
    with pytest.raises(UserError, match=r"--patience 3\); give --patience above 3"):
        refuse_finished_resume(_config(patience=3), _Loop(step=5, bad_evals=3), "R")
