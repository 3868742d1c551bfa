"""Ctrl-C on `sweep run` (one line, nothing left behind, a rerun says what it skips) and where a sweep's time goes."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rnnlm.sweep import Job, read_rows, run_sweep
from test_sweep import _children_alive as _alive, _sigint_default

REPO = Path(__file__).resolve().parents[1]


def _wait(cond, seconds, what):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if cond():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.slow
def test_ctrl_c_mid_job_is_one_line_leaves_nothing_behind_and_a_rerun_says_what_it_skips(text, tmp_path):
    import psutil
    out, scratch = tmp_path / "s", tmp_path / "tmp"
    scratch.mkdir()
    # two 3-step jobs that finish, then two jobs long enough to be in flight at Ctrl-C
    cmd = [sys.executable, "cli.py", "sweep", "run", "--corpus", str(text), "--max-vocab", "300",
           "--valid-fraction", "0.1", "--test-fraction", "0.1", "--emsize", "16", "--hidden", "16", "--bptt", "8",
           "--batch-size", "8", "--dropout", "0", "--eval-batch-size", "4", "--cell", "rnn",
           "--max-steps", "3,1000000", "--epochs", "100000", "--patience", "0", "--min-lr", "0", "--eval-every", "0",
           "--seeds", "2", "--workers", "2", "--out", str(out)]
    env = dict(os.environ, TMPDIR=str(scratch))       # the cluster's and the jobs' temporary folders land here
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, start_new_session=True, preexec_fn=_sigint_default,
                            stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        _wait(lambda: len(read_rows(out)) == 2 and len(list(scratch.rglob("rnnlm-job-*"))) == 2, 600,
              "two jobs recorded and two in flight")
        workers = [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
        assert len(workers) >= 2
        os.killpg(proc.pid, signal.SIGINT)               # what a terminal's Ctrl-C does: the whole group
        _, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err
    said = [line for line in err.splitlines() if "interrupt" in line.lower()]
    assert said == [f"interrupted: 2 of 4 jobs recorded in {out / 'sweep.jsonl'}, no job left running; continue "
                    f"with the same command and --out {out} (it skips the 2 recorded)"], err
    for noise in ("Traceback", "leaked", "Warning", "WARNING", "ERROR", "KeyboardInterrupt"):
        assert noise not in err, err
    time.sleep(1)
    assert _alive(workers) == []
    assert list(scratch.iterdir()) == []                # no rnnlm-job-*, no cluster scratch folder
    assert len(read_rows(out)) == 2
    # The same command again: one line says what it skips and what it runs, before any bar.
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, start_new_session=True, preexec_fn=_sigint_default,
                            stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stderr.readline().strip()
        assert first == f"4 jobs (max_steps x seed) into {out}: skipping 2 finished in an earlier run, running 2"
        _wait(lambda: len(list(scratch.rglob("rnnlm-job-*"))) == 2, 600, "the two jobs left in flight")
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130 and "interrupted: 2 of 4 jobs recorded" in err, err
    assert list(scratch.iterdir()) == []


def test_a_serial_sweep_reports_where_its_time_went(tmp_path):
    split = {}
    jobs = [Job(f"noop-{i}", "rnnlm.sweepjobs:noop_job", {"i": i}, None) for i in range(3)]
    t0 = time.perf_counter()
    run_sweep(tmp_path, jobs, scheduler="serial", progress=False, timings=split)
    wall = time.perf_counter() - t0
    assert set(split) == {"start_s", "ship_s", "jobs_s", "close_s"}
    assert split["start_s"] == split["ship_s"] == split["close_s"] == 0.0 and 0 < split["jobs_s"] <= wall


@pytest.mark.slow
def test_a_cluster_sweep_reports_its_start_shipping_jobs_and_close(tmp_path):
    import numpy as np
    split = {}
    jobs = [Job(f"noop-{i}", "rnnlm.sweepjobs:noop_job", {"i": i}, "d") for i in range(3)]
    t0 = time.perf_counter()
    rows = run_sweep(tmp_path, jobs, {"d": {"x": np.arange(4)}}, n_workers=1, progress=False, timings=split)
    wall = time.perf_counter() - t0
    assert [r["status"] for r in rows] == ["done"] * 3
    assert all(split[k] > 0 for k in ("start_s", "ship_s", "jobs_s", "close_s")), split
    assert sum(split.values()) <= wall


def test_the_sweep_bench_report_splits_each_way_into_start_jobs_and_close():
    from rnnlm.bench import format_sweep_bench

    def way(wall, start, jobs):
        return {"wall_s": wall, "jobs_per_min": 60 * 8 / wall, "in_job_s": 8.0, "mean_job_s": 1.0, "failed": 0,
                "peak_rss_mb": {"w": 100.0},
                "split_s": {"start_s": start, "ship_s": 0.1, "jobs_s": jobs, "close_s": 0.5}}
    d = {"jobs": 8, "steps": 3, "corpus": "machado", "load_before": (1.0,), "load_after": (1.0,),
         "ways": {"serial loop, 2 threads": way(40.0, 0.0, 40.0), "1 worker": way(80.0, 4.0, 75.0),
                  "2 workers": way(42.0, 5.0, 36.0)},
         "cluster_start_s": 4.0, "noop_round_trip_s": 0.01, "overhead_per_job_s": 0.1}
    text = format_sweep_bench(d)
    assert "| way | cluster start s | ship data s | jobs s | cluster close s | jobs/min (jobs part only) |" in text
    assert "| 2 workers | 5.00 | 0.10 | 36.0 | 0.50 | 13.33 |" in text
    assert "2 workers / serial loop: 0.95x (jobs part only, without the cluster's start and close: 1.11x)" in text
