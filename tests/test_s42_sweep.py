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


# ---------------------------------------------------------------- 3. sweep summarize / plot sweep on no sweep folder


def test_summarize_and_plot_on_a_file_a_run_or_nothing_say_what_to_give(sweep_folder, tmp_path, capsys):
    """A trial: `sweep summarize SW/sweep.jsonl` (and any file) advised `sweep run --out SW/sweep.jsonl ...`,
    which fails; a training run's folder was told to take a sweep; a path that does not exist 'held no
    sweep.jsonl'."""
    record = sweep_folder / "sweep.jsonl"
    said = (f"{record} is a file of the sweep in {sweep_folder}, not its folder; give the folder, {sweep_folder} "
            "('sweep summarize' and 'plot sweep' take the sweep's folder)")
    assert main(["sweep", "summarize", str(record)]) == 2
    assert _one_error_line(capsys) == said
    assert main(["plot", "sweep", str(record), "--x", "cell"]) == 2
    assert _one_error_line(capsys) == f"nothing to plot: {said}"
    afile = tmp_path / "afile"
    afile.write_text("x\n")
    assert main(["sweep", "summarize", str(afile)]) == 2
    assert _one_error_line(capsys) == (f"{afile} is a file, not a sweep's folder; give the folder a 'sweep run "
                                       "--out' wrote (it holds sweep.jsonl)")
    run = tmp_path / "r1"
    run.mkdir()
    (run / "config.json").write_text("{}\n")
    (run / "metrics.jsonl").write_text("")
    assert main(["sweep", "summarize", str(run)]) == 2
    assert _one_error_line(capsys) == (f"{run} is a training run's folder (it holds config.json), not a sweep's; "
                                       f"give a sweep's folder (it holds sweep.jsonl), or read this run with "
                                       f"'plot training {run}' or 'evaluate {run}'")
    nope = tmp_path / "nope"
    assert main(["sweep", "summarize", str(nope)]) == 2
    assert _one_error_line(capsys) == (f"{nope} does not exist; give the folder a 'sweep run --out' wrote (it "
                                       f"holds sweep.jsonl), or run 'sweep run --out {nope} ...' first")
    assert main(["sweep", "summarize", str(sweep_folder)]) == 0     # the folder itself reads as ever
    assert capsys.readouterr().out.startswith(f"{sweep_folder}: 1 job (1 done, 0 failed)")


# ---------------------------------------------------------------- 4. --measure is a set


def test_measures_in_another_order_or_twice_are_the_same_sweep(sweep_folder, text, capsys):
    """A trial: a rerun with `--measure agreement,lag` of a sweep recorded with `lag,agreement` was refused
    ("cannot change --measure", advice: delete its line, rerunning every job); `--measure lag,lag` was
    recorded as ['lag', 'lag'], and a later `--measure lag` refused as a change."""
    from rnnlm.sweep import read_rows
    [row] = read_rows(sweep_folder)
    assert row["settings"]["measure"] == ["agreement"]      # given agreement,agreement
    capsys.readouterr()
    assert main(["sweep", "run", *_tiny_flags(text, sweep_folder), "--cell", "rnn", "--measure", "agreement"]) == 0
    assert capsys.readouterr().err.splitlines()[0] == (f"1 job (one point) into {sweep_folder}: skipping 1 finished "
                                                       "in an earlier run, running 0")
    assert read_rows(sweep_folder) == [row]


def test_a_measurement_named_twice_is_read_once(tmp_path, capsys):
    """`--measure lag,lag` was kept as ['lag', 'lag'] (recorded so, and said to override a grid file's ["lag"])."""
    from rnnlm import clisweep
    from rnnlm.cli import _parse, build_parser
    grid = tmp_path / "g.json"
    grid.write_text('{"measure": ["lag"]}')
    parsed = _parse(build_parser(), ["sweep", "run", "--grid", str(grid), "--measure", "lag,lag"])
    assert clisweep._sweep_grid(parsed) == {"measure": ["lag"]}
    assert capsys.readouterr().err == ""


def test_a_record_of_a_measurement_named_twice_is_the_same_job_as_it_named_once():
    """A folder of earlier versions records `--measure lag,lag` as ['lag', 'lag']: `--measure lag` runs the
    same job (it was refused as a change of --measure)."""
    from rnnlm.config import TrainConfig
    from rnnlm.sweeprecord import TRAIN_JOB, setting_changes
    train = TrainConfig().to_dict()
    settings = {"train": train, "keep_models": False}
    assert setting_changes(TRAIN_JOB, {**settings, "measure": ["lag", "lag"]}, {**settings, "measure": ["lag"]}) is None
    assert setting_changes(TRAIN_JOB, {**settings, "measure": ["agreement", "lag"]},
                           {**settings, "measure": ["lag", "agreement"]}) is None
    assert setting_changes(TRAIN_JOB, {**settings, "measure": ["lag"]},
                           {**settings, "measure": ["lag", "agreement"]}) == ["--measure (['lag'] -> ['lag', 'agreement'])"]


# ---------------------------------------------------------------- 6. --measure agreement on any corpus


def test_measure_agreement_probes_a_corpus_that_is_not_sintetico(text, tmp_path, capsys):
    """A trial: `--measure agreement` said 'not applicable: the probe's sentences use the sintetico grammar's
    words and this job trains on machado', while `probe agreement` on a Machado run works (the pairs are
    drawn from the grammar's words the vocabulary holds). A plain text corpus of the grammar's sentences is
    probed now; one whose vocabulary lacks the words says so, in the probe's own words."""
    from rnnlm.sintetico import ensure_corpus
    from rnnlm.sweep import read_rows
    sin = ensure_corpus(tmp_path / "sintetico", sentences=400, max_distance=12, seed=0)
    plain = tmp_path / "plain" / "portugues.txt"        # the same sentences, in no sintetico folder
    plain.parent.mkdir()
    plain.write_text("".join((sin / f"{s}.txt").read_text(encoding="utf-8") for s in ("train", "valid", "test")),
                     encoding="utf-8")
    out = tmp_path / "s"
    grid = tmp_path / "grid.json"
    grid.write_text(json.dumps({"corpus": [str(plain), str(text)], "measure": ["agreement"]}))
    flags = _tiny_flags(text, out)[2:]      # (its --corpus is the grid's)
    assert main(["sweep", "run", "--grid", str(grid), *flags, "--cell", "gru"]) == 0
    rows = {("plain" if r["settings"]["train"]["data"]["corpus"] == str(plain) else "machado"): r
            for r in read_rows(out)}
    pt, mach = rows["plain"], rows["machado"]
    assert pt["status"] == mach["status"] == "done"
    assert "agreement" not in pt and pt["agreement_pairs"] == 7 * 40     # distances 1, 5, ..., 25, 40 pairs each
    assert 0.0 < pt["agreement_coverage"] <= 1.0 and 0.0 <= pt["agreement_accuracy"] <= 1.0
    assert (out / pt["name"] / "probe-agreement-number.json").is_file()
    assert mach["agreement"].startswith("not applicable: the vocabulary has too few template words for number "
                                        "agreement: main verbs: 0 of 18 in the vocabulary")
    assert "agreement_accuracy" not in mach


def test_a_jobs_folder_given_for_its_sweep_names_the_sweep(tmp_path):
    """`sweep summarize SWEEP/hidden=16` (one job's folder) advised `evaluate SWEEP/hidden=16`, which is refused:
    a job keeps no checkpoint without --keep-models. It now names the sweep's folder."""
    from rnnlm.sweeprecord import empty_reason
    job = tmp_path / "sw" / "hidden=16"
    job.mkdir(parents=True)
    (job / "config.json").write_text("{}")
    (tmp_path / "sw" / "sweep.jsonl").write_text("")
    assert empty_reason(job) == (f"{job} is the folder of one job of the sweep in {tmp_path / 'sw'}; give the "
                                 f"sweep's folder, {tmp_path / 'sw'} (or read this job's training with 'plot "
                                 f"training {job}')")
