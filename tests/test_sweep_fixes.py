"""Sweep command-line fixes: list-flag errors name the item, non-numeric plot columns are refused."""
import json

import pytest

from rnnlm.cli import main
from rnnlm.clisweep import _train_flag_actions


def _one_error_line(capsys):
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    return err


def test_every_list_flag_error_names_the_bad_item_and_the_flag(capsys):
    checked = 0
    for _, actions in _train_flag_actions():
        for a in actions:
            if a.nargs == 0 or (a.type is str and a.choices is None) or a.type is None:
                continue                    # text flags without choices take any text: nothing to refuse
            flag = a.option_strings[0]
            good = str(a.choices[0]) if a.choices else ("none" if "clip" in flag else "1")
            assert main(["sweep", "run", flag, f"{good},abc", "--scheduler", "serial"]) == 2
            err = _one_error_line(capsys)
            assert "'abc'" in err and f"argument {flag}" in err and "item 2" in err, err
            checked += 1
    assert checked >= 20                    # every numeric and every choice flag of train


def test_a_bad_number_in_a_list_names_it(capsys):
    assert main(["sweep", "run", "--recurrent-scale", "0.5,abc"]) == 2
    err = _one_error_line(capsys)
    assert "argument --recurrent-scale: 'abc' is not a number (item 2 of the list '0.5,abc')" in err
    assert main(["sweep", "run", "--hidden", "16,,32"]) == 2
    assert "argument --hidden/--nhid: '' is not a whole number (item 2" in _one_error_line(capsys)


def test_an_unknown_measurement_names_it_and_the_flag(capsys, tmp_path):
    assert main(["sweep", "run", "--measure", "lag,widgets", "--out", str(tmp_path / "s")]) == 2
    err = _one_error_line(capsys)
    assert "--measure: unknown measurement 'widgets'" in err and "lag" in err
    assert not (tmp_path / "s").exists()


# ---------------------------------------------------------------- plot sweep


def _fake_sweep(folder, rows):
    folder.mkdir()
    (folder / "sweep.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


ROWS = [{"name": f"cell={c},s={s}", "fn": "x:y", "settings": {"cell": c, "seed": s}, "status": st,
         "best_val_ppl": ppl, "steps": 10, "wall_s": 1.0, "worker": "w", "attempts": 1}
        for c, s, st, ppl in [("rnn", 0, "done", 90.0), ("rnn", 1, "done", 80.0), ("gru", 0, "failed", None)]]


def test_plot_sweep_refuses_a_text_y_column_in_one_line_listing_the_numeric_ones(tmp_path, capsys):
    folder = tmp_path / "s"
    _fake_sweep(folder, ROWS)
    assert main(["plot", "sweep", str(folder), "--x", "seed", "--y", "status"]) == 2
    err = _one_error_line(capsys)
    assert "--y status: not a numeric column" in err and "values: done, failed" in err
    assert "numeric columns: attempts, best_val_ppl, seed, steps, wall_s" in err
    assert not list(folder.glob("*.png")) and not list(folder.glob("*.svg"))


def test_plot_sweep_with_no_finite_y_at_all_draws_nothing_and_says_so(tmp_path, capsys):
    folder = tmp_path / "s"
    _fake_sweep(folder, [dict(r, best_val_ppl=None) for r in ROWS])
    assert main(["plot", "sweep", str(folder), "--x", "seed", "--y", "best_val_ppl"]) == 2
    err = _one_error_line(capsys)
    assert "no job in" in err and "finite best_val_ppl (3 jobs without)" in err
    assert not list(folder.glob("*.png"))


def test_plot_sweep_still_draws_a_numeric_y_against_a_text_x(tmp_path, capsys):
    folder = tmp_path / "s"
    _fake_sweep(folder, ROWS)
    assert main(["plot", "sweep", str(folder), "--x", "cell", "--y", "best_val_ppl"]) == 0
    svg = (folder / "sweep-best_val_ppl-vs-cell.svg").read_text()
    assert "1 job without best_val_ppl left out" in svg


# ---------------------------------------------------------------- a rerun says what it skips


def _tiny_flags(text, out):
    return ["--corpus", str(text), "--max-vocab", "300", "--valid-fraction", "0.1", "--test-fraction", "0.1",
            "--emsize", "8", "--hidden", "8", "--bptt", "4", "--batch-size", "4", "--dropout", "0",
            "--eval-batch-size", "4", "--out", str(out), "--no-progress", "--max-steps", "3", "--eval-every", "0",
            "--scheduler", "serial"]


def test_a_rerun_says_how_many_finished_jobs_it_skips_and_how_many_it_runs(text, tmp_path, capsys):
    out = tmp_path / "s"
    assert main(["sweep", "run", *_tiny_flags(text, out), "--cell", "rnn,gru"]) == 0
    first = capsys.readouterr().err.splitlines()[0]
    assert first == f"2 jobs (cell) into {out}"
    assert main(["sweep", "run", *_tiny_flags(text, out), "--cell", "rnn,gru,lstm"]) == 0
    assert capsys.readouterr().err.splitlines()[0] == \
        f"3 jobs (cell) into {out}: skipping 2 finished in an earlier run, running 1"


# ---------------------------------------------------------------- --measure agreement


@pytest.fixture(scope="module")
def tiny_sintetico(tmp_path_factory):
    from rnnlm.sintetico import ensure_corpus
    return ensure_corpus(tmp_path_factory.mktemp("sintetico"), sentences=400, max_distance=12, seed=0)


@pytest.mark.slow
def test_measure_agreement_probes_a_sintetico_job_and_is_not_applicable_without_its_words(text, tiny_sintetico, tmp_path,
                                                                                capsys):
    from rnnlm.sweep import read_rows
    out = tmp_path / "s"
    grid = tmp_path / "grid.json"
    grid.write_text(json.dumps({"corpus": [str(tiny_sintetico), str(text)], "measure": ["agreement"]}))
    flags = [f for f in _tiny_flags(text, out)[2:] if f != "--no-progress"]
    assert main(["sweep", "run", "--grid", str(grid), *flags, "--cell", "gru"]) == 0
    printed = capsys.readouterr().out
    rows = {("sin" if r["settings"]["train"]["data"]["corpus"] == str(tiny_sintetico) else "machado"): r
            for r in read_rows(out)}
    sin, mach = rows["sin"], rows["machado"]
    assert sin["status"] == mach["status"] == "done"
    assert 0.0 <= sin["agreement_accuracy"] <= 1.0 and sin["agreement_pairs"] > 0
    assert [d for d, _ in sin["agreement_by_distance"]] == [1, 5, 9, 13, 17, 21, 25]
    assert all(0.0 <= a <= 1.0 for _, a in sin["agreement_by_distance"])
    assert sin["agreement_far"] == sin["agreement_by_distance"][-1][1]
    assert sin["agreement_ci"][0] <= sin["agreement_accuracy"] <= sin["agreement_ci"][1]
    probe = json.loads((out / sin["name"] / "probe-agreement-number.json").read_text())
    assert probe["probe"] == "agreement" and probe["overall"]["n"] == sin["agreement_pairs"]
    # 3 steps, no validation before the end: the best model is the one validated at step 3
    assert probe["checkpoint"] == "best.npz" and probe["checkpoint_step"] == 3
    # (a 300-word vocabulary of one chronicle: too few of the grammar's words to make a pair; the probe says so)
    assert mach["agreement"].startswith("not applicable: the vocabulary has too few template words for number "
                                        "agreement")
    assert "agreement_accuracy" not in mach and not (out / mach["name"] / "probe-agreement-number.json").exists()
    # the table shows the accuracy, "n/a" where it does not apply, and why
    assert main(["sweep", "summarize", str(out)]) == 0
    table = capsys.readouterr().out
    assert "agreement_accuracy" in table.splitlines()[2]
    assert f"| {sin['agreement_accuracy']:.4g} |" in table and "| n/a |" in table
    assert "agreement: not applicable: the vocabulary has too few template words for number agreement" in table
    assert table in printed + "\n" or table.strip() in printed


def test_the_per_job_line_shortens_huge_perplexities_as_reports_do():
    from rnnlm.sweep import format_row_line
    row = {"name": "noclip", "status": "done", "best_val_ppl": 1986176366583207165952.0, "val_ppl": 141.194,
           "stopped": "nonfinite", "steps": 40, "wall_s": 3.04, "worker": "local"}
    assert format_row_line(row) == ("noclip: done best_val_ppl 1.99e+21, val_ppl 141.19, stopped nonfinite, "
                                    "steps 40 [3.0 s on local]")
    assert "val_ppl inf" in format_row_line({**row, "val_ppl": float("inf")})


def test_the_longrange_table_shortens_huge_perplexities():
    from rnnlm.demolongrange import longrange_table
    acc = {"accuracy": 0.5, "ci": [0.4, 0.6]}
    s = {"bins": [[1, 3]], "sizes": {"context_distances": "1,2,4"},
         "models": {"rnn-clip": {"hidden": 16, "params": 1234, "steps": 7, "valid_ppl": 3.4e35,
                                 "agreement": {"1-3": acc}, "agreement_far": None, "effective_context": None,
                                 "jacobian": {"vanish_lag": 5, "max_lag": 10, "factor_per_step": 0.5}}}}
    row = longrange_table(s).splitlines()[2]
    assert row.startswith("| rnn-clip | 16 | 1,234 | 7 | 3.40e+35 | 0.50 [0.40, 0.60] | n/a | >4 | 5 |"), row


def test_summarize_of_a_study_shows_the_steps_each_run_ran_and_the_budget_as_max_steps(tmp_path, capsys):
    from rnnlm import config as C
    from rnnlm import study
    cfg = C.StudyConfig(distances="3", cells="rnn,gru", seeds="0", n_train=50, n_test=20,
                        train=C.TaskTrainConfig(steps=500))
    jobs, _ = study.build_jobs(cfg)
    ran = {"rnn": 500, "gru": 300}          # the gru stopped early, solved
    rows = [{"name": j.name, "fn": j.fn, "settings": j.settings, "status": "done",
             "steps_run": ran[j.settings["study_cell"]], "wall_s": 1.5, "worker": "w"} for j in jobs]
    out = tmp_path / "study"
    out.mkdir()
    (out / "sweep.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["sweep", "summarize", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "max_steps=500" in lines[0]
    assert lines[2] == "| name | cell | status | steps | wall_s | worker |"
    assert lines[4:6] == ["| recall-k2-rnn-d3-s0 | rnn | done | 500 | 1.5 | w |",
                          "| recall-k2-gru-d3-s0 | gru | done | 300 | 1.5 | w |"]


def test_sweep_help_lists_corpus_with_the_corpus_flags(capsys):
    # train declares --corpus outside its groups; in `sweep run --help` it sat alone under "training:"
    with pytest.raises(SystemExit):
        main(["sweep", "run", "--help"])
    out = capsys.readouterr().out
    assert "\ntraining:" not in out
    group = out.split("corpus and tokenizer (lists: one grid axis each):", 1)[1].split("\n\n", 1)[0]
    assert "--corpus V[,V...]" in group and "--corpora-dir" in group
