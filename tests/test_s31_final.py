"""A last trial's findings: a diverged run whose sample cannot be drawn still reports; a NaN loss is not
shown as an infinite perplexity; an edited config.json cannot change a resumed run's training settings."""
import json
import math

import pytest

from rnnlm import sample as sample_module
from rnnlm.errors import UserError
from rnnlm.runs import fmt_ppl_of, resume_config
from rnnlm.summary import format_summary
from rnnlm.train import train

from test_train import tiny


def test_a_sample_that_cannot_be_drawn_leaves_the_report_whole(text, tmp_path, monkeypatch):
    def diverged(*a, **k):
        raise UserError("the model gave NaN or +inf log-probabilities; is the checkpoint diverged?")
    monkeypatch.setattr(sample_module, "TextStream", diverged)
    s = train(tiny(text, tmp_path / "r", max_steps=3, sample_words=5))
    assert s["sample_skipped"] == ("the model's next-token distribution is not finite: its activations overflow, "
                                   "the weights diverged") and "sample" not in s
    assert ("sample: none (the model's next-token distribution is not finite: its activations overflow, the "
            "weights diverged)") in format_summary(s).splitlines()


def test_a_nan_loss_is_said_as_nan_not_as_an_infinite_perplexity():
    assert fmt_ppl_of(math.inf, math.nan) == "nan (the loss is NaN: the forward pass diverged)"
    assert fmt_ppl_of(math.inf, 1.05e34) == "inf (loss 1.05e+34 nats: e^loss overflows)"
    assert fmt_ppl_of(141.19, math.log(141.19)) == "141.19"


@pytest.mark.parametrize("key, value, flag, was", [("bptt", 7, "--bptt", 8), ("lr", 0.5, "--lr", 20.0),
                                                    ("clip_norm", 5.0, "--clip-norm", 0.25)])
def test_an_edited_config_json_cannot_change_a_resumed_runs_training(text, tmp_path, key, value, flag, was):
    run = tmp_path / "r"
    train(tiny(text, run, max_steps=2))
    info = json.loads((run / "config.json").read_text())
    info["train"][key] = value
    (run / "config.json").write_text(json.dumps(info))
    before = (run / "model.npz").read_bytes()
    with pytest.raises(UserError) as e:
        train(resume_config(run, {"max_steps": 4}), resume=run)
    assert str(e.value) == (f"{run / 'config.json'} says {flag} {value}, model.npz was saved with {was} (an edited "
                            f"config.json: a resume cannot change it); put \"{key}\": {json.dumps(was)} back into it "
                            f"to resume, or train afresh into another --out with {flag} {value}")
    assert (run / "model.npz").read_bytes() == before


def test_a_budget_edited_in_config_json_still_resumes(text, tmp_path):
    run = tmp_path / "r"
    train(tiny(text, run, max_steps=2))
    info = json.loads((run / "config.json").read_text())
    info["train"]["max_steps"] = 3          # what --max-steps on a resume changes: allowed either way
    (run / "config.json").write_text(json.dumps(info))
    assert train(resume_config(run), resume=run)["steps"] == 3


def test_a_nan_weight_in_the_checkpoint_to_resume_names_the_file(text, tmp_path):
    from rnnlm import checkpoint
    run = tmp_path / "r"
    train(tiny(text, run, max_steps=2))
    ck = checkpoint.load(run / "model.npz")
    model = {k: v.copy() for k, v in ck.model.items()}
    model["decoder.bias"][3] = float("nan")
    checkpoint.save(run / "model.npz", model, config=ck.config, vocab=ck.vocab, optim=ck.optim, train=ck.train)
    with pytest.raises(UserError) as e:
        train(resume_config(run, {"max_steps": 4}), resume=run)
    assert str(e.value) == (f"{run / 'model.npz'}: state dict entry decoder.bias: 1 of its 300 values are not finite "
                            f"(nan or inf): these weights diverged or the file is damaged; restore it, or train "
                            f"afresh into another --out")


def test_an_unknown_setting_in_config_json_names_the_file(text, tmp_path):
    run = tmp_path / "r"
    train(tiny(text, run, max_steps=2))
    info = json.loads((run / "config.json").read_text())
    info["train"]["foo"] = 1
    (run / "config.json").write_text(json.dumps(info))
    with pytest.raises(UserError) as e:
        resume_config(run)
    assert str(e.value).startswith(f"{run / 'config.json'}: config has settings this rnnlm does not know: foo")
    assert str(e.value).endswith("; restore the file (an edited config.json, or one written by a newer rnnlm)")


def test_plot_probe_of_a_file_that_is_no_probe_result_says_what_it_is(tmp_path, capsys):
    from rnnlm.cli import main
    lag = tmp_path / "jacobian.json"
    lag.write_text(json.dumps({"meta": {}, "curves": {}}))
    other = tmp_path / "x.json"
    other.write_text("{}")
    assert main(["plot", "probe", str(lag)]) == 2
    assert capsys.readouterr().err == f"error: {lag} is a lag curve (the jacobian command's): plot lag draws it\n"
    assert main(["plot", "probe", str(other)]) == 2
    assert capsys.readouterr().err == (f"error: {other} is not a probe result (no \"probe\": agreement or context; "
                                       f"the probe command writes them)\n")


def test_a_string_of_distances_and_a_float_word_count_from_python():
    import numpy as np
    from rnnlm import probes
    with pytest.raises(TypeError, match=r"^agreement_probe: distances must be a list of integers, got the string "
                                        r"'1,2' \(parse_distances\('1,2'\) reads the command's form\)$"):
        probes.agreement_probe(lambda p, c: np.ones(len(p)), {}, "1,2", 10)
    assert probes.parse_distances("1,2") == [1, 2]


def test_generate_text_takes_an_integral_float_word_count(text, tmp_path):
    from rnnlm.runs import load_model
    from rnnlm.sample import generate_text
    train(tiny(text, tmp_path / "r", max_steps=2))
    model, vocab, _, _ = load_model(tmp_path / "r")
    assert generate_text(model, vocab, words=5.0) == generate_text(model, vocab, words=5)


def test_a_context_figure_of_two_modes_names_both_in_its_title(tmp_path):
    import matplotlib.pyplot as plt
    from rnnlm import plotruns
    from test_s29_figs import context_result
    paths = [context_result(tmp_path, mode) for mode in ("replace", "shuffle")]
    fig = plotruns.draw_probe(paths)
    assert fig.axes[0].get_title().split("\n")[0] == ("Context usage: context beyond d replaced by random words or "
                                                      "shuffled")
    plt.close(fig)


def test_a_resumed_copy_of_a_run_records_its_own_folder(text, tmp_path):
    import shutil
    train(tiny(text, tmp_path / "a", max_steps=2))
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    assert json.loads((tmp_path / "b" / "config.json").read_text())["train"]["out"] == str(tmp_path / "a")
    train(resume_config(tmp_path / "b", {"max_steps": 3}), resume=tmp_path / "b")
    info = json.loads((tmp_path / "b" / "config.json").read_text())
    assert info["train"]["out"] == str(tmp_path / "b") and info["train"]["max_steps"] == 3
    assert json.loads((tmp_path / "a" / "config.json").read_text())["train"]["out"] == str(tmp_path / "a")
