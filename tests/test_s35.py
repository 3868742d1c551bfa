"""A fresh session's findings: a corpora folder given as a file says so; a stop before jacobian's, probe's or
generate's work began says nothing was written; jacobian and probe say when the latest model stood in for
best.npz; train's short sample is said in its summary, and a warning of ours is one line, not Python's form."""
import types
import warnings

import numpy as np
import pytest

from rnnlm import cli, corpus
from rnnlm import sample as sample_module
from rnnlm.errors import UserError
from rnnlm.sample import ShortSampleWarning
from rnnlm.summary import format_summary
from rnnlm.train import train

from test_s34_stops import _stopping
from test_train import tiny


@pytest.mark.parametrize("how", ["flag", "env"])
def test_a_corpora_folder_that_is_a_file_is_said_to_be_one(tmp_path, monkeypatch, how):
    afile = tmp_path / "corpora.txt"
    afile.write_text("not a folder")
    given, label, name = (str(afile), "--corpora-dir", "--corpora-dir") if how == "flag" else \
        (None, "$RNNLM_CORPORA", "RNNLM_CORPORA")
    if how == "env":
        monkeypatch.setenv("RNNLM_CORPORA", str(afile))
    else:
        monkeypatch.delenv("RNNLM_CORPORA", raising=False)
    with pytest.raises(UserError) as found:
        corpus.find_named("machado", given)
    assert str(found.value) == (f"corpus 'machado' not found: {afile} (given by {label}) is a file, not a folder; "
                                f"give {name} the folder that holds machado/")
    with pytest.raises(UserError) as where:
        corpus.download_dir("machado", given)
    assert str(where.value) == (f"{afile} (given by {label}) is a file, not a folder; give {name} a folder to put "
                                "machado/ in")


def test_a_corpora_folder_that_does_not_exist_is_still_no_such_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("RNNLM_CORPORA", raising=False)
    with pytest.raises(UserError, match=r"given by --corpora-dir: no such folder\); download it there"):
        corpus.find_named("machado", tmp_path / "nowhere")
    assert corpus.download_dir("machado", tmp_path / "nowhere") == tmp_path / "nowhere" / "machado"


@pytest.mark.parametrize("argv, line", [
    (["jacobian", "--init"], "interrupted before the measurement began: nothing was written; run it again"),
    (["probe", "context", "runs/x"], "interrupted before the measurement began: nothing was written; run it again"),
    (["generate", "runs/x"], "interrupted before any text was drawn: generate writes no files, so nothing was lost"),
])
def test_a_stop_before_the_work_of_a_measuring_command_began_says_nothing_was_written(monkeypatch, capsys, argv,
                                                                                       line):
    _stopping(monkeypatch, argv[0], KeyboardInterrupt())
    assert cli.main(argv) == 130
    assert capsys.readouterr().err == line + "\n"


def test_a_warning_of_ours_is_one_line_and_another_keeps_pythons_form():
    assert cli._warning_line("the sample holds 2 of 5", ShortSampleWarning, "/x/sample.py", 9) == \
        "warning: the sample holds 2 of 5\n"
    assert cli._warning_line("a file read as latin-1", UserWarning, "/x/data.py", 9) == \
        "warning: a file read as latin-1\n"
    other = cli._warning_line("old", DeprecationWarning, "/x/lib.py", 9, line="")
    assert other.startswith("/x/lib.py:9: DeprecationWarning: old")


class _ShortStream:
    """A TextStream stand-in that drew 2 words of those asked (mostly punctuation)."""

    def __init__(self, model, vocab, *, words, **kw):
        self.short, self.words_drawn = [0], np.array([2])

    def __iter__(self):
        yield types.SimpleNamespace(text=", , casa , , , mesa ,", sample=0)


def test_trains_short_sample_is_said_in_its_summary_not_as_a_python_warning(text, tmp_path, monkeypatch):
    monkeypatch.setattr(sample_module, "TextStream", _ShortStream)
    with warnings.catch_warnings():
        warnings.simplefilter("error")     # no warning escapes train's end
        s = train(tiny(text, tmp_path / "r", max_steps=2, sample_words=5))
    assert s["sample"] == ", , casa , , , mesa ,"
    assert s["sample_short"] == "2 of the 5 words asked: the model still draws mostly punctuation or sentence ends"
    lines = format_summary(s).splitlines()
    assert ("sample (best model; 2 of the 5 words asked: the model still draws mostly punctuation or sentence "
            "ends):") in lines


def test_a_full_sample_says_nothing_of_its_length(text, tmp_path):
    s = train(tiny(text, tmp_path / "r", max_steps=2, sample_words=3))
    assert s["sample"] and "sample_short" not in s
    assert "sample (best model):" in format_summary(s).splitlines()


def test_jacobian_and_probe_say_when_the_latest_model_stood_in_for_best(tmp_path, capsys):
    from rnnlm.cliinstruments import _say_fallback
    run = tmp_path / "r"
    run.mkdir()
    _say_fallback(str(run), None, str(run / "model.npz"))
    assert capsys.readouterr().err == f"note: measured {run / 'model.npz'} (no best.npz: no validation has run yet)\n"
    for checkpoint, path in ((None, run / "best.npz"), ("latest", run / "model.npz")):
        _say_fallback(str(run), checkpoint, str(path))
        assert capsys.readouterr().err == ""


@pytest.mark.parametrize("out, line", [
    ("{tmp}", "--out {tmp} is a folder; give a file name in it (--out {tmp}/NAME: the figure is written as NAME.png "
              "and NAME.svg)"),
    ("/dev/null", "--out /dev/null is not a regular file; give a file name (the figure is written as NAME.png and "
                  "NAME.svg)"),
    ("{tmp}/fig.pdf", "--out {tmp}/fig.pdf: plot writes PNG and SVG, not PDF; give --out {tmp}/fig.png (it writes "
                      "fig.png and fig.svg)"),
])
def test_a_figures_out_that_is_a_folder_a_device_or_another_format_is_one_line(tmp_path, capsys, out, line):
    (tmp_path / "j.json").write_text("{}")
    out, line = out.format(tmp=tmp_path), line.format(tmp=tmp_path)
    assert cli.main(["plot", "lag", str(tmp_path / "j.json"), "--out", out]) == 2
    assert capsys.readouterr().err == f"error: {line}\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["j.json"]


@pytest.mark.parametrize("call, error, line", [
    (lambda o: o.grad_norm({"a": None}), TypeError,
     "grad_norm: grads['a'] must be a float32 or float64 NumPy array, got NoneType"),
    (lambda o: o.clip_grad_value({"w": np.ones(3, np.int64)}, 1.0), TypeError,
     "clip_grad_value: grads['w'] must be a float32 or float64 NumPy array, got a int64 array"),
    (lambda o: o.clip_grad_norm({"w": [1.0, 2.0]}, 1.0), TypeError,
     "clip_grad_norm: grads['w'] must be a float32 or float64 NumPy array, got list"),
    (lambda o: o.clip_grad_norm({"w": np.ones(3, np.float32)}, float("nan")), ValueError,
     "clip_grad_norm: max_norm must be a number (0 or less: no clipping), got nan"),
    (lambda o: o.clip_grad_value({"w": np.ones(3, np.float32)}, "1"), ValueError,
     "clip_grad_value: clip_value must be a number (0 or less: no clipping), got '1'"),
])
def test_the_gradient_helpers_name_themselves_and_the_gradient_they_refuse(call, error, line):
    from rnnlm import optim
    with pytest.raises(error) as raised:
        call(optim)
    assert str(raised.value) == line


def test_the_gradient_helpers_still_take_float_arrays():
    from rnnlm import optim
    g = {"a": np.full(4, 3.0, np.float32), "b": np.full(2, -4.0, np.float64)}
    assert optim.grad_norm(g) == pytest.approx(np.sqrt(4 * 9 + 2 * 16))
    assert optim.clip_grad_value(g, 3.5) == 2 and g["b"].tolist() == [-3.5, -3.5]


def test_windows_refuses_a_stream_that_is_not_an_array_at_the_call():
    from rnnlm.data import windows
    with pytest.raises(TypeError, match=r"^windows: stream must be a batchified NumPy array \(batchify's "
                                        r"\(N // B, B\) ids\), got NoneType$"):
        windows(None, 2)
    assert [p for p, _, _ in windows(np.zeros((7, 2), np.int32), 3)] == [0, 3]


def test_context_usage_refuses_a_vocab_size_above_the_models_before_any_work():
    from rnnlm import probes
    model = types.SimpleNamespace(config=types.SimpleNamespace(vocab_size=7))
    stream = np.arange(60) % 7
    with pytest.raises(ValueError) as raised:
        probes.context_usage(model, stream, [1], "replace", window=20, vocab_size=9)
    assert str(raised.value) == ("context_usage: vocab_size=9 is more than the model's vocabulary (7): the ids drawn "
                                 "or read would have no embedding; pass at most that, or leave it out")


def test_a_damaged_kernel_cache_is_one_line_naming_the_folder_to_delete(monkeypatch, capsys):
    import pickle
    from rnnlm.caches import numba_cache_dir

    def damaged(args):      # raised as from inside Numba's cache reader
        exec(compile("raise pickle.UnpicklingError('pickle data was truncated')", "/x/numba/core/caching.py",
                     "exec"), {"pickle": pickle})
    monkeypatch.setattr(cli, "COMMANDS", [(n, add, damaged if n == "gradcheck" else r) for n, add, r in cli.COMMANDS])
    assert cli.main(["gradcheck"]) == 2
    assert capsys.readouterr().err == (
        f"error: the compiled-kernel cache is damaged (UnpicklingError: pickle data was truncated); delete "
        f"{numba_cache_dir()} (the kernels compile again at the next start, in about a minute) and run the command "
        "again\n")


def test_an_unpickling_error_elsewhere_is_not_called_a_damaged_cache(monkeypatch):
    import pickle

    def elsewhere(args):
        raise pickle.UnpicklingError("not from the cache")
    monkeypatch.setattr(cli, "COMMANDS", [(n, add, elsewhere if n == "gradcheck" else r) for n, add, r in cli.COMMANDS])
    with pytest.raises(pickle.UnpicklingError):
        cli.main(["gradcheck"])


@pytest.mark.parametrize("name, line", [
    ("best.npz", "--out {d}/best.npz: a measurement is written as JSON; give a FILE.json name (it would replace "
                 "best.npz otherwise)"),
    ("metrics.jsonl", "--out {d}/metrics.jsonl: a measurement is written as JSON; give a FILE.json name (it would "
                      "replace metrics.jsonl otherwise)"),
    ("config.json", "--out {d}/config.json: config.json is the name of a run's, sweep's or study's own record; give "
                    "another FILE.json name"),
    ("other.json", "--out {d}/other.json exists and holds no jacobian or probe measurement; give another FILE.json "
                   "name (a measurement replaces only an earlier measurement)"),
])
def test_a_measurements_out_never_replaces_a_checkpoint_a_record_or_another_file(tmp_path, name, line):
    from rnnlm.measured import check_measurement_out
    for f in ("best.npz", "metrics.jsonl", "config.json", "other.json"):
        (tmp_path / f).write_text('{"a": 1}')
    with pytest.raises(UserError) as raised:
        check_measurement_out(tmp_path / name)
    assert str(raised.value) == line.format(d=tmp_path)
    check_measurement_out(tmp_path / "new.json")        # a new file, or an earlier measurement: allowed
    (tmp_path / "j.json").write_text('{"curves": {}, "meta": {}}')
    check_measurement_out(tmp_path / "j.json")


def test_the_replaced_note_names_another_kind_or_another_runs_checkpoint(tmp_path):
    import json
    from rnnlm.measured import replaced_note
    from rnnlm.probes import _MEASURED_BY
    out = tmp_path / "m.json"
    probe = {"format": "rnnlm-probe-1", "probe": "context", "mode": "shuffle", "checkpoint": "runs/a/best.npz",
             "split": "valid", "seed": 0}
    out.write_text(json.dumps({"curves": {}, "meta": {"source": "runs/a/best.npz"}}))
    assert replaced_note(out, probe, _MEASURED_BY["context"], given=True) == (
        f"note: {out} held a Jacobian lag curve; replaced by this context probe (shuffle) (give another --out to "
        "keep each measurement)")
    out.write_text(json.dumps(probe))
    assert replaced_note(out, {**probe, "checkpoint": "runs/b/best.npz"}, _MEASURED_BY["context"], given=True) == (
        f"note: {out} held a measurement of other settings (checkpoint runs/a/best.npz -> runs/b/best.npz); "
        "replaced (give another --out to keep each measurement)")
    assert replaced_note(out, {**probe, "checkpoint": "runs/a/model.npz"}, _MEASURED_BY["context"]) == (
        f"note: {out} held a measurement of other settings (--checkpoint best.npz -> model.npz); replaced (give "
        "--out FILE to keep each measurement)")
    assert replaced_note(out, probe, _MEASURED_BY["context"], given=True) is None


def test_a_plot_says_when_a_measurement_in_a_run_folder_is_of_another_run(tmp_path):
    import json
    from rnnlm.measured import measurement_age_note
    for name, cell in (("a", "rnn"), ("b", "gru")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text(json.dumps({"cell": cell}))
        (tmp_path / name / "best.npz").write_bytes(b"")
    j = tmp_path / "a" / "jacobian.json"
    j.write_text(json.dumps({"curves": {}, "meta": {"source": str(tmp_path / "b" / "best.npz"),
                                                    "checkpoint_step": 5}}))
    assert measurement_age_note(j) == (
        f"note: {j} measured {tmp_path / 'b' / 'best.npz'}, a checkpoint of another run ({tmp_path / 'b'}), not of "
        "the run it sits in (written there with --out): it is drawn as that run's")
    (tmp_path / "b" / "config.json").write_text(json.dumps({"cell": "rnn"}))     # a copy of the run: no such note
    assert "another run" not in (measurement_age_note(j) or "")


def test_a_finished_runs_records_without_its_model_are_not_taken_over(tmp_path):
    import json
    from rnnlm.runs import clear_unsaved_run, refuse_taken
    run = tmp_path / "job"
    run.mkdir()
    (run / "config.json").write_text('{"train": {"format": 2}}')      # (a run's: its "train" settings)
    (run / "vocab.json").write_text("{}")
    events = [{"type": "start", "step": 0}, {"type": "step", "step": 100}, {"type": "end", "step": 200}]
    (run / "metrics.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    with pytest.raises(UserError) as raised:
        refuse_taken(run)
    assert str(raised.value) == (f"{run} holds the records of a run that finished at step 200 (config.json, "
                                 "metrics.jsonl) without its model; a new run would replace them: give it another "
                                 "--out")
    assert not clear_unsaved_run(run) and sorted(p.name for p in run.iterdir()) == \
        ["config.json", "metrics.jsonl", "vocab.json"]
    (run / "metrics.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events[:2]))  # killed: no end
    refuse_taken(run)
    assert clear_unsaved_run(run)


def test_probe_advice_fits_the_folder_and_the_command(tmp_path, monkeypatch):
    from rnnlm import evaluate, probes
    for name in ("a", "b"):
        (tmp_path / "demo" / name).mkdir(parents=True)
        (tmp_path / "demo" / name / "probe-context-shuffle.json").write_text("{}")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError) as raised:
        probes.find_probe_results([tmp_path / "demo"], "context")
    assert str(raised.value) == (f"{tmp_path / 'demo'} is not a run folder; the runs in it that hold probe results: "
                                 f"give them ('python cli.py plot probe {tmp_path / 'demo' / 'a'} "
                                 f"{tmp_path / 'demo' / 'b'} --kind context')")
    with pytest.raises(UserError, match=r"is not a run folder and holds no probe-agreement\*\.json; give run "):
        probes.find_probe_results([tmp_path / "empty"])

    class Changed:
        checksum = "other"
    monkeypatch.setattr("rnnlm.data.load_corpus", lambda data: Changed())
    info = {"train": {"data": {"corpus": str(tmp_path)}}, "corpus": {"checksum": "trained"}}
    with pytest.raises(UserError, match=r"\(checksum differs\); put the corpus back as it was trained on \(the "
                                        r"probe reads the run's own split\), or train a new run on it$"):
        probes._split_stream(info, None, "valid")
    with pytest.raises(UserError, match=r"\(checksum differs\); use a text file with --text instead$"):
        evaluate.run_text_ids(info, None, "valid")


def test_a_significant_decrease_in_the_context_probe_is_not_called_noise():
    from rnnlm.probereport import format_context
    res = {"mode": "shuffle", "n_targets": 10, "window": 20, "baseline_loss": 5.0, "distances": [1, 5, 10],
           "effective_context": 5, "tolerance": 1e-4,
           "results": [{"distance": 1, "mean_increase": 0.3, "ci": [0.1, 0.5], "within_noise": False},
                       {"distance": 5, "mean_increase": -0.445, "ci": [-0.699, -0.214], "within_noise": True},
                       {"distance": 10, "mean_increase": 0.0, "ci": [-0.01, 0.01], "within_noise": True}]}
    lines = format_context(res).splitlines()
    assert lines[2].rstrip().endswith("]") and lines[3].endswith("  lower when perturbed")
    assert lines[4].endswith("  within noise") and lines[-1] == "effective context: 5 tokens"


def test_a_study_started_with_quick_is_continued_with_quick_and_report_only_says_what_it_needs(tmp_path):
    import json
    from rnnlm import study
    from rnnlm.config import StudyConfig
    folder = tmp_path / "q"
    folder.mkdir()
    quick_jobs, _ = study.build_jobs(study.quick_config(StudyConfig(out=str(folder))))
    job = quick_jobs[0]
    (folder / "sweep.jsonl").write_text(json.dumps({"name": job.name, "fn": job.fn, "settings": job.settings,
                                                    "status": "done", "result": {}}) + "\n")
    full = StudyConfig(out=str(folder))
    with pytest.raises(UserError) as raised:
        study.run_study(full, scheduler="serial", progress=False)
    assert str(raised.value) == (f"{folder} holds the runs of a study started with --quick; add --quick to "
                                 "continue it (it skips the runs recorded)")
    with pytest.raises(UserError) as raised:
        study.recorded_config(folder)
    assert str(raised.value) == (
        f"{folder} holds the runs of a study that stopped before it wrote study.json (the settings --report-only "
        "reads); continue it with the command that started it (with its flags, --quick if it had it: it skips "
        "the runs recorded), which writes the report")


def test_a_hand_edited_line_without_the_field_its_readers_go_by_is_skipped_or_refused():
    from rnnlm.runs import event_problem
    from rnnlm.sweeprecord import row_problem
    assert event_problem({"type": "step"}) == "its type is step but it has no step"
    assert event_problem({"type": "eval", "split": "valid"}) == "its type is eval but it has no step"
    assert event_problem({"type": "step", "step": 5}) is None and event_problem({"type": "note"}) is None
    assert row_problem({}) == "it has no name"
    assert row_problem({"name": "a"}) == "it has no status"
    assert row_problem({"name": "a", "status": "done"}) is None


def test_the_cache_counts_as_warm_for_training_only_when_a_trainings_kernels_are_in_it(tmp_path, monkeypatch):
    from rnnlm import _jit
    monkeypatch.setattr(_jit, "CACHE_DIR", tmp_path)
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "layers._output_log_softmax-9.py311.nbi").write_bytes(b"")     # an evaluation's
    assert _jit.cache_is_warm() and not _jit.cache_is_warm("layers._embedding_backward-*", "gru.*backward*")
    (tmp_path / "src" / "layers._embedding_backward-39.py311.nbi").write_bytes(b"")
    (tmp_path / "src" / "gru._backward_finish-157.py311.nbi").write_bytes(b"")
    assert _jit.cache_is_warm("layers._embedding_backward-*", "gru.*backward*")
    assert not _jit.cache_is_warm("layers._embedding_backward-*", "lstm.*backward*")


def test_a_sweep_figure_on_a_log_axis_joins_the_geometric_means(tmp_path):
    import json
    from rnnlm import plots
    from rnnlm.sweepplot import _geometric_mean, plot_sweep
    assert _geometric_mean([300.0, 700.0, 1.4e6]) == pytest.approx((300 * 700 * 1.4e6) ** (1 / 3))
    rows = [{"name": f"s{k}", "fn": "rnnlm.sweepjobs:train_job", "status": "done", "wall_s": 1.0,
             "settings": {"cell": "rnn", "recurrent_scale": 0.5, "seed": k}, "best_val_ppl": v}
            for k, v in enumerate((300.0, 700.0, 1.4e6))]
    (tmp_path / "sweep.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    seen = {}

    def keep(fig, files):
        seen["y"] = fig.axes[0].lines[0].get_ydata().tolist()
        seen["label"] = fig.axes[0].get_ylabel()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(plots, "write_figure", keep)
        plot_sweep(tmp_path, "recurrent_scale", "best_val_ppl", out=tmp_path / "f")
    assert seen["y"] == [pytest.approx((300 * 700 * 1.4e6) ** (1 / 3))]     # 6.6e3, not the mean's 4.7e5
    assert "geometric mean" in " ".join(seen["label"].split())


def test_a_checkpoint_of_another_model_than_config_json_records_is_read_with_a_warning(text, tmp_path):
    import json
    from rnnlm.runs import OtherModelWarning, load_model
    run = tmp_path / "r"
    train(tiny(text, run, max_steps=2))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_model(run)                                   # the run's own checkpoint: no word
    info = json.loads((run / "config.json").read_text())
    info["train"]["model"]["cell"], info["train"]["model"]["hidden"] = "gru", 99
    (run / "config.json").write_text(json.dumps(info))
    with pytest.warns(OtherModelWarning) as seen:
        model, *_ = load_model(run)
    assert model.config.cell == "lstm" and str(seen[0].message) == (
        f"{run / 'best.npz'} holds another model than {run / 'config.json'} records (cell gru -> lstm, hidden 99 -> "
        "16; a checkpoint copied in from another run?): its own settings are used")


def test_jacobian_and_probe_say_when_the_run_is_being_trained_now(tmp_path, capsys):
    import os
    from rnnlm.cliinstruments import _say_fallback
    from rnnlm.folderlock import LOCK, lock_holder
    run = tmp_path / "r"
    run.mkdir()
    (run / LOCK).write_text(f"{os.getpid()}\n")
    assert lock_holder(run / LOCK) == f"pid {os.getpid()}"
    _say_fallback(str(run), None, str(run / "best.npz"), 120)
    err = capsys.readouterr().err
    assert err.startswith(f"note: {run} is being trained now (") and "its best model so far, of step 120" in err


def test_a_study_runs_line_says_whether_it_solved_and_a_retried_job_says_so():
    from rnnlm.sweeprecord import format_row_line
    row = {"name": "recall-k2-rnn-d5-s0", "status": "done", "wall_s": 7.8, "worker": "tcp://w", "steps": 2500,
           "solved": True, "solved_step": 750, "final_acc": 1.0}
    assert format_row_line(row) == ("recall-k2-rnn-d5-s0: done steps 2500, solved at step 750, accuracy 1.00 "
                                    "[7.8 s on tcp://w]")
    assert format_row_line({**row, "solved": False, "solved_step": None, "final_acc": 0.5, "attempts": 2}) == (
        "recall-k2-rnn-d5-s0: done steps 2500, not solved, accuracy 0.50, after 2 attempts (a worker died) "
        "[7.8 s on tcp://w]")


def test_a_probe_figure_of_number_and_gender_curves_says_both_in_its_title(tmp_path):
    import json
    from rnnlm import plots
    from rnnlm.plotruns import plot_probe
    paths = []
    for feature in ("number", "gender"):
        res = {"format": "rnnlm-probe/1", "probe": "agreement", "feature": feature, "seed": 0, "n_per_distance": 5,
               "cell": "gru", "by_distance": [{"distance": d, "n": 5, "correct": 4.0, "accuracy": 0.8,
                                               "ci": [0.6, 0.9]} for d in (1, 2, 3)]}
        p = tmp_path / f"probe-agreement-{feature}.json"
        p.write_text(json.dumps(res))
        paths.append(p)
    seen = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(plots, "write_figure", lambda fig, files: seen.update(title=fig.axes[0].get_title()))
        plot_probe(paths, tmp_path / "f")
    assert "Portuguese number and gender agreement by distance" in " ".join(seen["title"].split())


def test_a_figures_out_whose_svg_twin_is_a_folder_is_refused_before_anything_is_written(tmp_path, capsys):
    (tmp_path / "j.json").write_text("{}")
    (tmp_path / "fig.svg").mkdir()
    assert cli.main(["plot", "lag", str(tmp_path / "j.json"), "--out", str(tmp_path / "fig.png")]) == 2
    assert capsys.readouterr().err == (f"error: --out {tmp_path / 'fig.png'}: the figure would be written as "
                                       f"{tmp_path / 'fig.svg'}, which is a folder; give another name\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fig.svg", "j.json"]


def test_a_measurements_out_that_is_a_folder_or_a_device_says_so(tmp_path):
    from rnnlm.measured import check_measurement_out
    with pytest.raises(UserError, match=r"is a folder; give a FILE.json name \(in it, or elsewhere\)$"):
        check_measurement_out(tmp_path)
    with pytest.raises(UserError, match=r"^--out /dev/null is not a regular file; give a FILE.json name$"):
        check_measurement_out("/dev/null")
