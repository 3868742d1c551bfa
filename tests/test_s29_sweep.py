"""Sweep defects of one's own job functions and of the sweep commands' output: a row key the engine records
itself (it was dropped without a word), a file given as str (a raw TypeError), `sweep run` and `study` with
standard output on a full disk (exit 2 and no figure, though the sweep was saved), and run_sweep from a
script read from standard input (Dask's pages of tracebacks)."""
from __future__ import annotations

import errno
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rnnlm.cli import main
from rnnlm.errors import UserError
from rnnlm.sweep import ENGINE_KEYS, SWEEP_FILE, Job, JobResult, read_rows, run_sweep
from test_sweep_fixes2 import _tiny_flags

REPO = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
GUARD = 'if __name__ == "__main__":'


def value_job(settings, payload):
    return JobResult({"value": settings["x"] * 2.5}, {})


def clash_job(settings, payload):
    """A job whose row uses a key the engine records itself."""
    return JobResult({"value": settings["x"], settings["key"]: "mine"}, {})


def text_files_job(settings, payload):
    """A job whose files are given as str (text) and as bytes."""
    return JobResult({"value": 1}, {"notes.txt": f"ação {settings['x']}\n", "raw.bin": b"\x00\xff"})


def bad_file_job(settings, payload):
    return JobResult({"value": 1}, {"result.json": {"x": settings["x"]}})


@pytest.fixture
def own_jobs(monkeypatch):
    """The job functions of this file importable by "test_s29_sweep:NAME", as a user's module is."""
    monkeypatch.syspath_prepend(str(HERE))


def _serial(folder, jobs):
    return run_sweep(folder, jobs, scheduler="serial", progress=False)


# ---------------------------------------------------------------- 1. a row key the engine records itself


@pytest.mark.parametrize("key", ["status", "name", "wall_s"])
def test_a_row_key_of_the_engine_is_refused_naming_it_and_what_to_do(tmp_path, own_jobs, key):
    out = tmp_path / "s"
    jobs = [Job(f"x={x}", "test_s29_sweep:clash_job", {"x": x, "key": key}) for x in (1, 2)]
    with pytest.raises(UserError) as err:
        _serial(out, jobs)
    msg = str(err.value)
    assert msg == (f"job x=1: test_s29_sweep:clash_job returned a row with the key {key!r}, which the sweep records "
                   f"itself ({', '.join(ENGINE_KEYS)}); rename it in the job function's row (e.g. 'job_{key}') and "
                   "run the sweep again")
    assert "\n" not in msg
    assert not out.exists()         # nothing recorded: the new folder is gone again, a fixed rerun starts over


def test_a_row_without_engine_keys_is_recorded_as_given(tmp_path, own_jobs):
    rows = _serial(tmp_path / "s", [Job("x=3", "test_s29_sweep:clash_job", {"x": 3, "key": "job_status"})])
    assert rows[0]["status"] == "done" and rows[0]["job_status"] == "mine" and rows[0]["value"] == 3
    assert read_rows(tmp_path / "s") == rows


# ---------------------------------------------------------------- 2. a file given as str


def test_a_file_given_as_str_is_written_as_utf8_text(tmp_path, own_jobs):
    rows = _serial(tmp_path / "s", [Job("x=1", "test_s29_sweep:text_files_job", {"x": 1})])
    assert rows[0]["status"] == "done"
    assert (tmp_path / "s" / "x=1" / "notes.txt").read_bytes() == "ação 1\n".encode("utf-8")
    assert (tmp_path / "s" / "x=1" / "raw.bin").read_bytes() == b"\x00\xff"


def test_a_file_neither_bytes_nor_str_is_one_line_saying_what_to_give(tmp_path, own_jobs):
    with pytest.raises(UserError) as err:
        _serial(tmp_path / "s", [Job("x=1", "test_s29_sweep:bad_file_job", {"x": 1})])
    assert str(err.value) == ("job x=1: test_s29_sweep:bad_file_job returned file 'result.json' as dict; give its "
                              "content as bytes, or as a str (written as UTF-8 text)")
    assert not (tmp_path / "s").exists()


# ---------------------------------------------------------------- 3. standard output on a full disk


class _Full(io.StringIO):
    """Standard output on a full disk as `> /dev/full` is: every write fails and keeps nothing."""

    def write(self, text):
        raise OSError(errno.ENOSPC, "No space left on device")


def _main_full(argv, capsys):
    capsys.readouterr()
    old = sys.stdout
    sys.stdout = _Full()
    try:
        status = main(argv)
    finally:
        sys.stdout = old
    return status, capsys.readouterr().err.strip().splitlines()


WARNING = "warning: standard output could not be written (No space left on device); "


def _fake_train_job(settings, payload):
    """train_job's row and files without the training (the sweep's output is what is tested)."""
    seed = settings["train"]["seed"]
    row = {"stopped": "max_steps", "steps": 3, "val_ppl": 100.0 + seed, "best_val_ppl": 100.0 + seed}
    return JobResult(row, {"config.json": json.dumps({"train": settings["train"]}).encode("utf-8")})


def _fake_train_task(config, task):
    """train_task's row without the training: solved at step 4, wall_s included as train_task gives it."""
    hist = {"step": [0, 4], "acc": [0.5, 1.0], "log10_grad_key_median": [-3.0, -2.0],
            "log10_jac_median": [-4.0, -5.0]}
    return {"solved": True, "solved_step": 4, "first_step": 4, "final_acc": 1.0, "best_acc": 1.0,
            "diverged": False, "history": hist, "steps_per_s": 10.0, "wall_s": 1234.0}


def test_sweep_run_with_a_full_standard_output_saves_all_and_warns(text, tmp_path, capsys, monkeypatch):
    from rnnlm import sweepjobs
    monkeypatch.setattr(sweepjobs, "train_job", _fake_train_job)     # (the serial path imports it by name)
    out = tmp_path / "s"
    status, err = _main_full(["sweep", "run", *_tiny_flags(text, out), "--cell", "rnn", "--seeds", "2"], capsys)
    assert status == 0, err
    figure = "sweep-best_val_ppl-vs-seed.png"
    assert err[-1] == f"{WARNING}the sweep is saved in {out} (sweep.jsonl, summary.md, {figure})"
    assert [r["best_val_ppl"] for r in read_rows(out)] == [100.0, 101.0]
    assert (out / "summary.md").read_text().count("| done |") == 2
    assert (out / figure).stat().st_size > 1000 and (out / figure).with_suffix(".svg").exists()


def test_study_with_a_full_standard_output_saves_all_and_warns(tmp_path, capsys, monkeypatch):
    from rnnlm import learnability
    monkeypatch.setattr(learnability, "train_task", _fake_train_task)
    out = tmp_path / "st"
    status, err = _main_full(["study", "learnability", "--distances", "3", "--cells", "rnn", "--seeds", "0",
                              "--n-train", "64", "--n-test", "32", "--steps", "12", "--eval-every", "4",
                              "--nhid", "8", "--emsize", "8", "--batch-size", "8", "--scheduler", "serial",
                              "--no-progress", "--out", str(out)], capsys)
    assert status == 0, err
    assert err[-1] == f"{WARNING}the study is saved in {out} (study.json, table.md, figures)"
    doc = json.loads((out / "study.json").read_text())
    assert len(doc["runs"]) == 1 and doc["runs"][0]["solved_step"] == 4
    assert (out / "table.md").exists() and (out / "success.png").stat().st_size > 1000
    # the study's job leaves wall_s to the engine (it gave train_task's, which the engine's silently replaced)
    [row] = read_rows(out)
    assert row["status"] == "done" and row["wall_s"] < 1234.0


# ---------------------------------------------------------------- 4. a script read from standard input


def _script(out: Path, extra: str, guarded: bool) -> str:
    jobs = '[Job(f"x={x}", "test_s29_sweep:value_job", {"x": x}) for x in (1, 2)]'
    call = f"rows = run_sweep({str(out)!r}, {jobs}, progress=False{extra})\nprint('ROWS', len(rows))\n"
    body = GUARD + "\n" + "".join("    " + line + "\n" for line in call.splitlines()) if guarded else call
    return "from rnnlm.sweep import Job, run_sweep\n" + body


def _python(args, tmp_path, stdin=None):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(HERE)])}
    return subprocess.run([sys.executable, *args], input=stdin, cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.parametrize("guarded", [False, True])
def test_a_script_on_standard_input_with_the_local_cluster_is_one_clear_error(tmp_path, guarded):
    """`python - < script.py`: no worker can import a main script read from standard input again (spawn
    looks for a file named <stdin>), guard or not; refused before anything is written or started."""
    out = tmp_path / "out"
    proc = _python(["-"], tmp_path, _script(out, ", n_workers=1", guarded))
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == (
        "rnnlm.errors.UserError: run_sweep cannot start its local cluster from a script without a file (<stdin>: "
        "read from standard input), which every worker process of the sweep imports again from its file; save the "
        f"script to a .py file and run that (put the call under `{GUARD}`), or pass scheduler=\"serial\"")
    assert "Nanny" not in proc.stderr and "FileNotFoundError" not in proc.stderr
    assert not out.exists()


def test_a_script_on_standard_input_runs_serially(tmp_path):
    proc = _python(["-"], tmp_path, _script(tmp_path / "out", ', scheduler="serial"', guarded=False))
    assert proc.returncode == 0, proc.stderr
    assert "ROWS 2" in proc.stdout
    assert [r["value"] for r in read_rows(tmp_path / "out")] == [2.5, 5.0]


def test_python_c_still_runs_on_the_local_cluster(tmp_path):
    """`python -c`: the main module has no file, so the workers import nothing again; not refused."""
    proc = _python(["-c", _script(tmp_path / "out", ", n_workers=1", guarded=True)], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "ROWS 2" in proc.stdout
    assert sorted(r["value"] for r in read_rows(tmp_path / "out")) == [2.5, 5.0]
    assert (tmp_path / "out" / SWEEP_FILE).exists()
