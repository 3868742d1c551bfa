"""The training loop on a tiny model and one short Machado work: run folder, exact resume,
explosions, non-finite handling, evaluation, and the train/evaluate commands."""
import dataclasses
import json
import math
import os
import signal

import numpy as np
import pytest

from rnnlm import checkpoint, runs
from rnnlm.cli import main
from rnnlm.data import DataConfig
from rnnlm.errors import UserError
from rnnlm.model import ModelConfig, RNNModel
from rnnlm.evaluate import run_evaluate
from rnnlm.runs import resume_config
from rnnlm.train import TrainConfig, train




MODEL_KEYS = {f.name for f in dataclasses.fields(ModelConfig)}


def tiny(text, out, **kw):
    base = dict(data=DataConfig(corpus=str(text), max_vocab=300, valid_fraction=0.1, test_fraction=0.1),
                cell="lstm", emsize=16, hidden=16, bptt=8, batch_size=16, eval_batch_size=4, dropout=0.0,
                epochs=1, max_minutes=0, eval_every=0, progress=False, sample_words=0, out=str(out))
    base.update(kw)
    model = {k: base.pop(k) for k in MODEL_KEYS & set(base)}
    return TrainConfig(model=ModelConfig(**model), **base)


def events(run, kind=None, split="valid"):
    # Eval events carry a split; by default only the validation ones are returned.
    lines = (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    evs = [json.loads(line) for line in lines]
    return [e for e in evs if (kind is None or e["type"] == kind) and e.get("split", split) == split]


@pytest.fixture(scope="module")
def trained(text, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "lstm"
    summary = train(tiny(text, out, epochs=2, eval_every=10, log_every=5, sample_words=12, dropout=0.1))
    return out, summary


def test_run_folder_config_and_metrics(trained):
    out, s = trained
    assert s["stopped"] == "epochs" and s["epoch"] == 2     # the epoch of its last step, not the one not begun
    assert {"config.json", "vocab.json", "metrics.jsonl", "model.npz", "best.npz"} <= {p.name for p in out.iterdir()}
    info = json.loads((out / "config.json").read_text())
    assert info["train"]["model"]["hidden"] == 16 and info["train"]["lr"] == 20.0       # resolved default lr
    assert info["train"]["data"]["max_vocab"] == 300
    assert info["model"]["vocab_size"] == 300 and len(info["corpus"]["checksum"]) == 64
    assert info["rnnlm_version"]
    steps = events(out, "step")
    assert [e["step"] for e in steps[:3]] == [5, 10, 15]
    for key in ("loss", "ppl", "grad_norm", "grad_norm_clipped", "clipped", "lr", "tokens_per_s", "time", "epoch"):
        assert key in steps[0]
    for e in steps:
        assert e["grad_norm_clipped"] <= min(e["grad_norm"], 0.25 + 1e-6)
        assert e["clipped"] == (e["grad_norm"] > 0.25)
    evals = events(out, "eval")
    assert evals and all(math.isfinite(e["val_ppl"]) for e in evals)
    # Validation at every 10 steps and at each epoch end, never twice at one step.
    assert len({e["step"] for e in evals}) == len(evals)
    epochs = events(out, "epoch")
    assert [e["epoch"] for e in epochs] == [1, 2]
    assert 0 <= epochs[0]["clip_fraction"] <= 1
    assert s["best_val_ppl"] == pytest.approx(min(e["val_ppl"] for e in evals))
    assert s["best_val_ppl"] < 300        # learned something: below uniform over the vocabulary
    assert math.isfinite(s["test_ppl"]) and isinstance(s["sample"], str) and s["sample"]
    ck = checkpoint.load(out / "model.npz")
    assert int(ck.train["step"]) == s["steps"] and "rnn.weight_hh_l0" in ck.model
    assert "exp_avg.decoder.bias" not in ck.optim and float(ck.optim["lr"]) == s["lr"]


def _arrays(path):
    # elapsed is wall time; best_saved may differ when a session's final evaluation found the best model;
    # meta.config records the run folder and max_steps, which differ between the runs compared.
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files if k not in ("train.elapsed", "train.best_saved", "meta.config")}


def test_resume_is_bitwise_equal_to_an_uninterrupted_run(text, tmp_path):
    # Dropout (RNG state), Adam (moment buffers), validation every 7 steps with lr
    # annealing, and an epoch boundary at step 31 (hidden-state reset) all in play.
    kw = dict(optimizer="adam", lr=0.01, dropout=0.3, eval_every=7, lr_decay=2.0, patience=0,
              epochs=3, clip_norm=0.5)
    full = train(tiny(text, tmp_path / "full", max_steps=45, **kw))
    assert full["stopped"] == "max_steps" and full["epoch"] == 2

    first = train(tiny(text, tmp_path / "part", max_steps=13, **kw))
    assert first["stopped"] == "max_steps" and first["steps"] == 13

    def ctrl_c(step):
        if step == 22:
            os.kill(os.getpid(), signal.SIGINT)

    second = train(resume_config(tmp_path / "part", {"max_steps": 45}), resume=tmp_path / "part", on_step=ctrl_c)
    assert second["stopped"] == "interrupted" and second["steps"] == 22
    third = train(resume_config(tmp_path / "part", {"max_steps": 45}), resume=tmp_path / "part")
    assert third["stopped"] == "max_steps" and third["steps"] == 45

    a, b = _arrays(tmp_path / "full" / "model.npz"), _arrays(tmp_path / "part" / "model.npz")
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    assert any(k.startswith("optim.exp_avg.") for k in a) and "train.rng" in a
    val = lambda run: [(e["step"], e["val_loss"], e["lr"]) for e in events(run, "eval")   # noqa: E731
                       if e["reason"] != "final"]
    assert val(tmp_path / "full") == val(tmp_path / "part")
    assert [e["type"] for e in events(tmp_path / "part") if e["type"] in ("resume", "stop")] == \
        ["stop", "resume", "stop", "resume", "stop"]


def test_resume_refuses_other_settings(trained):
    out, _ = trained
    with pytest.raises(UserError, match="hidden"):
        resume_config(out, {"hidden": 32})
    assert resume_config(out, {"epochs": 5}).epochs == 5


def _explode(text, out, clip_norm=0.0, **kw):
    # IRNN (relu, identity W_hh) with a high learning rate: without clipping it diverges in 3-4
    # steps (seeds 0-2 checked); with --clip-norm 1 the same run trains (valid ppl ~35).
    return tiny(text, out, cell="rnn", activation="relu", init="identity", hidden=32, lr=5.0,
                bptt=20, batch_size=4, clip_norm=clip_norm, epochs=2, max_steps=60, **kw)


def test_explosion_stops_cleanly_and_clipping_prevents_it(text, tmp_path):
    s = train(_explode(text, tmp_path / "boom"))
    assert s["stopped"] == "nonfinite"
    nf = s["nonfinite"]
    assert nf["step"] == s["steps"] + 1 and nf["tensor"]
    ev = events(tmp_path / "boom", "nonfinite")
    assert len(ev) == 1 and ev[0]["step"] == nf["step"] and ev[0]["action"] == "stop"
    ck = checkpoint.load(tmp_path / "boom" / "model.npz")       # the last good checkpoint
    assert int(ck.train["step"]) == s["steps"]
    assert all(np.isfinite(a).all() for a in ck.model.values())
    model, _, _, _ = runs.load_model(tmp_path / "boom", "latest")
    assert np.isfinite(model.params["rnn.weight_hh_l0"]).all()

    s = train(_explode(text, tmp_path / "clipped", clip_norm=1.0, log_every=1))
    assert s["stopped"] == "max_steps" and s["nonfinite"] is None
    assert s["best_val_ppl"] < 100 and s["clip_fraction"] > 0
    steps = events(tmp_path / "clipped", "step")
    assert max(e["grad_norm"] for e in steps) > 1.0 and max(e["grad_norm_clipped"] for e in steps) <= 1.0 + 1e-5


def test_explosion_via_cli_exits_zero(text, tmp_path, capsys):
    out = tmp_path / "cli-boom"
    code = main(["train", "--corpus", str(text), "--max-vocab", "300", "--valid-fraction", "0.1",
                 "--test-fraction", "0.1", "--cell", "rnn", "--activation", "relu", "--init", "identity",
                 "--emsize", "16", "--hidden", "32", "--bptt", "20", "--batch-size", "4", "--dropout", "0",
                 "--lr", "5", "--clip-norm", "none", "--max-steps", "60", "--sample-words", "0",
                 "--no-progress", "--out", str(out)])
    assert code == 0
    captured = capsys.readouterr()
    assert "stopped: nonfinite" in captured.out and "diverged" in captured.out
    assert "non-finite values at step" in captured.err


def _poison(monkeypatch, at_call, name):
    # the training step's gradients come from RNNModel.train_grads
    original = RNNModel.train_grads
    calls = {"n": 0}

    def poisoned(self, *a, **k):
        r = original(self, *a, **k)
        calls["n"] += 1
        if calls["n"] == at_call:
            r.grads[name][0, 0] = np.inf
        return r

    monkeypatch.setattr(RNNModel, "train_grads", poisoned)


def test_nonfinite_gradient_skip_and_stop(text, tmp_path, monkeypatch):
    clean = train(tiny(text, tmp_path / "clean", max_steps=2))
    _poison(monkeypatch, 3, "rnn.weight_hh_l0")
    s = train(tiny(text, tmp_path / "stop", max_steps=6))
    assert s["stopped"] == "nonfinite" and s["steps"] == 2
    assert s["nonfinite"]["tensor"] == "rnn.weight_hh_l0" and s["nonfinite"]["step"] == 3
    # The bad step was not applied: the checkpoint equals a clean 2-step run.
    a, b = _arrays(tmp_path / "clean" / "model.npz"), _arrays(tmp_path / "stop" / "model.npz")
    for k in a:
        if not k.startswith("train."):
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)

    _poison(monkeypatch, 3, "decoder.weight")
    s = train(tiny(text, tmp_path / "skip", max_steps=6, on_nonfinite="skip"))
    assert s["stopped"] == "max_steps" and s["steps"] == 6 and s["skipped"] == 1
    ev = events(tmp_path / "skip", "nonfinite")
    assert [(e["step"], e["tensor"], e["action"]) for e in ev] == [(3, "decoder.weight", "skip")]
    assert clean["nonfinite"] is None


def test_evaluate_split_matches_training_validation(trained):
    out, s = trained
    r = run_evaluate(out, split="valid")
    assert r["loss"] == s["best_val_loss"]
    assert r["ppl"] == pytest.approx(s["best_val_ppl"])
    r1 = run_evaluate(out, split="test", batch_size=1, which="latest")
    assert math.isfinite(r1["loss"]) and r1["batch_size"] == 1


def test_evaluate_text_file_reports_oov(trained, tmp_path, capsys):
    out, _ = trained
    f = tmp_path / "frase.txt"
    f.write_text("O senado era velho e o xyzzyq falou ao senado.\n\nOutra frase, com wqpzk.\n", encoding="utf-8")
    r = run_evaluate(out, text=f, batch_size=1)
    assert r["oov"] >= 2 and r["oov_rate"] == pytest.approx(r["oov"] / r["tokens"])
    assert r["predicted"] == r["tokens"] - 1 and math.isfinite(r["loss"])
    assert main(["evaluate", str(out), "--text", str(f), "--batch-size", "1"]) == 0
    printed = capsys.readouterr().out
    assert "perplexity:" in printed and "out of vocabulary" in printed
    capsys.readouterr()
    assert main(["evaluate", str(out), "--text", str(tmp_path / "missing.txt")]) == 2
    assert capsys.readouterr().err == f"error: --text {tmp_path / 'missing.txt'} does not exist; give a UTF-8 .txt file\n"
    assert main(["evaluate", str(out), "--text", str(tmp_path)]) == 2
    assert capsys.readouterr().err == f"error: --text {tmp_path} is a folder; give a UTF-8 .txt file\n"


def test_cli_train_then_resume(text, tmp_path, capsys):
    out = tmp_path / "cli"
    flags = ["--corpus", str(text), "--max-vocab", "300", "--valid-fraction", "0.1", "--test-fraction", "0.1",
             "--emsize", "16", "--hidden", "16", "--bptt", "8", "--batch-size", "16", "--dropout", "0",
             "--sample-words", "5", "--no-progress"]
    assert main(["train", *flags, "--max-steps", "4", "--out", str(out)]) == 0
    assert "run folder:" in capsys.readouterr().out
    assert main(["train", *flags, "--max-steps", "4", "--out", str(out)]) == 2      # folder taken
    assert main(["train", "--resume", str(out), "--max-steps", "6", "--no-progress"]) == 0
    assert int(checkpoint.load(out / "model.npz").train["step"]) == 6
    assert main(["train", "--resume", str(out), "--hidden", "32"]) == 2
    assert "cannot change --hidden (" in capsys.readouterr().err
    # --clip-value alone implies --clip-norm 0 for a new run; a resume names only what was typed
    assert main(["train", "--resume", str(out), "--clip-value", "1"]) == 2
    err = capsys.readouterr().err
    assert "cannot change --clip-value (0.0 -> 1.0) (only" in err and "--clip-norm (" not in err
