"""Damaged or hand-edited files read by the commands: a metrics.jsonl line that is JSON but not an event, a
sweep.jsonl row with a field of the wrong type, a lag curve whose series lacks its lags or holds text. Each
is one line (a note for a skipped metrics line, an error and exit status 2 otherwise), never a traceback;
and the lag axes tick at whole lags only."""
import json

import numpy as np
import pytest

from rnnlm import plotlag, plotruns, runs
from rnnlm.cli import main
from test_plots_figures import _close, _doc, _fake_run

# ---------------------------------------------------------------- 1. metrics.jsonl: JSON but not an event

NOT_EVENTS = ["[1, 2]", '"str"', '{"type": "eval", "split": "valid", "step": "x", "val_loss": "y"}',
              '{"type": "step", "step": 50, "loss": "abc", "grad_norm": "z"}']


def _append(path, lines):
    with open(path, "a", encoding="utf-8") as f:
        f.write("".join(line + "\n" for line in lines))


def test_plot_training_skips_lines_that_are_json_but_not_events_with_one_note(tmp_path, capsys):
    run = _fake_run(tmp_path / "r", val_ppl=50.0)
    metrics = run / "metrics.jsonl"
    n = len(metrics.read_text().splitlines())
    _append(metrics, NOT_EVENTS)
    assert main(["plot", "training", str(run), "--out", str(tmp_path / "t.png")]) == 0
    assert (tmp_path / "t.png").is_file()
    assert capsys.readouterr().err == (f"note: {metrics}: 4 lines are JSON but not events rnnlm wrote (lines "
                                       f"{n + 1}-{n + 4}; line {n + 1}: a list, not an object; damaged or edited "
                                       f"by hand) and were skipped\n")


def test_each_kind_of_non_event_line_is_named_in_the_note(tmp_path, capsys):
    whys = ["a list, not an object", "a string, not an object", 'its step is "x", not a whole number',
            'its grad_norm is "z", not a number']
    for k, (line, why) in enumerate(zip(NOT_EVENTS, whys)):
        run = _fake_run(tmp_path / f"r{k}")
        metrics = run / "metrics.jsonl"
        n = len(metrics.read_text().splitlines())
        _append(metrics, [line])
        assert [e["step"] for e in plotruns.read_metrics(run)] == [1, 2, 3]
        assert capsys.readouterr().err == (f"note: {metrics}: 1 line is JSON but not an event rnnlm wrote (line "
                                           f"{n + 1}: {why}; damaged or edited by hand) and was skipped\n")


def test_the_run_readers_of_a_resume_and_of_evaluate_skip_lines_that_are_not_events(tmp_path):
    """A resume (lost_steps, truncate_metrics, final_evaluation_pending) and evaluate's check for a lost
    best.npz read metrics.jsonl through runs._events: these lines gave AttributeError / TypeError there."""
    run = _fake_run(tmp_path / "r", val_ppl=50.0)
    metrics = run / "metrics.jsonl"
    _append(metrics, NOT_EVENTS + ['{"type": "step", "step": 9.5}', '{"step": 2}'])
    assert [e.get("type") for _, e in runs._events(metrics)] == ["step", "step", "step", "eval"]
    assert runs.lost_steps(run, 3) is None
    assert runs.final_evaluation_pending(run, 3) is None
    runs.truncate_metrics(metrics, 2)
    assert [json.loads(line)["step"] for line in metrics.read_text().splitlines()] == [1, 2]


def test_a_tracked_lag_curve_that_is_damaged_is_skipped_by_plot_lag_over_training(tmp_path, capsys):
    good = _doc("rnn")
    bad = json.loads(json.dumps(good))
    bad["curves"]["layer0"]["h"]["spectral"]["median"][1] = "abc"
    run = _fake_run(tmp_path / "r", jacobian_docs=[good, bad, good])
    fig = plotruns.draw_lag_over_training(run)
    _close(fig)
    assert capsys.readouterr().err == (
        f"note: {run / 'metrics.jsonl'}: 1 line is JSON but not an event rnnlm wrote (line 5: its lag curve "
        f'layer0/h/spectral has a median value "abc" that is not a norm (a number from 0 on) or null; damaged or '
        f'edited by hand) '
        f"and was skipped\n")


# ---------------------------------------------------------------- 2. sweep.jsonl: a row's field of the wrong type


ROWS = [{"name": f"cell={c},s={s}", "fn": "rnnlm.sweepjobs:train_job",
         "settings": {"train": {"model": {"cell": c, "recurrent_scale": 1.0}, "seed": s}, "measure": []},
         "status": "done", "best_val_ppl": ppl, "steps": 10, "wall_s": 1.0, "worker": "w", "attempts": 1}
        for c, s, ppl in [("rnn", 0, 90.0), ("rnn", 1, 80.0), ("gru", 0, 70.0)]]


def _sweep(folder, rows):
    folder.mkdir()
    (folder / "sweep.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def _row_refused(folder, line, why):
    return (f"error: {folder / 'sweep.jsonl'} cannot be read: line {line} is not a row a sweep wrote ({why}); "
            f"remove that line (the command that wrote the folder, run again with --out {folder}, reruns its job) "
            f"or restore the file from a copy\n")


def test_a_sweep_row_whose_settings_are_not_an_object_is_refused_in_one_line(tmp_path, capsys):
    folder = _sweep(tmp_path / "s", ROWS[:2] + [{**ROWS[2], "settings": 5}])
    assert main(["sweep", "summarize", str(folder)]) == 2
    assert capsys.readouterr().err == _row_refused(folder, 3, "its settings are a number, not an object")
    assert main(["plot", "sweep", str(folder), "--x", "recurrent_scale", "--y", "best_val_ppl", "--hue", "cell"]) == 2
    assert capsys.readouterr().err == _row_refused(folder, 3, "its settings are a number, not an object")


def test_other_wrong_typed_fields_of_a_sweep_row_are_refused_in_one_line(tmp_path, capsys):
    cases = [({"settings": {"train": 3}}, "its settings' train is a number, not an object"),
             ({"settings": {"train": {"model": [1]}}}, "its settings' train.model is a list, not an object"),
             ({"settings": {"train": {}, "measure": 7}}, "its settings' measure is a number, not a list of names"),
             ({"name": ["a"]}, "its name is a list, not a string"),
             ({"status": None}, "its status is null, not a string"),
             ({"wall_s": "x"}, "its wall_s is a string, not a number")]
    for k, (change, why) in enumerate(cases):
        folder = _sweep(tmp_path / f"s{k}", [ROWS[0], {**ROWS[1], **change}, ROWS[2]])
        assert main(["sweep", "summarize", str(folder)]) == 2
        assert capsys.readouterr().err == _row_refused(folder, 2, why)
    folder = _sweep(tmp_path / "fine", ROWS)
    assert main(["sweep", "summarize", str(folder)]) == 0


# ---------------------------------------------------------------- 3. a lag curve's series, damaged


def test_a_lag_curve_with_no_lag_list_is_refused_in_one_line(tmp_path, capsys):
    p = tmp_path / "lag.json"
    p.write_text('{"meta":{}, "curves": {"layer0": {"h": {"spectral": {"median": ["x"]}}}}}')
    assert main(["plot", "lag", str(p), "--out", str(tmp_path / "f.png")]) == 2
    assert capsys.readouterr().err == (f"error: {p} is not a lag curve rnnlm wrote: layer0/h has no lag "
                                       f"list; measure it again with 'python cli.py jacobian'\n")


@pytest.mark.parametrize("where, value, said", [
    (("lag", 0), 0, "layer0/h has a lag 0 that is not a whole number from 1 on"),
    (("lag", 1), -2, "layer0/h has a lag -2 that is not a whole number from 1 on"),
    (("spectral", "median", 1), -0.5, "layer0/h/spectral has a median value -0.5 that is not a norm (a number "
                                      "from 0 on) or null")])
def test_a_lag_curve_with_a_lag_below_1_or_a_negative_norm_is_refused(tmp_path, capsys, where, value, said):
    doc = _doc("rnn")
    target = doc["curves"]["layer0"]["h"]
    for key in where[:-1]:
        target = target[key]
    target[where[-1]] = value
    p = tmp_path / "j.json"
    p.write_text(json.dumps(doc))
    assert main(["plot", "lag", str(p), "--out", str(tmp_path / "f.png")]) == 2
    assert capsys.readouterr().err == (f"error: {p} is not a lag curve rnnlm wrote: {said}; measure it again with "
                                       f"'python cli.py jacobian'\n")


def test_a_lag_curve_whose_values_are_not_numbers_is_refused_in_one_line(tmp_path, capsys):
    doc = _doc("rnn")
    doc["curves"]["layer0"]["h"]["spectral"]["median"][2] = "abc"
    p = tmp_path / "j.json"
    p.write_text(json.dumps(doc))
    assert main(["plot", "lag", str(p), "--out", str(tmp_path / "f.png")]) == 2
    assert capsys.readouterr().err == (f"error: {p} is not a lag curve rnnlm wrote: layer0/h/spectral has a median "
                                       f'value "abc" that is not a norm (a number from 0 on) or null; measure it '
                                       f"again with 'python cli.py jacobian'\n")
    doc = _doc("rnn")
    doc["curves"]["layer0"]["flow"]["norm"]["p90"] = doc["curves"]["layer0"]["flow"]["norm"]["p90"][:3]
    p.write_text(json.dumps(doc))
    assert main(["plot", "lag", str(p), "--flow", "--out", str(tmp_path / "f.png")]) == 2
    assert capsys.readouterr().err == (f"error: {p} is not a lag curve rnnlm wrote: layer0/flow/norm has 3 p90 "
                                       f"values for 8 lags; measure it again with 'python cli.py jacobian'\n")


def test_a_run_folders_damaged_jacobian_json_names_the_run_to_measure_again(tmp_path, capsys):
    run = _fake_run(tmp_path / "r")
    doc = _doc("rnn")
    del doc["curves"]["layer0"]["h"]["lag"]
    (run / "jacobian.json").write_text(json.dumps(doc))
    assert main(["plot", "lag", str(run), "--out", str(tmp_path / "f.png")]) == 2
    assert capsys.readouterr().err == (f"error: {run / 'jacobian.json'} is not a lag curve rnnlm wrote: "
                                       f"layer0/h has no lag list; measure it again with "
                                       f"'python cli.py jacobian {run.resolve()}'\n")
    doc["curves"]["layer0"]["h"]["lag"] = "abc"
    (run / "jacobian.json").write_text(json.dumps(doc))
    assert main(["plot", "lag", str(run), "--out", str(tmp_path / "f.png")]) == 2
    assert "layer0/h has no lag list (its lag is a string); measure it again" in capsys.readouterr().err


# ---------------------------------------------------------------- 4. the lag axes tick at whole lags


def _whole(ax) -> bool:
    lo, hi = ax.get_xlim()
    ticks = [t for t in ax.get_xticks() if lo <= t <= hi]
    return bool(ticks) and all(float(t).is_integer() for t in ticks)


def test_plot_lag_ticks_whole_lags_only():
    for max_lag in (5, 20):
        fig = plotlag.draw_lag([_doc("rnn", max_lag=max_lag, tokens=60)], None)
        assert _whole(fig.axes[0]), fig.axes[0].get_xticks()
        _close(fig)


def test_plot_lag_over_training_ticks_whole_lags_only(tmp_path):
    run = _fake_run(tmp_path / "r", jacobian_docs=[_doc("rnn", max_lag=20, tokens=60), _doc("rnn", max_lag=20,
                                                                                              tokens=60)])
    fig = plotruns.draw_lag_over_training(run)
    assert _whole(fig.axes[0]), fig.axes[0].get_xticks()
    assert np.all(np.isfinite(fig.axes[0].get_xlim()))
    _close(fig)
