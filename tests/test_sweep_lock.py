"""A new user's sweep defects: a malformed --scheduler crashed with a traceback after creating the folder, and
two sweeps into one --out each rewrote sweep.jsonl with their own rows only (no lock, unlike train)."""
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from filelock import FileLock

from rnnlm import sweep, sweepcluster
from rnnlm.cli import main
from rnnlm.errors import UserError
from rnnlm.sweep import SWEEP_LOCK, check_scheduler, lock_sweep, read_rows

REPO = Path(__file__).resolve().parents[1]
ADVICE = ("give tcp://HOST:PORT (e.g. tcp://127.0.0.1:8786), 'serial' to run the jobs in this process, "
          "or leave --scheduler out for a local cluster")
BAD = [("foo", "it gives no port"),           # our words: Dask's said "missing port number in address ''"
       ("tcp://", "it gives no host and no port"),
       ("tcp://host", "it gives no port"),
       ("tcp://host:", "it gives no port"),
       ("tcp://localhost:abc", "port 'abc' is not a number"),      # (Python's int() message before)
       ("tcp://[::1]:x", "port 'x' is not a number"),
       ("http://127.0.0.1:8786", "http:// is not one of tcp://, tls://, ws://, wss://"),
       ("inproc://x", "inproc:// is not one of tcp://, tls://, ws://, wss://"),
       ("tcp://127.0.0.1:99999", "port 99999 is not between 1 and 65535")]


def _tiny_flags(text, out):
    return ["--corpus", str(text), "--max-vocab", "300", "--valid-fraction", "0.1", "--test-fraction", "0.1",
            "--emsize", "8", "--hidden", "8", "--bptt", "4", "--batch-size", "4", "--dropout", "0",
            "--eval-batch-size", "4", "--out", str(out), "--no-progress", "--max-steps", "3", "--eval-every", "0",
            "--scheduler", "serial"]


def _one_error_line(capsys) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and captured.out == "", captured
    assert lines[0].startswith("error: ")
    return lines[0][len("error: "):]


# ---------------------------------------------------------------- 1. a malformed --scheduler


@pytest.mark.parametrize("address, why", BAD)
def test_a_malformed_scheduler_is_one_line_before_anything_is_written(tmp_path, capsys, address, why):
    out = tmp_path / "runs" / "swbad"
    assert main(["sweep", "run", "--cell", "rnn", "--max-steps", "5", "--scheduler", address, "--out", str(out)]) == 2
    line = _one_error_line(capsys)
    assert line == f"--scheduler {address!r} is not a Dask scheduler address ({why}); {ADVICE}"
    assert not (tmp_path / "runs").exists()


def test_study_refuses_a_malformed_scheduler_the_same_way(tmp_path, capsys):
    out = tmp_path / "runs" / "st"
    assert main(["study", "learnability", "--scheduler", "foo", "--out", str(out)]) == 2
    assert _one_error_line(capsys) == f"--scheduler 'foo' is not a Dask scheduler address (it gives no port); {ADVICE}"
    assert not (tmp_path / "runs").exists()


def test_the_addresses_dask_takes_pass():
    for ok in (None, "serial", "tcp://127.0.0.1:8786", "10.0.0.5:8786", "tls://h:8786", "tcp://[::1]:8786"):
        check_scheduler(ok)
    with pytest.raises(UserError, match="^--scheduler 'Serial' is not a Dask scheduler address"):
        check_scheduler("Serial")


def test_an_unreachable_scheduler_leaves_no_new_folder(text, tmp_path, capsys, monkeypatch):
    def unreachable(scheduler, *a, **k):    # what check_answers raises after its 20 s connection timeout
        raise UserError(f"cannot reach the Dask scheduler at {scheduler} (timed out); start one with "
                        "'dask scheduler' or leave --scheduler out")

    monkeypatch.setattr(sweepcluster, "check_answers", unreachable)
    out = tmp_path / "runs" / "deeper" / "s"
    flags = [f for f in _tiny_flags(text, out) if f not in ("--scheduler", "serial")]
    assert main(["sweep", "run", *flags, "--cell", "rnn", "--scheduler", "tcp://127.0.0.1:1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: cannot reach the Dask scheduler at tcp://127.0.0.1:1 (timed out); start one with "
                   "'dask scheduler' or leave --scheduler out"]
    assert not (tmp_path / "runs").exists()         # the folders it created are gone, .sweep.lock included
    # a folder that was there before stays, with what it held
    out.mkdir(parents=True)
    (out / "notes.txt").write_text("mine\n")
    assert main(["sweep", "run", *flags, "--cell", "rnn", "--scheduler", "tcp://127.0.0.1:1"]) == 2
    assert (out / "notes.txt").read_text() == "mine\n"


def test_lock_sweep_removes_only_the_folders_it_created_and_only_when_nothing_else_is_in_them(tmp_path):
    new = tmp_path / "a" / "b"
    with pytest.raises(UserError, match="boom"):
        with lock_sweep(new):
            assert (new / SWEEP_LOCK).exists()
            raise UserError("boom")
    assert not (tmp_path / "a").exists()
    with lock_sweep(new):
        (new / "sweep.jsonl").write_text("")        # e.g. a sweep interrupted before its first job ended
    assert (new / "sweep.jsonl").read_text() == "" and (new / SWEEP_LOCK).read_text() == ""


# ---------------------------------------------------------------- 2. one sweep at a time per folder


def test_a_second_sweep_into_a_locked_folder_is_refused_and_the_record_kept(text, tmp_path, capsys):
    out = tmp_path / "s"
    assert main(["sweep", "run", *_tiny_flags(text, out), "--cell", "rnn", "--seeds", "2"]) == 0
    capsys.readouterr()
    before = (out / "sweep.jsonl").read_bytes()
    assert [r["settings"]["train"]["seed"] for r in read_rows(out)] == [0, 1]
    with FileLock(str(out / SWEEP_LOCK), timeout=0):       # another process's sweep, as the OS sees it
        assert main(["sweep", "run", *_tiny_flags(text, out), "--cell", "gru", "--seeds", "2"]) == 2
        assert _one_error_line(capsys) == (f"{out} is in use by another sweep (it holds {out / SWEEP_LOCK}); "
                                           "wait for it to end or use another --out")
        assert main(["sweep", "summarize", str(out)]) == 0     # readers take no lock
        assert "2 jobs (2 done, 0 failed)" in capsys.readouterr().out
    assert (out / "sweep.jsonl").read_bytes() == before
    # released: the same command runs, skipping the finished jobs; the lock file is no job and no row
    assert main(["sweep", "run", *_tiny_flags(text, out), "--cell", "rnn", "--seeds", "3"]) == 0
    captured = capsys.readouterr()
    assert captured.err.splitlines()[0] == f"3 jobs (seed) into {out}: skipping 2 finished in an earlier run, running 1"
    assert [r["settings"]["train"]["seed"] for r in read_rows(out)] == [0, 1, 2]
    assert (out / "sweep.jsonl").read_bytes().startswith(before)
    assert main(["sweep", "summarize", str(out)]) == 0
    assert "3 jobs (3 done, 0 failed)" in capsys.readouterr().out
    assert main(["plot", "sweep", str(out), "--x", "seed"]) == 0
    assert (out / "sweep-best_val_ppl-vs-seed.png").stat().st_size > 0
    # all done: runs none; settings that differ from the record are still refused by name
    assert main(["sweep", "run", *_tiny_flags(text, out), "--cell", "rnn", "--seeds", "3"]) == 0
    assert capsys.readouterr().err.splitlines()[0] == \
        f"3 jobs (seed) into {out}: skipping 3 finished in an earlier run, running 0"
    assert main(["sweep", "run", *_tiny_flags(text, out), "--cell", "rnn", "--seeds", "3", "--lr", "0.5"]) == 2
    assert "records job seed=0 with other settings" in capsys.readouterr().err


def test_a_sweep_held_by_another_process_is_refused_naming_its_pid(text, tmp_path, capsys):
    out = tmp_path / "s"
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys
        from rnnlm.sweep import lock_sweep
        with lock_sweep({str(out)!r}):
            print("locked", flush=True)
            sys.stdin.read()
        """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO,
        env={**__import__("os").environ, "PYTHONPATH": str(REPO)})
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert main(["sweep", "run", *_tiny_flags(text, out), "--cell", "rnn"]) == 2
        assert _one_error_line(capsys) == (f"{out} is in use by another sweep (pid {holder.pid} holds "
                                           f"{out / SWEEP_LOCK}); wait for it to end or use another --out")
        argv = ["study", "learnability", "--cells", "rnn", "--distances", "10", "--seeds", "0", "--n-train", "64",
                "--n-test", "32", "--steps", "30", "--eval-every", "10", "--scheduler", "serial", "--no-progress", "--out", str(out)]
        assert main(argv) == 2                      # a study's folder is a sweep folder: the same lock
        assert _one_error_line(capsys).startswith(f"{out} is in use by another sweep (pid {holder.pid} holds ")
    finally:
        holder.stdin.close()
        assert holder.wait(timeout=60) == 0
    assert not out.exists()                         # the holder made it, recorded nothing, and took it away
    assert main(["sweep", "run", *_tiny_flags(text, out), "--cell", "rnn"]) == 0
    assert [r["status"] for r in read_rows(out)] == ["done"]


def test_a_folder_of_another_kind_is_refused_before_the_first_line(text, tmp_path, capsys):
    """A trial: `study learnability` into a sweep folder appended its rows to the sweep's sweep.jsonl, and
    `sweep run` into a training run's folder wrote beside its checkpoints. Both are one line now."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{}", encoding="utf-8")
    assert main(["sweep", "run", *_tiny_flags(text, run)]) == 2
    assert _one_error_line(capsys) == (f"{run} is a training run's folder (it holds config.json); "
                                       "give the sweep another --out")
    assert sorted(p.name for p in run.iterdir()) == ["config.json"]
    swept = tmp_path / "swept"
    assert main(["sweep", "run", *_tiny_flags(text, swept)]) == 0
    capsys.readouterr()
    before = (swept / "sweep.jsonl").read_bytes()
    assert main(["study", "learnability", "--quick", "--scheduler", "serial", "--no-progress",
                 "--out", str(swept)]) == 2
    assert _one_error_line(capsys) == (f"{swept / 'sweep.jsonl'} records jobs of another kind "
                                       "(rnnlm.sweepjobs:train_job); give this one another --out")
    assert (swept / "sweep.jsonl").read_bytes() == before
    with pytest.raises(UserError, match="records jobs of another kind"):      # the library's own check
        sweep.check_folder(swept, {"rnnlm.learnability:task_job"})
    sweep.check_folder(swept, {"rnnlm.sweepjobs:train_job"})


def test_more_local_workers_than_cores_is_refused_and_workers_never_outnumber_jobs(tmp_path, capsys, monkeypatch):
    """A trial: --workers 1000 on 2 cores started about 75 processes for a 1-job grid."""
    import os
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    out = tmp_path / "w"
    assert main(["sweep", "run", "--cell", "rnn", "--max-steps", "5", "--workers", "3", "--out", str(out)]) == 2
    assert _one_error_line(capsys) == ("--workers 3: this machine has 2 cores and a local cluster's workers run one "
                                       "job each on one thread; give at most 2, or a --scheduler")
    assert not out.exists()
    check_scheduler(None, 2)
    check_scheduler("tcp://10.0.0.5:8786", 64)          # workers of a cluster started by hand: its own count
    with pytest.raises(UserError, match="--workers 3"):
        check_scheduler(None, 3)


def test_a_sweeps_folder_is_refused_to_train_and_a_grid_file_not_in_utf8_is_one_line(text, tmp_path, capsys):
    swept = tmp_path / "swept"
    swept.mkdir()
    (swept / "sweep.jsonl").write_text("", encoding="utf-8")
    assert main(["train", "--corpus", str(text), "--max-steps", "1", "--out", str(swept)]) == 2
    assert _one_error_line(capsys) == (f"{swept} is a sweep's or a study's folder (it holds sweep.jsonl); "
                                       "give the run another --out")
    assert sorted(p.name for p in swept.iterdir()) == ["sweep.jsonl"]
    grid = tmp_path / "grid.json"
    grid.write_bytes(b"\xba\xff\x00{")
    assert main(["sweep", "run", "--grid", str(grid), "--out", str(tmp_path / "g")]) == 2
    assert _one_error_line(capsys) == f"grid file {grid} is not UTF-8 text; give a JSON (or TOML) grid file"
