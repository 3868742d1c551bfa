"""Sweep and study defects of a later review: noise after a stop during the cluster's start, a --scheduler
that is no Dask scheduler, our own wording for bad addresses, flags that were silently ignored, what an
early stop leaves in the folder, the order of the refusal and the first line, and the lock holder's pid."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rnnlm.cli import main
from test_sweep import _sigint_default

REPO = Path(__file__).resolve().parents[1]


def _tiny_flags(text, out, scheduler="serial"):
    return ["--corpus", str(text), "--max-vocab", "300", "--valid-fraction", "0.1", "--test-fraction", "0.1",
            "--emsize", "8", "--hidden", "8", "--bptt", "4", "--batch-size", "4", "--dropout", "0",
            "--eval-batch-size", "4", "--out", str(out), "--no-progress", "--max-steps", "3", "--eval-every", "0",
            *(["--scheduler", scheduler] if scheduler else [])]


def _one_error_line(capsys) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and captured.out == "", captured
    assert lines[0].startswith("error: ")
    return lines[0][len("error: "):]


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
    assert err.splitlines() == [f"{word}: 0 of 2 jobs recorded in {out / 'sweep.jsonl'}, no job left running; "
                                f"continue with the same command and --out {out} (it skips the 0 recorded)"]
