"""What the training command promises beyond the loop itself (issues: the main job keeps its word;
runs survive divergence, crashes, interrupts and each other): rollback to the last good state,
--max-skips, timed report-only validations, the time budget's reserve, the Kneser-Ney baseline
beside the result, progress lines, the run-folder lock, leftovers of crashes, refused flags, SIGTERM."""
import json
import math
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from filelock import FileLock

from rnnlm import checkpoint, runs
from rnnlm.baseline import KneserNeyTrigram
from rnnlm.cli import main
from rnnlm.data import load_corpus
from rnnlm.errors import UserError
from rnnlm.model import RNNModel
from rnnlm.evaluate import run_evaluate
from rnnlm.runs import fmt_ppl, resume_config
from rnnlm.progress import _Timing
from rnnlm.step import MAX_LOSS
from rnnlm.summary import format_summary
from rnnlm.train import train

from test_train import _arrays, events, tiny

# The divergent run of the hardening issue (SGD, a vanilla RNN with W_hh x5, lr 1e38, element clipping at 1).
DIVERGE = dict(cell="rnn", recurrent_scale=5.0, lr=1e38, clip_norm=0.0, clip_value=1.0, hidden=16, max_steps=60)


def test_divergent_run_rolls_back_to_a_model_that_evaluates(text, tmp_path):
    s = train(tiny(text, tmp_path / "boom", **DIVERGE))
    nf = s["nonfinite"]
    assert s["stopped"] == "nonfinite" and nf["tensor"] == "loss"
    # The update of step nf["step"] broke the parameters (seen at the next window): the run went back
    # to the state before it, whose loss and gradients were finite.
    assert nf["rolled_back_to"] == s["steps"] == nf["step"] - 1 and nf["detected_at"] == nf["step"] + 1
    assert int(checkpoint.load(tmp_path / "boom" / "model.npz").train["step"]) == s["steps"]
    r = run_evaluate(tmp_path / "boom", split="valid", which="latest")
    assert math.isfinite(r["ppl"]) and r["ppl"] < 1000
    assert "rolled back to step" in format_summary(s)


def test_rollback_restores_the_whole_state_bitwise(text, tmp_path):
    # Momentum buffers, dropout RNG and the carried hidden state all in play: the rolled-back
    # checkpoint equals a run stopped by --max-steps at that step, and resuming repeats the divergence.
    kw = dict(cell="rnn", activation="relu", init="identity", hidden=32, bptt=20, batch_size=4, clip_norm=0.0,
              optimizer="momentum", lr=1.0, dropout=0.1, epochs=2)
    s = train(tiny(text, tmp_path / "boom", max_steps=60, **kw))
    k = s["nonfinite"]["rolled_back_to"]
    assert s["stopped"] == "nonfinite" and k is not None and k >= 1
    train(tiny(text, tmp_path / "ref", max_steps=k, **kw))
    a, b = _arrays(tmp_path / "boom" / "model.npz"), _arrays(tmp_path / "ref" / "model.npz")
    assert a.keys() == b.keys() and any(name.startswith("optim.momentum_buffer.") for name in a)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    # resuming with the same settings would repeat the divergence, and is refused; told to skip the
    # step, the resume meets the same non-finite loss at the same step (bitwise), and skips it
    with pytest.raises(UserError, match="would diverge again: give --on-nonfinite skip"):
        train(resume_config(tmp_path / "boom"), resume=tmp_path / "boom")
    again = train(resume_config(tmp_path / "boom", {"on_nonfinite": "skip"}), resume=tmp_path / "boom")
    first = events(tmp_path / "boom", "nonfinite")[0]
    assert first["action"] == "skip" and first["detected_at"] == s["nonfinite"]["detected_at"]
    assert first["loss"] == s["nonfinite"]["loss"] and again["steps"] >= k


def test_a_loss_whose_perplexity_overflows_counts_as_nonfinite():
    assert math.isfinite(math.exp(MAX_LOSS - 1)) and 700 < MAX_LOSS < 710


def _nan_loss_from(monkeypatch, at_call):
    # the training step's loss comes from RNNModel.train_grads
    original = RNNModel.train_grads
    calls = {"n": 0}

    def poisoned(self, *a, **k):
        r = original(self, *a, **k)
        calls["n"] += 1
        return r._replace(loss=np.float64(np.nan)) if calls["n"] >= at_call else r

    monkeypatch.setattr(RNNModel, "train_grads", poisoned)


def test_skip_stops_after_max_skips_in_a_row(text, tmp_path, monkeypatch, capsys):
    _nan_loss_from(monkeypatch, 3)
    s = train(tiny(text, tmp_path / "skip", max_steps=40, on_nonfinite="skip", max_skips=4))
    assert s["stopped"] == "nonfinite" and s["nonfinite"]["max_skips"]
    ev = events(tmp_path / "skip", "nonfinite")
    assert [e["action"] for e in ev] == ["skip", "skip", "skip", "stop"]
    assert [e["detected_at"] for e in ev] == [3, 4, 5, 6]
    # A non-finite loss means the parameters of step 2 are broken: back to the state after step 1.
    assert s["steps"] == 1 and ev[-1]["rolled_back_to"] == 1
    assert "--max-skips" in capsys.readouterr().err and "--max-skips" in format_summary(s)
    with pytest.raises(UserError, match="max-skips"):
        tiny(text, tmp_path / "x", max_skips=0).validate()


def test_a_run_that_diverges_at_its_first_step_reports_no_speed(text, tmp_path, monkeypatch):
    _nan_loss_from(monkeypatch, 1)
    s = train(tiny(text, tmp_path / "at-once", max_steps=5))
    assert (s["stopped"], s["steps"], s["tokens"], s["tokens_per_s"]) == ("nonfinite", 0, 0, 0.0)
    (line,) = [x for x in format_summary(s).splitlines() if x.startswith("stopped:")]
    assert line.startswith("stopped: nonfinite after 0 steps (0 tokens, ") and line.endswith(" min)"), line
    assert "tokens/s" not in line
    # step 1 applied, step 2's loss non-finite: the rollback undoes step 1, so the session kept no step
    # and has no speed to report ("0 steps (0 tokens, ..., N training tokens/s)" said the speed of nothing)
    monkeypatch.undo()
    _nan_loss_from(monkeypatch, 2)
    s = train(tiny(text, tmp_path / "rolled-back", max_steps=5))
    assert s["steps"] == 0 and s["nonfinite"]["rolled_back_to"] == 0 and s["tokens_per_s"] == 0.0
    assert "tokens/s" not in format_summary(s)
    # two steps applied, the third non-finite: one step kept, and the speed is reported again
    monkeypatch.undo()
    _nan_loss_from(monkeypatch, 3)
    s = train(tiny(text, tmp_path / "after-one", max_steps=5))
    assert s["stopped"] == "nonfinite" and s["steps"] == 1 and s["tokens_per_s"] > 0
    assert " training tokens/s)" in [x for x in format_summary(s).splitlines() if x.startswith("stopped:")][0]


def test_timed_validations_only_report(text, tmp_path):
    # Every step triggers a timed validation (eval_minutes ~ 0): the result is bitwise the same as without.
    kw = dict(max_steps=12, eval_every=5, lr_decay=2.0, dropout=0.2)
    with_timed = train(tiny(text, tmp_path / "timed", eval_minutes=1e-9, **kw))
    without = train(tiny(text, tmp_path / "plain", eval_minutes=0, **kw))
    timed = events(tmp_path / "timed", "timed_eval")
    assert len(timed) >= 8 and all(math.isfinite(e["val_ppl"]) and e["tokens"] > 0 for e in timed)
    assert not events(tmp_path / "plain", "timed_eval")
    a, b = _arrays(tmp_path / "timed" / "model.npz"), _arrays(tmp_path / "plain" / "model.npz")
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    sched = lambda run: [(e["step"], e["val_loss"], e["lr"]) for e in events(run, "eval")]   # noqa: E731
    assert sched(tmp_path / "timed") == sched(tmp_path / "plain")
    assert with_timed["test_loss"] == without["test_loss"]


def test_time_budget_reserves_the_final_evaluation(text, tmp_path):
    t = _Timing(tiny(text, tmp_path, max_minutes=1.0), final_tokens=5000)
    assert t.reserve() == 0.0                      # nothing measured yet
    t.observe_eval(1000, 1.0)                      # 1000 tokens/s: 5 s for the final evaluation
    assert t.reserve() == pytest.approx(1.05 * 5 + 2.0)
    t.observe_eval(3000, 1.0)                      # all evaluations together: 4000 tokens in 2 s
    assert t.eval_tps == 2000 and t.reserve() == pytest.approx(1.05 * 2.5 + 2.0)
    assert t.left(30.0) == pytest.approx(60 - 30 - t.reserve())
    t.observe_eval(1000, 100.0)                   # far too slow: the reserve stops at half the budget
    assert t.reserve() == 30.0 and t.reserve_capped()
    # A 3-second budget on a tiny model: training stops early enough that the whole session fits.
    s = train(tiny(text, tmp_path / "budget", max_minutes=0.05, epochs=1000, patience=0, min_lr=0,
                    save_minutes=0.01))      # min_lr 0: the budget, not the lr floor, ends it
    assert s["stopped"] == "max_minutes"
    assert s["elapsed_s"] <= 3.0 * 1.25 and s["budget_s"] == 3.0
    assert "of a 0.05-min budget" in format_summary(s)


def test_baseline_is_cached_and_beside_the_result(text, tmp_path, capsys):
    out = tmp_path / "r"
    s = train(tiny(text, out, max_steps=3))
    corpus = load_corpus(tiny(text, out).data)
    kn = KneserNeyTrigram.fit(corpus.train, len(corpus.vocab))
    assert s["baseline"]["test"]["loss"] == pytest.approx(kn.cross_entropy(corpus.test))
    cached = list(__import__("pathlib").Path(corpus.cache_path).glob("baseline-kn3-*.json"))
    assert len(cached) == 1 and json.loads(cached[0].read_text())["key"]["checksum"] == corpus.checksum
    s2 = train(tiny(text, tmp_path / "r2", max_steps=3))
    assert s2["baseline"]["cached"] and s2["baseline"]["test"] == s["baseline"]["test"]
    printed = format_summary(s)
    assert "Kneser-Ney trigram baseline" in printed and "NOT beaten it yet" in printed     # 3 steps: far from it
    assert "(train longer: raise --max-steps)" in printed      # the limit that stopped it, not another one


def test_huge_perplexities_print_in_scientific_notation():
    assert fmt_ppl(141.193) == "141.19" and fmt_ppl(3.41e35) == "3.41e+35"
    assert fmt_ppl(math.inf) == "inf" and fmt_ppl(math.nan) == "nan"


def test_plain_progress_lines_when_stderr_is_not_a_terminal(text, tmp_path, capsys):
    train(tiny(text, tmp_path / "r", max_steps=10, log_interval=5))
    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.startswith("| epoch")]
    assert len(lines) == 2 and "step      5" in lines[0] and "step     10" in lines[1]
    for key in ("ms/batch", "loss", "ppl", "|g|", "clipped", "tok/s", "left", "(max-steps)"):
        assert key in lines[0]
    assert out.splitlines()[0] == f"run folder: {tmp_path / 'r'}"       # printed first (stdout)


# ---------------------------------------------------------------- run folders


def test_second_writer_is_refused_readers_work(text, tmp_path, capsys):
    out = tmp_path / "r"
    train(tiny(text, out, max_steps=2))
    with FileLock(str(out / runs.LOCK), timeout=0):
        with pytest.raises(UserError, match="being trained by another process"):
            train(resume_config(out, {"max_steps": 4}), resume=out)
        assert main(["train", "--resume", str(out), "--max-steps", "4", "--no-progress"]) == 2
        assert len(capsys.readouterr().err.strip().splitlines()[-1:]) == 1
        assert math.isfinite(run_evaluate(out, split="valid", which="latest")["ppl"])     # a reader
        assert main(["generate", str(out), "--words", "3"]) == 0
    assert int(checkpoint.load(out / "model.npz").train["step"]) == 2
    # Another process holding the lock: the same refusal.
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from filelock import FileLock
        with FileLock({str(out / runs.LOCK)!r}):
            print("locked", flush=True)
            sys.stdin.read()
        """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(UserError, match="being trained by another process"):
            train(resume_config(out, {"max_steps": 4}), resume=out)
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    assert train(resume_config(out, {"max_steps": 4}), resume=out)["steps"] == 4      # released with the process


def test_crash_before_the_first_checkpoint_can_be_retrained_into(text, tmp_path, monkeypatch):
    from rnnlm import train as train_module
    out = tmp_path / "r"

    def crash(self, *a, **k):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(runs.Run, "save_latest", crash)
        with pytest.raises(KeyboardInterrupt):      # a failed start-up removes what it wrote
            train(tiny(text, out, max_steps=3))
        assert not out.exists()
        # a crash that runs no clean-up (a kill -9, a power cut) leaves config.json and no checkpoint
        m.setattr(train_module, "_give_up_start_up", lambda *a: None)
        with pytest.raises(KeyboardInterrupt):
            train(tiny(text, out, max_steps=3))
    assert (out / "config.json").exists() and not (out / "model.npz").exists()
    with pytest.raises(UserError, match=f"holds no checkpoint.*--out {out}"):
        train(resume_config(out), resume=out)
    s = train(tiny(text, out, max_steps=3))
    assert s["steps"] == 3 and int(checkpoint.load(out / "model.npz").train["step"]) == 3


def test_leftover_temp_files_are_removed(text, tmp_path):
    out = tmp_path / "r"
    train(tiny(text, out, max_steps=2))
    for name in (".model.npz.1a2b3c4d.k8x.tmp", ".best.npz.0000aaaa.zz.tmp"):
        (out / name).write_bytes(b"PK\x03\x04 half a zip")
    (out / "notes.tmp").write_text("mine")                       # not ours: kept
    train(resume_config(out, {"max_steps": 3}), resume=out)
    assert sorted(p.name for p in out.glob("*.tmp")) == ["notes.tmp"]


def test_flags_a_command_would_ignore_are_refused(text, tmp_path, capsys):
    out, other = tmp_path / "a", tmp_path / "b"
    flags = ["--corpus", str(text), "--max-vocab", "300", "--valid-fraction", "0.1", "--test-fraction", "0.1",
             "--emsize", "16", "--hidden", "16", "--bptt", "8", "--batch-size", "16", "--dropout", "0",
             "--sample-words", "0", "--no-progress"]
    assert main(["train", *flags, "--max-steps", "2", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["train", "--resume", str(out), "--out", str(other), "--max-steps", "4"]) == 2
    assert "--out" in capsys.readouterr().err and not other.exists()
    assert int(checkpoint.load(out / "model.npz").train["step"]) == 2
    assert main(["train", "--resume", str(out), "--out", str(out), "--max-steps", "3", "--no-progress"]) == 0
    capsys.readouterr()
    # A corpus flag given with its default value is not silently dropped by --resume (the run used 300).
    assert main(["train", "--resume", str(out), "--max-vocab", "10000", "--max-steps", "4"]) == 2
    assert "--max-vocab (" in capsys.readouterr().err
    for bad in (["--momentum", "0.5"], ["--nesterov"], ["--beta1", "0.8"], ["--optimizer", "adam", "--momentum", "0.5"],
                ["--max-skips", "3"]):
        assert main(["train", *flags, *bad, "--max-steps", "2", "--out", str(tmp_path / "c")]) == 2, bad
        assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert not (tmp_path / "c").exists()
    f = tmp_path / "t.txt"
    f.write_text("o senado era velho.\n", encoding="utf-8")
    assert main(["evaluate", str(out), "--text", str(f), "--split", "test"]) == 2
    capsys.readouterr()
    empty = tmp_path / "empty.txt"
    empty.write_text("\n", encoding="utf-8")
    assert main(["evaluate", str(out), "--text", str(empty)]) == 2   # not a corpus file: no corpus advice
    assert capsys.readouterr().err == f"error: {empty} is empty; give a file with some text\n"
    assert main(["evaluate", str(out / "model.npz"), "--checkpoint", "best"]) == 2     # a file: nothing to pick
    assert main(["evaluate", str(out / "model.npz")]) == 0
    assert main(["train", *flags, "--save-minutes", "-1", "--out", str(tmp_path / "d")]) == 2
    assert main(["train", *flags, "--eval-minutes", "nan", "--out", str(tmp_path / "d")]) == 2


def test_sigterm_saves_like_ctrl_c(text, tmp_path):
    def term(step):
        if step == 3:
            os.kill(os.getpid(), signal.SIGTERM)

    s = train(tiny(text, tmp_path / "r", max_steps=10), on_step=term)
    assert s["stopped"] == "interrupted" and s["steps"] == 3
    assert int(checkpoint.load(tmp_path / "r" / "model.npz").train["step"]) == 3
    assert train(resume_config(tmp_path / "r"), resume=tmp_path / "r")["steps"] == 10



def test_skip_says_why_it_stops_when_the_weights_themselves_broke(text, tmp_path, capsys):
    # --on-nonfinite skip, but the last update left inf weights: the run stops, and says why it did not skip
    s = train(tiny(text, tmp_path / "broke", **dict(DIVERGE, lr=1e308, on_nonfinite="skip")))
    assert s["stopped"] == "nonfinite" and s["nonfinite"]["action"] == "stop"
    err = capsys.readouterr().err
    assert "; stopping, not skipping (--on-nonfinite skip): the last update made the weights non-finite" in err
