"""train at the end of a run: the end split from the loop (trainend.py), validations that can give no
verdict (every step skipped, a non-finite loss) and a summary that says so, a Ctrl-C in a resume's
start-up whose advice names the flags to give again, and the lock file a run leaves behind."""
import json
import math
import os
import signal
import threading

import numpy as np
import pytest

from rnnlm import session, trainend
from rnnlm import train as train_module
from rnnlm.cli import main
from rnnlm.folderlock import lock_holder
from rnnlm.runs import LOCK
from rnnlm.summary import format_summary
from rnnlm.train import train

from test_train import events, tiny
from test_train_runs import _nan_loss_from

FLAGS = ["--max-vocab", "300", "--valid-fraction", "0.1", "--test-fraction", "0.1",
         "--emsize", "16", "--hidden", "16", "--bptt", "8", "--batch-size", "16", "--dropout", "0",
         "--sample-words", "0", "--no-progress"]
MAIN_THREAD = pytest.mark.skipif(threading.current_thread() is not threading.main_thread(),
                                 reason="signals need the main thread")


# ---------------------------------------------------------------- 1. the end of a run in its own module


def test_the_end_of_a_run_is_its_own_module():
    assert "The one thing to know before editing" in trainend.__doc__
    assert "The one thing to know before editing" in session.__doc__
    # the loop calls the end; the end's pieces are not copies of the loop's
    assert train_module.end_run is trainend.end_run and train_module.stop_training is trainend.stop_training
    assert train_module._save is session._save and train_module._final_tokens is trainend._final_tokens
    assert not hasattr(train_module, "_final_report") and not hasattr(train_module, "_summary")


# ---------------------------------------------------------------- 2. validations without a verdict


def test_a_run_that_skips_every_step_keeps_its_lr_and_its_summary_gives_no_verdict(text, tmp_path, monkeypatch,
                                                                                  capsys):
    _nan_loss_from(monkeypatch, 1)          # every step non-finite and skipped: no update is ever applied
    s = train(tiny(text, tmp_path / "all", epochs=3, on_nonfinite="skip", max_skips=10**6))
    assert s["stopped"] == "epochs" and s["steps"] == s["skipped"] > 0 and s["updates"] == 0
    # the same weights validated three times: equal losses, which are no plateau (lr 20 was 1.25)
    assert s["lr"] == 20.0 and s["plateaus"] == 0
    ev = events(tmp_path / "all", "eval")
    assert len(ev) == 3 and len({e["val_loss"] for e in ev}) == 1
    assert [e.get("no_verdict") for e in ev] == [None] + ["no update since the last validation"] * 2
    assert [e["next_lr"] for e in ev] == [20.0] * 3
    err = capsys.readouterr().err
    assert err.count("| lr 20 (kept: no update since the last validation)") == 2
    lines = format_summary(s).splitlines()
    base = [i for i, line in enumerate(lines) if line.startswith("Kneser-Ney trigram baseline")]
    assert len(base) == 1 and lines[base[0] + 1] == ("  no update was applied, so the model still has its initial "
                                                      "weights: no verdict against the baseline")
    assert f"non-finite steps skipped: {s['skipped']} (every step: no update was applied, the model holds its " \
           "initial weights)" in lines
    assert not any("beaten" in line or "beats" in line or "train longer" in line for line in lines)


def test_a_nonfinite_validation_of_updated_weights_is_a_plateau_and_patience_stops_the_run(
        text, tmp_path, monkeypatch, capsys):
    real = session.evaluate_stream

    def evaluate(model, stream, bptt, bar=None):
        loss, count = real(model, stream, bptt, bar=bar)
        return (math.nan, count) if bar == "validation" else (loss, count)
    monkeypatch.setattr(session, "evaluate_stream", evaluate)
    s = train(tiny(text, tmp_path / "nan", max_steps=12, eval_every=4, patience=2))
    # the weights changed since each validation: NaN is no improvement, so two plateaus end the run
    assert s["stopped"] == "early_stop" and s["steps"] == 8
    assert s["lr"] == 20.0 / 4 ** 2 and s["plateaus"] == 2
    ev = events(tmp_path / "nan", "eval")
    assert [e["step"] for e in ev] == [4, 8] and not any("no_verdict" in e for e in ev)
    assert [e["next_lr"] for e in ev] == [5.0, 1.25]
    assert "kept:" not in capsys.readouterr().err
    assert s["updates"] == 8 and "no verdict" not in format_summary(s)


def test_a_summary_saved_before_updates_was_recorded_reads_them_from_its_counts():
    s = {"run_dir": "r", "stopped": "epochs", "steps": 5, "skipped": 5, "epoch": 2, "tokens": 640, "elapsed_s": 1.0,
         "tokens_per_s": 0.0, "lr": 20.0, "val_loss": 5.0, "val_ppl": math.exp(5.0), "best_val_loss": 5.0,
         "best_val_ppl": math.exp(5.0), "clip_fraction": 0.0, "plateaus": 0, "nonfinite": None,
         "baseline": {"valid": {"ppl": 20.0}}}
    assert "  no update was applied, so the model still has its initial weights: no verdict against the baseline" \
        in format_summary(s).splitlines()


# ---------------------------------------------------------------- 3. a Ctrl-C in a resume's start-up


def _signal_while_compiling(monkeypatch):
    real = train_module._warm_up

    def killed(*a, **k):
        os.kill(os.getpid(), signal.SIGINT)
        return real(*a, **k)
    monkeypatch.setattr(train_module, "_warm_up", killed)


@MAIN_THREAD
def test_ctrl_c_in_a_resumes_start_up_names_the_flags_to_give_again(text, tmp_path, capsys, monkeypatch):
    run = tmp_path / "r"
    assert main(["train", "--corpus", str(text), *FLAGS, "--max-steps", "2", "--out", str(run)]) == 0
    capsys.readouterr()
    flags = ["--max-steps", "4", "--on-nonfinite", "skip", "--max-skips", "50"]
    with monkeypatch.context() as m:
        _signal_while_compiling(m)
        assert main(["train", "--resume", str(run), *flags]) == 130
    # config.json records a resume's settings only once its start-up is over: a plain --resume would have
    # trained without them (stopping at the first non-finite step, and at step 2)
    assert json.loads((run / "config.json").read_text())["train"]["on_nonfinite"] == "stop"
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last == (f"interrupted during start-up; nothing was trained: {run} is as it was (continue with --resume "
                    f"{run} --max-steps 4 --on-nonfinite skip --max-skips 50)")
    advice = last[last.index("--resume "):-1].split()
    assert main(["train", *advice]) == 0
    saved = json.loads((run / "config.json").read_text())["train"]
    assert (saved["max_steps"], saved["on_nonfinite"], saved["max_skips"]) == (4, "skip", 50)


@MAIN_THREAD
def test_ctrl_c_in_the_start_up_of_a_plain_resume_of_a_skipping_run_needs_no_flag(text, tmp_path, capsys,
                                                                                  monkeypatch):
    # --on-nonfinite skip given to the new run is in its config.json, which a resume applies again
    run = tmp_path / "s"
    assert main(["train", "--corpus", str(text), *FLAGS, "--max-steps", "2", "--on-nonfinite", "skip",
                 "--out", str(run)]) == 0
    capsys.readouterr()
    with monkeypatch.context() as m:
        _signal_while_compiling(m)
        assert main(["train", "--resume", str(run), "--max-steps", "3"]) == 130
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"interrupted during start-up; nothing was trained: {run} is as it was (continue with --resume {run} "
        f"--max-steps 3)")


# ---------------------------------------------------------------- 4. the lock file a run leaves


def test_the_lock_file_left_by_a_run_is_empty_and_confuses_nothing(text, tmp_path, capsys):
    run = tmp_path / "r"
    assert main(["train", "--corpus", str(text), *FLAGS, "--max-steps", "2", "--out", str(run)]) == 0
    lock = run / LOCK
    assert lock.read_bytes() == b"" and lock_holder(lock) is None      # kept (see folderlock._pid_lock_class), empty
    assert main(["train", "--resume", str(run), "--max-steps", "3"]) == 0     # the next session takes it
    assert lock.read_bytes() == b""
    # a folder left with nothing but the lock file is no run: a new run takes it, a resume is refused
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / LOCK).write_bytes(b"")
    capsys.readouterr()
    assert main(["train", "--resume", str(bare)]) == 2
    assert capsys.readouterr().err.strip() == f"error: {bare} is not a run folder (no config.json)"
    assert main(["train", "--corpus", str(text), *FLAGS, "--max-steps", "2", "--out", str(bare)]) == 0
    assert (bare / "model.npz").exists() and (bare / LOCK).read_bytes() == b""
    assert np.isfinite(json.loads((bare / "metrics.jsonl").read_text().splitlines()[-1])["time"])


def test_a_timed_validation_counts_its_tokens_as_a_whole_validation_predicts_them(text, tmp_path, capsys):
    """It said '120 of 124' for a slice that was the whole split: the count of the stream's tokens, of which
    a validation predicts all but the first row's."""
    from rnnlm import train as T
    T.TIMED_EVAL_SHARE, old = 1e9, T.TIMED_EVAL_SHARE       # a slice as large as the split
    try:
        train(tiny(text, tmp_path / "t", max_steps=2, eval_minutes=1e-9, progress=False))
    finally:
        T.TIMED_EVAL_SHARE = old
    (e, *_) = events(tmp_path / "t", "timed_eval")
    assert e["tokens"] == e["of_tokens"] > 0
    assert f"timed validation on {e['tokens']:,} of {e['of_tokens']:,} tokens" in capsys.readouterr().err
