"""Small faults a user met: a resume whose metrics.jsonl was emptied says that its log is gone; a --out on a
file system that takes no folders (/proc) says so instead of "No such file or directory"."""
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
