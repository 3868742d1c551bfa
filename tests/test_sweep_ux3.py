"""Sweep interruption leftovers of the third new-user trial: a Ctrl-C while a finished sweep closes its cluster,
SIGTERM handled like Ctrl-C (exit 143), and what a sweep interrupted before any job finished leaves (nothing)."""
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from rnnlm.cli import main
from rnnlm.sweep import Job, Terminated, read_rows, run_sweep
from test_sweep import _children_alive, _flags, _sigint_default

REPO = Path(__file__).resolve().parents[1]
NOISE = ("Traceback", "leaked", "Warning", "WARNING", "ERROR", "KeyboardInterrupt")


def interrupt_job(settings, payload):
    """Ctrl-C lands in the middle of this job (the serial path runs it in the main thread)."""
    raise KeyboardInterrupt


def sigterm_job(settings, payload):
    """`kill PID` lands in the middle of this job."""
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(30)          # the handler raises Terminated here
    raise AssertionError("SIGTERM did not stop the job")


def test_a_sweep_interrupted_before_any_job_finished_records_nothing_and_says_so(tmp_path, capsys):
    """A review: the stopped sweep left .sweep.lock and an empty sweep.jsonl in a folder it had created."""
    out = tmp_path / "new" / "s"
    with pytest.raises(KeyboardInterrupt):
        run_sweep(out, [Job("j", "test_sweep_ux3:interrupt_job", {})], scheduler="serial", progress=False)
    assert not (tmp_path / "new").exists()          # the folders it created are gone
    assert capsys.readouterr().err.strip() == (f"interrupted: no job had finished (none is left running), so nothing "
                                               f"is recorded; {out} was new and is removed again; the same command "
                                               "starts over")
    out.mkdir(parents=True)                         # a folder that was there is left as it was
    (out / "notes.txt").write_text("mine\n")
    with pytest.raises(KeyboardInterrupt):
        run_sweep(out, [Job("j", "test_sweep_ux3:interrupt_job", {})], scheduler="serial", progress=False)
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    assert capsys.readouterr().err.strip().endswith(f"so nothing is recorded; {out} is left as it was; the same "
                                                    "command starts over")
    (out / "sweep.jsonl").write_text("")            # what earlier versions left: it still says so
    said = (f"no job of the sweep in {out} has finished yet (sweep.jsonl is empty: it was interrupted before "
            f"its first job ended); run the same command again with --out {out} to continue")
    assert main(["sweep", "summarize", str(out)]) == 2
    assert capsys.readouterr().err.strip() == f"error: {said}"
    assert main(["plot", "sweep", str(out), "--x", "cell"]) == 2
    assert capsys.readouterr().err.strip() == f"error: nothing to plot: {said}"
    # a folder that never held a sweep is told apart
    assert main(["sweep", "summarize", str(tmp_path / "never")]) == 2
    assert f"{tmp_path / 'never'} does not exist; give the folder a 'sweep run --out' wrote" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["sweep", "summarize", str(tmp_path / "empty")]) == 2
    assert "holds no sweep.jsonl; run 'sweep run --out" in capsys.readouterr().err


def test_a_rerun_after_an_interruption_before_any_job_finished_says_so(text, tmp_path, capsys):
    out = tmp_path / "s"
    out.mkdir()
    (out / "sweep.jsonl").write_text("")            # what the interrupted first run left
    assert main(["sweep", "run", *_flags(text, out), "--cell", "rnn", "--max-steps", "3", "--eval-every", "0",
                 "--scheduler", "serial"]) == 0
    first = capsys.readouterr().err.splitlines()[0]
    assert first == f"1 job (one point) into {out}: no job finished in an earlier run, running all 1"
    assert [r["status"] for r in read_rows(out)] == ["done"]


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(), reason="signals need the main thread")
def test_sigterm_in_a_serial_sweep_ends_it_like_ctrl_c_and_restores_the_handler(tmp_path, capsys):
    before = signal.getsignal(signal.SIGTERM)
    out = tmp_path / "s"
    with pytest.raises(Terminated):
        run_sweep(out, [Job("t", "test_sweep_ux3:sigterm_job", {})], scheduler="serial", progress=False)
    assert signal.getsignal(signal.SIGTERM) is before
    assert capsys.readouterr().err.strip().startswith("terminated: no job had finished (none is left running), so "
                                                      f"nothing is recorded; {out} was new and is removed again;")
    assert not out.exists()
    assert issubclass(Terminated, KeyboardInterrupt)    # every Ctrl-C cleanup path runs for it too


def _tiny(text, out, *extra):
    return [*_flags(text, out), "--cell", "rnn", "--seeds", "2", "--workers", "2", *extra]


@pytest.mark.slow
def test_sigterm_mid_job_closes_the_cluster_says_one_line_and_exits_143(text, tmp_path, capsys):
    import psutil
    out, scratch = tmp_path / "s", tmp_path / "tmp"
    scratch.mkdir()
    cmd = [sys.executable, "cli.py", "sweep", "run",
           *_tiny(text, out, "--max-steps", "1000000", "--epochs", "100000", "--patience", "0", "--eval-every", "0")]
    env = dict(os.environ, TMPDIR=str(scratch))
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, start_new_session=True, preexec_fn=_sigint_default,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 600
        while time.time() < deadline and len(list(scratch.rglob("rnnlm-job-*"))) < 2 and proc.poll() is None:
            time.sleep(0.2)
        assert len(list(scratch.rglob("rnnlm-job-*"))) == 2, proc.communicate(timeout=60)
        workers = [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
        proc.send_signal(signal.SIGTERM)               # `kill PID`: the client only
        _, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 143, err
    assert err.strip().splitlines()[-1] == (
        f"terminated: no job had finished (none is left running), so nothing is recorded; {out} was new and is "
        "removed again; the same command starts over"), err
    assert [ln for ln in err.splitlines() if "terminated" in ln or "interrupted" in ln] == [err.strip().splitlines()[-1]]
    for noise in NOISE:
        assert noise not in err, err
    time.sleep(1)
    assert _children_alive(workers) == []
    assert list(scratch.iterdir()) == []                # no cluster scratch folder, no job folder
    assert not out.exists()                             # nothing recorded: the folder it made is gone
    assert main(["sweep", "summarize", str(out)]) == 2
    assert f"{out} does not exist" in capsys.readouterr().err


# Ctrl-C as the finished sweep starts closing its cluster (the moment the trial hit by chance), made exact.
LATE_CTRL_C = """
import os, signal, sys
import distributed
close, fired = distributed.LocalCluster.close, []
def late_ctrl_c(self, *a, **k):
    if not fired:
        fired.append(1)
        os.kill(os.getpid(), signal.SIGINT)
    return close(self, *a, **k)
distributed.LocalCluster.close = late_ctrl_c
from rnnlm.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_ctrl_c_while_a_finished_sweep_closes_its_cluster_is_one_line_and_leaves_nothing(text, tmp_path):
    out, scratch = tmp_path / "s", tmp_path / "tmp"
    scratch.mkdir()
    env = dict(os.environ, TMPDIR=str(scratch), PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-c", LATE_CTRL_C, "sweep", "run",
                           *_tiny(text, out, "--max-steps", "3", "--eval-every", "0")],
                          cwd=REPO, env=env, preexec_fn=_sigint_default, capture_output=True, text=True, timeout=600)
    err = proc.stderr
    assert proc.returncode == 130, err
    assert [r["status"] for r in read_rows(out)] == ["done", "done"]
    assert [ln for ln in err.splitlines() if "interrupt" in ln.lower()] == [
        f"interrupted: 2 of 2 jobs recorded in {out / 'sweep.jsonl'}, no job left running; continue with the same "
        f"command and --out {out} (it skips the 2 recorded)"], err
    for noise in NOISE:
        assert noise not in err, err
    time.sleep(1)
    assert list(scratch.iterdir()) == [], list(scratch.rglob("*"))[:10]


def test_sweep_figure_says_what_its_axes_are_and_how_many_runs_stand_behind_a_point():
    from rnnlm.sweepplot import axis_label as label
    assert label("best_val_ppl") == "best validation perplexity [best_val_ppl]"
    assert label("recurrent_scale") == "recurrent scale (W_hh ×) [recurrent_scale]"
    assert label("my_column") == "my_column"


def test_the_fixed_settings_name_the_vocabulary_and_leave_out_zero_limits():
    # perplexities of a 2,000-word vocabulary must not look comparable with the README's 10,000-word ones
    from rnnlm.sweepgrid import FIXED_KEYS, shown_fixed
    assert "max_vocab" in FIXED_KEYS and "eval_every" in FIXED_KEYS and "seed" in FIXED_KEYS
    assert shown_fixed("max_vocab", 2000) and shown_fixed("seed", 0)
    assert not shown_fixed("max_minutes", 0.0) and not shown_fixed("lr", None)
