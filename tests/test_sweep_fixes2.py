"""Sweep and study defects of a later review: noise after a stop during the cluster's start, a --scheduler
that is no Dask scheduler, our own wording for bad addresses, flags that were silently ignored, what an
early stop leaves in the folder, the order of the refusal and the first line, and the lock holder's pid."""
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from rnnlm import sweepcluster
from rnnlm.cli import main
from rnnlm.errors import UserError
from test_sweep import _sigint_default
from test_sweep_lock import _one_error_line

REPO = Path(__file__).resolve().parents[1]


def _tiny_flags(text, out, scheduler="serial"):
    return ["--corpus", str(text), "--max-vocab", "300", "--valid-fraction", "0.1", "--test-fraction", "0.1",
            "--emsize", "8", "--hidden", "8", "--bptt", "4", "--batch-size", "4", "--dropout", "0",
            "--eval-batch-size", "4", "--out", str(out), "--no-progress", "--max-steps", "3", "--eval-every", "0",
            *(["--scheduler", scheduler] if scheduler else [])]


# ---------------------------------------------------------------- 1. a stop while the cluster starts


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_while_the_local_cluster_starts_prints_our_line_only(text, tmp_path, signum):
    """A trial: Ctrl-C or SIGTERM in the second the cluster took to start printed 30-50 lines of the
    half-started workers' tracebacks and Dask's close errors after the one line."""
    import psutil
    out = tmp_path / "s"
    cmd = [sys.executable, "cli.py", "sweep", "run", *_tiny_flags(text, out, scheduler=None),
           "--cell", "rnn", "--seeds", "2", "--workers", "2"]
    proc = subprocess.Popen(cmd, cwd=REPO, start_new_session=True, preexec_fn=_sigint_default,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stderr.readline()
        deadline = time.time() + 120
        while time.time() < deadline and len(psutil.Process(proc.pid).children(recursive=True)) < 3:
            time.sleep(0.01)        # the resource tracker and the first worker processes: they are importing
        if signum == signal.SIGINT:
            os.killpg(proc.pid, signum)     # a terminal's Ctrl-C reaches the whole group, workers included
        else:
            os.kill(proc.pid, signum)       # `kill PID`
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    word, status = ("interrupted", 130) if signum == signal.SIGINT else ("terminated", 143)
    assert first == f"2 jobs (seed) into {out}\n"
    assert proc.returncode == status, err
    assert err.splitlines() == [f"{word}: no job had finished (none is left running), so nothing is recorded; "
                                f"{out} was new and is removed again; the same command starts over"]
    assert not out.exists()


# ---------------------------------------------------------------- 2. a --scheduler that is no Dask scheduler


@contextmanager
def _server(reply: bytes | None):
    """A TCP server on 127.0.0.1 that takes connections and answers `reply` to what it reads (None: never
    answers, as `python -m http.server` waits for the end of a request line that Dask never sends)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    conns = []

    def serve():
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            conns.append(conn)
            conn.recv(1000)
            if reply is not None:
                conn.sendall(reply)
    threading.Thread(target=serve, daemon=True).start()
    try:
        yield f"tcp://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()
        for c in conns:
            c.close()


def test_a_server_that_never_answers_dasks_handshake_is_one_line_within_the_timeout():
    with _server(None) as address:
        t0 = time.perf_counter()
        with pytest.raises(UserError) as exc:
            sweepcluster.check_answers(address, timeout=0.5)
        took = time.perf_counter() - t0
    assert 0.9 < took < 5, took
    assert str(exc.value) == (f"{address} took the connection but did not answer as a Dask scheduler within 1 s "
                              "(a server of another kind listens there?); give the address that 'dask scheduler' "
                              "prints (tcp://HOST:8786 by default), or leave --scheduler out")


def test_a_proxys_http_400_is_not_a_dask_scheduler_rather_than_out_of_memory(text, tmp_path, capsys):
    """A trial: a proxy's "HTTP/1.1 400" read as a Dask frame header asked for exabytes, and the MemoryError
    became "out of memory; use smaller sizes"."""
    out = tmp_path / "runs" / "s"
    with _server(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n") as address:
        assert main(["sweep", "run", *_tiny_flags(text, out, scheduler=address), "--cell", "rnn"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [f"error: {address} is not a Dask scheduler (it answered Dask's handshake with something else); "
                   "give the address that 'dask scheduler' prints (tcp://HOST:8786 by default), or leave --scheduler "
                   "out"]
    assert not (tmp_path / "runs").exists()


def test_a_dask_worker_is_not_taken_for_the_scheduler():
    import asyncio

    async def both():
        from distributed import Scheduler, Worker
        async with Scheduler(dashboard_address=":0", host="127.0.0.1") as s:
            async with Worker(s.address, nthreads=1, host="127.0.0.1") as w:
                loop = asyncio.get_running_loop()
                await loop.run_in_executor(None, sweepcluster.check_answers, s.address, 5)       # no error: a scheduler
                with pytest.raises(UserError, match=r"is a Dask worker, not a scheduler; give the address"):
                    await loop.run_in_executor(None, sweepcluster.check_answers, w.address, 5)
    asyncio.run(both())


# ---------------------------------------------------------------- 4. --workers with --scheduler serial


def test_workers_with_the_serial_scheduler_is_refused_by_sweep_and_study_alike(tmp_path, capsys):
    """A trial: `--workers 4 --scheduler serial` ran one job after another without a word about the 4."""
    said = ("--workers 2: --scheduler serial runs the jobs in this process, one after another; leave --workers "
            "out, or leave --scheduler out for a local cluster of that many workers")
    out = tmp_path / "runs" / "s"
    assert main(["sweep", "run", "--cell", "rnn", "--max-steps", "5", "--scheduler", "serial", "--workers", "2",
                 "--out", str(out)]) == 2
    assert _one_error_line(capsys) == said
    assert main(["study", "learnability", "--quick", "--scheduler", "serial", "--workers", "2",
                 "--out", str(out)]) == 2
    assert _one_error_line(capsys) == said
    assert not (tmp_path / "runs").exists()
    sweepcluster.check_scheduler("serial")                     # without --workers: fine
    sweepcluster.check_scheduler("tcp://10.0.0.5:8786", 2)     # a cluster's workers: the count to wait for


# ---------------------------------------------------------------- 10. sweep summarize's perplexities


def test_sweep_summarize_prints_perplexities_as_every_report_does(tmp_path, capsys):
    """A trial: `sweep summarize` printed an exploded run's perplexity as 1.986e+21 and a healthy one as 141.2,
    where the per-job line, train's summary and the other tables print 1.99e+21 and 141.19."""
    import json
    folder = tmp_path / "s"
    folder.mkdir()
    rows = [{"name": f"cell={c}", "fn": "rnnlm.sweepjobs:train_job", "settings": {"cell": c}, "status": "done",
             "best_val_ppl": best, "val_ppl": last, "steps": 40, "wall_s": 3.04, "worker": "w", "attempts": 1}
            for c, best, last in [("rnn", 1986176366583207165952.0, float("inf")), ("lstm", 141.194, 145.5)]]
    (folder / "sweep.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["sweep", "summarize", str(folder)]) == 0
    table = capsys.readouterr().out
    assert "| cell=rnn | rnn | done | 1.99e+21 | inf | 40 | 3.04 | w |" in table, table
    assert "| cell=lstm | lstm | done | 141.19 | 145.50 | 40 | 3.04 | w |" in table, table


# ---------------------------------------------------------------- 9. bench --sweep --threads


def test_bench_sweep_refuses_threads_instead_of_ignoring_it(capsys, monkeypatch):
    from rnnlm import bench

    def ran(*a, **k):
        raise AssertionError("the sweep bench ran")
    monkeypatch.setattr(bench, "sweep_bench", ran)
    assert main(["bench", "--sweep", "--threads", "1"]) == 2
    assert _one_error_line(capsys) == ("--threads 1: --sweep compares fixed ways (the serial loop on 2 threads, "
                                       "1 and 2 workers of one thread each); leave --threads out")


@pytest.mark.parametrize("argv, line", [
    (["--sweep-jobs", "4"], "--sweep-jobs sizes --sweep's grid only; add --sweep, or leave --sweep-jobs out"),
    (["--sweep-steps", "20"], "--sweep-steps sizes --sweep's grid only; add --sweep, or leave --sweep-steps out"),
    (["--scaling", "1", "--threads", "1"], "--threads 1: --scaling 1 gives the thread counts itself; leave --threads out"),
    (["--sweep", "--vs-torch", "--json"], "--sweep times Dask sweeps, not one model: leave out --vs-torch, --json"),
])
def test_bench_refuses_a_flag_its_mode_would_ignore(argv, line, capsys, monkeypatch):
    from rnnlm import bench, benchscaling

    def ran(*a, **k):
        raise AssertionError("the bench ran")
    for module, name in ((bench, "sweep_bench"), (bench, "run_bench"), (benchscaling, "run_scaling")):
        monkeypatch.setattr(module, name, ran)
    assert main(["bench", *argv]) == 2
    assert _one_error_line(capsys) == line


def test_bench_sweep_passes_only_the_sizes_given(capsys, monkeypatch):
    from rnnlm import bench
    seen = []
    monkeypatch.setattr(bench, "sweep_bench", lambda **k: seen.append(k) or {})
    monkeypatch.setattr(bench, "format_sweep_bench", lambda d: "table")
    assert main(["bench", "--sweep"]) == 0 and main(["bench", "--sweep", "--sweep-jobs", "12"]) == 0
    assert seen == [{}, {"n_jobs": 12}]


# ---------------------------------------------------------------- 7. the lock holder's pid, for sweeps and runs


@contextmanager
def _holder(code: str):
    """Another process that runs `code` (which takes a lock and prints "locked") until its stdin closes."""
    script = f"import sys\n{code}\nprint('locked', flush=True)\nsys.stdin.read()"
    proc = subprocess.Popen([sys.executable, "-c", script],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert proc.stdout.readline().strip() == "locked"
        yield proc
    finally:
        proc.stdin.close()
        assert proc.wait(timeout=60) == 0


def test_train_refused_by_a_runs_lock_names_the_holders_pid_every_time(text, tmp_path, capsys):
    """A trial: train's refusal said "it holds" (its lock file held no pid), and with filelock 3.x a refused
    opener truncated the sweep's lock file, so the next refusal lost the pid too."""
    from rnnlm.runs import LOCK
    out = tmp_path / "r"
    with _holder(f"from rnnlm.folderlock import lock_run\nlock = lock_run({str(out)!r})") as proc:
        for _ in range(2):          # the first refusal leaves the pid for the second
            assert main(["train", "--corpus", str(text), "--max-steps", "1", "--out", str(out)]) == 2
            assert _one_error_line(capsys) == (f"{out} is being trained by another process (pid {proc.pid} holds "
                                               f"{out / LOCK}); wait for it to end or use another --out")
    assert (out / LOCK).read_text() == ""           # released: no pid left to name
    s = tmp_path / "s"
    with _holder(f"from rnnlm.sweep import lock_sweep\ncm = lock_sweep({str(s)!r})\ncm.__enter__()") as proc:
        for _ in range(2):
            assert main(["sweep", "run", *_tiny_flags(text, s), "--cell", "rnn"]) == 2
            assert _one_error_line(capsys).startswith(f"{s} is in use by another sweep (pid {proc.pid} holds ")


# ---------------------------------------------------------------- 6. a record of other settings: refused first


def test_a_rerun_with_other_settings_is_refused_before_its_first_line(text, tmp_path, capsys):
    """A trial: the rerun printed "1 job (one point) into OUT: skipping ..." and then refused."""
    out = tmp_path / "s"
    assert main(["sweep", "run", *_tiny_flags(text, out), "--cell", "rnn"]) == 0
    capsys.readouterr()
    before = (out / "sweep.jsonl").read_bytes()
    assert main(["sweep", "run", *_tiny_flags(text, out), "--cell", "rnn", "--lr", "0.5"]) == 2
    assert _one_error_line(capsys) == (f"{out / 'sweep.jsonl'} records job run with other settings (cannot change "
                                       "--lr (20.0 -> 0.5)); use another folder, or delete its line to run it again")
    assert (out / "sweep.jsonl").read_bytes() == before
    study = tmp_path / "st"
    argv = ["study", "learnability", "--cells", "rnn", "--distances", "10", "--seeds", "0", "--n-train", "64",
            "--n-test", "32", "--eval-every", "10", "--scheduler", "serial", "--no-progress", "--out", str(study)]
    assert main([*argv, "--steps", "30"]) == 0
    capsys.readouterr()
    assert main([*argv, "--steps", "31"]) == 2          # the budget is no part of a job's name
    assert _one_error_line(capsys).endswith("with other settings (cannot change --steps (30 -> 31)); use another "
                                            "folder, or delete its line to run it again")


# ---------------------------------------------------------------- 8. study --report-only


def test_report_only_refuses_a_scheduler_and_waits_for_no_running_study(tmp_path, capsys):
    """A trial: `--report-only` took --scheduler and --workers without using them, and wrote study.json, the
    table and figures while a running study in the same folder rewrote them."""
    out = tmp_path / "st"
    argv = ["study", "learnability", "--cells", "rnn", "--distances", "3", "--seeds", "0", "--n-train", "64",
            "--n-test", "32", "--steps", "30", "--eval-every", "10", "--hidden", "8", "--emsize", "8",
            "--batch-size", "8", "--no-progress", "--out", str(out)]
    assert main([*argv, "--scheduler", "serial"]) == 0
    capsys.readouterr()
    table = (out / "table.md").read_bytes()
    for extra, flag in ((["--scheduler", "tcp://10.0.0.5:8786"], "--scheduler"), (["--workers", "2"], "--workers")):
        assert main(["study", "learnability", "--report-only", "--out", str(out), *extra]) == 2
        assert _one_error_line(capsys) == (f"{flag}: --report-only runs nothing (it writes the table and figures "
                                           "from the runs recorded); leave --scheduler and --workers out")
    with _holder(f"from rnnlm.sweep import lock_sweep\ncm = lock_sweep({str(out)!r})\ncm.__enter__()") as proc:
        (out / "table.md").unlink()
        assert main(["study", "learnability", "--report-only", "--out", str(out)]) == 2
        assert _one_error_line(capsys) == (f"{out} is in use by another sweep (pid {proc.pid} holds "
                                           f"{out / '.sweep.lock'}); wait for it to end or use another --out")
        assert not (out / "table.md").exists()      # nothing written under the running study
    assert main(["study", "learnability", "--report-only", "--out", str(out)]) == 0
    assert (out / "table.md").read_bytes() == table
