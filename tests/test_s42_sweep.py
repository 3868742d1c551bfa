"""Session 42: sweep and study messages (see each test's docstring)"""
import json

import pytest

from rnnlm.cli import main
from test_sweep_fixes import _tiny_flags


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    return err.strip()[len("error: "):]


@pytest.fixture(scope="module")
def sweep_folder(text, tmp_path_factory):
    """A finished one-job `sweep run` folder, its measurement named twice (agreement: on this corpus's vocabulary
    'not applicable', at once)."""
    out = tmp_path_factory.mktemp("s42") / "sw1"
    assert main(["sweep", "run", *_tiny_flags(text, out), "--cell", "rnn", "--measure", "agreement,agreement"]) == 0
    return out


# ---------------------------------------------------------------- 1. --report-only names the command that writes it


def test_report_only_without_a_quick_study_advises_the_quick_study(tmp_path, monkeypatch, capsys):
    """A trial: `study learnability --quick --report-only` with no quick study advised `study learnability --out
    runs/study-learnability-quick`, which starts the full 72-job study in the quick study's folder."""
    monkeypatch.chdir(tmp_path)
    assert main(["study", "learnability", "--quick", "--report-only"]) == 2
    assert _one_error_line(capsys) == ("runs/study-learnability-quick holds no learnability study (no readable "
                                       "study.json); run `study learnability --quick` first")
    assert main(["study", "learnability", "--report-only"]) == 2
    assert _one_error_line(capsys) == ("runs/study-learnability holds no learnability study (no readable "
                                       "study.json); run `study learnability` first")
    assert main(["study", "learnability", "--quick", "--report-only", "--out", "q"]) == 2
    assert _one_error_line(capsys) == ("q holds no learnability study (no readable study.json); run "
                                       "`study learnability --quick --out q` first")


# ---------------------------------------------------------------- 2. a sweep's folder is not a study's


def test_report_only_and_plot_study_on_a_sweep_folder_say_it_is_a_sweeps(sweep_folder, tmp_path, capsys):
    """A trial: `study learnability --report-only --out SW` on a `sweep run` folder said it held the runs of a
    study that stopped before study.json, to be continued with the command that started it (a sweep)."""
    said = (f"{sweep_folder} is a sweep's folder (made by `sweep run`), not a study's; give a study's folder (one "
            f"`study learnability` wrote), or read this one with `sweep summarize {sweep_folder}` or "
            f"`plot sweep {sweep_folder} --x COLUMN`")
    assert main(["study", "learnability", "--report-only", "--out", str(sweep_folder)]) == 2
    assert _one_error_line(capsys) == said
    assert main(["plot", "study", str(sweep_folder)]) == 2
    assert _one_error_line(capsys) == said
    run = tmp_path / "r1"
    run.mkdir()
    (run / "config.json").write_text("{}\n")
    assert main(["study", "learnability", "--report-only", "--out", str(run)]) == 2
    assert _one_error_line(capsys) == (f"{run} is a training run's folder (it holds config.json), not a study's; "
                                       "give a study's folder (one `study learnability` wrote)")


# ---------------------------------------------------------------- 5. --report-only takes no grid


def test_report_only_refuses_grid_and_budget_flags(tmp_path, capsys):
    """A trial: `study learnability --cells gru --distances 5 --seeds 0 --report-only` ignored the grid flags
    without a word (it reported every run recorded) while the same mode refused --scheduler and --workers."""
    out = tmp_path / "stq"
    assert main(["study", "learnability", "--cells", "gru", "--distances", "5", "--seeds", "0", "--out", str(out),
                 "--report-only"]) == 2
    assert _one_error_line(capsys) == (f"--distances, --cells, --seeds: --report-only reports every run recorded in "
                                       f"{out}, with the settings its study.json records (it takes no grid or "
                                       "budget); leave --distances, --cells, --seeds out")
    assert main(["study", "learnability", "--steps", "10", "--no-early-stop", "--report-only", "--out", str(out)]) == 2
    assert _one_error_line(capsys).startswith("--steps, --no-early-stop: --report-only reports every run recorded")
    assert not out.exists()
