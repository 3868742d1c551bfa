"""The instruments after a run moves on, when stopped, where their figures go, and how their API refuses.

1. jacobian.json and probe JSONs record the step of the checkpoint they measured; `plot lag` / `plot probe`
   say in one line when the run's checkpoint is at a later step now (a resume trained further), and an
   older file without the step says so only when the checkpoint was saved after it.
2. Ctrl-C (or SIGTERM) during `jacobian` and `probe` ends in one line saying what was kept, exit 130 (143),
   and leaves no half-written or temporary file, nor a folder made for the write.
3. `plot probe RUN` writes RUN/plots/probe-<kind>.png, as every other figure of a run.
4. The probe functions refuse a Python caller's bad argument with TypeError / ValueError, as jacobian.py
   and argcheck.py do; UserError stays for the data and for the commands' flags.

Untrained GRUs (E = H = 8) saved as runs, and one LSTM of 16 units trained for a few steps: seconds.
"""
import json
import os

import numpy as np
import pytest

from rnnlm import checkpoint, fileio
from rnnlm import jacobianrun
from rnnlm import probes as P
from rnnlm.cli import main
from rnnlm.errors import Terminated, UserError

JAC = ["--max-lag", "3", "--anchors", "2", "--tokens", "30", "--no-progress"]
AGR = ["--distances", "1..3", "--n", "4"]


@pytest.fixture
def run(tmp_path):
    """An untrained GRU saved as a run whose best.npz says it was saved at step 500."""
    from saved_runs import untrained_gru_run
    folder = untrained_gru_run(tmp_path, 300, 8)
    _saved_at(folder, 500)
    return folder


def _saved_at(folder, step):
    """best.npz saved again with train.step = step: what a resumed run that trained further leaves."""
    ck = checkpoint.load(folder / "best.npz")
    checkpoint.save(folder / "best.npz", ck.model, config=ck.config, vocab=ck.vocab,
                    train={"step": np.array(step), "epoch": np.array(1), "val_loss": np.array(5.0)})


def _cli(argv, capsys):
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err.splitlines()


def _notes(lines):
    return [x for x in lines if x.startswith("note:")]


# ---------------------------------------------------------------- 1. a measurement older than the checkpoint


def test_checkpoint_step_reads_the_step_alone(run, tmp_path):
    assert checkpoint.saved_step(run / "best.npz") == 500
    assert checkpoint.saved_step(tmp_path / "missing.npz") is None
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    assert checkpoint.saved_step(tmp_path / "junk.npz") is None


def test_plot_lag_says_the_jacobian_measured_an_earlier_checkpoint(run, capsys):
    assert _cli(["jacobian", run, *JAC], capsys)[0] == 0
    doc = json.loads((run / "jacobian.json").read_text())
    assert doc["meta"]["checkpoint_step"] == 500 and doc["meta"]["source"] == str(run / "best.npz")
    status, _, err = _cli(["plot", "lag", run], capsys)
    assert status == 0 and _notes(err) == []                  # the same checkpoint: nothing to say
    _saved_at(run, 1200)
    status, out, err = _cli(["plot", "lag", run], capsys)
    assert status == 0 and out.startswith(f"wrote {run / 'plots' / 'lag-auto-spectral-layer0.png'}")
    assert _notes(err) == [f"note: {run / 'jacobian.json'} measured best.npz at step 500; the run's best.npz is now "
                           f"at step 1,200 (the run trained further since): rerun 'python cli.py jacobian {run} "
                           f"--max-lag 3 --anchors 2 --tokens 30' to measure it"]
    # the JSON given by name says the same
    assert _notes(_cli(["plot", "lag", run / "jacobian.json"], capsys)[2]) == _notes(err)


def test_an_older_jacobian_json_without_the_step_is_said_unknown_only_when_the_checkpoint_is_newer(run, capsys):
    assert _cli(["jacobian", run, *JAC], capsys)[0] == 0
    path = run / "jacobian.json"
    doc = json.loads(path.read_text())
    del doc["meta"]["checkpoint_step"]                           # as written before the step was recorded
    path.write_text(json.dumps(doc))
    ck = (run / "best.npz").stat().st_mtime
    os.utime(path, (ck + 60, ck + 60))                           # written after the checkpoint: nothing said
    assert _notes(_cli(["plot", "lag", run], capsys)[2]) == []
    os.utime(path, (ck - 60, ck - 60))                           # the checkpoint saved after it
    assert _notes(_cli(["plot", "lag", run], capsys)[2]) == [
        f"note: {path} may be older than what it measured: {run / 'best.npz'} (now at step 500) was saved after it "
        f"was written, and the step it measured is unknown (it was written by an earlier rnnlm); rerun 'python cli.py "
        f"jacobian {run} --max-lag 3 --anchors 2 --tokens 30' to measure the checkpoint as it is now"]


def test_a_fresh_model_s_curve_says_nothing(tmp_path, capsys):
    out = tmp_path / "init.json"
    assert _cli(["jacobian", "--init", "--cell", "gru", "--hidden", "4", "--corpus", "none", "--vocab-size", "9",
                 *JAC[:-1], "--out", out], capsys)[0] == 0
    assert "checkpoint_step" not in json.loads(out.read_text())["meta"]
    status, _, err = _cli(["plot", "lag", out], capsys)
    assert status == 0 and _notes(err) == []


def test_plot_probe_says_the_probe_measured_an_earlier_checkpoint(run, capsys):
    assert _cli(["probe", "agreement", run, *AGR], capsys)[0] == 0
    path = run / "probe-agreement-number.json"
    assert json.loads(path.read_text())["checkpoint_step"] == 500
    assert _notes(_cli(["plot", "probe", run], capsys)[2]) == []
    _saved_at(run, 1200)
    status, _, err = _cli(["plot", "probe", run], capsys)
    assert status == 0
    assert _notes(err) == [f"note: {path} measured best.npz at step 500; the run's best.npz is now at step 1,200 "
                           f"(the run trained further since): rerun 'python cli.py probe agreement {run} "
                           f"--distances 1..3 --n 4' to measure it"]


def test_a_real_resume_makes_plot_lag_say_the_curve_is_of_an_earlier_step(text, tmp_path, capsys):
    from test_train import tiny

    from rnnlm.runs import resume_config
    from rnnlm.train import train
    folder = tmp_path / "t"
    train(tiny(text, folder, max_steps=3))
    assert _cli(["jacobian", folder, "--checkpoint", "latest", *JAC], capsys)[0] == 0
    assert json.loads((folder / "jacobian.json").read_text())["meta"]["checkpoint_step"] == 3
    train(resume_config(folder, {"max_steps": 6}), resume=folder)
    capsys.readouterr()
    assert _notes(_cli(["plot", "lag", folder], capsys)[2]) == [
        f"note: {folder / 'jacobian.json'} measured model.npz at step 3; the run's model.npz is now at step 6 (the "
        f"run trained further since): rerun 'python cli.py jacobian {folder} --max-lag 3 --anchors 2 --tokens 30 "
        f"--checkpoint latest' to measure it"]


# ---------------------------------------------------------------- 2. Ctrl-C during jacobian and probe


def _stop_in(monkeypatch, module, name, exc=KeyboardInterrupt):
    def stopped(*args, **kwargs):
        raise exc()
    monkeypatch.setattr(module, name, stopped)


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_ctrl_c_during_the_jacobian_measurement_says_nothing_was_written(run, monkeypatch, capsys):
    _stop_in(monkeypatch, jacobianrun, "lag_curve")
    status, out, err = _cli(["jacobian", run, *JAC], capsys)
    assert status == 130 and out == ""
    assert err == [f"interrupted: the Jacobian measurement stopped before it was written; nothing was written "
                   f"({run / 'jacobian.json'} was not created)"]
    assert not (run / "jacobian.json").exists() and _leftovers(run) == []


def test_sigterm_during_the_jacobian_measurement_keeps_the_earlier_file(run, monkeypatch, capsys):
    (run / "jacobian.json").write_text('{"curves": {}, "earlier": 1}\n')
    _stop_in(monkeypatch, jacobianrun, "lag_curve", Terminated)
    status, _, err = _cli(["jacobian", run, *JAC], capsys)
    assert status == 143
    assert err == [f"terminated (SIGTERM): the Jacobian measurement stopped before it was written; "
                   f"{run / 'jacobian.json'} is unchanged (it holds the earlier result) and nothing else was written"]
    assert (run / "jacobian.json").read_text() == '{"curves": {}, "earlier": 1}\n'


def test_ctrl_c_during_the_write_leaves_no_half_file_and_no_new_folder(run, tmp_path, monkeypatch, capsys):
    out = tmp_path / "new" / "sub" / "j.json"
    real = fileio.atomic_write

    def half_written(path, write_fn, **kw):             # the signal lands once the temporary file holds it all
        def write(f):
            write_fn(f)
            if path == out:
                raise KeyboardInterrupt
        real(path, write, **kw)
    monkeypatch.setattr(fileio, "atomic_write", half_written)
    status, _, err = _cli(["jacobian", run, *JAC, "--out", out], capsys)
    assert status == 130
    assert err == [f"interrupted: the Jacobian measurement stopped before it was written; nothing was written "
                   f"({out} was not created)"]
    assert not (tmp_path / "new").exists()              # made for the write, removed again (temporary file too)
    (run / "jacobian.json").write_text('{"curves": {}, "earlier": 1}\n')
    out = run / "jacobian.json"
    status, _, err = _cli(["jacobian", run, *JAC], capsys)
    assert status == 130 and err[0].endswith(f"{out} is unchanged (it holds the earlier result) and nothing else "
                                             f"was written")
    assert out.read_text() == '{"curves": {}, "earlier": 1}\n' and _leftovers(run) == []


def test_ctrl_c_while_printing_says_the_result_is_saved(run, monkeypatch, capsys):
    _stop_in(monkeypatch, jacobianrun, "format_table")
    status, _, err = _cli(["jacobian", run, *JAC], capsys)
    assert status == 130
    assert err == [f"interrupted while printing the report: the result is saved in {run / 'jacobian.json'}"]
    assert json.loads((run / "jacobian.json").read_text())["meta"]["anchors"] == 2      # written whole


@pytest.mark.parametrize("kind, measure, name", [
    ("agreement", "agreement_probe", "probe-agreement-number.json"),
    ("context", "context_usage", "probe-context-shuffle.json"),
])
def test_ctrl_c_during_a_probe_says_nothing_was_written(run, monkeypatch, capsys, kind, measure, name):
    _stop_in(monkeypatch, P, measure)
    flags = AGR if kind == "agreement" else ["--distances", "1,2", "--n-targets", "4", "--window", "5",
                                             "--split", "valid"]
    status, _, err = _cli(["probe", kind, run, *flags], capsys)
    assert status == 130
    said = [line for line in err if not line.startswith("probing number agreement: ")]      # (its opening line)
    assert said == [f"interrupted: the {kind} probe stopped before it was written; nothing was written "
                    f"({run / name} was not created)"]
    assert not (run / name).exists() and _leftovers(run) == []


# ---------------------------------------------------------------- 3. plot probe writes to RUN/plots/


def test_plot_probe_writes_to_the_run_s_plots_folder(run, capsys):
    assert _cli(["probe", "agreement", run, *AGR], capsys)[0] == 0
    status, out, _ = _cli(["plot", "probe", run], capsys)
    png = run / "plots" / "probe-agreement.png"
    assert status == 0 and out == f"wrote {png} (and .svg)\n"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.with_suffix(".svg").exists()
    assert not (run / "probe-agreement.png").exists()
    # a JSON inside the run: the same folder
    assert _cli(["plot", "probe", run / "probe-agreement-number.json"], capsys)[1] == f"wrote {png} (and .svg)\n"


def test_plot_probe_help_names_the_plots_folder(capsys):
    with pytest.raises(SystemExit):
        main(["plot", "probe", "--help"])
    assert "RUN/plots/probe-<kind of the data>.png" in " ".join(capsys.readouterr().out.split())


# ---------------------------------------------------------------- 4. the probe API's errors


@pytest.mark.parametrize("call, exc, message", [
    (lambda: P.parse_distances("5..1"), ValueError, "parse_distances: '5..1' runs backwards; give the smaller end "
                                                    "first (1..5)"),
    (lambda: P.perturb(np.arange(5), 2, "jumble", np.random.default_rng(0), 5), ValueError,
     "perturb: mode must be one of shuffle, replace, drop, got 'jumble'"),
    (lambda: P.agreement_probe(lambda p, c: np.zeros(len(p)), {}, [1, 2], 2.0), TypeError,
     "agreement_probe: n_per_distance must be an int >= 1, got 2.0 (float)"),
    (lambda: P.agreement_probe(lambda p, c: np.zeros(len(p)), {}, [1, 2.5], 2), TypeError,
     "agreement_probe: distances must be integers >= 1, got [1, 2.5]"),
    (lambda: P.agreement_probe(lambda p, c: np.zeros(len(p)), {}, [], 2), ValueError,
     "agreement_probe: distances must be integers >= 1, got []"),
    (lambda: P.agreement_probe(lambda p, c: np.zeros(len(p)), {}, [1], 2, feature="case"), ValueError,
     "agreement_probe: feature must be 'number' or 'gender', got 'case'"),
    (lambda: P.check_context_args(100, [1, 2], "shuffle", 2.5, 5), TypeError,
     "context_usage: window must be an integer >= 2, got 2.5"),
    (lambda: P.check_context_args(100, [1, 2], "shuffle", 20, 0), ValueError,
     "context_usage: n_targets must be an integer >= 1, got 0"),
    (lambda: P.check_context_args(100, ["a"], "shuffle", 20, 5), TypeError,
     "context_usage: distances must be integers, got ['a']"),
    (lambda: P.find_probe_results([], "bogus"), ValueError,
     "find_probe_results: kind must be 'agreement' or 'context', got 'bogus'"),
    (lambda: P.final_logprobs(None, [[1]], [[0]], batch_size=2.0), TypeError,
     "final_logprobs: batch_size must be an int >= 1, got 2.0 (float)"),
])
def test_the_probe_api_refuses_bad_arguments_with_type_or_value_errors(call, exc, message):
    with pytest.raises(exc) as info:
        call()
    assert type(info.value) is exc and str(info.value) == message


def test_the_data_and_the_commands_flags_still_give_user_errors():
    with pytest.raises(UserError, match=r"^context_usage: stream has 20 tokens; the context probe needs more"):
        P.check_context_args(20, [1], "shuffle", 20, 5)
    with pytest.raises(UserError, match=r"^--distances 5\.\.1 runs backwards"):
        P.parse_distances("5..1", flags=True)
    with pytest.raises(UserError, match=r"^--n-targets must be an integer >= 1, got 0$"):
        P.check_context_args(100, [1, 2], "shuffle", 20, 0, flags=True)
    with pytest.raises(UserError, match="^the vocabulary lacks function words the agreement templates need: "):
        P.agreement_probe(lambda p, c: np.zeros(len(p)), {}, [1, 2], 2)
