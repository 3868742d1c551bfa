"""Session 42: what the new-user trial of session 41 left open (see each test's docstring)."""
import json
from pathlib import Path
import shutil
import warnings

import pytest

from rnnlm.cli import main
from rnnlm.train import train

from test_train import tiny

# ---------------------------------------------------------------- a checkpoint of another run


@pytest.fixture(scope="module")
def two_runs(text, tmp_path_factory):
    """Two runs of the same settings but the seed, and a third of another size."""
    root = tmp_path_factory.mktemp("two")
    for name, kw in (("a", {}), ("b", {"seed": 1}), ("c", {"emsize": 8})):
        train(tiny(text, root / name, max_steps=2, log_every=1, **kw))
    return root


def _swapped(two_runs, tmp_path, source):
    """A copy of run a whose model.npz and best.npz are run `source`'s."""
    run = tmp_path / "a"
    shutil.copytree(two_runs / "a", run)
    for name in ("model.npz", "best.npz"):
        shutil.copy(two_runs / source / name, run / name)
    return run


def test_every_session_of_a_run_keeps_its_run_id(two_runs, tmp_path):
    """config.json and every checkpoint record the run's run_id; a resume keeps it; two runs differ."""
    from rnnlm import checkpoint
    ids = {}
    for name in "abc":
        info = json.loads((two_runs / name / "config.json").read_text())
        ids[name] = info["run_id"]
        assert len(info["run_id"]) == 32 and int(info["run_id"], 16) >= 0
        for ck in ("model.npz", "best.npz"):
            assert checkpoint.load(two_runs / name / ck).config["run_id"] == info["run_id"]
    assert len(set(ids.values())) == 3
    run = tmp_path / "a"
    shutil.copytree(two_runs / "a", run)        # a run folder copied whole is the same run: it resumes
    assert main(["train", "--resume", str(run), "--max-steps", "4", "--no-progress"]) == 0
    assert json.loads((run / "config.json").read_text())["run_id"] == ids["a"]
    assert checkpoint.load(run / "model.npz").config["run_id"] == ids["a"]


@pytest.mark.parametrize("source", ["b", "c"])
def test_a_resume_refuses_another_runs_checkpoint_saying_whose_it_is(two_runs, tmp_path, capsys, source):
    """A model.npz copied in from another run of other sizes was refused with the advice for an edited
    config.json ("put "emsize": 8 back into it"), which would have made the folder resume the other run's
    weights under this run's records; one of the same settings was resumed silently. Both now say whose
    checkpoint it is, and nothing is changed."""
    run = _swapped(two_runs, tmp_path, source)
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and p.suffix != ".lock"}
    assert main(["train", "--resume", str(run), "--max-steps", "4", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err == (f"error: {run / 'model.npz'} is a checkpoint of the run {two_runs / source}, not of the run "
                   f"{run / 'config.json'} records (another run_id): a resume continues only the run that saved "
                   f"it; put this run's own model.npz back, or resume the run it came from (a run folder copied "
                   f"whole resumes)\n")
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and p.suffix != ".lock"} == before


def test_evaluate_says_when_the_checkpoint_is_another_runs(two_runs, tmp_path, capsys):
    """A run folder whose best.npz is another run's of the same settings was read without a word."""
    from rnnlm.runs import OtherModelWarning, load_model
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_model(two_runs / "a")
    run = _swapped(two_runs, tmp_path, "b")
    with pytest.warns(OtherModelWarning) as seen:
        load_model(run)
    assert str(seen[0].message) == (f"{run / 'best.npz'} holds another run's model than {run / 'config.json'} "
                                    f"records (a checkpoint of the run {two_runs / 'b'}): its own settings are used")
    run = _swapped(two_runs, tmp_path / "x", "c")
    with pytest.warns(OtherModelWarning) as seen:
        load_model(run)
    assert str(seen[0].message) == (f"{run / 'best.npz'} holds another model than {run / 'config.json'} records "
                                    f"(emsize 16 -> 8; a checkpoint of the run {two_runs / 'c'}): its own "
                                    f"settings are used")


# ---------------------------------------------------------------- the TBB runtime of the tbb wheel

_LAYER = r"""
import numba, numpy as np
import rnnlm._jit as jit

@numba.njit(parallel=True)
def total(a):
    s = 0.0
    for i in numba.prange(a.size):
        s += a[i]
    return s

print(jit.THREADING_LAYER, total(np.ones(1000)), numba.threading_layer())
"""


def test_the_tbb_wheels_runtime_is_loaded_from_its_own_folder():
    """The tbb wheel puts libtbb.so.12 in the environment's lib/ folder, which the loader does not search:
    on a machine with no system TBB every parallel kernel raised "No threading layer could be loaded"
    (a fresh venv, the install the README gives). The library is now loaded from the wheel's folder."""
    import os
    import subprocess
    import sys
    from importlib.metadata import PackageNotFoundError, version
    try:
        version("tbb")
    except PackageNotFoundError:
        pytest.skip("the tbb package is not installed here (no wheel for this platform)")
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_THREADING_LAYER", "LD_LIBRARY_PATH")}
    r = subprocess.run([sys.executable, "-c", _LAYER], capture_output=True, text=True, timeout=300, env=env)
    assert (r.returncode, r.stdout.split()) == (0, ["tbb", "1000.0", "tbb"]), r.stderr[-2000:]


def test_a_tbb_that_does_not_load_falls_back_to_workqueue(monkeypatch):
    """A TBB library that cannot be loaded (or is too old for Numba) gives workqueue (fork-safe), not a layer
    whose every kernel fails."""
    import sys
    from rnnlm import threadlayer
    monkeypatch.setattr(threadlayer, "load_tbb", lambda: None)
    assert threadlayer.fork_safe_layer() == "workqueue"

    class Old:
        @staticmethod
        def TBB_runtime_interface_version():
            return 12050
    monkeypatch.setattr(threadlayer, "load_tbb", lambda: Old())
    assert threadlayer.fork_safe_layer() == "workqueue"
    monkeypatch.setattr(threadlayer, "load_tbb", lambda: object())       # (a library without the call)
    assert threadlayer.fork_safe_layer() == "workqueue"
    monkeypatch.undo()
    monkeypatch.setattr(threadlayer, "_loaded", [])
    monkeypatch.setattr(sys, "platform", "sunos5")      # (no TBB library name known there)
    assert threadlayer.load_tbb() is None


# ---------------------------------------------------------------- the budget a resume must exceed


def test_the_budget_a_resume_must_exceed_is_not_overstated_for_a_run_of_seconds():
    """A run of a fraction of a second was told "give --max-minutes above 0.01" (rounded up to 0.01 min,
    0.6 s), though 0.005 trains further: below 0.1 min the figure keeps two significant digits."""
    from rnnlm.resume import budget_to_exceed, minutes_text, minutes_up
    assert budget_to_exceed(0.12, 0.08) == 0.0034 and minutes_text(0.0034) == "0.0034"      # 0.2 s
    assert budget_to_exceed(60.0, 6.0) == 1.1 and minutes_text(1.1) == "1.10"               # as before
    assert budget_to_exceed(3.0, 0.0) == 0.05 and minutes_text(0.05) == "0.050"
    assert minutes_up(0.005) == 0.005 and minutes_up(0.00501) == 0.0051 and minutes_up(0.61) == 0.61
    for b in (0.2, 1.7, 5.9, 13.0, 59.0, 61.0, 600.0):      # rounded up, never down (it would name the refused one)
        assert budget_to_exceed(b, 0.0) >= b / 60 and float(minutes_text(budget_to_exceed(b, 0.0))) >= b / 60


# ---------------------------------------------------------------- a run inside another run's folder


def test_a_new_run_inside_another_runs_folder_is_noted(two_runs, tmp_path, capsys, monkeypatch):
    """`train --out RUN/sub` made a run among a finished run's files without a word."""
    from rnnlm.runs import inside_a_run
    shutil.copytree(two_runs / "a", tmp_path / "runs" / "a")
    monkeypatch.chdir(tmp_path)
    assert inside_a_run(Path("runs/a/sub/deeper")) == (
        "runs/a/sub/deeper is inside the run folder runs/a: the new run is kept among that run's files (and is "
        "copied or deleted with them); give an --out beside it, such as runs/deeper, to keep them apart")
    assert inside_a_run(Path("runs/b")) is None and inside_a_run(tmp_path / "runs" / "a") is None
    assert inside_a_run(tmp_path / "runs" / "a" / "x") == (
        f"{tmp_path / 'runs/a/x'} is inside the run folder {tmp_path / 'runs/a'}: the new run is kept among that "
        f"run's files (and is copied or deleted with them); give an --out beside it, such as "
        f"{tmp_path / 'runs/x'}, to keep them apart")
    text = json.loads((tmp_path / "runs/a/config.json").read_text())["train"]["data"]["corpus"]
    train(tiny(text, "runs/a/sub", max_steps=1))
    assert capsys.readouterr().err.startswith("runs/a/sub is inside the run folder runs/a:")
    shutil.copytree(tmp_path / "runs" / "a", tmp_path / "runs" / "taken")       # the example would be refused
    assert inside_a_run(Path("runs/a/taken")) == (
        "runs/a/taken is inside the run folder runs/a: the new run is kept among that run's files (and is "
        "copied or deleted with them); give an --out beside it to keep them apart")


# ---------------------------------------------------------------- gradcheck's bar


def test_gradcheck_shows_a_bar_of_the_derivatives_on_a_terminal(capsys, monkeypatch):
    """`gradcheck --layers 64` printed nothing for minutes (each derivative runs the whole model four
    times); on a terminal a bar now counts the derivatives toward all of them, with the array being checked."""
    from rnnlm import runs
    from rnnlm.gradcheck import gradcheck
    report = gradcheck(cell="rnn", progress=True)
    assert report.ok and capsys.readouterr().err == ""         # not a terminal: no bar
    monkeypatch.setattr(runs, "stderr_is_terminal", lambda: True)
    assert gradcheck(cell="rnn", progress=False).ok and capsys.readouterr().err == ""
    assert gradcheck(cell="rnn", progress=True).ok
    err = capsys.readouterr().err
    # 55 + 25 + 25 + 5 + 5 (the rnn) + 55 + 11 (the decoder) + 15 (h0): every entry of V=11, E=H=5, B=3
    assert "gradcheck rnn activation=tanh layers=1: 0%| | 0/196 [" in " ".join(err.split())
    assert main(["gradcheck", "--cell", "gru"]) == 0
    assert "gradcheck gru layers=1" in capsys.readouterr().err


def test_a_child_process_that_inherits_the_tbb_layer_loads_the_library_too():
    """The parent's choice (NUMBA_THREADING_LAYER=tbb in the environment) is inherited by every worker
    process (bench, sweep, demo): those skipped the loading and every parallel kernel failed there, the
    sweep's Dask workers first of all, which ask Numba for its threads before any kernel module is imported."""
    import os
    import subprocess
    import sys
    from rnnlm import _jit
    if _jit.THREADING_LAYER != "tbb":
        pytest.skip("this process does not use the tbb layer")
    env = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}
    env["NUMBA_THREADING_LAYER"] = "tbb"
    r = subprocess.run([sys.executable, "-c", _LAYER], capture_output=True, text=True, timeout=300, env=env)
    assert (r.returncode, r.stdout.split()) == (0, ["tbb", "1000.0", "tbb"]), r.stderr[-2000:]
    worker = ("import numba, rnnlm.sweep, sys; print(numba.get_num_threads() > 0, numba.threading_layer(), "
              "'rnnlm._jit' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", worker], capture_output=True, text=True, timeout=300, env=env)
    assert (r.returncode, r.stdout.split()) == (0, ["True", "tbb", "False"]), r.stderr[-2000:]


def test_gradcheck_says_why_a_dropout_models_arrays_are_not_checked_and_of_how_many(capsys):
    """`gradcheck --cell gru --dropout 0.999` said PASS with 7 of its 8 arrays not checked, blaming "a deep
    stack's lowest layers" for a 1-layer model: the dropout mask zeroes those gradients."""
    from rnnlm.gradcheck import format_overall, gradcheck
    rep = gradcheck(cell="gru", dropout=0.999)
    assert rep.ok and len(rep.unresolved) == 7 and set(rep.errors) - set(rep.unresolved) == {"decoder.bias"}
    assert rep.lines()[-1] == ("  7 arrays not checked: their gradients are too small for a finite difference (the "
                               "units that the mask of --dropout 0.999 drops, whose gradient is zero; a lower "
                               "--dropout checks them)")
    assert main(["gradcheck", "--cell", "gru", "--dropout", "0.999"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        f"gradcheck overall: max relative error {rep.max_error:.2e} -> PASS on the 1 of 8 arrays checked (7 not "
        "checked: too small for a finite difference)")
    assert format_overall(1e-9, 0, 8) == "gradcheck overall: max relative error 1.00e-09 -> PASS"
    assert gradcheck(cell="gru", layers=3, dropout=0.5).small_because == (
        "a deep stack's lowest layers, where the gradient vanishes, or the units that the mask of --dropout 0.5 "
        "drops, whose gradient is zero; fewer layers or a lower --dropout check them")


# ---------------------------------------------------------------- a stop while many samples are drawn


def test_a_stop_before_most_samples_began_prints_no_blank_line_for_them(capsys):
    """`generate --num-samples 100000 --words 1` stopped after the first sample's word printed that word and
    then 199,998 blank lines, two per sample not begun; the note said "(100000 samples of 1)"."""
    import numpy as np
    from rnnlm.clitrain import _print_samples
    from rnnlm.sample import Piece

    class Stream:
        words_drawn = np.array([1, 1] + [0] * 99_998)

        def __iter__(self):
            yield Piece(0, "Verdes", True)
            yield Piece(1, "Casa", False)
            raise KeyboardInterrupt

        def text(self, i):
            return {0: "Verdes", 1: "Casa"}.get(i, "")
    assert _print_samples(Stream(), 1, 100_000) == 130
    out, err = capsys.readouterr()
    assert out == "Verdes\n\nCasa\n"
    assert err == ("interrupted after 2 of 100,000 words (100,000 samples of 1); the text drawn so far is printed "
                   "(99,998 samples not begun)\n")


# ---------------------------------------------------------------- what a refusal says of a run


def test_a_resume_with_a_patience_the_run_already_meets_does_not_say_it_stopped_early(tmp_path):
    """A run stopped at --max-steps, resumed with --patience 1 after one validation without improvement,
    was refused as "already at step 100 and stopped early: 1 validations without improvement"."""
    from rnnlm.config import TrainConfig
    from rnnlm.errors import UserError
    from rnnlm.loopstate import LoopState
    from rnnlm.resume import refuse_finished_resume
    config = TrainConfig(patience=1, max_minutes=0, max_steps=200)
    with pytest.raises(UserError) as caught:
        refuse_finished_resume(config, LoopState(step=100, bad_evals=1), tmp_path / "k9")
    assert str(caught.value) == (f"{tmp_path / 'k9'} is already at step 100 with 1 validation without improvement "
                                 "since its best, which --patience 1 allows no more of; give --patience above 1 to "
                                 "train further")


def test_evaluate_of_a_split_the_run_does_not_have_says_so(text, tmp_path, capsys):
    """`evaluate RUN --split test` of a run trained with --test-fraction 0 said "0 tokens are too few for batch
    size 1; use a smaller batch or a larger corpus"."""
    from rnnlm.config import DataConfig
    run = tmp_path / "r"
    config = tiny(text, run, max_steps=1)
    import dataclasses
    train(dataclasses.replace(config, data=DataConfig(corpus=str(text), max_vocab=300, valid_fraction=0.1,
                                                      test_fraction=0.0)))
    capsys.readouterr()
    assert main(["evaluate", str(run), "--split", "test"]) == 2
    assert capsys.readouterr().err == ("error: the run's test split holds 0 tokens (the run was trained with "
                                       "--test-fraction 0): nothing to evaluate; give another --split, or a text "
                                       "with --text FILE\n")


def test_advice_to_resume_quotes_a_folder_the_shell_would_split(two_runs, tmp_path, capsys):
    """With --out "runs/it's a run", the advice said `--resume runs/it's a run`, which does not paste."""
    import shlex
    from rnnlm.errors import shell_arg
    odd = tmp_path / "it's a run"
    shutil.copytree(two_runs / "a", odd)
    assert shell_arg("runs/a") == "runs/a" and shlex.split(shell_arg(odd)) == [str(odd)]
    text = json.loads((odd / "config.json").read_text())["train"]["data"]["corpus"]
    with pytest.raises(Exception) as caught:
        train(tiny(text, odd, max_steps=1))
    assert str(caught.value).endswith(f"use --resume {shell_arg(odd)} with a larger --max-steps to train it further, "
                                      "or another --out")
    assert f"--resume '{tmp_path}/it'\"'\"'s a run'" in str(caught.value)


def test_a_new_run_into_a_finished_runs_folder_is_told_to_resume_it_with_a_larger_limit(two_runs, tmp_path):
    """`train --out RUN` of a run that finished at its --max-steps advised `--resume RUN`, which is then
    refused at that limit; the advice now names the limit to raise."""
    from rnnlm.errors import UserError
    from rnnlm.runs import refuse_taken
    run = tmp_path / "a"
    shutil.copytree(two_runs / "a", run)
    with pytest.raises(UserError) as caught:
        refuse_taken(run)
    assert str(caught.value) == (f"{run} already holds a run, which stopped at its --max-steps; use --resume {run} "
                                 f"with a larger --max-steps to train it further, or another --out")
    (run / "metrics.jsonl").write_text("")         # (records that say nothing of its stop: the plain advice)
    with pytest.raises(UserError) as caught:
        refuse_taken(run)
    assert str(caught.value) == f"{run} already holds a run; use --resume {run} or another --out"


def test_evaluate_of_a_renamed_corpus_file_says_to_give_it_its_name_again(text, tmp_path, capsys):
    """The run's single-file corpus renamed (same bytes) was "other text ... or read another way", with no
    word of the name, which the checksum covers."""
    mine = tmp_path / "mv" / "t.txt"
    mine.parent.mkdir()
    shutil.copy(text, mine)
    run = tmp_path / "r"
    train(tiny(mine, run, max_steps=1))
    moved = mine.rename(mine.with_name("t2.txt"))
    capsys.readouterr()
    assert main(["evaluate", str(run), "--corpus", str(moved)]) == 2
    err = capsys.readouterr().err
    assert ("(checksum differs; it covers the files' names too: if t2.txt is the run's text renamed, name it t.txt "
            "again, the name it was trained under); give the folder or file") in err, err
    moved.rename(mine)
    assert main(["evaluate", str(run), "--corpus", str(mine)]) == 0


def test_the_context_tables_interval_is_rounded_outward():
    """A lower end of -2.9e-5 was shown as +0.0000, an interval that read as above zero."""
    from rnnlm.probereport import format_context
    res = {"mode": "shuffle", "n_targets": 50, "window": 40, "baseline_loss": 3.0, "distances": [1, 5],
           "effective_context": 1, "tolerance": 1e-4,
           "results": [{"distance": 1, "mean_increase": 0.5, "ci": [0.41234, 0.58761], "within_noise": False},
                       {"distance": 5, "mean_increase": 4e-5, "ci": [-2.9e-5, 1.1e-4], "within_noise": True}]}
    rows = format_context(res).splitlines()
    assert rows[0].endswith("; within noise: the interval's lower end at or below 0.0001 nats")
    assert rows[2].split() == ["1", "0.5000", "[+0.4123,", "+0.5877]"]
    assert rows[3].split() == ["5", "0.0000", "[-0.0001,", "+0.0002]", "within", "noise"]


def test_a_study_runs_line_says_why_an_accurate_run_is_not_solved():
    """"recall-k2-rnn-d5-s0: done not solved, accuracy 1.00" read as a contradiction: the accuracy reached
    the threshold at the last evaluations only, fewer than --patience in a row."""
    from rnnlm.sweeprecord import format_row_line
    row = {"name": "recall-k2-rnn-d5-s0", "status": "done", "wall_s": 7.8, "worker": "tcp://w", "steps": 500,
           "solved": False, "solved_step": None, "final_acc": 1.0, "train": {"threshold": 0.99, "patience": 3}}
    assert format_row_line(row) == ("recall-k2-rnn-d5-s0: done steps 500, not solved, accuracy 1.00 (at 0.99 or "
                                    "above in fewer than 3 evaluations in a row: --patience 3) [7.8 s on tcp://w]")
    assert format_row_line({**row, "final_acc": 0.5}).endswith("not solved, accuracy 0.50 [7.8 s on tcp://w]")


def test_a_long_evaluation_says_it_has_begun_where_no_bar_is_drawn(capsys, monkeypatch):
    """`evaluate RUN --split train --batch-size 1` ran five minutes on a log (or an IDE's 0 x 0 pty) without a
    word; from a million predictions one line says what is evaluated."""
    import numpy as np
    from rnnlm import evaluate
    evaluate._say_long(np.zeros((1_000_001, 1)), "evaluating machado:train")
    assert capsys.readouterr().err == "evaluating machado:train: 1,000,000 tokens in 1 stream...\n"
    evaluate._say_long(np.zeros((1_000, 1)), "evaluating short")
    monkeypatch.setattr(evaluate, "stderr_is_terminal", lambda: True)       # (the bar says it there)
    evaluate._say_long(np.zeros((1_000_001, 4)), "evaluating machado:train")
    assert capsys.readouterr().err == ""


def test_evaluate_blames_another_runs_checkpoint_not_the_runs_vocab_json(two_runs, tmp_path, capsys):
    """A model.npz of another run (another vocabulary) made `evaluate --checkpoint latest` advise restoring
    or deleting the run's vocab.json, the innocent file."""
    run = tmp_path / "a"
    shutil.copytree(two_runs / "a", run)
    vocab = json.loads((run / "vocab.json").read_text())
    vocab["itos"] = vocab["itos"][:-1] + ["zzz"]
    (run / "vocab.json").write_text(json.dumps(vocab))        # (as if run b had another vocabulary)
    shutil.copy(two_runs / "b" / "model.npz", run / "model.npz")
    assert main(["evaluate", str(run), "--checkpoint", "latest"]) == 2
    assert capsys.readouterr().err == (
        f"error: {run / 'model.npz'} is a checkpoint of the run {two_runs / 'b'}, not of the run "
        f"{run / 'config.json'} records (another run_id; its vocabulary is not this run's vocab.json either): put "
        f"this run's own model.npz back, or read that run instead\n")
