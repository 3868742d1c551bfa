"""`bench`: the record it prints, its flags, and the worker process that times the other side.

Nothing here times anything against a target (speed lives in the benchmark's
output, never in a unit test); these check that the harness runs and says
what it measured.
"""
import importlib.util
import json

import pytest

from rnnlm import bench
from rnnlm.cli import main


def test_json_record_for_one_cell_and_config(capsys):
    assert main(["bench", "--config", "tiny", "--cell", "rnn", "--repeats", "1", "--json"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    rec = json.loads(lines[0])
    assert (rec["cell"], rec["config"], rec["V"], rec["E"], rec["H"], rec["B"], rec["T"]) == \
        ("rnn", "tiny", 2000, 64, 64, 32, 35)
    assert rec["train_tokens_per_s"] > 0 and rec["eval_tokens_per_s"] > rec["train_tokens_per_s"] / 10
    assert "train_ratio" not in rec   # no --vs-torch, no comparison
    assert 0 < rec["calibration_ms"] < 1000 and "torch_calibration_ms" not in rec   # ours only


def test_worker_times_the_same_windows_in_its_own_process():
    """The worker protocol, with our own model on the other side (PyTorch is never a dependency)."""
    worker = bench._Worker("rnn", "tiny", 2, 1, side="rnnlm")
    try:
        assert worker.proc.pid > 0
        train_s, eval_s = worker.run("train"), worker.run("eval")
        assert 0 < eval_s < 60 and 0 < train_s < 60
        ms, faults = worker.calibrate()
        assert 0 < ms < 1000 and faults >= 0
        assert sorted(worker.faults) == ["eval", "train"] and len(worker.faults["train"]) == 1
        assert worker.faults["eval"][0] >= 0
    finally:
        worker.close()
    assert worker.proc.returncode == 0


@pytest.mark.parametrize("argv,message", [
    (["--torch-in-process"], "only applies with --vs-torch"),
    (["--threads", "0"], "at least 1"),
    (["--config", "huge"], "unknown config"),
])
def test_bad_flags_exit_2(capsys, argv, message):
    assert main(["bench", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


@pytest.mark.skipif(importlib.util.find_spec("torch") is not None, reason="PyTorch is installed here")
def test_vs_torch_without_torch_says_how_to_get_it(capsys):
    for argv in (["--vs-torch", "--config", "tiny"], ["--vs-torch", "--scaling", "1", "--config", "tiny"]):
        assert main(["bench", *argv]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "a venv of its own with both (pip install -e . torch)" in err


def test_a_worker_that_dies_is_one_clear_error(monkeypatch):
    monkeypatch.setattr(bench.sys, "executable", "false")          # a child that exits at once
    with pytest.raises(bench.UserError, match="worker process failed"):
        bench._Worker("rnn", "tiny", 2, 1, side="rnnlm")


def test_comparison_record_and_table(monkeypatch, capsys):
    """--vs-torch's record and table, with our own model in the worker standing in for PyTorch."""
    real_worker = bench._Worker
    monkeypatch.setattr(bench, "_Worker", lambda *a, **k: real_worker(*a, side="rnnlm"))
    rec = bench.bench_one("rnn", "tiny", repeats=2, vs_torch=True, threads=1)
    assert rec["torch_process"] == "worker"
    # the run's first row: two workers calibrated, the faster kept (ratio, its ms / ours beside it)
    tries = rec["torch_calibration_tries"]
    assert len(tries) == 2 == len(rec["torch_calibration_faults"]) and rec["torch_worker_kept"] in (1, 2)
    assert [rec["torch_calibration_ms"], rec["calibration_ms"]] == tries[rec["torch_worker_kept"] - 1]
    assert rec["torch_calibration_best"] == round(min(t / o for t, o in tries), 3)
    assert rec["torch_train_faults_per_window"] >= 0 and rec["torch_eval_faults_per_window"] >= 0
    for kind in ("train", "eval"):
        lo, hi = rec[f"{kind}_ratio_range"]
        assert 0 < lo <= hi
        # the same model on both sides: within a factor 3 even on a busy machine
        assert 1 / 3 < rec[f"{kind}_ratio"] < 3
    bench._print_table([rec], vs_torch=True)
    out = capsys.readouterr().out
    assert "ratio [per repeat]" in out
    assert f"{rec['train_ratio']:.2f}x [{rec['train_ratio_range'][0]:.2f}-" in out


def test_compile_probe_sees_the_first_training_step(text, tmp_path):
    # bench.compile_times times `train --max-steps 1` to the end of its first step with
    # bench._TRAIN_PROBE, which hooks train.train_step (the probe printed nan while it
    # hooked a method the training step no longer calls)
    import subprocess
    import sys
    import time
    argv = ["train", "--corpus", str(text), "--cell", "rnn", "--emsize", "8", "--hidden", "8",
            "--max-steps", "1", "--no-progress", "--sample-words", "0", "--out", str(tmp_path / "run")]
    res = subprocess.run([sys.executable, "-c", bench._TRAIN_PROBE, repr(time.time()), "--", *argv],
                         capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stderr[-2000:]
    seconds, status = res.stdout.strip().splitlines()[-1].split()
    assert status == "0" and seconds != "nan", "the probe saw no training step"
    assert 0 < float(seconds) < 600


def test_bench_in_a_log_says_what_it_times_as_each_item_starts(capsys):
    """A trial: `bench` and `bench --scaling` into a log printed nothing for minutes (their bars need a terminal)."""
    assert main(["bench", "--config", "tiny", "--cell", "rnn", "--repeats", "1"]) == 0
    out, err = capsys.readouterr()
    assert err.splitlines() == ["bench: tiny rnn (1 of 1)"]
    assert "tiny" in out and "rnn" in out
    # one line per item, counting toward the end; none without progress (--json) nor on a terminal's bar
    from rnnlm import benchworker
    assert list(benchworker._each([("rnn", "tiny"), ("gru", "small")], "bench --scaling", True,
                                  name=lambda job: f"{job[1]} {job[0]}")) == [("rnn", "tiny"), ("gru", "small")]
    assert capsys.readouterr().err.splitlines() == ["bench --scaling: tiny rnn (1 of 2)",
                                                    "bench --scaling: small gru (2 of 2)"]
    assert list(benchworker._each([1, 2], "bench", False)) == [1, 2]
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("scaling", [False, True])
def test_a_stopped_bench_prints_the_rows_it_finished(monkeypatch, capsys, scaling):
    """A trial: `bench --config small` stopped by Ctrl-C after its first row printed only 'interrupted'."""
    from rnnlm import benchscaling
    row = {"cell": "rnn", "config": "tiny", "V": 2000, "E": 64, "H": 64, "B": 32, "T": 35, "train_tokens_per_s": 1234,
           "eval_tokens_per_s": 5678, "threads": 1, "train_efficiency": 1.0, "eval_efficiency": 1.0,
           "efficiency_from": 1}

    def one(cell, *a, **k):
        if cell != "rnn":
            raise KeyboardInterrupt
        return [dict(row)] if scaling else dict(row)
    monkeypatch.setattr(benchscaling if scaling else bench, "scaling_one" if scaling else "bench_one", one)
    assert main(["bench", "--config", "tiny", *(["--scaling", "1"] if scaling else [])]) == 130
    out, err = capsys.readouterr()
    assert "1,234" in out and "5,678" in out and "lstm" not in out
    assert err.splitlines()[-1] == "interrupted: bench writes no files; the rows it finished, if any, are printed above"


def test_a_worker_ignores_the_terminals_ctrl_c_and_is_ended_by_the_bench():
    """A trial: Ctrl-C of `bench --vs-torch` printed the worker's KeyboardInterrupt tracebacks (one after the
    bench's own line) and the worker outlived the bench for seconds. The terminal's SIGINT reaches the whole
    process group: the worker ignores it, and the stopped bench ends it at once (SIGTERM, no traceback)."""
    import os
    import signal
    import time
    worker = bench._Worker("rnn", "tiny", 2, 1, side="rnnlm")
    try:
        os.kill(worker.proc.pid, signal.SIGINT)
        assert worker.run("train") > 0 and worker.proc.poll() is None       # it went on
    finally:
        t0 = time.perf_counter()
        worker.close(at_once=True)
    assert worker.proc.returncode in (0, -signal.SIGTERM) and time.perf_counter() - t0 < 10
