"""train at the edges of a resume and of its start-up: a run folder whose vocab.json was deleted (or damaged)
and a resume that left it so, a Ctrl-C during the start-up that still named the run folder on standard output
(and a resume refused after its start-up that had already said "resuming"), and a resume whose unchanged time
budget already stopped the run, refused only after the corpus was read and the kernels compiled."""
import json
import os
import shutil
import signal
import threading

import pytest

from rnnlm import checkpoint, resume
from rnnlm import train as train_module
from rnnlm.cli import main
from rnnlm.loopstate import LoopState
from rnnlm.runs import resume_config

FLAGS = ["--max-vocab", "300", "--valid-fraction", "0.1", "--test-fraction", "0.1",
         "--emsize", "16", "--hidden", "16", "--bptt", "8", "--batch-size", "16", "--dropout", "0",
         "--sample-words", "0", "--no-progress"]
MAIN_THREAD = pytest.mark.skipif(threading.current_thread() is not threading.main_thread(),
                                 reason="signals need the main thread")


def _snapshot(folder):
    """Every file of a run folder with its bytes (the lock file aside: it is no content)."""
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.name != ".train.lock"}


def _err_lines(capsys) -> list:
    return capsys.readouterr().err.strip().splitlines()


@pytest.fixture(scope="module")
def trained(text, tmp_path_factory):
    """A run of 2 steps to copy: its folder."""
    out = tmp_path_factory.mktemp("runs") / "r"
    assert main(["train", "--corpus", str(text), *FLAGS, "--max-steps", "2", "--out", str(out)]) == 0
    return out


# ---------------------------------------------------------------- 1. a run folder without its vocab.json


@pytest.mark.parametrize("damage, why", [("delete", "was missing"), ("garble", "was not valid JSON"),
                                         ("replace", "held another vocabulary than model.npz")])
def test_a_resume_writes_a_missing_or_damaged_vocab_json_again(trained, tmp_path, capsys, damage, why):
    run = tmp_path / "r"
    shutil.copytree(trained, run)
    original = (run / "vocab.json").read_bytes()
    if damage == "delete":
        (run / "vocab.json").unlink()
    elif damage == "garble":
        (run / "vocab.json").write_bytes(original[:40])
    else:
        (run / "vocab.json").write_text(json.dumps({"itos": ["<unk>", "<eos>", "a"]}), encoding="utf-8")
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--max-steps", "3"]) == 0
    err = _err_lines(capsys)
    assert f"{run / 'vocab.json'} {why}; written again from the run's corpus, whose checksum matches " \
           f"config.json's (the vocabulary inside model.npz)" in err, err
    assert (run / "vocab.json").read_bytes() == original          # the very file the run started with
    assert not [p.name for p in run.iterdir() if p.name.endswith(".tmp")]
    assert int(checkpoint.load(run / "model.npz").train["step"]) == 3
    # an intact vocab.json is left alone, and said nothing about
    assert main(["train", "--resume", str(run), "--max-steps", "4"]) == 0
    assert not [line for line in _err_lines(capsys) if "vocab.json" in line]


def test_a_resume_on_another_text_cannot_rebuild_vocab_json_and_says_so_in_one_line(text, tmp_path, capsys):
    corpus = tmp_path / "cronica.txt"
    shutil.copyfile(text, corpus)
    run = tmp_path / "r"
    assert main(["train", "--corpus", str(corpus), *FLAGS, "--max-steps", "2", "--out", str(run)]) == 0
    (run / "vocab.json").unlink()
    with open(corpus, "a", encoding="utf-8") as f:
        f.write("\nUma linha nova, que muda o texto.\n")
    before = _snapshot(run)
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--max-steps", "3"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.strip().splitlines() == [
        f"error: the corpus or tokenizer changed since {run} was trained (checksum differs); resuming would mix "
        f"data (nor can its missing vocab.json be rebuilt from it): resume it on the text it was trained on (the "
        f"checksum covers the names of the corpus's files too: a renamed file counts as other text), or "
        f"train afresh into another --out (evaluate and generate still read the run)"]
    assert _snapshot(run) == before


def test_generate_and_evaluate_read_the_checkpoints_vocabulary_and_say_what_to_do_with_a_damaged_file(
        trained, tmp_path, capsys):
    run = tmp_path / "r"
    shutil.copytree(trained, run)
    (run / "vocab.json").unlink()
    capsys.readouterr()
    # no vocab.json: the checkpoint carries the vocabulary (meta.vocab), so both still work
    assert main(["generate", str(run), "--words", "3"]) == 0
    assert main(["evaluate", str(run)]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("perplexity: ")
    (run / "vocab.json").write_text("{bad", encoding="utf-8")
    assert main(["generate", str(run), "--words", "3"]) == 2
    err = _err_lines(capsys)
    assert len(err) == 1 and err[0].startswith(f"error: {run / 'vocab.json'} is not valid JSON (") and err[0].endswith(
        "); restore the run's own vocab.json, or delete vocab.json: best.npz carries the vocabulary itself"), err
    (run / "vocab.json").write_text(json.dumps({"itos": ["<unk>", "<eos>"]}), encoding="utf-8")
    assert main(["evaluate", str(run)]) == 2
    assert _err_lines(capsys) == [
        f"error: {run / 'vocab.json'} does not match the vocabulary inside {run / 'best.npz'}; restore the run's "
        f"own vocab.json, or delete vocab.json: best.npz carries the vocabulary itself"]


# ---------------------------------------------------------------- 2. a signal during start-up names no folder


def _signal_while_compiling(monkeypatch, signum=signal.SIGINT):
    real = train_module._warm_up

    def killed(*a, **k):
        os.kill(os.getpid(), signum)
        return real(*a, **k)
    monkeypatch.setattr(train_module, "_warm_up", killed)


@MAIN_THREAD
def test_ctrl_c_while_compiling_prints_no_run_folder_and_leaves_nothing(text, tmp_path, capsys, monkeypatch):
    """The folder was named on standard output ("run folder: X") before the kernels compiled, so a Ctrl-C
    there left a script holding the name of a folder that the same Ctrl-C had removed."""
    out = tmp_path / "runs" / "r"
    argv = ["train", "--corpus", str(text), *FLAGS, "--max-steps", "2", "--out", str(out)]
    with monkeypatch.context() as m:
        _signal_while_compiling(m)
        assert main(argv) == 130
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.strip().splitlines() == [f"interrupted during start-up; nothing was trained ({out} removed)"]
    assert not (tmp_path / "runs").exists()
    # the same --out trains, and names its folder first
    assert main(argv) == 0
    assert capsys.readouterr().out.splitlines()[0] == f"run folder: {out}"
    assert int(checkpoint.load(out / "model.npz").train["step"]) == 2


@MAIN_THREAD
def test_ctrl_c_while_a_resume_compiles_says_no_resuming(trained, tmp_path, capsys, monkeypatch):
    run = tmp_path / "r"
    shutil.copytree(trained, run)
    before = _snapshot(run)
    capsys.readouterr()
    with monkeypatch.context() as m:
        _signal_while_compiling(m)
        assert main(["train", "--resume", str(run), "--max-steps", "3"]) == 130
    captured = capsys.readouterr()
    assert captured.out == ""                   # was "resuming R from step 2 (epoch 1)"
    assert captured.err.strip().splitlines() == [
        f"interrupted during start-up; nothing was trained: {run} is as it was (continue with --resume {run} "
        f"--max-steps 3)"]
    assert _snapshot(run) == before


@MAIN_THREAD
def test_a_ctrl_c_lost_while_compiling_stops_at_the_next_kernel_not_after_all_of_them(text, tmp_path, capsys,
                                                                                     monkeypatch):
    """The start-up handler's KeyboardInterrupt can land in a ctypes callback of Numba's cache, which drops it;
    the start-up then compiled every other kernel (a minute and more, cold) before stopping at its end. It
    stops as the next kernel begins to compile."""
    import numba
    out = tmp_path / "runs" / "r"
    real, reached = train_module._warm_up, []

    def warm_up(*a, **k):
        try:
            os.kill(os.getpid(), signal.SIGINT)
        except KeyboardInterrupt:
            pass                            # dropped, as a ctypes callback drops it

        @numba.njit(cache=False)
        def next_kernel(x):                 # a kernel compiled after the signal
            return x + 1
        next_kernel(1)
        reached.append("after the next kernel")
        return real(*a, **k)
    monkeypatch.setattr(train_module, "_warm_up", warm_up)
    assert main(["train", "--corpus", str(text), *FLAGS, "--max-steps", "2", "--out", str(out)]) == 130
    captured = capsys.readouterr()
    assert reached == []
    assert captured.out == ""
    assert captured.err.strip().splitlines() == [f"interrupted during start-up; nothing was trained ({out} removed)"]
    assert not (tmp_path / "runs").exists()


# ---------------------------------------------------------------- 3. a spent time budget, refused before start-up


@pytest.fixture(scope="module")
def timed_out(text, tmp_path_factory):
    """A run stopped by its --max-minutes (0.01: 0.6 s) with its final evaluation done: (folder, elapsed s)."""
    out = tmp_path_factory.mktemp("runs") / "t"
    assert main(["train", "--corpus", str(text), *FLAGS, "--max-minutes", "0.01", "--patience", "0",
                 "--min-lr", "0", "--epochs", "100000", "--out", str(out)]) == 0
    events = [json.loads(line) for line in (out / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]
    stops = [e for e in events if e["type"] == "stop"]
    assert len(stops) == 1 and stops[0]["reason"] == "max_minutes" and events[-1]["type"] == "end"
    return out, float(checkpoint.load(out / "model.npz").train["elapsed"])


def _no_start_up(monkeypatch):
    def prepare(*a, **k):
        raise AssertionError("the corpus was read: the refusal came after the start-up")
    monkeypatch.setattr(train_module, "_prepare", prepare)


@pytest.mark.parametrize("flags", [[], ["--max-steps", "99999"], ["--max-minutes", "0.01"]])
def test_a_resume_with_the_budget_that_stopped_the_run_is_refused_before_start_up(timed_out, tmp_path, capsys,
                                                                                  monkeypatch, flags):
    run = tmp_path / "t"
    shutil.copytree(timed_out[0], run)
    step = int(checkpoint.load(run / "model.npz").train["step"])
    before = _snapshot(run)
    capsys.readouterr()
    _no_start_up(monkeypatch)
    assert main(["train", "--resume", str(run), *flags]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    err = captured.err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith(f"error: {run} is already at step {step}, where its --max-minutes 0.01 ran out: it has "
                             f"trained {resume.minutes_text(timed_out[1] / 60)} min"), err
    assert err[0].endswith(f"; give --max-minutes above {resume.minutes_text(_need(run, 0.01))} (or 0: no time "
                           "limit) to train "
                           "further"), err
    assert _snapshot(run) == before


def _need(run, budget_min: float) -> float:
    """The budget a resume must exceed: above the one refused, and above the time trained plus the final
    evaluation's reserve as the last session measured it (under the reserve's own cap), rounded up."""
    loop = LoopState.from_arrays(checkpoint.load(run / "model.npz").train)
    return max(resume.budget_to_exceed(loop.elapsed, resume.recorded_reserve(run, loop)[0]),
               resume.minutes_up(budget_min))


def test_another_budget_is_left_to_the_start_ups_measurement(timed_out):
    run, elapsed = timed_out
    loop = LoopState.from_arrays(checkpoint.load(run / "model.npz").train)
    for budget in (0.02, 1.0):      # more than the run had: whether it leaves a window is measured
        resume.refuse_spent_budget(resume_config(run, {"max_minutes": budget}), loop, run)
    resume.refuse_spent_budget(resume_config(run, {"max_minutes": 0.0}), loop, run)     # no time limit
    with pytest.raises(Exception, match=r"where its --max-minutes 0.01 ran out"):
        resume.refuse_spent_budget(resume_config(run, {}), loop, run)


def test_a_resume_refused_after_its_start_up_printed_no_resuming_line(timed_out, tmp_path, capsys):
    """A budget just above the time trained, which the final evaluation's measured reserve fills: refused
    once the speed is measured, and standard output no longer says "resuming R from step S" first."""
    run = tmp_path / "t"
    shutil.copytree(timed_out[0], run)
    budget = 1.2 * timed_out[1] / 60
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--max-minutes", f"{budget:.6f}"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    err = [line for line in captured.err.strip().splitlines() if line.startswith("error: ")]
    assert len(err) == 1 and err[0].startswith(f"error: {run} is already at step "), captured.err
    assert "and its final evaluation needs about" in err[0] or "which fills --max-minutes" in err[0]


def test_the_advice_before_start_up_counts_the_final_evaluation_the_last_session_measured(timed_out, tmp_path,
                                                                                          capsys, monkeypatch):
    """Budgets below the time trained plus the final evaluation are refused before the start-up, each with
    the one figure the start-up's own measurement gives (it named 0.16 before the start-up and 0.21 after,
    and a smaller budget refused named a smaller figure: the reserve's cap was the refused budget's)."""
    run = tmp_path / "t"
    shutil.copytree(timed_out[0], run)
    stop = [json.loads(line) for line in (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
            if json.loads(line)["type"] == "stop"][-1]
    need = stop["final_eval_need_s"]
    assert need > 0
    loop = LoopState.from_arrays(checkpoint.load(run / "model.npz").train)
    assert resume.recorded_reserve(run, loop)[0] >= need
    advice = resume.budget_to_exceed(loop.elapsed, resume.recorded_reserve(run, loop)[0])
    assert advice * 60 > loop.elapsed + min(need, 0.5 * 60 * advice)           # it leaves a window, capped
    _no_start_up(monkeypatch)
    said = set()
    for budget in (0.3 * timed_out[1] / 60, (timed_out[1] + 0.5 * min(need, timed_out[1])) / 60):
        capsys.readouterr()
        assert main(["train", "--resume", str(run), "--max-minutes", f"{budget:.6f}"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1, err
        said.add(err[0].rsplit("give --max-minutes above ", 1)[1])
    assert said == {f"{resume.minutes_text(advice)} (or 0: no time limit) to train further"}
    # and the advice itself passes every check before the start-up (which the test stops at)
    with pytest.raises(AssertionError, match="the corpus was read"):
        main(["train", "--resume", str(run), "--max-minutes", f"{advice * 1.01:.6f}"])


def test_budget_to_exceed_leaves_a_window_under_the_reserves_cap():
    assert resume.budget_to_exceed(60.0, 6.0) == 1.1            # 66 s: the reserve (6 s) under half of it
    assert resume.budget_to_exceed(6.0, 60.0) == 0.2            # capped at half: b = 6 / (1 - 0.5) = 12 s
    assert resume.budget_to_exceed(60.0, 0.0) == 1.0


def test_a_resume_past_two_limits_names_both_flags_at_once(timed_out):
    """A run past its --max-minutes and its --min-lr was told to raise the first, then refused for the
    second: one refusal now names both."""
    run, elapsed = timed_out
    loop = LoopState.from_arrays(checkpoint.load(run / "model.npz").train)
    config = resume_config(run, {"max_minutes": 0.5 * elapsed / 60, "min_lr": 1e-3})
    with pytest.raises(Exception) as e:
        resume.refuse_finished_resume(config, loop, run, lr=1e-4)
    said = str(e.value)
    assert ", which fills --max-minutes " in said
    assert said.endswith(" (or 0: no time limit) and --min-lr below 0.0001 (0 = no floor) to train further"), said
    # one limit: the message as it was
    config = resume_config(run, {"max_minutes": 0.0, "min_lr": 1e-3})
    with pytest.raises(Exception, match=r"below --min-lr 0.001, after \d+ plateaus?; give --min-lr below 0.0001 "
                                        r"\(0 = no floor\) to train further$"):
        resume.refuse_finished_resume(config, loop, run, lr=1e-4)
