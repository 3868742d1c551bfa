"""A user trial of resume and the end of a run: skipped steps a rollback discarded still reported, a
perplexity that overflows said as such, damaged checkpoint members and an edited config.json refused in
one line, and a run that applied no update saying so."""
import json
import math

import numpy as np
import pytest

from rnnlm.errors import UserError
from rnnlm.runs import resume_config
from rnnlm.summary import format_summary
from rnnlm.train import train

from test_train import tiny
from test_train_runs import _nan_loss_from


# ---------------------------------------------------------------- 1. skipped steps undone by a rollback


def test_skipped_steps_that_a_rollback_discarded_are_still_in_the_summary(text, tmp_path, monkeypatch):
    _nan_loss_from(monkeypatch, 3)      # steps 1-2 apply, 3-5 are skipped, the 4th in a row stops the run
    s = train(tiny(text, tmp_path / "skip", max_steps=40, on_nonfinite="skip", max_skips=4))
    nf = s["nonfinite"]
    assert s["stopped"] == "nonfinite" and nf["max_skips"] and nf["rolled_back_to"] == s["steps"] == 1
    assert s["skipped"] == 0 and nf["skipped_undone"] == 3
    lines = format_summary(s).splitlines()
    assert "non-finite steps skipped: 3 (3 of them after step 1, discarded by the rollback)" in lines


# ---------------------------------------------------------------- 5. a run that applied no update


def test_a_run_whose_every_step_was_skipped_says_none_was_applied(text, tmp_path, monkeypatch):
    _nan_loss_from(monkeypatch, 1)      # every step non-finite: 8 skipped, the 9th in a row stops the run
    s = train(tiny(text, tmp_path / "none", max_steps=40, on_nonfinite="skip", max_skips=9))
    assert s["stopped"] == "nonfinite" and s["steps"] == s["skipped"] == 8 and s["updates"] == 0
    (line,) = [x for x in format_summary(s).splitlines() if x.startswith("stopped:")]
    assert line.startswith("stopped: nonfinite after 8 steps, none of them applied (all non-finite, skipped) ("), line
    one = {**s, "steps": 1, "skipped": 1, "updates": 0}
    assert format_summary({**one, "folder_printed": False}).splitlines()[1].startswith("stopped: nonfinite after 1 step, not applied "
                                                          "(non-finite, skipped) (")


# ---------------------------------------------------------------- 2. a perplexity that overflows


def test_an_inf_perplexity_of_a_finite_loss_says_the_loss_and_that_e_to_it_overflows(tmp_path, monkeypatch,
                                                                                     capsys):
    from rnnlm import evaluate, runs
    from rnnlm.cli import main
    assert runs.fmt_ppl_of(math.inf, 1.05e34) == "inf (loss 1.05e+34 nats: e^loss overflows)"
    assert runs.fmt_ppl_of(math.inf, math.inf) == "inf" and runs.fmt_ppl_of(141.187, 4.95) == "141.19"
    assert runs.fmt_ppl_of(math.nan, math.nan) == "nan (the loss is NaN: the forward pass diverged)"
    assert runs.fmt_ppl_of(None, None) == "n/a"
    s = {"run_dir": "r", "stopped": "nonfinite", "steps": 3, "tokens": 384, "elapsed_s": 1.0, "tokens_per_s": 0.0,
         "val_loss": 1.2e30, "val_ppl": math.inf, "best_val_loss": 1.2e30, "best_val_ppl": math.inf, "lr": 2.0,
         "clip_fraction": 0.0, "skipped": 0, "updates": 3, "nonfinite": None, "sampled_from": "latest",
         "test_loss": 1.05e34, "test_ppl": math.inf}
    lines = format_summary(s).splitlines()
    assert "test ppl (latest model): inf (loss 1.05e+34 nats: e^loss overflows)" in lines
    assert lines[2].startswith("valid ppl: inf (loss 1.20e+30 nats: e^loss overflows)   best valid ppl: inf (loss "
                               "1.20e+30 nats: e^loss overflows)   lr: 2"), lines[2]
    # evaluate's perplexity line too
    r = {"checkpoint": str(tmp_path / "m.npz"), "source": "valid split", "tokens": 100, "oov": 0, "oov_rate": 0.0,
         "loss": 1.05e34, "ppl": math.inf, "predicted": 96, "batch_size": 4, "bptt": 8}
    monkeypatch.setattr(evaluate, "run_evaluate", lambda *a, **k: r)
    (tmp_path / "m.npz").write_bytes(b"")
    main(["evaluate", str(tmp_path / "m.npz")])
    assert "perplexity: inf (loss 1.05e+34 nats: e^loss overflows)\n" in capsys.readouterr().out


# ---------------------------------------------------------------- 3. damaged checkpoint members


@pytest.fixture(scope="module")
def stopped_run(text, tmp_path_factory):
    out = tmp_path_factory.mktemp("base") / "run"
    train(tiny(text, out, max_steps=3))
    return out


def _edit(run, **members):
    """Rewrite run's model.npz with `members` ("train.step": value, ...) replaced."""
    path = run / "model.npz"
    with np.load(path, allow_pickle=False) as d:
        arrays = {k: d[k] for k in d.files}
    for k, v in members.items():
        arrays[k.replace("__", ".")] = v(arrays[k.replace("__", ".")]) if callable(v) else np.asarray(v)
    with open(path, "wb") as f:
        np.savez(f, **arrays)


END = r" \(a damaged or edited checkpoint\); restore it, or train afresh into another --out$"


@pytest.mark.parametrize("member, value, said", [
    ("train.step", -7, r"train\.step is -7, not a step count"),
    ("train.pos", 10**12, r"train\.pos is 1,000,000,000,000, beyond the training stream's [\d,]+ rows"),
    ("train.pos", 2.5, r"train\.pos is 2\.5, not a row of the training stream"),
    ("optim.lr", -5.0, r"optim\.lr is -5, not a learning rate \(a finite number above 0\)"),
    ("optim.lr", np.inf, r"optim\.lr is inf, not a learning rate \(a finite number above 0\)"),
    ("train.skipped", 9, r"train\.skipped is 9, more than the 3 steps of train\.step"),
    ("train.epoch", np.str_("one"), r"train\.epoch is <U3 of shape \(\), not a number"),
    ("train.rng", np.str_("{garbage"), r"train\.rng is '\{garbage', not the JSON of a numpy random generator's "
                                       r"state"),
    ("train.rng", np.str_('{"bit_generator": "PCG64"}'), r"train\.rng is '\{\"bit_generator\": \"PCG64\"\}', not "
                                                   r"the JSON of a numpy random generator's state"),
    ("train.state.0", lambda a: a[:, :3, :], r"train\.state\.0 is float(32|64) of shape \(1, 3, 16\), not the model's "
                                              r"carried state \(float(32|64) of shape \(1, 16, 16\)\)"),
])
def test_a_resume_refuses_a_damaged_loop_or_optimizer_member_in_one_line(stopped_run, tmp_path, member, value,
                                                                         said):
    import shutil
    run = tmp_path / "run"
    shutil.copytree(stopped_run, run)
    _edit(run, **{member: value})
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    with pytest.raises(UserError) as e:
        train(resume_config(run, {"max_steps": 8}), resume=run)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"{run / 'model.npz'}: "), msg
    import re
    assert re.search(said + END, msg), msg
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before       # nothing written


# ---------------------------------------------------------------- 4. an edited config.json


@pytest.mark.parametrize("where", ["model", "train"])
def test_a_resume_refuses_a_config_json_whose_model_settings_are_not_the_checkpoints(stopped_run, tmp_path, where):
    import shutil
    run = tmp_path / "run"
    shutil.copytree(stopped_run, run)
    info = json.loads((run / "config.json").read_text())
    (info["model"] if where == "model" else info["train"]["model"])["hidden"] = 64
    (run / "config.json").write_text(json.dumps(info))
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    with pytest.raises(UserError) as e:
        train(resume_config(run, {"max_steps": 8}), resume=run)
    assert str(e.value) == (f"{run / 'config.json'} says --hidden 64, model.npz was saved with 16 (an edited "
                            f"config.json: a resume cannot change the model); put \"hidden\": 16 back into it to "
                            f"resume, or train afresh into another --out with --hidden 64")
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before
