"""Sweep defects a new user met with job functions of their own and with the plot commands: a job that raises
left only its error line (no file, no line number), the table came in the order the jobs finished (two runs of
one sweep printed different tables), and `plot ... > /dev/full` ended with status 2 though the figure was saved."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from rnnlm.cli import main
from rnnlm.sweep import ERROR_FILE, SWEEP_FILE, Job, JobResult, _Recorder, format_row_line, read_rows, run_sweep
from rnnlm.sweepgrid import summarize
from test_s29_sweep import WARNING, _fake_train_job, _main_full
from test_sweep_fixes2 import _tiny_flags

HERE = Path(__file__).resolve().parent
THIS = Path(__file__).resolve()


def _line(marker: str) -> int:
    """The line of this file that ends with the comment `marker` (where a job below raises)."""
    lines = THIS.read_text(encoding="utf-8").splitlines()
    return next(i + 1 for i, text in enumerate(lines) if text.rstrip().endswith("# " + marker))


def raising_job(settings, payload):
    """A job function with a bug: a setting it reads that some jobs lack (KeyError: 'x')."""
    time.sleep(settings.get("sleep", 0))
    return JobResult({"value": settings["x"] * 2.5}, {})  # raises-here


def deep_job(settings, payload):
    """A job whose error is raised inside the standard library, called from the job function."""
    return JobResult({"value": json.loads(settings["text"])}, {})  # calls-json


@pytest.fixture
def own_jobs(monkeypatch):
    """The job functions of this file importable by "test_s29_sweep2:NAME", as a user's module is."""
    monkeypatch.syspath_prepend(str(HERE))


# ---------------------------------------------------------------- 1. where a job raised


def _check_failed(folder, worker_prefix):
    by = {r["name"]: r for r in read_rows(folder)}
    line = _line("raises-here")
    bad = by["nox"]
    assert bad["status"] == "failed" and bad["error"] == "KeyError: 'x'"       # the one line, as before
    assert bad["error_at"] == f"{THIS}:{line} in raising_job"
    assert bad["worker"].startswith(worker_prefix)
    text = (folder / "nox" / ERROR_FILE).read_text(encoding="utf-8")
    assert text.startswith(f"job nox (test_s29_sweep2:raising_job) failed on {bad['worker']}: KeyError: 'x'\n\n"
                           "Traceback (most recent call last):\n")
    assert f'File "{THIS}", line {line}, in raising_job\n' in text
    assert text.rstrip().endswith("KeyError: 'x'")
    assert "in execute" not in text         # the engine's own frame is left out
    ok = by["x=2"]
    assert ok["status"] == "done" and ok["value"] == 5.0 and "error_at" not in ok and "error" not in ok
    assert not (folder / "x=2" / ERROR_FILE).exists()
    # the table points at both: where, and the file with the whole traceback
    [nox] = [t for t in summarize(folder).splitlines() if t.startswith("| nox |")]
    assert (f" | failed: KeyError: 'x' at test_s29_sweep2.py:{line} in raising_job; traceback in "
            f"{folder / 'nox' / ERROR_FILE} | - | ") in nox
    return bad


def test_a_job_that_raises_records_where_and_its_traceback_serially(tmp_path, own_jobs, capsys):
    out = tmp_path / "s"
    jobs = [Job("x=2", "test_s29_sweep2:raising_job", {"x": 2}), Job("nox", "test_s29_sweep2:raising_job", {})]
    run_sweep(out, jobs, scheduler="serial", progress=True)
    bad = _check_failed(out, f"serial:{os.getpid()}")
    # the line printed as the job ends says it too
    line = _line("raises-here")
    err = capsys.readouterr().err
    assert (f"nox: FAILED (KeyError: 'x') at test_s29_sweep2.py:{line} in raising_job; traceback in "
            f"{out / 'nox' / ERROR_FILE} [{bad['wall_s']:.1f} s]") in err.splitlines()


def test_a_job_that_raises_on_a_local_cluster_worker_records_where_in_grid_order(tmp_path, own_jobs):
    """The exception is raised in a worker process; where it happened comes back as text. The first job
    finishes last (it sleeps), yet sweep.jsonl, the returned rows and the table keep the jobs' order."""
    out = tmp_path / "s"
    jobs = [Job("x=2", "test_s29_sweep2:raising_job", {"x": 2, "sleep": 2.0}),
            Job("nox", "test_s29_sweep2:raising_job", {})]
    done_order = []
    rows = run_sweep(out, jobs, n_workers=2, progress=False, on_row=lambda r: done_order.append(r["name"]))
    assert done_order == ["nox", "x=2"]                         # finished in this order ...
    assert [r["name"] for r in rows] == ["x=2", "nox"]          # ... recorded in the jobs' order
    assert [r["name"] for r in read_rows(out)] == ["x=2", "nox"]
    _check_failed(out, "tcp://")
    table = summarize(out).splitlines()
    assert [t.split(" | ")[0] for t in table if t.startswith("| ") and "---" not in t][1:] == ["| x=2", "| nox"]


def test_an_error_raised_deeper_names_the_job_functions_line_and_where_it_was_raised(tmp_path, own_jobs):
    out = tmp_path / "s"
    run_sweep(out, [Job("t", "test_s29_sweep2:deep_job", {"text": "{"})], scheduler="serial", progress=False)
    [row] = read_rows(out)
    assert row["error"].startswith("JSONDecodeError: Expecting property name enclosed in double quotes")
    own, deeper = row["error_at"].split(" -> ")
    assert own == f"{THIS}:{_line('calls-json')} in deep_job"
    import json.decoder
    assert deeper.startswith(f"{json.decoder.__file__}:") and deeper.endswith(" in raw_decode")
    assert f"at test_s29_sweep2.py:{_line('calls-json')} in deep_job -> decoder.py:" in summarize(out)


def test_a_failed_job_rerun_successfully_leaves_no_stale_traceback(tmp_path, own_jobs):
    out = tmp_path / "s"
    run_sweep(out, [Job("j", "test_s29_sweep2:raising_job", {})], scheduler="serial", progress=False)
    assert (out / "j" / ERROR_FILE).is_file()
    (out / SWEEP_FILE).write_text("", encoding="utf-8")          # its line deleted, the bug fixed: run again
    [row] = run_sweep(out, [Job("j", "test_s29_sweep2:raising_job", {"x": 1})], scheduler="serial",
                      progress=False)
    assert row["status"] == "done" and row["value"] == 2.5
    assert not (out / "j" / ERROR_FILE).exists()
    assert "traceback" not in summarize(out)


def test_a_failure_without_a_traceback_says_no_more_than_before():
    """A row of an earlier version, or a job whose worker died: its error only."""
    row = {"name": "a", "status": "failed", "error": "its worker died 3 times (killed or out of memory)",
           "wall_s": 0.0}
    assert format_row_line(row, "/tmp/x") == "a: FAILED (its worker died 3 times (killed or out of memory)) [0.0 s]"


# ---------------------------------------------------------------- 2. the table in the jobs' order


def test_rows_recorded_out_of_order_are_kept_in_the_jobs_order(tmp_path):
    out = tmp_path / "s"
    out.mkdir()
    jobs = [Job(n, "m:f", {"i": i}) for i, n in enumerate(["a", "b", "c", "d"])]
    rec = _Recorder(out, jobs)
    for name in ("c", "a", "d", "b"):
        job = next(j for j in jobs if j.name == name)
        rec.record(job, {"status": "done", "wall_s": 0.0, "worker": "w", "attempts": 1, "row": {"v": name}})
    assert [r["name"] for r in read_rows(out)] == ["a", "b", "c", "d"]
    assert [r["name"] for r in rec.rows] == ["a", "b", "c", "d"]
    # a row of a job the new list does not name (an earlier sweep into the folder) keeps its place
    rec = _Recorder(out, [Job("e", "m:f", {}), jobs[1]])
    rec.record(Job("e", "m:f", {}), {"status": "done", "wall_s": 0.0, "worker": "w", "attempts": 1})
    assert [r["name"] for r in read_rows(out)] == ["a", "e", "b", "c", "d"]


def test_a_resumed_sweep_prints_the_same_table_as_one_run_straight(text, tmp_path, capsys, monkeypatch):
    """`sweep run` over --cell gru,lstm, then over rnn,gru,lstm (gru and lstm skipped): summary.md and
    `sweep summarize` list rnn, gru, lstm, as a sweep of all three at once does."""
    from rnnlm import sweepjobs
    monkeypatch.setattr(sweepjobs, "train_job", _fake_train_job)     # (the serial path imports it by name)
    flags = ["--seed", "0", "--no-progress"]
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["sweep", "run", *_tiny_flags(text, a), "--cell", "gru,lstm", *flags]) == 0
    assert main(["sweep", "run", *_tiny_flags(text, a), "--cell", "rnn,gru,lstm", *flags]) == 0
    assert main(["sweep", "run", *_tiny_flags(text, b), "--cell", "rnn,gru,lstm", *flags]) == 0
    capsys.readouterr()

    def names(table):
        return [line.split(" | ")[0][2:] for line in table.splitlines() if line.startswith("| cell=")]

    want = ["cell=rnn", "cell=gru", "cell=lstm"]
    assert names((a / "summary.md").read_text()) == want == names((b / "summary.md").read_text())
    assert main(["sweep", "summarize", str(a)]) == 0
    assert names(capsys.readouterr().out) == want


# ---------------------------------------------------------------- 3. plot commands on a full standard output


def _value_sweep(out):
    jobs = [Job(f"x={x}", "test_s29_sweep2:raising_job", {"x": x}) for x in (1, 2, 3)]
    run_sweep(out, jobs, scheduler="serial", progress=False)


def test_plot_sweep_with_a_full_standard_output_saves_the_figure_and_warns(tmp_path, capsys, own_jobs):
    out = tmp_path / "s"
    _value_sweep(out)
    png = tmp_path / "fig.png"
    status, err = _main_full(["plot", "sweep", str(out), "--x", "x", "--y", "value", "--out", str(png)], capsys)
    assert status == 0, err
    assert err == [f"{WARNING}the figure is saved in {png} (and .svg)"]
    assert png.stat().st_size > 1000 and png.with_suffix(".svg").stat().st_size > 1000


def _run_folder(run: Path) -> Path:
    """A run folder as train writes it, for the figure only: its config and a few logged steps and evaluations."""
    from rnnlm.config import TrainConfig
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"train": TrainConfig().to_dict()}), encoding="utf-8")
    events = [{"type": "step", "step": s, "loss_avg": 6.0 - s / 10, "grad_norm": 1.0 + s / 10, "clipped": False,
               "lr": 20.0} for s in range(1, 11)]
    events += [{"type": "eval", "split": "valid", "step": s, "val_loss": 6.2 - s / 20} for s in (5, 10)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events), encoding="utf-8")
    return run


def test_plot_training_with_a_full_standard_output_saves_the_figure_and_warns(tmp_path, capsys):
    run = _run_folder(tmp_path / "run")
    png = tmp_path / "training.png"
    status, err = _main_full(["plot", "training", str(run), "--out", str(png)], capsys)
    assert status == 0, err
    assert err == [f"{WARNING}the figure is saved in {png} (and .svg)"]
    assert png.stat().st_size > 1000 and png.with_suffix(".svg").exists()
