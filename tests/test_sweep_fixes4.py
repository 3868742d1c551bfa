"""Sweep defects a new user found: a corrupt sweep.jsonl read as an empty one, and the resource tracker's
warning lines after the one line of a sweep whose process group got SIGTERM (as `timeout` or a batch system
sends it)."""
import dataclasses as dc
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rnnlm.cli import main
from rnnlm.sweep import SWEEP_FILE, read_rows
from test_sweep import _sigint_default
from test_sweep_fixes2 import _tiny_flags

REPO = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------- 1. a corrupt sweep.jsonl is not an empty one


def _corrupt_line(folder: Path, n: int) -> str:
    return (f"error: {folder / SWEEP_FILE} cannot be read: line {n} is not a UTF-8 JSON object; remove that line "
            f"(the command that wrote the folder, run again with --out {folder}, reruns its job) or restore the file "
            "from a copy\n")


@pytest.fixture(scope="module")
def swept(text, tmp_path_factory):
    """A finished sweep of one tiny job (its folder is copied by the tests that damage it)."""
    out = tmp_path_factory.mktemp("swept") / "s"
    assert main(["sweep", "run", *_tiny_flags(text, out), "--cell", "rnn"]) == 0
    return out


def _copy(src: Path, dst: Path) -> Path:
    import shutil
    shutil.copytree(src, dst)
    return dst


@pytest.mark.parametrize("argv", [["sweep", "summarize"], ["plot", "sweep", "--x", "cell"]])
def test_a_sweep_jsonl_of_one_line_that_is_not_json_is_called_corrupt_not_empty(swept, tmp_path, capsys, argv):
    out = _copy(swept, tmp_path / "s")
    (out / SWEEP_FILE).write_text("garbage{\n", encoding="utf-8")     # `echo 'garbage{' > sweep.jsonl`
    assert main([*argv[:2], str(out), *argv[2:]]) == 2
    assert capsys.readouterr().err == _corrupt_line(out, 1)


def test_a_complete_bad_last_line_is_corrupt_and_a_torn_one_is_still_dropped(swept, tmp_path, capsys):
    out = _copy(swept, tmp_path / "s")
    good = (out / SWEEP_FILE).read_text(encoding="utf-8")
    (out / SWEEP_FILE).write_text(good + "garbage{\n", encoding="utf-8")
    assert main(["sweep", "summarize", str(out)]) == 2
    assert capsys.readouterr().err == _corrupt_line(out, 2)
    (out / SWEEP_FILE).write_text(good + good[:20], encoding="utf-8")    # a crash mid-line: no newline at its end
    assert [r["name"] for r in read_rows(out)] == ["run"]
    assert main(["sweep", "summarize", str(out)]) == 0
    (out / SWEEP_FILE).write_text("garbage{\n" + good, encoding="utf-8")
    assert main(["sweep", "summarize", str(out)]) == 2
    assert capsys.readouterr().err == _corrupt_line(out, 1)


def test_an_empty_sweep_jsonl_is_still_called_empty(swept, tmp_path, capsys):
    out = _copy(swept, tmp_path / "s")
    (out / SWEEP_FILE).write_text("", encoding="utf-8")
    assert main(["sweep", "summarize", str(out)]) == 2
    assert f"({SWEEP_FILE} is empty: it was interrupted before its first job ended)" in capsys.readouterr().err


def test_study_report_only_on_a_corrupt_sweep_jsonl_says_so(tmp_path, capsys):
    from rnnlm.config import StudyConfig, TaskTrainConfig
    from rnnlm.study import run_study
    out = tmp_path / "st"
    cfg = StudyConfig(distances="3", cells="rnn", seeds="0", n_train=32, n_test=16, out=str(out),
                      train=dc.replace(TaskTrainConfig(), steps=10, eval_every=5, hidden=8, emsize=8, batch_size=8))
    run_study(cfg, scheduler="serial", progress=False)
    assert json.loads((out / "study.json").read_text())["meta"]["recorded"] == 1
    (out / SWEEP_FILE).write_text("garbage{\n", encoding="utf-8")
    capsys.readouterr()
    assert main(["study", "learnability", "--report-only", "--out", str(out)]) == 2
    assert capsys.readouterr().err == _corrupt_line(out, 1)


# ---------------------------------------------------------------- 2. SIGTERM to the whole process group


def test_sigterm_to_the_process_group_of_a_sweep_prints_the_one_line_only(text, tmp_path):
    """A trial (`timeout -s TERM`): the worker processes died at once, holding semaphores, and the resource
    tracker, which cleans them up, added its two lines of UserWarning after the sweep's one line."""
    out = tmp_path / "s"
    flags = _tiny_flags(text, out, scheduler=None)
    flags[flags.index("--max-steps") + 1] = "400"
    cmd = [sys.executable, "cli.py", "sweep", "run", *flags, "--cell", "rnn", "--seeds", "6", "--workers", "2"]
    proc = subprocess.Popen(cmd, cwd=REPO, start_new_session=True, preexec_fn=_sigint_default,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stderr.readline()
        deadline = time.time() + 240
        while time.time() < deadline and proc.poll() is None and not (out / SWEEP_FILE).exists():
            time.sleep(0.05)        # a job recorded: the workers are up and running the next ones
        os.killpg(proc.pid, signal.SIGTERM)     # as `timeout` and batch systems stop a job: the whole group
        _, err = proc.communicate(timeout=120)  # until the tracker too closed its stderr
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert first == f"6 jobs (seed) into {out}\n"
    assert proc.returncode == 143, err
    n = len(read_rows(out))
    assert 0 < n < 6, err
    assert err.splitlines() == [f"terminated: {n} of 6 jobs recorded in {out / SWEEP_FILE}, no job left running; "
                                f"continue with the same command and --out {out} (it skips the {n} recorded)"]


def test_the_resource_tracker_starts_with_its_leak_warning_ignored(monkeypatch):
    from rnnlm import sweepcluster
    seen = []
    monkeypatch.setattr("multiprocessing.resource_tracker.ensure_running", lambda: seen.append(list(sys.warnoptions)))
    before = list(sys.warnoptions)
    sweepcluster._start_resource_tracker()
    assert seen == [[*before, sweepcluster.TRACKER_QUIET]] and sys.warnoptions == before
    import warnings
    with warnings.catch_warnings():
        warnings.resetwarnings()
        warnings._setoption(sweepcluster.TRACKER_QUIET)     # the filter as the tracker's -W makes it
        action = [f for f in warnings.filters if f[0] == "ignore"][0]
    _, message, category, module, _ = action
    assert message.match("resource_tracker: There appear to be 2 leaked semaphore objects to clean up at shutdown")
    assert category is UserWarning and module.match("multiprocessing.resource_tracker")
    assert not module.match("rnnlm.sweep")


def test_sweep_run_takes_corpora_dir_like_train(machado_dir, capsys, monkeypatch):
    """`sweep run --corpora-dir DIR` crashed in the CLI's check (its value is a grid axis, a list); each folder
    is now made absolute as train's is, and an empty one refused in one line."""
    from rnnlm import cli
    args = cli.build_parser().parse_args(["sweep", "run", "--corpora-dir", str(machado_dir.parent), "--cell", "rnn"])
    cli._check_corpora_dir(args)
    assert args.corpora_dir == [str(machado_dir.parent.resolve())] or args.corpora_dir == [str(machado_dir.parent)]
    assert cli.main(["sweep", "run", "--corpora-dir", "", "--cell", "rnn"]) == 2
    assert capsys.readouterr().err.strip().startswith("error: --corpora-dir is empty;")


def test_a_damaged_byte_in_sweep_jsonl_is_one_line_not_a_traceback(swept, tmp_path, capsys):
    """A trial: one \\xff byte in line 2 (or a file of \\xff\\xfe) gave UnicodeDecodeError's traceback, exit 1."""
    out = _copy(swept, tmp_path / "s")
    good = (out / SWEEP_FILE).read_bytes()
    (out / SWEEP_FILE).write_bytes(good + good.replace(b'"run"', b'"r\xffn"', 1))
    assert main(["sweep", "summarize", str(out)]) == 2
    assert capsys.readouterr().err == _corrupt_line(out, 2)
    (out / SWEEP_FILE).write_bytes(b"\xff\xfe\n")
    assert main(["plot", "sweep", str(out), "--x", "cell"]) == 2
    assert capsys.readouterr().err == _corrupt_line(out, 1)
    (out / SWEEP_FILE).write_bytes(good + good[:10] + b"\xff")      # a torn last line, damaged: still dropped
    assert [r["name"] for r in read_rows(out)] == ["run"]
