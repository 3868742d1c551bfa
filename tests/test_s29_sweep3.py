"""Sweep defects: a resumed sweep given its jobs in another order kept the earlier order (the rows and
sweep.jsonl not in the order of `jobs`, as promised); a job that called sys.exit() ended the caller's whole
process (serial) or was recorded as a dead worker (LocalCluster); and a job's exception whose message could
not be formatted (its __str__ raised) ended the whole sweep instead of giving a failed row."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from rnnlm.sweep import ERROR_FILE, Job, JobResult, read_rows, run_sweep

HERE = Path(__file__).resolve().parent
THIS = Path(__file__).resolve()


def _line(marker: str) -> int:
    """The line of this file that ends with the comment `marker` (where a job below raises)."""
    lines = THIS.read_text(encoding="utf-8").splitlines()
    return next(i + 1 for i, text in enumerate(lines) if text.rstrip().endswith("# " + marker))


def value_job(settings, payload):
    return JobResult({"value": settings["x"] * 10}, {})


def exiting_job(settings, payload):
    """A job (or a library it calls) that ends with sys.exit(code)."""
    if "code" in settings:
        raise SystemExit(settings["code"])  # exits-here
    if settings.get("exit"):
        sys.exit()
    return JobResult({"value": 1}, {})


class BadMessage(ValueError):
    def __str__(self):
        raise RuntimeError("a bug in __str__")


def unprintable_job(settings, payload):
    raise BadMessage("never shown")  # unprintable-here


def interrupted_job(settings, payload):
    raise KeyboardInterrupt


@pytest.fixture
def own_jobs(monkeypatch):
    """The job functions of this file importable by "test_s29_sweep3:NAME", as a user's module is."""
    monkeypatch.syspath_prepend(str(HERE))


def _job(x, fn="value_job"):
    return Job(f"x={x}", f"test_s29_sweep3:{fn}", {"x": x})


def _names(rows):
    return [r["name"] for r in rows]


# ---------------------------------------------------------------- 1. the order of `jobs`, resumed


def test_a_resumed_sweep_given_its_jobs_in_another_order_returns_and_writes_them_in_that_order(tmp_path, own_jobs):
    out = tmp_path / "o"
    first = run_sweep(out, [_job(1), _job(3)], scheduler="serial", progress=False)
    assert _names(first) == ["x=1", "x=3"]
    rows = run_sweep(out, [_job(4), _job(3), _job(1)], scheduler="serial", progress=False)
    assert _names(rows) == ["x=4", "x=3", "x=1"]
    assert _names(read_rows(out)) == ["x=4", "x=3", "x=1"]
    assert [r["value"] for r in rows] == [40, 30, 10]
    assert rows == read_rows(out)


def test_a_sweep_with_every_job_recorded_returns_and_writes_them_in_the_order_given(tmp_path, own_jobs):
    out = tmp_path / "o"
    run_sweep(out, [_job(1), _job(2), _job(3)], scheduler="serial", progress=False)
    before = read_rows(out)
    rows = run_sweep(out, [_job(3), _job(1), _job(2)], scheduler="serial", progress=False)
    assert _names(rows) == ["x=3", "x=1", "x=2"]
    assert _names(read_rows(out)) == ["x=3", "x=1", "x=2"]
    by = {r["name"]: r for r in before}
    assert rows == [by["x=3"], by["x=1"], by["x=2"]]        # the rows themselves unchanged, nothing rerun
    # given in the order recorded: the file is left as it is (not rewritten)
    mtime = (out / "sweep.jsonl").stat().st_mtime_ns
    os.utime(out / "sweep.jsonl", ns=(mtime - 10**9, mtime - 10**9))
    assert _names(run_sweep(out, [_job(3), _job(1), _job(2)], scheduler="serial", progress=False)) == \
        ["x=3", "x=1", "x=2"]
    assert (out / "sweep.jsonl").stat().st_mtime_ns == mtime - 10**9


def test_rows_of_jobs_not_given_keep_their_place_when_the_given_ones_are_reordered(tmp_path, own_jobs):
    out = tmp_path / "o"
    run_sweep(out, [_job(1), _job(2), _job(3)], scheduler="serial", progress=False)
    rows = run_sweep(out, [_job(3), _job(1), _job(0)], scheduler="serial", progress=False)
    # x=3 and x=1 in the order given, in the lines they held; x=2 (not given) where it was; x=0 after x=1
    assert _names(rows) == ["x=3", "x=2", "x=1", "x=0"]
    assert _names(read_rows(out)) == ["x=3", "x=2", "x=1", "x=0"]


# ---------------------------------------------------------------- 2. a job that calls sys.exit()


def _check_exited(folder, worker_prefix):
    by = {r["name"]: r for r in read_rows(folder)}
    bad = by["exit3"]
    assert bad["status"] == "failed" and bad["error"] == "SystemExit: 3"
    assert bad["attempts"] == 1
    assert bad["error_at"] == f"{THIS}:{_line('exits-here')} in exiting_job"
    assert bad["worker"].startswith(worker_prefix)
    text = (folder / "exit3" / ERROR_FILE).read_text(encoding="utf-8")
    assert text.startswith(f"job exit3 (test_s29_sweep3:exiting_job) failed on {bad['worker']}: SystemExit: 3\n")
    assert text.rstrip().endswith("SystemExit: 3")
    assert by["exit"]["status"] == "failed" and by["exit"]["error"] == "SystemExit"     # sys.exit(): no code
    assert by["ok"]["status"] == "done" and by["ok"]["value"] == 1


def _exit_jobs():
    return [Job("exit3", "test_s29_sweep3:exiting_job", {"code": 3}),
            Job("exit", "test_s29_sweep3:exiting_job", {"exit": True}),
            Job("ok", "test_s29_sweep3:exiting_job", {})]


def test_a_job_that_calls_sys_exit_is_a_failed_row_serially(tmp_path, own_jobs):
    out = tmp_path / "s"
    rows = run_sweep(out, _exit_jobs(), scheduler="serial", progress=False)
    assert _names(rows) == ["exit3", "exit", "ok"]
    _check_exited(out, f"serial:{os.getpid()}")


def test_ctrl_c_in_a_job_still_stops_a_serial_sweep(tmp_path, own_jobs):
    out = tmp_path / "s"
    jobs = [_job(1), Job("ctrl-c", "test_s29_sweep3:interrupted_job", {}), _job(2)]
    with pytest.raises(KeyboardInterrupt):
        run_sweep(out, jobs, scheduler="serial", progress=False, say_interrupted=False)
    assert _names(read_rows(out)) == ["x=1"]


# ---------------------------------------------------------------- 3. an exception that cannot be formatted


def test_an_exception_whose_message_raises_is_a_failed_row_serially(tmp_path, own_jobs):
    out = tmp_path / "s"
    rows = run_sweep(out, [Job("bad", "test_s29_sweep3:unprintable_job", {}), _job(1)], scheduler="serial",
                     progress=True)
    assert _names(rows) == ["bad", "x=1"]
    bad, ok = read_rows(out)
    assert bad["status"] == "failed"
    assert bad["error"] == "BadMessage: <unprintable: RuntimeError in its message>"
    assert bad["error_at"] == f"{THIS}:{_line('unprintable-here')} in unprintable_job"
    assert (out / "bad" / ERROR_FILE).read_text(encoding="utf-8").startswith(
        f"job bad (test_s29_sweep3:unprintable_job) failed on {bad['worker']}: BadMessage: <unprintable: ")
    assert ok["status"] == "done" and ok["value"] == 10


# ---------------------------------------------------------------- 2 and 3 on the LocalCluster


def test_sys_exit_and_an_unprintable_exception_on_local_cluster_workers_are_failed_rows(tmp_path, own_jobs):
    out = tmp_path / "s"
    jobs = [*_exit_jobs(), Job("bad", "test_s29_sweep3:unprintable_job", {})]
    rows = run_sweep(out, jobs, n_workers=2, progress=False)
    assert _names(rows) == ["exit3", "exit", "ok", "bad"]
    _check_exited(out, "tcp://")
    bad = rows[3]
    assert bad["status"] == "failed" and bad["attempts"] == 1
    assert bad["error"] == "BadMessage: <unprintable: RuntimeError in its message>"
