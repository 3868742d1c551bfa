"""A resume of a run that diverged: refused where it would only diverge again at the same step."""
import json

import numpy as np
import pytest

from rnnlm.errors import UserError
from rnnlm.model import RNNModel
from rnnlm.runs import resume_config
from rnnlm.train import train

from test_train import events, tiny
from test_train_runs import DIVERGE, _nan_loss_from


def test_a_diverged_run_resumed_as_it_was_is_refused_before_anything_is_written(text, tmp_path):
    s = train(tiny(text, tmp_path / "boom", **DIVERGE))
    assert s["stopped"] == "nonfinite"
    before = {p.name: p.read_bytes() for p in (tmp_path / "boom").iterdir() if p.is_file()}
    with pytest.raises(UserError) as e:
        train(resume_config(tmp_path / "boom"), resume=tmp_path / "boom")
    msg = str(e.value)
    assert f"stopped at step {s['steps']} because training diverged (non-finite loss at step " in msg
    assert msg.endswith("give --on-nonfinite skip to skip such steps, or train a new run with a smaller --lr, or a "
                        "smaller --clip-value than 1") and "\n" not in msg
    after = {p.name: p.read_bytes() for p in (tmp_path / "boom").iterdir() if p.is_file()}
    assert after == before


def test_a_run_stopped_by_max_skips_resumes_only_with_more_skips(text, tmp_path, monkeypatch):
    _nan_loss_from(monkeypatch, 3)
    s = train(tiny(text, tmp_path / "skip", max_steps=40, on_nonfinite="skip", max_skips=4))
    assert s["stopped"] == "nonfinite" and s["nonfinite"]["max_skips"]
    for same in ({}, {"max_skips": 4}, {"max_skips": 3}, {"on_nonfinite": "stop"}):
        with pytest.raises(UserError, match=r"after 4 non-finite steps in a row, all from the same weights \(a "
                                            r"skipped step leaves them unchanged\), so more skips are unlikely to "
                                            r"help: train a new run with a smaller --lr, or a smaller --clip-norm "
                                            r"than 0.25 \(--max-skips above 4 tries more batches\)$"):
            train(resume_config(tmp_path / "skip", same), resume=tmp_path / "skip")
    again = train(resume_config(tmp_path / "skip", {"max_skips": 6}), resume=tmp_path / "skip")
    assert again["stopped"] == "nonfinite"
    assert [e["action"] for e in events(tmp_path / "skip", "nonfinite")] == ["skip"] * 5 + ["stop"]


def test_weights_made_nonfinite_cannot_be_resumed_at_all(text, tmp_path, monkeypatch):
    _nan_loss_from(monkeypatch, 2)
    s = train(tiny(text, tmp_path / "w", max_steps=5))
    assert s["stopped"] == "nonfinite"
    # the event says whether the weights themselves went bad; mark it so, as a broken update logs it
    path = tmp_path / "w" / "metrics.jsonl"
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    (ev,) = [e for e in lines if e["type"] == "nonfinite"]
    assert ev["weights_nonfinite"] is False
    ev["weights_nonfinite"] = True
    path.write_text("".join(json.dumps(e) + "\n" for e in lines))
    with pytest.raises(UserError, match="made the weights non-finite, which a resume repeats and no "
                                        "--on-nonfinite skip can skip; train a new run"):
        train(resume_config(tmp_path / "w", {"on_nonfinite": "skip"}), resume=tmp_path / "w")


def test_a_diverged_run_whose_final_evaluation_was_cut_short_still_resumes(text, tmp_path):
    s = train(tiny(text, tmp_path / "cut", **DIVERGE))
    path = tmp_path / "cut" / "metrics.jsonl"
    lines = path.read_text().splitlines()
    stop = max(i for i, x in enumerate(lines) if json.loads(x)["type"] == "stop")
    path.write_text("\n".join(lines[:stop + 1]) + "\n")        # no test eval, no end event
    again = train(resume_config(tmp_path / "cut"), resume=tmp_path / "cut")
    assert again["stopped"] == "nonfinite" and again["steps"] == s["steps"]
    assert events(tmp_path / "cut", "end")


def test_a_short_final_evaluation_is_said_in_seconds_not_as_0_0_min():
    from rnnlm.train import _minutes
    assert [_minutes(x) for x in (0.4, 3.2, 59.4, 59.6, 150)] == ["0 s", "3 s", "59 s", "1.0 min", "2.5 min"]


def test_the_context_table_never_shows_minus_zero():
    from rnnlm.probereport import format_context
    res = {"mode": "shuffle", "n_targets": 10, "window": 40, "baseline_loss": 3.0, "distances": [1, 5],
           "effective_context": 1,
           "results": [{"distance": 1, "mean_increase": 0.25, "ci": [0.1, 0.4], "within_noise": False},
                       {"distance": 5, "mean_increase": -0.00004, "ci": [-0.00003, 0.00002], "within_noise": True}]}
    text = format_context(res)
    assert "-0.0000" not in text
    assert "    5    0.0000  [-0.0001, +0.0001]  within noise" in text     # (rounded outward: session 42)
    assert "    1    0.2500  [+0.1000, +0.4000]" in text


@pytest.mark.parametrize("extra, named", [(["--bound"], "--bound does"), (["--labels", "a"], "--labels does"),
                                          (["--scope", "layer1", "--bound"], "--bound and --scope layer1 do")])
def test_plot_lag_over_training_refuses_the_flags_it_would_ignore(tmp_path, capsys, extra, named):
    from rnnlm.cli import main
    assert main(["plot", "lag", str(tmp_path), "--over-training", *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {named} not apply with --over-training") and err.count("\n") == 1, err
    assert not (tmp_path / "plots").exists()


def test_a_second_jacobian_of_a_run_says_it_replaced_a_measurement_of_other_settings(
        tmp_path, capsys, monkeypatch):
    from rnnlm.cli import main
    from saved_runs import untrained_gru_run
    monkeypatch.setenv("RNNLM_CACHE", str(tmp_path / "cache"))
    run = untrained_gru_run(tmp_path, 200, 5)
    base = ["jacobian", str(run), "--split", "train", "--anchors", "2", "--tokens", "80", "--no-progress"]
    assert main(base + ["--max-lag", "6"]) == 0
    assert "held a measurement" not in capsys.readouterr().err
    assert main(base + ["--max-lag", "6"]) == 0                      # the same again: nothing to say
    assert "held a measurement" not in capsys.readouterr().err
    assert main(base + ["--max-lag", "8", "--seed", "3"]) == 0
    err = capsys.readouterr().err
    assert (f"note: {run / 'jacobian.json'} held a measurement of other settings (--max-lag 6 -> 8; --seed 0 -> 3); "
            "replaced (give --out FILE to keep each measurement)\n") in err
    # --out naming it: the same note, with its own advice
    assert main(base + ["--max-lag", "5", "--out", str(run / "jacobian.json")]) == 0
    assert (f"note: {run / 'jacobian.json'} held a measurement of other settings (--max-lag 8 -> 5; --seed 3 -> 0); "
            "replaced (give another --out to keep each measurement)\n") in capsys.readouterr().err


def test_the_longrange_verdict_is_in_words_not_python_booleans():
    from rnnlm.demolongrange import shape_sentence
    sh = {"holds": False, "rnn_at_chance_long": False, "gated_above_rnn_long": False, "long_bin": "16-30",
          "above_chance_short": {"rnn-clip": True, "lstm-clip": True, "gru-clip": False}, "short_bin": "1-5",
          "long_accuracy": {"rnn-clip": 0.95, "lstm-clip": 0.69, "gru-clip": 0.98}}
    text = shape_sentence(sh)
    assert "True" not in text and "False" not in text
    assert text.startswith("The expected shape does NOT fully appear at distances 16-30: rnn 0.95 (not at chance), "
                           "lstm 0.69, gru 0.98 (not both above the rnn). At short distance (1-5) gru is not above "
                           "chance (rnn and lstm are): a model that has not learned"), text
    assert "`study learnability --quick`" in text
    sh["above_chance_short"] = {"rnn-clip": False, "lstm-clip": False, "gru-clip": False}
    assert "At short distance (1-5) rnn, lstm and gru are not above chance: a model" in shape_sentence(sh)
    sh["above_chance_short"] = {"rnn-clip": True, "lstm-clip": True, "gru-clip": True}
    assert "At short distance (1-5) every model is above chance: every model learned agreement nearby." in \
        shape_sentence(sh)


def test_the_final_evaluation_lines_count_the_splits_tokens_as_corpus_info_and_evaluate_do(text, tmp_path, capsys):
    from rnnlm.data import load_corpus
    config = tiny(text, tmp_path / "r", max_steps=3, progress=True, eval_batch_size=7)
    corpus = load_corpus(config.data)
    assert len(corpus.valid) % 7 and len(corpus.test) % 7        # batchified, a few tokens fall off
    train(config)
    err = capsys.readouterr().err
    assert f"final validation on the validation split ({len(corpus.valid):,} tokens)..." in err
    assert f"evaluating on the test split ({len(corpus.test):,} tokens, best model)..." in err


def test_a_path_that_is_no_run_folder_says_what_it_is(tmp_path, capsys):
    from rnnlm.cli import main
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{}")
    (run / "model.npz").write_bytes(b"x")
    (run / "plots").mkdir()
    sweep = tmp_path / "sweep"
    (sweep / "a=1").mkdir(parents=True)
    (sweep / "sweep.jsonl").write_text("")
    (sweep / "a=1" / "config.json").write_text("{}")
    (sweep / "a=1" / "metrics.jsonl").write_text("")
    cases = [(["evaluate", str(tmp_path / "nope")], f"no checkpoint at {tmp_path / 'nope'}: no such file or folder"),
             (["train", "--resume", str(tmp_path / "nope")], f"{tmp_path / 'nope'} does not exist; give a run folder"),
             (["train", "--resume", str(run / "model.npz")], f"{run / 'model.npz'} is a file inside the run folder "
                                                             f"{run}; give the run folder"),
             (["train", "--resume", str(run)], f"{run / 'config.json'} holds no training settings (no \"train\" "
                                               "object: a damaged or hand-edited file?), so the run cannot be "
                                               "resumed; evaluate and generate still read its checkpoints"),
             (["evaluate", str(run / "plots")], f"{run / 'plots'} is a folder inside the run folder {run}; give the "
                                                "run folder"),
             (["plot", "lag", str(sweep)], f"{sweep} is a sweep folder, not a run folder"),
             (["train", "--resume", str(sweep / "a=1")], f"{sweep / 'a=1'} is a job of the sweep in {sweep}: a resume "
                                                         "would change what the sweep recorded (and its jobs keep a "
                                                         "checkpoint only with --keep-models); train its settings "
                                                         "into a new --out"),
             (["train", "--corpus", "sintetico", "--out", str(sweep / "a=1")],
              f"{sweep / 'a=1'} is a job of the sweep in {sweep}; give the run another --out"),
             (["evaluate", str(sweep)], f"{sweep} is a sweep folder, not a run folder: give one of its jobs' folders "
                                        f"({sweep}/JOB: plot training and plot lag read one, evaluate and generate "
                                        "one run with --keep-models), or read the whole sweep with 'sweep "
                                        "summarize' and 'plot sweep'"),
             (["evaluate", str(sweep / "a=1")], f"{sweep / 'a=1'} holds no checkpoint (no best.npz or model.npz); it "
                                                "is a job of a sweep, whose jobs keep one only when run with "
                                                "--keep-models"),
             (["plot", "training", str(tmp_path / "nope")], f"{tmp_path / 'nope'} does not exist")]
    for argv, start in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("error: " + start) and err.count("\n") == 1, (argv, err)


def test_jacobian_model_flags_without_init_say_to_add_it(capsys, tmp_path):
    from rnnlm.cli import main
    assert main(["jacobian", "--cell", "rnn", "--recurrent-scale", "1.5"]) == 2
    assert capsys.readouterr().err == ("error: --cell, --recurrent-scale: settings of a fresh model; add --init to "
                                       "measure a fresh model with them, or give a run folder instead\n")
    assert main(["jacobian", str(tmp_path), "--hidden", "8"]) == 2
    assert capsys.readouterr().err.endswith("come from the checkpoint); drop them\n")


def test_a_train_config_given_a_dict_for_its_model_says_how_to_write_it():
    from rnnlm.config import DataConfig, ModelConfig, TrainConfig
    with pytest.raises(UserError) as e:
        TrainConfig(model={"cell": "gru"}).validate()
    assert str(e.value) == ("TrainConfig's model must be a ModelConfig, got a dict: write "
                            "TrainConfig(model=ModelConfig(...)) (a dict d of settings: ModelConfig(**d))")
    with pytest.raises(UserError, match="TrainConfig's data must be a DataConfig, got a string: write "
                                        r"TrainConfig\(data=DataConfig\(...\)\)$"):
        TrainConfig(data="machado").validate()
    TrainConfig(model=ModelConfig(cell="gru"), data=DataConfig()).validate()


def test_the_over_training_legend_draws_no_black_line_the_curves_do_not_have(tmp_path):
    import matplotlib.pyplot as plt
    from rnnlm import plotruns
    from test_plots_figures import _doc, _fake_run
    run = _fake_run(tmp_path / "tracked", cell="gru", jacobian_docs=[_doc("gru"), _doc("gru")])
    fig = plotruns.draw_lag_over_training(run)
    legend = fig.axes[0].get_legend()
    texts = [t.get_text() for t in legend.get_texts()]
    (i,) = [k for k, t in enumerate(texts) if t.endswith(": a curve per recorded step, coloured by step")]
    assert legend.legend_handles[i].get_linestyle() in ("None", "none", " ", "")
    plt.close(fig)


def test_a_resume_after_kill_9_says_how_many_steps_were_lost(text, tmp_path, capsys):
    import json
    from rnnlm.runs import lost_steps
    run = tmp_path / "k9"
    train(tiny(text, run, max_steps=20, log_every=5))
    assert lost_steps(run, 20) is None                     # it ended with a stop and an end event
    # what a process killed at step 32 leaves: step events past its last save, and no stop or end after them
    with open(run / "metrics.jsonl", "a") as f:
        for step in (25, 30):
            f.write(json.dumps({"type": "step", "step": step, "epoch": 1, "loss": 5.0, "time": 1.0}) + "\n")
    assert lost_steps(run, 20) == 30
    capsys.readouterr()
    train(resume_config(run, {"max_steps": 40}), resume=run)
    err = capsys.readouterr().err
    assert ("the run had logged training up to step 30, but its last save is step 20: the 10 steps after it "
            "were lost (the process ended without saving: a second Ctrl-C, kill -9, a crash, a power cut, a full "
            "disk) and are trained again") in err
    assert lost_steps(run, 40) is None


def test_no_steps_are_said_lost_after_a_nonfinite_rollback(text, tmp_path):
    from rnnlm.runs import lost_steps
    s = train(tiny(text, tmp_path / "boom", log_every=1, **DIVERGE))
    assert s["stopped"] == "nonfinite"
    assert lost_steps(tmp_path / "boom", s["steps"]) is None


@pytest.mark.parametrize("lo, hi", [(7.3, 62.0), (0.55, 5.2), (2.4, 6.1), (1e-3, 40.0)])
def test_log_axis_labels_reach_both_ends_of_the_data(lo, hi):
    import math
    import matplotlib.pyplot as plt
    from rnnlm.plotruns import MAX_UNLABELED_END, _readable_log_ticks
    fig, ax = plt.subplots(figsize=(7, 2.6))
    ax.set_yscale("log")
    ax.set_ylim(lo, hi)
    ticks = _readable_log_ticks(ax)
    span = math.log10(hi / lo)
    assert len(ticks) >= 2
    assert math.log10(ticks[0] / lo) <= MAX_UNLABELED_END * span, ticks
    assert math.log10(hi / ticks[-1]) <= MAX_UNLABELED_END * span, ticks
    plt.close(fig)


def test_an_interval_of_skipped_steps_shows_no_loss_and_says_how_many(text, tmp_path, monkeypatch, capsys):
    _nan_loss_from(monkeypatch, 3)          # steps 1-2 apply, every later one is non-finite and skipped
    s = train(tiny(text, tmp_path / "skip", max_steps=20, on_nonfinite="skip", max_skips=30, log_interval=10,
                   progress=True))
    assert s["stopped"] == "max_steps" and s["skipped"] == 18
    lines = [x for x in capsys.readouterr().err.splitlines() if x.startswith("| epoch")]
    assert "| step     20 |" in lines[-1], lines
    assert "| loss     - | ppl        - | |g| - | clipped    - |" in lines[-1] and lines[-1].endswith("| skipped 10")
    assert not any("ppl     1.00" in line for line in lines), lines
    assert "| skipped " in lines[0] and "| loss     - |" not in lines[0]       # its interval had applied steps


def test_an_epoch_of_skipped_steps_records_no_training_loss(text, tmp_path, monkeypatch):
    _nan_loss_from(monkeypatch, 1)          # every step non-finite and skipped
    train(tiny(text, tmp_path / "all", epochs=1, on_nonfinite="skip", max_skips=10**6))
    (epoch,) = events(tmp_path / "all", "epoch")
    assert epoch["skipped"] == epoch["steps"] > 0
    assert epoch["train_loss"] is None and epoch["train_ppl"] is None


def test_steps_skipped_after_the_last_save_count_as_lost_too(text, tmp_path):
    import json
    from rnnlm.runs import lost_steps
    run = tmp_path / "k9"
    train(tiny(text, run, max_steps=20, log_every=5))
    with open(run / "metrics.jsonl", "a") as f:       # a skipping run killed at step 27: nonfinite events only
        for step in (21, 22, 23, 27):
            f.write(json.dumps({"type": "nonfinite", "step": step, "action": "skip", "tensor": "loss"}) + "\n")
    assert lost_steps(run, 20) == 27
    with open(run / "metrics.jsonl", "a") as f:       # ... while one that stopped on them says so itself
        f.write(json.dumps({"type": "nonfinite", "step": 28, "action": "stop", "tensor": "loss"}) + "\n")
    assert lost_steps(run, 20) is None


def test_a_run_whose_initial_weights_diverge_is_told_to_change_them(text, tmp_path, monkeypatch):
    _nan_loss_from(monkeypatch, 1)          # the first forward pass already non-finite, and every later one
    s = train(tiny(text, tmp_path / "init", max_steps=5))
    assert s["stopped"] == "nonfinite" and s["steps"] == 0
    with pytest.raises(UserError, match=r"stopped at step 0 because training diverged \(non-finite loss at step "
                                        r"1\), from the initial weights, before any update; a resume repeats .* "
                                        r"give --on-nonfinite skip to skip such steps, or train a new run with a "
                                        r"smaller --recurrent-scale, another --init or --activation$"):
        train(resume_config(tmp_path / "init"), resume=tmp_path / "init")
    s = train(resume_config(tmp_path / "init", {"on_nonfinite": "skip", "max_skips": 3}), resume=tmp_path / "init")
    assert s["stopped"] == "nonfinite" and s["steps"] == s["skipped"] == 2     # the third skip stopped it
    with pytest.raises(UserError, match=r"\(non-finite loss at step 3\) after 3 non-finite steps in a row, all "
                                        r"from the initial weights \(a skipped step "
                                        r"leaves them unchanged\), so more skips are unlikely to help: train a new "
                                        r"run with a smaller --recurrent-scale, another --init or --activation "
                                        r"\(--max-skips above 3"):
        train(resume_config(tmp_path / "init"), resume=tmp_path / "init")


def test_many_skipped_steps_are_shaded_spans_with_one_legend_entry(tmp_path):
    import json
    import matplotlib.pyplot as plt
    from rnnlm import plotruns
    from test_plots_figures import _fake_run
    run = _fake_run(tmp_path / "skips", losses=(5.0, 4.0, 3.0), norms=(1.0, 1.0, 1.0))
    with open(run / "metrics.jsonl", "a") as f:
        for step in list(range(4, 504)) + [600, 601, 700]:
            f.write(json.dumps({"type": "nonfinite", "step": step, "action": "skip", "tensor": "loss"}) + "\n")
        f.write(json.dumps({"type": "nonfinite", "step": 701, "action": "stop", "tensor": "loss"}) + "\n")
    fig = plotruns.draw_training(run)
    ax = fig.axes[0]
    assert not [t for t in ax.texts if t.get_text().startswith("non-finite")]        # no label per step
    assert len(ax.patches) == 3         # 4-503, 600-601 and 700-701: three spans
    assert "504 non-finite steps, shaded (503 skipped, 1 stopped the run)" in \
        [t.get_text() for t in ax.get_legend().get_texts()]
    plt.close(fig)
    # a few are each marked and named, as before
    from rnnlm.errors import consecutive_runs
    assert consecutive_runs([1, 2, 3, 7, 9, 10]) == [(1, 3), (7, 7), (9, 10)]


def test_a_run_with_only_nonfinite_events_says_why_there_is_nothing_to_plot(tmp_path):
    import json
    from rnnlm import plotruns
    from test_plots_figures import _fake_run
    run = _fake_run(tmp_path / "d", losses=(), norms=())
    with open(run / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"type": "nonfinite", "step": 1, "detected_at": 1, "action": "stop"}) + "\n")
    with pytest.raises(UserError, match=r"has no step or eval events to plot: it went non-finite at step 1 \(1 "
                                        r"non-finite event\), before its first step event \(one every --log-every "
                                        r"1 steps\); its summary says what went bad$"):
        plotruns.draw_training(run)
    cfg = json.loads((run / "config.json").read_text())
    cfg["train"]["log_every"] = 10
    (run / "config.json").write_text(json.dumps(cfg))
    with open(run / "metrics.jsonl", "w") as f:
        f.write(json.dumps({"type": "nonfinite", "step": 4, "detected_at": 4, "action": "stop"}) + "\n")
    with pytest.raises(UserError, match=r"at step 4 .* went bad, and a run trained with --log-every 1 logs every "
                                        r"step$"):
        plotruns.draw_training(run)


def test_only_the_first_skipped_steps_are_named(text, tmp_path, monkeypatch, capsys):
    _nan_loss_from(monkeypatch, 3)
    s = train(tiny(text, tmp_path / "skip", max_steps=25, on_nonfinite="skip", max_skips=30))
    assert s["skipped"] == 23
    err = capsys.readouterr().err.splitlines()
    named = [x for x in err if x.endswith("skipping the step")]
    assert [x.split()[4] for x in named] == [str(k) for k in range(3, 13)]
    assert err.count("(further skipped steps are not named one by one: the progress lines count them, "
                     "metrics.jsonl records each)") == 1
    assert len(events(tmp_path / "skip", "nonfinite")) == 23


def test_the_summary_of_a_run_whose_initial_weights_diverged_does_not_call_them_good(text, tmp_path, monkeypatch):
    from rnnlm.summary import format_summary
    _nan_loss_from(monkeypatch, 1)
    s = train(tiny(text, tmp_path / "init", max_steps=5))
    assert "model.npz holds the initial parameters, which gave no finite loss" in format_summary(s)
    monkeypatch.undo()
    _nan_loss_from(monkeypatch, 3)
    s = train(tiny(text, tmp_path / "later", max_steps=5))
    assert "model.npz holds the last good parameters" in format_summary(s)


def test_a_config_json_with_empty_training_settings_is_said_to_be_damaged(text, tmp_path):
    import json
    train(tiny(text, tmp_path / "r", max_steps=3))
    (tmp_path / "r" / "config.json").write_text(json.dumps({"train": {}}))
    with pytest.raises(UserError, match="holds no training settings"):
        resume_config(tmp_path / "r")


def test_a_step_event_or_validation_due_at_a_skipped_step_comes_at_the_next_applied_one(text, tmp_path, monkeypatch):
    original = RNNModel.train_grads
    calls = {"n": 0}

    def poisoned(self, *a, **k):       # steps 8-12 non-finite, the rest fine
        r = original(self, *a, **k)
        calls["n"] += 1
        return r._replace(loss=np.float64(np.nan)) if 8 <= calls["n"] <= 12 else r
    monkeypatch.setattr(RNNModel, "train_grads", poisoned)
    train(tiny(text, tmp_path / "r", max_steps=25, log_every=5, eval_every=10, on_nonfinite="skip", max_skips=10))
    assert [e["step"] for e in events(tmp_path / "r", "step")] == [5, 13, 15, 20, 25]
    assert [e["step"] for e in events(tmp_path / "r", "eval") if e.get("reason") == "every"] == [13, 20]


def test_a_validation_due_at_a_skipped_step_is_not_repeated_after_the_epochs_own(text, tmp_path, monkeypatch):
    original = RNNModel.train_grads
    calls = {"n": 0}

    def poisoned(self, *a, **k):       # the epoch's last two steps (31, 32 of 32) non-finite
        r = original(self, *a, **k)
        calls["n"] += 1
        return r._replace(loss=np.float64(np.nan)) if calls["n"] in (31, 32) else r
    monkeypatch.setattr(RNNModel, "train_grads", poisoned)
    train(tiny(text, tmp_path / "r", max_steps=36, epochs=2, eval_every=31, on_nonfinite="skip"))
    evals = [(e["step"], e.get("reason")) for e in events(tmp_path / "r", "eval")]
    assert (32, "epoch") in evals and not any(r == "every" for _, r in evals), evals


def test_a_second_signal_says_it_stopped_without_saving_and_what_is_kept(monkeypatch, capsys):
    import signal
    from rnnlm import cli
    from rnnlm.stopping import Interrupt
    it = Interrupt()
    it.saved_step = 34
    it._handle(signal.SIGINT, None)                  # the first: stop at the next step and save
    it.requested_at -= 1.0                           # (a second later: not the same key pressed twice)
    with pytest.raises(KeyboardInterrupt) as e:
        it._handle(signal.SIGINT, None)              # the second: at once
    assert e.value.line == ("interrupted again: stopped at once, without saving (the checkpoint of step 34 is kept, "
                            "and --resume continues from it)")

    def raising(args):
        raise e.value
    monkeypatch.setattr(cli, "COMMANDS", [(n, add, raising if n == "evaluate" else run)
                                          for n, add, run in cli.COMMANDS])
    assert cli.main(["evaluate", "x"]) == 130
    assert capsys.readouterr().err == e.value.line + "\n"


def test_plot_lag_of_a_file_that_is_not_json_says_what_it_reads(tmp_path):
    from rnnlm import plotlag
    bad = tmp_path / "metrics.jsonl"
    bad.write_text('{"a": 1}\n{"b": 2}\n')
    with pytest.raises(UserError, match=r"cannot read .* as JSON \(.*\); plot lag reads a lag curve: a run "
                                        r"folder's jacobian.json, or one written with 'python cli.py jacobian'$"):
        plotlag.load_lag_doc(bad)
