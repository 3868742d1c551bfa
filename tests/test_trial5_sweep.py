"""A fifth user trial: run_sweep from an unguarded script, study --eval-every 0, grid values of the wrong
type, and the table of a sweep of one's own job function."""
from __future__ import annotations

import json
import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

from rnnlm.cli import main
from rnnlm.config import ModelConfig, StudyConfig, TaskTrainConfig
from rnnlm.errors import UserError
from rnnlm.sweep import SWEEP_FILE, Job, JobResult, run_sweep
from rnnlm.sweepgrid import expand_grid, summarize

REPO = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
GUARD = 'if __name__ == "__main__":'


def value_job(settings, payload):
    """A job function of one's own, as the README's "From Python" shows."""
    return JobResult({"value": settings["x"] * 2.5, "label": f"x{settings['x']}"}, {})


# ---------------------------------------------------------------- 1. run_sweep in a script without the guard

def _script(tmp_path, body: str, guarded: bool) -> Path:
    jobs = '[Job(f"x={x}", "test_trial5_sweep:value_job", {"x": x}) for x in (1, 2)]'
    call = f"rows = run_sweep({str(tmp_path / 'out')!r}, {jobs}{body})\nprint('ROWS', len(rows))\n"
    text = "from rnnlm.sweep import Job, run_sweep\n" + (
        GUARD + "\n" + "".join("    " + line + "\n" for line in call.splitlines()) if guarded else call)
    path = tmp_path / "mysweep.py"
    path.write_text(text, encoding="utf-8")
    return path


def _run_script(path: Path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(HERE)])}
    return subprocess.run([sys.executable, str(path)], cwd=path.parent, env=env, capture_output=True, text=True,
                          timeout=300)


def test_an_unguarded_script_with_the_local_cluster_is_refused_in_one_clear_error(tmp_path):
    proc = _run_script(_script(tmp_path, ", n_workers=1", guarded=False))
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("rnnlm.errors.UserError: run_sweep is called at the top level of"), proc.stderr
    assert GUARD in last and "mysweep.py (line 2)" in last
    assert "Nanny" not in proc.stderr and "RuntimeError" not in proc.stderr
    assert not (tmp_path / "out").exists()      # refused before anything was written


def test_a_guarded_script_runs_on_the_local_cluster(tmp_path):
    proc = _run_script(_script(tmp_path, ", n_workers=1, progress=False", guarded=True))
    assert proc.returncode == 0, proc.stderr
    assert "ROWS 2" in proc.stdout
    assert "Traceback" not in proc.stderr


def test_an_unguarded_script_with_the_serial_scheduler_still_runs(tmp_path):
    proc = _run_script(_script(tmp_path, ', scheduler="serial", progress=False', guarded=False))
    assert proc.returncode == 0, proc.stderr
    assert "ROWS 2" in proc.stdout


def test_run_sweep_in_a_worker_re_importing_the_main_script_is_refused(tmp_path, monkeypatch):
    # what multiprocessing's spawn does in each worker process: run the main script again as __mp_main__
    path = _script(tmp_path, ', scheduler="serial", progress=False', guarded=False)
    monkeypatch.syspath_prepend(str(HERE))
    with pytest.raises(UserError, match='worker process imported the main script again.*if __name__ == "__main__":'):
        runpy.run_path(str(path), run_name="__mp_main__")
    assert not (tmp_path / "out").exists()
    runpy.run_path(str(path), run_name="__main__")      # the script itself still runs
    assert (tmp_path / "out" / SWEEP_FILE).exists()


def test_the_readme_example_has_the_guard_and_the_real_signature():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    part = text[text.index("### From Python"):text.index("## Python API")]
    assert GUARD in part
    assert "run_sweep(folder, jobs, data=None, *, scheduler=None" in part
    import inspect
    params = inspect.signature(run_sweep).parameters
    assert params["scheduler"].kind is inspect.Parameter.KEYWORD_ONLY
    assert params["data"].default is None


# ---------------------------------------------------------------- 2. study learnability --eval-every 0

def test_study_eval_every_0_is_refused_in_one_line(tmp_path, capsys):
    assert main(["study", "learnability", "--quick", "--eval-every", "0", "--out", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, err
    assert "--eval-every must be at least 1" in err and "no epochs" in err
    assert "Traceback" not in err and "ZeroDivision" not in err


def test_study_help_says_eval_every_takes_no_0(capsys):
    with pytest.raises(SystemExit):
        main(["study", "learnability", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "at least 1" in out and "no 0" in out


def test_check_budget_with_eval_every_0_from_python_is_a_user_error():
    from rnnlm.study import check_budget
    with pytest.raises(UserError, match="eval_every must be at least 1, got 0"):
        check_budget(StudyConfig(train=TaskTrainConfig(eval_every=0)))


# ---------------------------------------------------------------- 3. the type of a value first

@pytest.mark.parametrize("grid, message", [
    ({"hidden": "abc", "max_steps": 5}, "'hidden' must be an integer, got 'abc' (a string)"),
    ({"hidden": [16, "x"]}, "grid point hidden=x: 'hidden' must be an integer, got 'x' (a string)"),
    ({"lr": "0.5"}, "'lr' must be a number or null, got '0.5' (a string)"),
    ({"hidden": "128"}, "'hidden' must be an integer, got '128' (a string)"),
    ({"dropout": "0.1"}, "'dropout' must be a number, got '0.1' (a string)"),
])
def test_a_grid_value_of_the_wrong_type_says_its_type(grid, message):
    with pytest.raises(UserError) as info:
        expand_grid(grid)
    assert message in str(info.value)
    assert "must be positive" not in str(info.value) and "at least" not in str(info.value)


def test_sweep_run_with_a_grid_value_of_the_wrong_type_is_one_line(tmp_path, capsys):
    grid = tmp_path / "g.json"
    grid.write_text(json.dumps({"hidden": "abc", "max_steps": 5}), encoding="utf-8")
    assert main(["sweep", "run", "--grid", str(grid), "--out", str(tmp_path / "sw"), "--scheduler", "serial"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, err
    assert "'hidden' must be an integer, got 'abc' (a string)" in err and "invalid literal" not in err


def test_model_config_names_the_type_before_the_range():
    with pytest.raises(UserError, match=r"vocab_size must be an integer, got 50\.5"):
        ModelConfig(vocab_size=50.5).validate()
    with pytest.raises(ValueError, match="hidden must be an integer, got 'abc' \\(a string\\)"):
        ModelConfig(vocab_size=50, hidden="abc").validate()
    with pytest.raises(ValueError, match="dropout must be a number, got '0.2' \\(a string\\)"):
        ModelConfig(vocab_size=50, dropout="0.2").validate()
    ModelConfig(vocab_size=50, hidden=16.0).validate()      # an integral float is still a count


def test_generate_text_with_a_string_temperature_says_its_type():
    from rnnlm.sample import generate_text, next_token_probs
    with pytest.raises(UserError, match=r"--temperature must be a number, got '0\.8' \(a string\)"):
        generate_text(None, None, temperature="0.8")
    with pytest.raises(UserError, match=r"--top-k must be an integer, got 2\.5"):
        next_token_probs([[0.0, 1.0]], top_k=2.5)
    with pytest.raises(UserError, match=r"--temperature must be a finite number >= 0 \(0 = greedy\), got -1"):
        generate_text(None, None, temperature=-1)


# ---------------------------------------------------------------- 4. summarize a sweep of one's own jobs

def test_summarize_shows_the_numeric_results_of_ones_own_jobs(tmp_path, monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(HERE))
    jobs = [Job(f"x={x}", "test_trial5_sweep:value_job", {"x": x, "scale": 1}) for x in (1, 2)]
    run_sweep(tmp_path / "own", jobs, scheduler="serial", progress=False)
    table = summarize(tmp_path / "own")
    head, _, body = table.partition("\n\n")
    assert "fixed: scale=1" in head
    header = body.splitlines()[0]
    assert header == "| name | x | status | value | wall_s | worker |", header
    assert "| x=1 | 1 | done | 2.5 |" in body and "| x=2 | 2 | done | 5 |" in body
    run_sweep(tmp_path / "bare", [Job(f"x={x}", "test_trial5_sweep:value_job", {"x": x}) for x in (1, 2)],
              scheduler="serial", progress=False)
    assert main(["sweep", "summarize", str(tmp_path / "bare")]) == 0
    out = capsys.readouterr().out
    assert "fixed" not in out.splitlines()[0]
    assert out.splitlines()[0].endswith("2 jobs (2 done, 0 failed)")
    assert "| value |" in out
