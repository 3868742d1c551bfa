"""Study findings of the third new-user trial: list-flag errors name the flag, figure subtitles describe the task
that ran, the truncation figure marks the BPTT window, and `plot study` redraws a study's figures from study.json."""
import json
import os
import shutil
import signal
import threading
import time
from pathlib import Path

import pytest

from rnnlm import config as C
from rnnlm import study
from rnnlm.cli import main

REPO = Path(__file__).resolve().parents[1]


def _one_line_error(capsys, argv):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err.strip()


def test_a_bad_distance_or_seed_names_its_flag_and_value(capsys):
    base = ["study", "learnability", "--out", "/nonexistent/st"]
    assert _one_line_error(capsys, base + ["--distances", "0"]) == (
        "error: --distances: 0 is not a distance; give integers >= 1, e.g. --distances 5,10,20")
    assert _one_line_error(capsys, base + ["--distances", "5,-3"]).startswith(
        "error: --distances: -3 is not a distance;")
    assert _one_line_error(capsys, base + ["--seeds", "-1"]) == (
        "error: --seeds: -1 is not a seed; give integers >= 0, e.g. --seeds 0,1,2")
    # what the task generator refuses, named by the flag too
    assert _one_line_error(capsys, base + ["--task", "agreement", "--distances", "2,10"]).startswith(
        "error: --distances: 2 is too short for the agreement task")
    assert _one_line_error(capsys, base + ["--distances", "10,6000"]).startswith(
        "error: --distances: 6000 is above the longest task distance, 5000")


def _row(cell, d, seed, solved, step=None):
    hist = {"step": [0, 250], "acc": [0.5, 1.0 if solved else 0.5],
            "log10_grad_key_median": [-3.0, -2.0], "log10_jac_median": [-4.0, -5.0]}
    return {"name": f"x-{cell}-{d}-{seed}", "status": "done", "study_cell": cell, "distance": d, "seed": seed,
            "solved": solved, "solved_step": step, "first_step": step, "final_acc": hist["acc"][-1],
            "best_acc": hist["acc"][-1], "diverged": False, "history": hist, "steps_per_s": 10.0, "wall_s": 1.0}


@pytest.fixture
def drawn(monkeypatch):
    """{figure name: its axes} of every figure write_figures saves (captured as it is written)."""
    import matplotlib
    matplotlib.use("Agg")
    from rnnlm import plots
    seen = {}
    original = plots.write_figure

    def write_figure(self, files):
        for fname in files:
            p = Path(fname)
            if p.suffix == ".png":
                ax = self.axes[0]
                seen[p.stem] = {"title": ax.get_title(),
                                "lines": [(ln.get_label(), list(ln.get_xdata())) for ln in ax.get_lines()],
                                "texts": [t.get_text() for t in ax.texts], "xlabel": ax.get_xlabel()}
        return original(self, files)
    monkeypatch.setattr(plots, "write_figure", write_figure)
    return seen


def _draw(tmp_path, cfg):
    rows = [_row(c, d, s, s == 0, 250 if s == 0 else None)
            for c in cfg.cell_list() for d in cfg.distance_list() for s in cfg.seed_list()]
    return study.write_figures(cfg, study.summarize(cfg, rows), tmp_path)


def test_figure_subtitles_describe_the_task_that_ran(tmp_path, drawn):
    agreement = C.StudyConfig(task="agreement", distances="10,40", cells="rnn,gru", seeds="0,1")
    _draw(tmp_path, agreement)
    assert set(drawn) == {"success", "steps", "gradient"}
    for name, fig in drawn.items():
        assert "agreement (2 numbers, chance 1/2), loss on the answer" in fig["title"], name
        assert "k=" not in fig["title"] and "keys" not in fig["title"], fig["title"]
    assert drawn["success"]["xlabel"] == "distance d (verb position − subject head position)"
    drawn.clear()
    _draw(tmp_path, C.StudyConfig(task="recall", keys=3, distances="10,40", cells="rnn", seeds="0"))
    assert "recall (k = 3 keys, chance 1/3), loss on the answer" in drawn["success"]["title"]
    drawn.clear()
    _draw(tmp_path, C.StudyConfig(task="order", distances="10,40", cells="rnn", seeds="0"))
    assert "order (4 classes, chance 1/4)" in drawn["steps"]["title"]
    # the table's header names the task in the same words
    table = study.format_table(agreement, study.summarize(agreement, []))
    assert table.startswith("Task agreement (2 numbers, chance 1/2), loss on the answer only")


def test_a_finite_bptt_window_is_marked_on_every_figure(tmp_path, drawn):
    cut = C.StudyConfig(distances="10,20,40,80", cells="gru", seeds="0,1,2", train=C.TaskTrainConfig(bptt=20))
    assert study.window_edge(cut) == 19.5           # recall: lag = d + 1, so d = 19 fills the window, 20 exceeds it
    _draw(tmp_path, cut)
    for name, fig in drawn.items():
        marks = [x for label, x in fig["lines"] if label.startswith("BPTT window = 20:")]
        assert marks == [[19.5, 19.5]], (name, fig["lines"])
        assert " BPTT window = 20 " in fig["texts"], name
        assert "(d ≥ 20, lag > 20)" in [label for label, _ in fig["lines"] if label.startswith("BPTT")][0]
    drawn.clear()
    agreement = C.StudyConfig(task="agreement", distances="10,40", cells="gru", seeds="0",
                              train=C.TaskTrainConfig(bptt=20))
    assert study.window_edge(agreement) == 21.5     # agreement: lag = d - 1
    whole = C.StudyConfig(distances="10,20,40,80", cells="gru", seeds="0")
    assert study.window_edge(whole) is None
    _draw(tmp_path, whole)
    for name, fig in drawn.items():
        assert not any(label.startswith("BPTT") for label, _ in fig["lines"]), name
        assert not any("BPTT" in t for t in fig["texts"]), name


@pytest.mark.parametrize("which", ["", "truncation", "agreement"])
def test_plot_study_redraws_the_committed_figures_without_touching_the_data(tmp_path, capsys, which, drawn):
    src = REPO / "docs" / "learnability" / which
    folder = tmp_path / "st"
    folder.mkdir()
    for name in ("study.json", "table.md"):
        shutil.copy(src / name, folder / name)
    before = {n: (folder / n).read_bytes() for n in ("study.json", "table.md")}
    assert main(["plot", "study", str(folder)]) == 0
    assert "study.json and table.md unchanged" in capsys.readouterr().out
    for name in ("success", "steps", "gradient"):
        assert (folder / f"{name}.png").stat().st_size > 10_000 and (folder / f"{name}.svg").exists()
    assert {n: (folder / n).read_bytes() for n in before} == before
    meta = json.loads(before["study.json"])["meta"]["config"]
    success = drawn["success"]
    assert f"{meta['task']} (" in success["title"] and f"seeds {meta['seeds']}" in success["title"]
    assert any(label.startswith("BPTT window = 20:") for label, _ in success["lines"]) == (which == "truncation")


def test_plot_study_on_a_folder_without_a_study_is_one_line(tmp_path, capsys):
    err = _one_line_error(capsys, ["plot", "study", str(tmp_path)])
    assert "holds no learnability study" in err and f"study learnability --out {tmp_path}" in err


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(), reason="signals need the main thread")
def test_a_study_stopped_by_sigterm_says_one_line_and_exits_143(tmp_path, capsys, monkeypatch):
    from rnnlm import learnability

    def killed(settings, payload):
        os.kill(os.getpid(), signal.SIGTERM)        # `kill PID` while the first run trains
        time.sleep(30)
        raise AssertionError("SIGTERM did not stop the run")
    monkeypatch.setattr(learnability, "task_job", killed)
    out = tmp_path / "st"
    code = main(["study", "learnability", "--distances", "3,4", "--cells", "rnn", "--seeds", "0", "--n-train", "20",
                 "--n-test", "10", "--scheduler", "serial", "--no-progress", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 143, err
    assert err.strip().splitlines() == [
        f"2 jobs (1 cell x 2 distances x 1 seed) into {out}",      # first, before the runs (they take minutes)
        f"terminated: no run had finished (none is left running), so nothing is recorded; {out} was new and is "
        "removed again; the same command starts over"]
    assert not out.exists()


def test_plot_study_redraws_the_same_bytes(tmp_path):
    # committed figures must not show up as changed after a redraw: no date, fixed SVG ids
    import shutil

    from rnnlm.cli import main
    src = Path(__file__).resolve().parents[1] / "docs" / "learnability"
    shutil.copy(src / "study.json", tmp_path / "study.json")
    assert main(["plot", "study", str(tmp_path)]) == 0
    first = {p.name: p.read_bytes() for p in tmp_path.glob("*.svg")}
    assert main(["plot", "study", str(tmp_path)]) == 0
    assert first and first == {p.name: p.read_bytes() for p in tmp_path.glob("*.svg")}
    assert b"<dc:date>" not in first["gradient.svg"]


def test_a_study_first_names_its_jobs_and_folder_as_a_sweep_does(tmp_path):
    cfg = C.StudyConfig(distances="3,4", cells="rnn,gru", seeds="0", n_train=20, n_test=10, out=str(tmp_path / "st"))
    jobs, _ = study.build_jobs(cfg)
    folder = tmp_path / "st"
    assert study._first_line(cfg, jobs, folder) == f"4 jobs (2 cells x 2 distances x 1 seed) into {folder}"
    folder.mkdir()
    row = {"name": jobs[0].name, "fn": jobs[0].fn, "settings": jobs[0].settings, "status": "done"}
    (folder / "sweep.jsonl").write_text(json.dumps(row) + "\n")      # (a job is found by its settings too)
    assert study._first_line(cfg, jobs, folder) == (f"4 jobs (2 cells x 2 distances x 1 seed) into {folder}: "
                                                    "skipping 1 finished in an earlier run, running 3")
