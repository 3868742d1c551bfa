"""Small faults a user met: a resume whose metrics.jsonl was emptied says that its log is gone; a --out on a
file system that takes no folders (/proc) says so instead of "No such file or directory"."""
import json
import os

import pytest

from rnnlm.cli import main
from rnnlm.runs import log_gone

from test_faults import FLAGS


def test_a_resume_of_a_run_whose_log_was_emptied_says_the_log_is_gone(text, tmp_path, capsys):
    out = tmp_path / "r"
    flags = ["--corpus", str(text), *FLAGS, "--batch-size", "16", "--eval-every", "2"]
    assert main(["train", *flags, "--max-steps", "4", "--out", str(out)]) == 0
    (out / "metrics.jsonl").write_text("")
    capsys.readouterr()
    assert main(["train", "--resume", str(out), "--max-steps", "6"]) == 0
    err = capsys.readouterr().err
    assert (f"{out / 'metrics.jsonl'} is empty, though the checkpoint is at step 4: the run resumes from it, but "
            "the log of the steps before it is gone: the run's log and its plots start at step 4") in err
    assert '"type": "resume", "step": 4' in (out / "metrics.jsonl").read_text()
    assert log_gone(out, 6) is None                 # the resumed session's events are a log again
    (out / "metrics.jsonl").unlink()
    assert log_gone(out, 6).startswith(f"{out / 'metrics.jsonl'} is missing, though the checkpoint is at step 6")
    assert log_gone(tmp_path / "none", 0) is None   # step 0: nothing was logged yet


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux's /proc")
@pytest.mark.parametrize("command", ["train", "sweep"])
def test_an_out_on_proc_says_that_file_system_takes_no_folders(text, capsys, command):
    args = (["train", "--corpus", str(text), *FLAGS, "--max-steps", "2", "--out", "/proc/rnnlm-x/y"]
            if command == "train" else
            ["sweep", "run", "--corpus", str(text), "--cell", "rnn", "--max-steps", "2", "--out", "/proc/rnnlm-x"])
    assert main(args) == 2
    folder = "/proc/rnnlm-x/y" if command == "train" else "/proc/rnnlm-x"
    assert capsys.readouterr().err == (f"error: cannot create the folder {folder}: /proc takes no new folders (a "
                                       "system file system such as /proc or /sys); give --out a folder on a disk\n")


def test_a_sweep_row_whose_result_is_not_a_number_is_refused_in_one_line(tmp_path, capsys):
    from rnnlm.sweeprecord import TRAIN_JOB, row_problem
    row = {"name": "cell=rnn", "fn": TRAIN_JOB, "status": "done", "best_val_ppl": "abc", "steps": 3}
    assert row_problem(row) == "its best_val_ppl is a string, not a number or null"
    assert row_problem({**row, "best_val_ppl": None}) is None           # null: not measured (a diverged run)
    assert row_problem({**row, "best_val_ppl": 1.5, "steps": True}) == "its steps is true or false, not a number or null"
    assert row_problem({**row, "fn": "mine:job"}) is None               # a job of one's own keeps its own row
    folder = tmp_path / "s"
    folder.mkdir()
    (folder / "sweep.jsonl").write_text(json.dumps(row) + "\n")
    assert main(["sweep", "summarize", str(folder)]) == 2
    assert capsys.readouterr().err == (
        f"error: {folder / 'sweep.jsonl'} cannot be read: line 1 is not a row a sweep wrote (its best_val_ppl is a "
        f"string, not a number or null); remove that line (the command that wrote the folder, run again with --out "
        f"{folder}, reruns its job) or restore the file from a copy\n")


def test_a_study_row_with_a_wrong_typed_result_is_named():
    from rnnlm.sweeprecord import TASK_JOB, row_problem
    row = {"name": "recall-rnn-d5-s0", "fn": TASK_JOB, "status": "done", "solved": False, "first_step": None,
           "final_acc": 0.5, "distance": 5, "history": {"step": [0, 50], "acc": [0.5, None]}}
    assert row_problem(row) is None
    assert row_problem({**row, "final_acc": "0.5"}) == "its final_acc is a string, not a number or null"
    assert row_problem({**row, "solved": 1}) == "its solved is a number, not true or false"
    assert row_problem({**row, "history": [1]}) == "its history is a list, not an object of lists"
    assert row_problem({**row, "history": {"acc": [0.5, "x"]}}) == "its history's acc is not a list of numbers"


def test_a_stopped_demo_says_what_it_kept_in_one_line(tmp_path, capsys, monkeypatch):
    from rnnlm import demogradients

    def stopped(*a, **k):
        raise KeyboardInterrupt
    monkeypatch.setattr(demogradients, "init_study", stopped)
    out = tmp_path / "dg"
    assert main(["demo", "gradients", "--quick", "--out", str(out)]) == 130
    assert capsys.readouterr().err.splitlines() == [
        "interrupted during stage init: no stage had finished; run the same command again (same --out) to continue"]


def test_a_new_run_into_a_folder_of_other_files_says_it_writes_beside_them(text, tmp_path, capsys):
    out = tmp_path / "notes"
    out.mkdir()
    for name in ("notes.txt", "a.csv", "b.csv", "c.csv"):
        (out / name).write_text("x")
    assert main(["train", "--corpus", str(text), *FLAGS, "--batch-size", "16", "--max-steps", "2",
                 "--out", str(out)]) == 0
    assert (f"{out} already holds 4 files or folders that are not a run's (a.csv, b.csv, c.csv and 1 more): the "
            f"run's files are written beside them") in capsys.readouterr().err
    assert (out / "notes.txt").read_text() == "x" and (out / "model.npz").exists()
