"""The learnability study: intervals, bookkeeping, and a tiny study end to end on the sweep engine."""
import json

import pytest

from rnnlm import config as C
from rnnlm import study, tasks
from rnnlm.cli import main
from rnnlm.errors import UserError


def test_wilson_interval_known_values():
    assert study.wilson(0, 3) == pytest.approx((0.0, 3.8414588 / (3 + 3.8414588)), abs=1e-6)
    assert study.wilson(3, 3) == pytest.approx((3 / (3 + 3.8414588), 1.0), abs=1e-6)
    assert study.wilson(1, 2) == pytest.approx((0.0945, 0.9055), abs=1e-4)
    assert study.wilson(0, 0) == (0.0, 1.0)


def test_option_lists_agree_with_tasks():
    assert C.TASK_NAMES == tasks.TASKS and C.LOSS_MODES == tasks.LOSS_MODES


def test_study_config_is_checked():
    with pytest.raises(UserError, match="unknown study cell"):
        C.StudyConfig(cells="rnn,transformer").validate()
    with pytest.raises(UserError, match="without repeats"):
        C.StudyConfig(seeds="1,1").validate()
    with pytest.raises(UserError, match="integers; 'x' in '5,x'"):
        C.StudyConfig(distances="5,x").validate()
    with pytest.raises(UserError, match="--distances must be comma-separated integers; an empty item"):
        C.StudyConfig(distances="5,,10").validate()
    with pytest.raises(UserError, match="--seeds must be comma-separated integers; an empty item"):
        C.StudyConfig(seeds="0,1,").validate()


def _row(cell, d, seed, solved, step=None, gk=(-3.0, -2.0)):
    hist = {"step": [0, 100], "acc": [0.5, 1.0 if solved else 0.5],
            "log10_grad_key_median": list(gk), "log10_jac_median": [-4.0, -5.0]}
    return {"name": f"x-{cell}-{d}-{seed}", "status": "done", "study_cell": cell, "distance": d, "seed": seed,
            "solved": solved, "solved_step": step, "first_step": step, "final_acc": hist["acc"][-1],
            "best_acc": hist["acc"][-1], "diverged": False, "history": hist, "steps_per_s": 10.0, "wall_s": 1.0}


def test_summary_counts_runs_and_reach_needs_every_shorter_distance():
    cfg = C.StudyConfig(distances="5,10,20", cells="rnn,gru", seeds="0,1,2")
    rows = [_row("rnn", 5, s, True, 100 * (s + 1)) for s in range(3)]
    rows += [_row("rnn", 10, 0, True, 500), _row("rnn", 10, 1, False), _row("rnn", 10, 2, False)]
    rows += [_row("rnn", 20, s, True, 100) for s in range(3)]          # solved at 20 but not at 10
    rows += [_row("gru", d, s, True, 100) for d in (5, 10, 20) for s in range(3)]
    rows.append({"name": "broken", "status": "failed"})
    s = study.summarize(cfg, rows)
    assert s["rnn"]["5"]["solved"] == 3 and s["rnn"]["5"]["solved_step_median"] == 200
    assert s["rnn"]["5"]["solved_step_range"] == [100, 300]
    assert s["rnn"]["10"]["solved"] == 1 and s["rnn"]["10"]["n"] == 3
    assert s["rnn"]["10"]["wilson95"] == pytest.approx(list(study.wilson(1, 3)))
    assert s["rnn"]["10"]["log10_grad_key_init"]["median"] == -3.0
    assert s["rnn"]["10"]["log10_grad_key_max"]["median"] == -2.0
    assert s["rnn"]["10"]["log10_grad_key_train"]["median"] == -2.0     # the evaluation after step 0
    assert s["rnn"]["10"]["log10_jac_end"]["median"] == -5.0
    assert study.reach(s, "rnn", [5, 10, 20]) == 5
    assert study.reach(s, "gru", [5, 10, 20]) == 20
    table = study.format_table(cfg, s)
    assert "| rnn | 3/3 [0.44, 1.00] | 1/3 [0.06, 0.79] | 3/3 [0.44, 1.00] |" in table
    assert "rnn d = 5, gru d = 20" in table
    assert "BPTT window" not in table
    cut = C.StudyConfig(distances="5,10,20", cells="rnn,gru", seeds="0,1,2",
                        train=C.TaskTrainConfig(bptt=8))
    table = study.format_table(cut, s)
    assert "BPTT window 8;" in table and "exactly 0 at the key wherever the lag exceeds the BPTT window of 8" in table


def test_omega_goes_to_the_rnn_cells_only():
    cfg = C.StudyConfig(distances="3", cells="rnn,gru", seeds="0", n_train=50, n_test=20,
                        train=C.TaskTrainConfig(omega=0.5))
    jobs, _ = study.build_jobs(cfg)
    assert {j.settings["study_cell"]: j.settings["train"]["omega"] for j in jobs} == {"rnn": 0.5, "gru": 0.0}


def test_jobs_cover_the_grid_with_one_budget():
    cfg = C.StudyConfig(distances="3,6", cells="rnn,lstm", seeds="4,5", n_train=50, n_test=20,
                        train=C.TaskTrainConfig(steps=7))
    jobs, data = study.build_jobs(cfg)
    assert len(jobs) == 8 and len({j.name for j in jobs}) == 8
    assert set(data) == {"d3-s4", "d3-s5", "d6-s4", "d6-s5"}
    assert [j.settings["distance"] for j in jobs] == [3, 3, 3, 3, 6, 6, 6, 6]   # shortest first
    for j in jobs:
        t = j.settings["train"]
        assert t["steps"] == 7 and t["seed"] == j.settings["seed"] == j.settings["task"]["seed"]
        assert (t["cell"], t["forget_bias"]) == (("lstm", 1.0) if j.settings["study_cell"] == "lstm" else ("rnn", 0.0))
        assert j.data == f"d{j.settings['distance']}-s{j.settings['seed']}"


@pytest.mark.slow
def test_tiny_study_end_to_end_on_a_local_cluster(tmp_path):
    out = tmp_path / "study"
    args = ["study", "learnability", "--distances", "2,4", "--cells", "rnn,gru", "--seeds", "0",
            "--n-train", "100", "--n-test", "40", "--steps", "30", "--eval-every", "10", "--nhid", "8",
            "--emsize", "4", "--out", str(out), "--workers", "1", "--no-progress"]
    assert main(args) == 0
    doc = json.loads((out / "study.json").read_text())
    assert len(doc["runs"]) == 4 and not doc["meta"]["failed"]
    assert {(r["study_cell"], r["distance"]) for r in doc["runs"]} == {("rnn", 2), ("rnn", 4), ("gru", 2), ("gru", 4)}
    for r in doc["runs"]:
        assert r["status"] == "done" and r["steps_run"] == 30 or r["solved"]
        assert r["history"]["step"][0] == 0 and r["history"]["log10_grad_key_median"][0] < 0
    for name in ("success", "steps", "gradient"):
        assert (out / f"{name}.png").stat().st_size > 1000 and (out / f"{name}.svg").exists()
    assert "| rnn |" in (out / "table.md").read_text()
    # a rerun skips every recorded run
    mtime = (out / "sweep.jsonl").stat().st_mtime_ns
    assert main(args) == 0
    assert (out / "sweep.jsonl").stat().st_mtime_ns == mtime


def test_bad_study_flags_are_one_line(capsys):
    assert main(["study", "learnability", "--cells", "rnn,elman", "--out", "/nonexistent/x"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown study cell" in err


def test_report_only_reports_the_recorded_settings_and_refuses_other_folders(tmp_path):
    import dataclasses as dc

    from rnnlm.config import StudyConfig, TaskTrainConfig
    from rnnlm.errors import UserError
    from rnnlm.study import run_study
    out = tmp_path / "st"
    cfg = StudyConfig(distances="3,5", cells="rnn,gru", seeds="0", n_train=64, n_test=32, out=str(out),
                      train=dc.replace(TaskTrainConfig(), steps=20, eval_every=10, hidden=8, emsize=8, batch_size=8))
    run_study(cfg, scheduler="serial", progress=False)
    table = (out / "table.md").read_text()
    run_study(StudyConfig(out=str(out)), progress=False, report_only=True)   # default flags
    assert (out / "table.md").read_text() == table
    (tmp_path / "other").mkdir()
    with pytest.raises(UserError, match="holds no learnability study"):
        run_study(StudyConfig(out=str(tmp_path / "other")), report_only=True)


def test_table_names_the_task_classes_and_chance():
    for task, head in (("recall", "(k = 2 keys, chance 1/2)"), ("order", "(4 classes, chance 1/4)"),
                       ("agreement", "(2 numbers, chance 1/2)")):
        cfg = C.StudyConfig(task=task, distances="10", cells="rnn", seeds="0")
        assert study.format_table(cfg, study.summarize(cfg, [])).startswith(f"Task {task} {head}")


def test_quick_refuses_the_settings_it_would_replace(capsys):
    assert main(["study", "learnability", "--quick", "--cells", "rnn,foo", "--out", "/nonexistent/q"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--quick sets its own grid and budget (--cells included)" in err
    assert main(["study", "learnability", "--quick", "--steps", "10", "--out", "/nonexistent/q"]) == 2
    assert "(--steps included)" in capsys.readouterr().err
    assert main(["study", "learnability", "--bptt", "-1"]) == 2
    assert "error: --bptt must be at least 0" in capsys.readouterr().err


def test_the_table_lists_the_failed_runs_with_where_they_failed(tmp_path):
    cfg = C.StudyConfig(distances="5", cells="rnn", seeds="0")
    rows = [_row("rnn", 5, 0, True, 100),
            {"name": "rnn-d5-s1", "status": "failed", "error": "ValueError: bad | value\nsecond line",
             "error_at": "/x/rnnlm/tasks.py:12 in train_task"}]
    (tmp_path / "rnn-d5-s1").mkdir()
    (tmp_path / "rnn-d5-s1" / "error.txt").write_text("Traceback ...")
    s = study.summarize(cfg, rows)
    assert s["rnn"]["5"]["n"] == 1
    table = study.format_table(cfg, s, [rows[1]], tmp_path)
    tail = table.split("**Failed runs** (1, not counted above; to run one again, delete its line from "
                       "sweep.jsonl and rerun the study)\n\n")[1]
    assert tail == (f"- rnn-d5-s1: ValueError: bad | value second line at tasks.py:12 in train_task; "
                    f"traceback in {tmp_path / 'rnn-d5-s1' / 'error.txt'}\n")
    assert "Failed runs" not in study.format_table(cfg, s)
